"""halfbyte.load_gguf / save_gguf against the independent `gguf` package (llama.cpp's
gguf-py): files written by one are read by the other, values, types and tensor
bytes equal; zero-copy views; temp-file-then-rename on errors and cancellation."""

import gc
import os

import numpy as np
import pytest

import halfbyte

gguf = pytest.importorskip("gguf")
T = gguf.GGMLQuantizationType
V = gguf.GGUFValueType

TYPE_NAMES = {
    V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32", V.INT32: "i32",
    V.UINT64: "u64", V.INT64: "i64", V.FLOAT32: "f32", V.FLOAT64: "f64", V.BOOL: "bool", V.STRING: "string",
}


def reader_value(f):
    """A gguf.ReaderField as a Python value (strings decoded, arrays as lists)."""
    if f.types[0] == V.ARRAY:
        if f.types[1] == V.STRING:
            return [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types[0] == V.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8", "surrogateescape")
    return f.parts[f.data[0]][0].item()


def reader_type(f):
    if f.types[0] == V.ARRAY:
        return "array[" + TYPE_NAMES[f.types[1]] + "]" if len(f.types) > 1 else "array[i32]"
    return TYPE_NAMES[f.types[0]]


def user_fields(r):
    return {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}


def rng_matrix(rows, cols, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)


METADATA = {
    "general.architecture": "llama",
    "general.name": "t\u00e9st \u2603",
    "t.int": 7,
    "t.neg": -3,
    "t.big": 2**40,
    "t.huge": 2**64 - 1,
    "t.float": 0.25,
    "t.bool": False,
    "t.ints": [1, -2, 3],
    "t.floats": [0.5, 1, -2.25],
    "t.strs": ["a", "", "\u00fc"],
    "t.bools": [True, False],
    "t.u16": np.arange(4, dtype=np.uint16),
    "t.f64": np.float64(0.1),
}
EXPECTED_TYPES = {
    "general.architecture": "string", "general.name": "string", "t.int": "i32", "t.neg": "i32", "t.big": "i64",
    "t.huge": "u64", "t.float": "f32", "t.bool": "bool", "t.ints": "array[i32]", "t.floats": "array[f32]",
    "t.strs": "array[string]", "t.bools": "array[bool]", "t.u16": "array[u16]", "t.f64": "f64",
}


def tensors():
    w = rng_matrix(6, 64)
    return {
        "w.f32": w,
        "w.f16": w.astype(np.float16),
        "w.q4_0": halfbyte.quantize(w, "q4_0"),
        "w.q4_1": halfbyte.quantize(w, "q4_1"),
        "w.q8_0": halfbyte.quantize(w, "q8_0"),
        "v.f32": np.arange(5, dtype=np.float32),
        "x.i32": np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        "x.f64": np.linspace(0, 1, 16).reshape(1, 2, 2, 4),
        "w.strided": w[:, ::2],
    }


def test_save_gguf_is_read_by_the_gguf_package(tmp_path):
    path = str(tmp_path / "a.gguf")
    ts = tensors()
    halfbyte.save_gguf(path, METADATA, ts, types={"t.int": "u32"})
    r = gguf.GGUFReader(path)
    fields = user_fields(r)
    assert list(fields) == list(METADATA)  # dict order kept
    for key, want in METADATA.items():
        got = reader_value(fields[key])
        want = want.tolist() if isinstance(want, np.ndarray) else want
        if key in ("t.float", "t.floats"):
            np.testing.assert_array_equal(np.float32(got), np.float32(want))
        else:
            assert got == want, key
        assert reader_type(fields[key]) == ("u32" if key == "t.int" else EXPECTED_TYPES[key]), key
    assert [t.name for t in r.tensors] == list(ts)
    for t in r.tensors:
        src = ts[t.name]
        if isinstance(src, halfbyte.QTensor):
            assert t.tensor_type == getattr(T, src.format.upper())
            assert list(t.shape) == [src.shape[1], src.shape[0]]  # ne = [cols, rows]
            assert t.data.tobytes() == src.to_bytes()
        else:
            assert list(t.shape) == list(reversed(src.shape))
            np.testing.assert_array_equal(t.data.reshape(src.shape), src)
        assert t.data_offset % 32 == 0


def test_gguf_package_file_is_read_by_load_gguf(tmp_path):
    path = str(tmp_path / "b.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint32("t.u32", 4000000000)
    w.add_int8("t.i8", -5)
    w.add_float64("t.f64", 1e-300)
    w.add_array("t.strs", ["x", "yz"])
    w.add_key_value("t.u8s", [1, 2, 255], V.ARRAY, sub_type=V.UINT8)
    a = rng_matrix(4, 256, seed=1)
    w.add_tensor("f32", a)
    w.add_tensor("f16", a.astype(np.float16))
    w.add_tensor("bf16", gguf.quants.quantize(a, T.BF16), raw_dtype=T.BF16)
    for qt in (T.Q4_0, T.Q4_1, T.Q8_0, T.Q5_0, T.Q5_1):
        w.add_tensor(qt.name, gguf.quants.quantize(a, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    c = halfbyte.load_gguf(path)
    meta, ts = c  # a (metadata, tensors) tuple
    assert meta["t.u32"] == 4000000000 and c.types["t.u32"] == "u32"
    assert meta["t.i8"] == -5 and c.types["t.i8"] == "i8"
    assert meta["t.f64"] == 1e-300 and c.types["t.f64"] == "f64"
    assert meta["t.strs"] == ["x", "yz"] and c.types["t.strs"] == "array[string]"
    assert meta["t.u8s"] == [1, 2, 255] and c.types["t.u8s"] == "array[u8]"
    assert meta["general.architecture"] == "llama"
    r = gguf.GGUFReader(path)
    for t in r.tensors:
        got = ts[t.name]
        ref = gguf.quants.dequantize(t.data, t.tensor_type).reshape(4, 256)
        if t.tensor_type in (T.Q4_0, T.Q4_1, T.Q8_0):
            assert isinstance(got, halfbyte.QTensor) and got.shape == (4, 256)
            assert got.to_bytes() == t.data.tobytes()
            np.testing.assert_array_equal(got.dequantize(), ref)
        else:
            assert isinstance(got, np.ndarray) and got.shape == (4, 256)
            assert got.dtype == (np.float16 if t.tensor_type == T.F16 else np.float32)
            np.testing.assert_array_equal(got.astype(np.float32), ref.astype(np.float32))


def test_round_trip_keeps_types_and_bytes(tmp_path):
    a, b = str(tmp_path / "a.gguf"), str(tmp_path / "b.gguf")
    halfbyte.save_gguf(a, METADATA, tensors(), types={"t.int": "u8", "t.ints": "array[i64]", "t.float": "f64"})
    c = halfbyte.load_gguf(a)
    halfbyte.save_gguf(b, c.metadata, c.tensors, types=c.types)
    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    fa, fb = user_fields(ra), user_fields(rb)
    assert sorted(fa) == sorted(fb)
    for k in fa:
        assert fa[k].types == fb[k].types, k
        assert reader_value(fa[k]) == reader_value(fb[k]), k
    assert c.types["t.int"] == "u8" and c.types["t.ints"] == "array[i64]" and c.types["t.float"] == "f64"
    ta = {t.name: t for t in ra.tensors}
    for t in rb.tensors:
        assert t.tensor_type == ta[t.name].tensor_type
        assert list(t.shape) == list(ta[t.name].shape)
        assert t.data.tobytes() == ta[t.name].data.tobytes()


def test_load_gguf_arrays_are_zero_copy_views_of_the_file(tmp_path):
    path = str(tmp_path / "z.gguf")
    halfbyte.save_gguf(path, {}, {"a": rng_matrix(8, 32), "b": rng_matrix(3, 32, seed=2), "h": np.ones(64, np.float16)})
    c = halfbyte.load_gguf(path)
    r = gguf.GGUFReader(path)
    offsets = {t.name: int(t.data_offset) for t in r.tensors}
    a, b, h = c.tensors["a"], c.tensors["b"], c.tensors["h"]
    # One mapping of the file: the arrays sit exactly as far apart as in the file.
    assert b.ctypes.data - a.ctypes.data == offsets["b"] - offsets["a"]
    assert h.ctypes.data - a.ctypes.data == offsets["h"] - offsets["a"]
    assert not a.flags.writeable and not a.flags.owndata
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
    # The views keep the mapping alive after the rest of the result is gone.
    want = a.copy()
    del c, b, h
    gc.collect()
    np.testing.assert_array_equal(a, want)
    assert a.copy().flags.writeable


def test_alignment_metadata_is_honoured(tmp_path):
    path = str(tmp_path / "al.gguf")
    halfbyte.save_gguf(path, {"general.alignment": 64}, {"a": np.ones(3, np.float32), "b": np.ones(5, np.float32)},
                       types={"general.alignment": "u32"})
    r = gguf.GGUFReader(path)
    assert r.alignment == 64
    assert all(t.data_offset % 64 == 0 for t in r.tensors)
    with pytest.raises(ValueError, match="general.alignment"):
        halfbyte.save_gguf(path, {"general.alignment": 48}, {}, types={"general.alignment": "u32"})
    with pytest.raises(ValueError, match="general.alignment"):
        halfbyte.save_gguf(path, {"general.alignment": 64}, {})  # i32 by default: must be u32


def leftovers(directory):
    return [n for n in os.listdir(directory) if ".tmp-" in n]


def test_cancelled_or_interrupted_save_leaves_nothing(tmp_path):
    path = tmp_path / "c.gguf"
    ts = {f"t{i}": rng_matrix(16, 64, seed=i) for i in range(6)}
    calls = []

    def interrupt(fraction):
        calls.append(fraction)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        halfbyte.save_gguf(path, {"k": 1}, ts, progress=interrupt)
    assert len(calls) == 3 and not path.exists() and leftovers(tmp_path) == []

    with pytest.raises(RuntimeError, match="cancelled"):
        halfbyte.save_gguf(path, {"k": 1}, ts, progress=lambda f: f < 0.5)
    assert not path.exists() and leftovers(tmp_path) == []

    path.write_bytes(b"old contents")
    with pytest.raises(ZeroDivisionError):
        halfbyte.save_gguf(path, {"k": 1}, ts, progress=lambda f: 1 / 0)
    assert path.read_bytes() == b"old contents" and leftovers(tmp_path) == []

    fractions = []
    halfbyte.save_gguf(path, {"k": 1}, ts, progress=fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 7
    assert len(halfbyte.load_gguf(path).tensors) == 6 and leftovers(tmp_path) == []


def test_progress_bar_with_and_without_tqdm(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "p.gguf")
    ts = {"a": np.ones((4, 32), np.float32)}
    halfbyte.save_gguf(path, {}, ts, progress=True)
    halfbyte.load_gguf(path, progress=True)
    monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # tqdm not importable
    halfbyte.save_gguf(path, {}, ts, progress=True)
    err = capsys.readouterr().err
    assert "writing p.gguf: 100%" in err
    with pytest.raises(ValueError, match="progress"):
        halfbyte.save_gguf(path, {}, ts, progress="yes")


def test_save_gguf_checks_values_before_writing(tmp_path):
    path = tmp_path / "bad.gguf"
    with pytest.raises(ValueError, match="'t.mixed'"):
        halfbyte.save_gguf(path, {"t.ok": 1, "t.mixed": [1, "a"]}, {"a": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match=r"tensors\['q'\]"):
        halfbyte.save_gguf(path, {}, {"q": halfbyte.quantize(rng_matrix(2, 64), "int4_g64")})
    assert not path.exists() and leftovers(tmp_path) == []


def test_invalid_utf8_in_keys_and_strings_round_trips(tmp_path):
    # GGUF strings should be UTF-8; other bytes come back as surrogate escapes and
    # are written back unchanged.
    path, again = str(tmp_path / "u.gguf"), str(tmp_path / "u2.gguf")
    key, value = b"k\xff".decode("utf-8", "surrogateescape"), b"v\xfe\xc3".decode("utf-8", "surrogateescape")
    halfbyte.save_gguf(path, {key: value, "list": [value]}, {key: np.ones(2, np.float32)})
    raw = open(path, "rb").read()
    assert b"\x03\x00\x00\x00\x00\x00\x00\x00v\xfe\xc3" in raw and b"k\xff" in raw
    c = halfbyte.load_gguf(path)
    assert c.metadata == {key: value, "list": [value]} and list(c.tensors) == [key]
    halfbyte.save_gguf(again, c.metadata, c.tensors, types=c.types)
    assert open(path, "rb").read() == open(again, "rb").read()
