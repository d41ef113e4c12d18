"""recorders/create.py against h5py's high-level calls: the same datasets and attributes.

Independent truth: for every argument set a recording uses, a dataset made by
``new_dataset`` and one made by h5py's ``create_dataset`` have the same type, shape,
maxshape, layout, chunks, filter pipeline (ids, flags and the values HDF5's filters set
at creation), fill value and time tracking; attributes made by ``set_attrs`` and by
``attrs[name] = value`` have the same HDF5 type, shape and value.
"""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest

from recorders.create import dataset_plist, new_dataset, set_attrs
from recorders.layout import compression_args

_names = itertools.count()


def _mem_file():
    return h5py.File(f"create{next(_names)}.h5", "w", driver="core", backing_store=False,
                     libver="latest")


def _properties(ds) -> dict:
    plist = ds.id.get_create_plist()
    return {
        "dtype": ds.dtype, "shape": ds.shape, "maxshape": ds.maxshape, "chunks": ds.chunks,
        "layout": plist.get_layout(),
        "filters": [plist.get_filter(i) for i in range(plist.get_nfilters())],
        "fill": ds.fillvalue, "fill_time": plist.get_fill_time(),
        "alloc_time": plist.get_alloc_time(),
        "track_times": plist.get_obj_track_times(),
        "type": ds.id.get_type().dtype, "type_size": ds.id.get_type().get_size(),
    }


def _compressions():
    out = ["none", "lzf", "gzip:1", "gzip"]
    try:
        import hdf5plugin  # noqa: F401
        out += ["blosc:lz4", "zstd:1"]
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("compression", _compressions())
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int64])
def test_columns_are_created_as_h5py_creates_them(compression, dtype):
    _, kw = compression_args(compression)
    with _mem_file() as f:
        ours = new_dataset(f, "ours", dtype, (0,), maxshape=(None,),
                           plist=dataset_plist((4096,), **kw))
        theirs = f.create_dataset("theirs", (0,), dtype=dtype, maxshape=(None,),
                                  chunks=(4096,), **kw)
        assert _properties(ours) == _properties(theirs)
        for ds in (ours, theirs):  # and they store the same
            ds.resize((10_000,))
            ds[:] = np.arange(10_000).astype(dtype)
        np.testing.assert_array_equal(ours[:], theirs[:])


@pytest.mark.parametrize("dtype,shape", [("S64", ()), ("S8", (5,)), (np.float32, (3,)),
                                         (np.int32, ())])
def test_chunked_and_contiguous_tables_are_created_as_h5py_creates_them(dtype, shape):
    with _mem_file() as f:
        ours = new_dataset(f, "ours", dtype, (0,) + shape, maxshape=(None,) + shape,
                           plist=dataset_plist((256,) + shape))
        theirs = f.create_dataset("theirs", (0,) + shape, dtype=dtype,
                                  maxshape=(None,) + shape, chunks=(256,) + shape)
        assert _properties(ours) == _properties(theirs)
        data = np.zeros((2, 300), np.uint16)
        data[1, 7] = 9
        ours = new_dataset(f, "ours_c", np.uint16, data.shape, data=data)
        theirs = f.create_dataset("theirs_c", data=data)
        assert _properties(ours) == _properties(theirs)
        np.testing.assert_array_equal(ours[:], data)


def test_attributes_are_created_as_h5py_creates_them():
    values = {"format": "eventpipe-recording", "empty": "", "unicode": "kamera \u00e9\u00e8",
              "int": 3, "big": 1 << 40, "float": 1.5e9,
              "array": np.array([640, 480], np.int64), "bool": np.bool_(True)}
    with _mem_file() as f:
        a, b = f.create_group("a"), f.create_group("b")
        set_attrs(a, values)
        for k, v in values.items():
            b.attrs[k] = v
        assert sorted(a.attrs) == sorted(b.attrs)
        for k in values:
            ta, tb = a.attrs.get_id(k).get_type(), b.attrs.get_id(k).get_type()
            assert ta.get_class() == tb.get_class() and ta.get_size() == tb.get_size(), k
            if ta.get_class() == h5py.h5t.STRING:
                assert ta.is_variable_str() == tb.is_variable_str()
                assert ta.get_cset() == tb.get_cset()
            assert a.attrs.get_id(k).shape == b.attrs.get_id(k).shape, k
            np.testing.assert_array_equal(a.attrs[k], b.attrs[k])
            assert type(a.attrs[k]) is type(b.attrs[k]), k


def test_an_unknown_filter_is_refused_by_id():
    with pytest.raises(ValueError, match="Unknown compression filter number: 64999"):
        dataset_plist((16,), compression=64999)
