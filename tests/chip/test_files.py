"""Profiles and program files: strict keys, versioned format, typed errors naming what is wrong."""

import json
import zipfile

import numpy as np
import pytest

from snn.backends.chip.errors import ProfileError, ProgramFormatError
from snn.backends.chip.executor import Executor
from snn.backends.chip.profile import list_profiles, load_profile
from snn.backends.chip.program import Program

from .programs import random_program


def test_shipped_profiles_load():
    assert {"generic", "speck"} <= set(list_profiles())
    sp = load_profile("speck")
    assert sp.cores.count == 9 and not sp.cores.supports_attention
    assert sp.numerics.weight_bits == 8 and sp.numerics.membrane_bits == 16
    assert load_profile("generic").energy.e_mac_pj == 4.6


def _write(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def test_profile_missing_key_is_named(tmp_path):
    text = open(load_profile.__globals__["PROFILE_DIR"] / "generic.toml").read()
    bad = text.replace("membrane_bits = 16", "")
    with pytest.raises(ProfileError) as e:
        load_profile(_write(tmp_path, bad))
    assert e.value.key == "numerics.membrane_bits" and "missing" in str(e.value)


def test_profile_unknown_key_suggests(tmp_path):
    text = open(load_profile.__globals__["PROFILE_DIR"] / "generic.toml").read()
    bad = text.replace("membrane_bits = 16", "membrane_bit = 16\nmembrane_bits = 16")
    with pytest.raises(ProfileError, match="did you mean 'membrane_bits'") as e:
        load_profile(_write(tmp_path, bad))
    assert e.value.key == "numerics.membrane_bit"


@pytest.mark.parametrize("old, new, key", [
    ('rounding = "floor"', 'rounding = "nearest"', "numerics.rounding"),
    ("weight_bits = 8", "weight_bits = 12", "numerics.weight_bits"),
    ("membrane_bits = 16", "membrane_bits = 33", "numerics.membrane_bits"),
    ("e_ac_pj = 0.9", 'e_ac_pj = "cheap"', "energy.e_ac_pj"),
    ("supports_attention = true", "supports_attention = 1", "cores.supports_attention"),
])
def test_profile_bad_values_are_named(tmp_path, old, new, key):
    text = open(load_profile.__globals__["PROFILE_DIR"] / "generic.toml").read()
    assert old in text
    with pytest.raises(ProfileError) as e:
        load_profile(_write(tmp_path, text.replace(old, new)))
    assert e.value.key == key


def test_membranes_up_to_32_bits_are_a_valid_profile(tmp_path):
    text = open(load_profile.__globals__["PROFILE_DIR"] / "generic.toml").read()
    assert load_profile(_write(tmp_path, text.replace("membrane_bits = 16", "membrane_bits = 32"))
                        ).numerics.membrane_bits == 32


def test_unknown_profile_name():
    with pytest.raises(ProfileError, match="did you mean 'speck'"):
        load_profile("spek")


@pytest.mark.parametrize("signed", [False, True])
def test_program_roundtrip(tmp_path, signed):
    """Saved and loaded: the same description, arrays, dtypes and results (``signed``: weight
    exponents of both signs, 32-bit membranes)."""
    rng = np.random.default_rng(1)
    prog = random_program(rng, signed=signed, membrane_bits=32 if signed else 16)
    if signed:
        assert min(int(op.arrays["shift"].min()) for op in prog.ops if op.kind == "conv") < 0
    path = tmp_path / "prog.npz"
    prog.save(path)
    back = Program.load(path)
    assert back.to_json() == json.loads(json.dumps(prog.to_json()))
    for a, b in zip(prog.ops, back.ops):
        assert a.arrays.keys() == b.arrays.keys()
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
            assert a.arrays[k].dtype == b.arrays[k].dtype
    f = rng.integers(0, 5, (1,) + prog.input_shape)
    l1, s1, _ = Executor(prog).step(f)
    l2, s2, _ = Executor(back).step(f)
    np.testing.assert_array_equal(l1, l2)
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k])
    # no pickle anywhere in the file
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            assert not z.read(name).startswith(b"\x80")


def _rewrite(src, dst, edit):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(dst, **arrays)


def _desc(arrays):
    return json.loads(arrays["__program__"].tobytes())


def _set_desc(arrays, d):
    arrays["__program__"] = np.frombuffer(json.dumps(d).encode(), np.uint8)


def _with_attr(saved, dst, kind, attr, value) -> int:
    """Write ``dst``: ``saved`` with attribute ``attr`` of its first ``kind`` op set to
    ``value``; returns that op's index."""
    i = []

    def edit(a):
        d = _desc(a)
        i.append(next(j for j, op in enumerate(d["ops"]) if op["kind"] == kind))
        d["ops"][i[0]]["attrs"][attr] = value
        _set_desc(a, d)
    _rewrite(saved, dst, edit)
    return i[0]


def _entry_loads_or_is_refused(saved, dst, array, value, ok, match) -> None:
    """``saved`` with output channel 1 of the stem conv's (op1) ``array`` set to ``value``
    (int64): it loads holding ``value`` if ``ok``, else the error matches ``match`` and names
    the entry and the file."""
    def edit(a):
        a[f"op1.{array}"] = a[f"op1.{array}"].astype(np.int64)
        a[f"op1.{array}"][1] = value
    _rewrite(saved, dst, edit)
    if ok:
        assert int(Program.load(dst).ops[1].arrays[array][1]) == value
        return
    with pytest.raises(ProgramFormatError, match=match) as e:
        Program.load(dst)
    assert e.value.key == f"op1.{array}" and dst.name in str(e.value)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "prog.npz"
    random_program(np.random.default_rng(2)).save(path)
    return path


def test_other_version_is_refused(saved, tmp_path):
    def edit(a):
        d = _desc(a)
        d["version"] = 3
        _set_desc(a, d)
    _rewrite(saved, tmp_path / "v3.npz", edit)
    with pytest.raises(ProgramFormatError, match="version 3") as e:
        Program.load(tmp_path / "v3.npz")
    assert e.value.key == "version"


def test_version_1_files_are_read_on_the_fitted_grid(saved, tmp_path):
    """Version 1 (before signed exponents and the profile's ``scale_grid``): read as it was."""
    def edit(a):
        d = _desc(a)
        assert d["version"] == 2 and d["profile"]["numerics"].pop("scale_grid") == "fitted"
        d["version"] = 1
        _set_desc(a, d)
    _rewrite(saved, tmp_path / "v1.npz", edit)
    old, new = Program.load(tmp_path / "v1.npz"), Program.load(saved)
    assert old.profile == new.profile and old.profile.numerics.scale_grid == "fitted"
    assert [op.name for op in old.ops] == [op.name for op in new.ops]


def test_other_format_is_refused(saved, tmp_path):
    def edit(a):
        d = _desc(a)
        d["format"] = "something.else"
        _set_desc(a, d)
    _rewrite(saved, tmp_path / "f.npz", edit)
    with pytest.raises(ProgramFormatError, match="something.else"):
        Program.load(tmp_path / "f.npz")


def test_missing_array_is_named(saved, tmp_path):
    _rewrite(saved, tmp_path / "m.npz", lambda a: a.pop("op1.weight"))
    with pytest.raises(ProgramFormatError) as e:
        Program.load(tmp_path / "m.npz")
    assert e.value.key == "op1.weight"


def test_weights_beyond_the_profile_bits_are_refused(saved, tmp_path):
    def edit(a):
        a["op1.weight"] = a["op1.weight"].astype(np.int16) * 0 + 200
    _rewrite(saved, tmp_path / "w.npz", edit)
    with pytest.raises(ProgramFormatError, match="exceed 8 bits"):
        Program.load(tmp_path / "w.npz")


@pytest.mark.parametrize("k, ok", [(-30, True), (30, True), (-31, False), (31, False), (-1000, False)])
def test_weight_exponents_outside_plus_minus_30_are_refused(saved, tmp_path, k, ok):
    """A conv's weight exponent may be negative (a left shift) down to -30; beyond +-30 the file is
    refused, naming the op, its output channel and the entry."""
    _entry_loads_or_is_refused(saved, tmp_path / "k.npz", "shift", k, ok,
                               rf"conv op 'stem': weight exponent \(shift\) {k} of output channel 1 is "
                               r"outside \[-30, 30\]")


@pytest.mark.parametrize("bias, ok", [((1 << 23) - 1, True), (-(1 << 23) + 1, True), (1 << 23, False),
                                      (-(1 << 23), False), (1 << 62, False), (-(1 << 63), False)])
def test_biases_wider_than_the_accumulator_are_refused(saved, tmp_path, bias, ok):
    """The profile's accumulator is 24 bits: a bias up to +-(2^23 - 1) (what the compiler clips to)
    loads; a wider one is refused, naming the op, its output channel and the entry. Before: any
    int64 bias loaded, and the executor's +-2^62 cap on left-shifted sums assumed |bias| < 2^61."""
    _entry_loads_or_is_refused(saved, tmp_path / "b.npz", "bias", bias, ok,
                               rf"conv op 'stem': bias {bias} of output channel 1 does not fit the "
                               r"24-bit accumulator \(\|bias\| <= 8388607\)")


@pytest.mark.parametrize("in_shift", [-1, 31])
def test_lif_input_shift_outside_0_to_30_is_refused(saved, tmp_path, in_shift):
    """Before: a negative ``in_shift`` loaded and shifted by a negative count in the kernels."""
    i = _with_attr(saved, tmp_path / "s.npz", "lif", "in_shift", in_shift)
    with pytest.raises(ProgramFormatError, match=rf"in_shift {in_shift} is outside \[0, 30\]") as e:
        Program.load(tmp_path / "s.npz")
    assert e.value.key == f"op{i}"


@pytest.mark.parametrize("shift, ok", [(0, True), (30, True), (-1, False), (31, False), (1 << 40, False)])
def test_pool_shift_outside_0_to_30_is_refused(saved, tmp_path, shift, ok):
    """Before: any ``shift >= 0`` loaded, and a huge one was an undefined shift count in the kernels."""
    i = _with_attr(saved, tmp_path / "p.npz", "pool", "shift", shift)
    if ok:
        assert Program.load(tmp_path / "p.npz").ops[i].attrs["shift"] == shift
        return
    with pytest.raises(ProgramFormatError, match=rf"pool op 'pool': shift {shift} is outside \[0, 30\]") as e:
        Program.load(tmp_path / "p.npz")
    assert e.value.key == f"op{i}" and "p.npz" in str(e.value)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_file(saved, tmp_path, cut):
    data = saved.read_bytes()
    bad = tmp_path / "t.npz"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ProgramFormatError, match="t.npz"):
        Program.load(bad)


def test_flipped_bytes(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    for i in range(200, len(data) - 200, 97):
        data[i] ^= 0x5A
    bad = tmp_path / "x.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ProgramFormatError):
        Program.load(bad)


def test_not_a_program(tmp_path):
    p = tmp_path / "n.npz"
    np.savez(p, a=np.zeros(3))
    with pytest.raises(ProgramFormatError, match="__program__"):
        Program.load(p)
    p2 = tmp_path / "text.npz"
    p2.write_text("hello")
    with pytest.raises(ProgramFormatError):
        Program.load(p2)


@pytest.mark.parametrize("op_kind, attr, value", [
    ("conv", "kernel", "seven"), ("attn", "heads", [2]), ("lif", "in_shift", "x"),
    ("pool", "shift", 1.5),
])
def test_non_integer_attribute_is_named(saved, tmp_path, op_kind, attr, value):
    """Before: ``kernel = "seven"`` was Python's 'invalid literal for int()' (exit 1 from
    ``chip report``, no file named); ``in_shift = "x"`` loaded and failed inside the executor."""
    i = _with_attr(saved, tmp_path / "a.npz", op_kind, attr, value)
    with pytest.raises(ProgramFormatError, match=f"attribute '{attr}' = .* is not an integer") as e:
        Program.load(tmp_path / "a.npz")
    assert e.value.key == f"op{i}" and "a.npz" in str(e.value)


def test_non_finite_logit_scale_is_refused(saved, tmp_path):
    def edit(a):
        d = _desc(a)
        d["logit_scale"] = "nan"  # float("nan") reads it
        _set_desc(a, d)
    _rewrite(saved, tmp_path / "n.npz", edit)
    with pytest.raises(ProgramFormatError, match="logit_scale nan") as e:
        Program.load(tmp_path / "n.npz")
    assert e.value.key == "logit_scale"


def test_profile_nested_too_deep_is_a_profile_error(tmp_path):
    """A profile TOML nested thousands of levels deep (tomllib's RecursionError) is a ProfileError
    naming the file and the key ``toml``, like any other invalid TOML."""
    p = _write(tmp_path, "a = " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ProfileError, match="nested too deep") as e:
        load_profile(p)
    assert e.value.key == "toml" and "p.toml" in str(e.value)


def test_description_nested_too_deep_is_a_program_format_error(saved, tmp_path):
    """A description JSON nested 100,000 levels deep (json's RecursionError; was a traceback, exit
    1) is a ProgramFormatError naming the file and the ``__program__`` entry."""
    bad = tmp_path / "deep.npz"
    _rewrite(saved, bad, lambda a: a.__setitem__(
        "__program__", np.frombuffer(("[" * 100_000 + "]" * 100_000).encode(), np.uint8)))
    with pytest.raises(ProgramFormatError, match="nested too deep") as e:
        Program.load(bad)
    assert "deep.npz" in str(e.value) and "__program__" in str(e.value)
