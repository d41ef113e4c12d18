"""Creating a recording's datasets and attributes through h5py's low-level API.

A recording has 21 datasets.  h5py's ``create_dataset`` spends about 0.15 ms of Python per
dataset (argument checks, filter and chunk guessing, a round trip of the filter list)
on top of what HDF5 itself does, so creating a file cost ~5 ms, ~1 ns per event of a
5-million-event recording.  :func:`new_dataset` builds the same creation property list
h5py builds for the arguments a recording uses (chunks, maxshape, the byte-shuffle filter
and one compression filter, no time tracking: h5py's defaults) and calls ``H5Dcreate``
directly; :func:`set_attrs` creates new attributes the way ``attrs[name] = value`` does,
without its existence check, delete and dtype guessing.
``tests/recorders/test_create.py`` compares the datasets' creation properties and the
attributes' types and values with those h5py's high-level calls make.
"""

from __future__ import annotations

import h5py
import numpy as np
from h5py import h5a, h5d, h5p, h5s, h5t, h5z

_STR = h5py.string_dtype()   # what h5py stores a str attribute as (variable-length UTF-8)


def dataset_plist(chunks=None, *, compression=None, compression_opts=None,
                  shuffle: bool = False, fletcher32: bool = False) -> h5p.PropDCID:
    """The dataset creation property list h5py's ``create_dataset`` makes for these
    arguments (the subset a recording uses)."""
    plist = h5p.create(h5p.DATASET_CREATE)
    if chunks is not None:
        plist.set_chunk(tuple(chunks))
    if shuffle:
        plist.set_shuffle()
    if compression == "gzip":
        plist.set_deflate(4 if compression_opts is None else int(compression_opts))
    elif compression == "lzf":
        plist.set_filter(h5z.FILTER_LZF, h5z.FLAG_OPTIONAL)
    elif compression is not None:
        if not h5z.filter_avail(int(compression)):
            raise ValueError(f"Unknown compression filter number: {compression}")
        plist.set_filter(int(compression), h5z.FLAG_OPTIONAL,
                         None if compression_opts is None else tuple(compression_opts))
    if fletcher32:  # after the compression, as h5py puts it
        plist.set_fletcher32()
    plist.set_obj_track_times(False)
    return plist


def new_dataset(group: h5py.Group, name: str, dtype, shape, *, maxshape=None,
                plist: h5p.PropDCID | None = None, data: np.ndarray | None = None
                ) -> h5py.Dataset:
    """Create ``group/name`` (``maxshape`` entries of None are unlimited) and write
    ``data`` into it when given."""
    dt = np.dtype(dtype)
    tid = h5t.py_create(dt, logical=True)
    if maxshape is not None:
        maxshape = tuple(h5s.UNLIMITED if m is None else m for m in maxshape)
    space = h5s.create_simple(tuple(shape), maxshape)
    if plist is None:
        plist = dataset_plist()
    dsid = h5d.create(group.id, name.encode(), tid, space, dcpl=plist)
    if data is not None:
        dsid.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(data, dt))
    return h5py.Dataset(dsid)


def set_attrs(obj, values: dict) -> None:
    """Create the attributes ``values`` (str, int, float or arrays; none may exist yet) on
    ``obj`` as ``obj.attrs[name] = value`` would: str as variable-length UTF-8, Python
    numbers as int64/float64 scalars, arrays with their dtype and shape."""
    for name, value in values.items():
        data = np.array(value, dtype=_STR) if isinstance(value, str) else np.asarray(value)
        attr = h5a.create(obj.id, name.encode(), h5t.py_create(data.dtype, logical=True),
                          h5s.create_simple(data.shape))
        try:
            attr.write(data, mtype=h5t.py_create(data.dtype))
        finally:
            attr.close()
