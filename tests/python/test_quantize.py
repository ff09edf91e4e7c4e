"""Tests of the installed `halfbyte` package: quantize / dequantize / QTensor.

Run against the installed package, not the source tree:
    pip install --no-build-isolation .   (from the checkout)
    cd /tmp && python -m pytest /path/to/checkout/tests/python -q

Error bounds are derived from the formats (see block_bound), not picked to pass.
"""

import concurrent.futures
import copy
import pickle
import re
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import halfbyte

REPO = Path(__file__).resolve().parents[2]

GGUF_FORMATS = ("q4_0", "q4_1", "q8_0")
# Bytes per block and elements per block of every format.
LAYOUT = {"q4_0": (18, 32), "q4_1": (20, 32), "q8_0": (34, 32)}
for _g in (32, 64, 128):
    for _sfx in ("", "_bf16"):
        LAYOUT[f"int4_g{_g}{_sfx}"] = (2 + _g // 2, _g)
        LAYOUT[f"int4a_g{_g}{_sfx}"] = (4 + _g // 2, _g)


def block_size(fmt):
    return LAYOUT[fmt][1]


def stored_rounding(fmt, v):
    """Bound on |v - v'| when v is stored as the format's 16-bit scale (or min):
    half an ulp, relative for normal numbers plus half the fp16 subnormal spacing
    2^-24 (bf16 has fp32's range, so at these magnitudes it is purely relative)."""
    if fmt.endswith("_bf16"):
        return np.abs(v) * 2.0**-8
    return np.abs(v) * 2.0**-11 + 2.0**-25


def is_affine(fmt):
    return fmt == "q4_1" or fmt.startswith("int4a")


def block_bound(fmt, x):
    """Largest |x - x_hat| round-to-nearest can make on each block of x [rows, cols].

    Symmetric 4-bit: step d = amax/8; codes are off by <= 1/2 step, except the value
    opposite the extreme, which clamps from +8 to +7 (1 step). q8_0: d = amax/127,
    <= 1/2 step. Affine 4-bit: d = (max - min)/15, <= 1/2 step. Storing d (and the
    min) in 16 bits adds |code| * (d - d') (and min - min').
    """
    bs = block_size(fmt)
    blocks = x.reshape(x.shape[0], -1, bs).astype(np.float64)
    amax = np.abs(blocks).max(axis=-1)
    if fmt == "q8_0":
        d = amax / 127
        return 0.5 * d + 127 * stored_rounding(fmt, d)
    if is_affine(fmt):
        lo, hi = blocks.min(axis=-1), blocks.max(axis=-1)
        d = (hi - lo) / 15
        return 0.5 * d + 15 * stored_rounding(fmt, d) + stored_rounding(fmt, lo)
    d = amax / 8
    return d + 8 * stored_rounding(fmt, d)


def block_rmse(x, y, bs):
    diff = (x.astype(np.float64) - y.astype(np.float64)).reshape(x.shape[0], -1, bs)
    return np.sqrt(np.mean(diff**2, axis=-1))


def row_sse(x, y, w=None):
    diff2 = (x.astype(np.float64) - y.astype(np.float64)) ** 2
    return (diff2 if w is None else diff2 * w).sum(axis=1)


def make_data(rows=24, cols=256, seed=0):
    """Gaussian rows at scales 1e-3..1e3 (the small ones have fp16-subnormal scales).
    With rows >= 4 and cols >= 128 also: a zero block and a constant block (128
    wide, so whole blocks of every format), an outlier, and an exact +-amax tie
    (the sign of the scale depends on which one wins)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, cols)).astype(np.float32)
    a *= (10.0 ** rng.integers(-3, 4, size=(rows, 1))).astype(np.float32)
    if rows >= 4 and cols >= 128:
        a[0, :128] = 0.0
        a[1, :128] = 0.75
        a[2, 5] = 40.0
        a[3, 32:64] = rng.uniform(-1, 1, 32).astype(np.float32)
        a[3, 40], a[3, 50] = -2.0, 2.0
    return a



# ---- round trips -------------------------------------------------------------------


def test_formats_constant_lists_every_format():
    assert set(halfbyte.FORMATS) == set(LAYOUT)
    assert len(halfbyte.FORMATS) == len(LAYOUT)


@pytest.mark.parametrize("method", ["rtn", "auto"])
@pytest.mark.parametrize("fmt", sorted(LAYOUT))
def test_round_trip_error_within_format_bound(fmt, method):
    a = make_data()
    qt = halfbyte.quantize(a, fmt, method=method)
    assert qt.format == fmt
    assert qt.shape == a.shape
    bbytes, bs = LAYOUT[fmt]
    assert qt.nbytes == a.shape[0] * (a.shape[1] // bs) * bbytes
    back = qt.dequantize()
    assert back.dtype == np.float32 and back.shape == a.shape
    bound = block_bound(fmt, a)
    # auto's squared error per block is never above RTN's, so the RTN worst case
    # bounds the RMSE of both; RTN also obeys it element-wise.
    assert np.all(block_rmse(a, back, bs) <= bound * (1 + 1e-5) + 1e-30)
    if method == "rtn":
        err = np.abs(a.astype(np.float64) - back).reshape(a.shape[0], -1, bs).max(axis=-1)
        assert np.all(err <= bound * (1 + 1e-5) + 1e-30)
    # Zero blocks come back exactly zero, constant blocks with the error of one
    # 16-bit rounding of the constant.
    assert np.all(back[0, :128] == 0.0)
    np.testing.assert_allclose(back[1, :128], 0.75, rtol=2.0**-8)


@pytest.mark.parametrize("fmt", sorted(LAYOUT))
def test_bytes_round_trip(fmt):
    a = make_data(rows=5, cols=128, seed=1)
    qt = halfbyte.quantize(a, fmt)
    raw = qt.to_bytes()
    assert isinstance(raw, bytes) and len(raw) == qt.nbytes
    for buf in (raw, bytearray(raw), memoryview(raw), np.frombuffer(raw, np.uint8)):
        back = halfbyte.QTensor.from_bytes(buf, fmt, a.shape)
        assert back == qt
        assert back.to_bytes() == raw
        np.testing.assert_array_equal(back.dequantize(), qt.dequantize())


def test_dequantize_function_equals_method():
    qt = halfbyte.quantize(make_data(), "q4_1")
    np.testing.assert_array_equal(halfbyte.dequantize(qt), qt.dequantize())


@pytest.mark.parametrize("method", ["rtn", "auto"])
@pytest.mark.parametrize("fmt", sorted(LAYOUT))
def test_float16_input_matches_float32_of_same_values(fmt, method):
    a16 = make_data(rows=6, cols=128, seed=2).clip(-60000, 60000).astype(np.float16)
    q16 = halfbyte.quantize(a16, fmt, method=method)
    q32 = halfbyte.quantize(a16.astype(np.float32), fmt, method=method)
    assert q16.to_bytes() == q32.to_bytes()


def test_non_contiguous_input_is_copied():
    a = make_data(rows=8, cols=512)
    strided = a[:, ::2]
    fortran = np.asfortranarray(a)
    assert not strided.flags.c_contiguous and not fortran.flags.c_contiguous
    assert halfbyte.quantize(strided) == halfbyte.quantize(np.ascontiguousarray(strided))
    assert halfbyte.quantize(fortran) == halfbyte.quantize(a)
    assert halfbyte.quantize(a[::-1]) == halfbyte.quantize(a[::-1].copy())


def test_empty_matrix():
    qt = halfbyte.quantize(np.zeros((0, 64), np.float32), "q8_0")
    assert qt.shape == (0, 64) and qt.nbytes == 0 and qt.to_bytes() == b""
    assert qt.dequantize().shape == (0, 64)
    assert halfbyte.QTensor.from_bytes(b"", "q8_0", (0, 64)) == qt


# ---- against the gguf package (ggml's reference arithmetic in numpy) -----------------


@pytest.mark.parametrize("fmt", GGUF_FORMATS)
def test_rtn_bytes_equal_gguf_and_dequantize_equals_gguf(fmt):
    gguf = pytest.importorskip("gguf")
    from gguf import quants

    qtype = getattr(gguf.GGMLQuantizationType, fmt.upper())
    for seed in range(3):
        a = make_data(rows=33, cols=320, seed=seed)
        ref = quants.quantize(a, qtype)
        assert ref.dtype == np.uint8 and ref.shape == (33, 320 // 32 * LAYOUT[fmt][0])
        for method in ("rtn", "auto"):
            qt = halfbyte.quantize(a, fmt, method=method)
            raw = np.frombuffer(qt, np.uint8).reshape(ref.shape)
            if method == "rtn":
                assert qt.to_bytes() == ref.tobytes(), f"{fmt} seed {seed}"
            # The decoding agrees bit for bit too, whoever chose the codes.
            np.testing.assert_array_equal(qt.dequantize(), quants.dequantize(raw, qtype))


@pytest.mark.parametrize("fmt", sorted(LAYOUT))
def test_auto_error_not_above_rtn_per_row_and_lower_on_average(fmt):
    a = make_data(rows=32, cols=512, seed=3)
    e_rtn = row_sse(a, halfbyte.quantize(a, fmt, method="rtn").dequantize())
    e_auto = row_sse(a, halfbyte.quantize(a, fmt, method="auto").dequantize())
    # Slack only for the float32 dequantization (the search compares in float64).
    assert np.all(e_auto <= e_rtn * (1 + 1e-6))
    # Normalised per row so that the rows scaled by 1e3 do not drown the rest.
    assert np.mean(np.sqrt(e_auto / e_rtn)) < 0.99


def test_importance_weights_the_search():
    a = make_data(rows=16, cols=256, seed=4)
    rng = np.random.default_rng(4)
    w = rng.uniform(0, 10, a.shape[1]).astype(np.float32)
    w[::7] = 0.0
    rtn = halfbyte.quantize(a, "q4_0", method="rtn").dequantize()
    weighted = halfbyte.quantize(a, "q4_0", importance=w).dequantize()
    assert np.all(row_sse(a, weighted, w) <= row_sse(a, rtn, w) * (1 + 1e-6))
    # float64 importance (np.ones' default) is accepted and cast.
    assert halfbyte.quantize(a, "q4_0", importance=w.astype(np.float64)) == halfbyte.quantize(
        a, "q4_0", importance=w
    )
    # All-ones importance is the unweighted search.
    ones = np.ones(a.shape[1])
    assert halfbyte.quantize(a, "q4_1", importance=ones) == halfbyte.quantize(a, "q4_1")


# ---- bad input -------------------------------------------------------------------------

GOOD = np.ones((2, 64), np.float32)


def _nan():
    a = GOOD.copy()
    a[1, 7] = np.nan
    return a


def _inf():
    a = GOOD.copy()
    a[0, 3] = -np.inf
    return a


BAD_CALLS = {
    "float64": (lambda: halfbyte.quantize(GOOD.astype(np.float64)), "float64"),
    "int32": (lambda: halfbyte.quantize(GOOD.astype(np.int32)), "int32"),
    "big-endian": (lambda: halfbyte.quantize(GOOD.astype(">f4")), "float32"),
    "1-D": (lambda: halfbyte.quantize(np.ones(64, np.float32)), "2-D"),
    "3-D": (lambda: halfbyte.quantize(np.ones((2, 2, 64), np.float32)), "2-D"),
    "cols=33": (lambda: halfbyte.quantize(np.ones((2, 33), np.float32)), "33"),
    "cols=64 for g128": (lambda: halfbyte.quantize(GOOD, "int4_g128"), "128"),
    "unknown fmt": (lambda: halfbyte.quantize(GOOD, "q5_0"), "q5_0"),
    "unknown method": (lambda: halfbyte.quantize(GOOD, method="best"), "best"),
    "NaN": (lambda: halfbyte.quantize(_nan()), "nan"),
    "Inf": (lambda: halfbyte.quantize(_inf()), "inf"),
    "scale overflow": (lambda: halfbyte.quantize(GOOD * 1e6, "q4_0"), "overflow"),
    "importance length": (
        lambda: halfbyte.quantize(GOOD, importance=np.ones(63, np.float32)),
        "importance",
    ),
    "importance dtype": (
        lambda: halfbyte.quantize(GOOD, importance=np.ones(64, np.int32)),
        "importance",
    ),
    "importance 2-D": (
        lambda: halfbyte.quantize(GOOD, importance=np.ones((1, 64), np.float32)),
        "importance",
    ),
    "importance negative": (
        lambda: halfbyte.quantize(GOOD, importance=-np.ones(64, np.float32)),
        "importance",
    ),
    "from_bytes length": (
        lambda: halfbyte.QTensor.from_bytes(b"\0" * 35, "q4_0", (2, 32)),
        "35 bytes",
    ),
    "from_bytes cols": (lambda: halfbyte.QTensor.from_bytes(b"", "q4_0", (0, 48)), "48"),
    "from_bytes rows": (lambda: halfbyte.QTensor.from_bytes(b"", "q4_0", (-1, 32)), "rows"),
    "from_bytes fmt": (lambda: halfbyte.QTensor.from_bytes(b"", "q4_2", (0, 32)), "q4_2"),
    "from_bytes huge shape": (
        lambda: halfbyte.QTensor.from_bytes(b"\0" * 18, "q4_0", (2**62, 2**40)),
        "bytes",
    ),
    "from_bytes strided": (
        lambda: halfbyte.QTensor.from_bytes(np.zeros(72, np.uint8)[::2], "q4_0", (1, 32)),
        "contiguous",
    ),
    "set_isa": (lambda: halfbyte.set_isa("nonsense"), "nonsense"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises_value_error(name):
    call, fragment = BAD_CALLS[name]
    with pytest.raises(ValueError) as info:
        call()
    assert fragment.lower() in str(info.value).lower()


def test_process_survives_bad_input():
    for call, _ in BAD_CALLS.values():
        with pytest.raises(ValueError):
            call()
    qt = halfbyte.quantize(GOOD)
    np.testing.assert_array_equal(qt.dequantize(), GOOD)


def test_non_buffer_is_a_type_error():
    with pytest.raises(TypeError):
        halfbyte.QTensor.from_bytes("not bytes", "q4_0", (1, 32))


# ---- QTensor as a Python object ---------------------------------------------------------


def test_buffer_protocol_is_zero_copy_and_read_only():
    qt = halfbyte.quantize(make_data(rows=4, cols=128), "q4_0")
    x = np.frombuffer(qt, np.uint8)
    y = np.frombuffer(qt, np.uint8)
    assert np.shares_memory(x, y)
    assert x.tobytes() == qt.to_bytes() and x.size == qt.nbytes
    assert not x.flags.writeable
    view = memoryview(qt)
    assert view.readonly and view.format == "B" and view.shape == (qt.nbytes,)
    assert np.shares_memory(np.asarray(view), x)
    with pytest.raises((TypeError, ValueError, BufferError)):
        x[0] = 1
    # A view keeps the tensor's memory alive.
    raw = qt.to_bytes()
    del qt, view, y
    assert x.tobytes() == raw


def test_pickle_and_copy_round_trip():
    qt = halfbyte.quantize(make_data(rows=3, cols=128), "int4a_g64_bf16")
    fmt, shape, raw = qt.__getstate__()
    assert (fmt, shape, raw) == ("int4a_g64_bf16", (3, 128), qt.to_bytes())
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(qt, protocol=proto))
        assert back == qt and back.format == qt.format and back.shape == qt.shape
        np.testing.assert_array_equal(back.dequantize(), qt.dequantize())
    assert copy.deepcopy(qt) == qt and copy.copy(qt) == qt


def test_equality():
    a = make_data(rows=2, cols=64)
    qt = halfbyte.quantize(a, "q4_0")
    assert qt == halfbyte.quantize(a, "q4_0")
    assert qt != halfbyte.quantize(a, "q4_1")
    assert qt != halfbyte.quantize(a[:1], "q4_0")
    assert qt != halfbyte.quantize(a * 2, "q4_0")
    # Same bytes, different shape.
    assert halfbyte.QTensor.from_bytes(qt.to_bytes(), "q4_0", (1, 128)) != qt
    assert qt != "q4_0" and qt != None  # noqa: E711


def test_repr():
    qt = halfbyte.quantize(np.zeros((3, 64), np.float32), "q8_0")
    assert repr(qt) == "QTensor(format='q8_0', shape=(3, 64), nbytes=204)"


def test_quantize_from_threads_is_deterministic():
    a = make_data(rows=64, cols=512, seed=5)
    expected = halfbyte.quantize(a, "q4_1").to_bytes()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: halfbyte.quantize(a, "q4_1").to_bytes(), range(8)))
    assert all(r == expected for r in results)


# ---- module-level ----------------------------------------------------------------------


def test_isa():
    assert isinstance(halfbyte.isa(), str)
    assert halfbyte.isa() in halfbyte.available_isas()
    current = halfbyte.isa()
    halfbyte.set_isa(current)
    assert halfbyte.isa() == current


def test_version_matches_header():
    header = (REPO / "include" / "halfbyte" / "version.hpp").read_text()
    m = re.search(r'#define HALFBYTE_VERSION_STRING "(\d+\.\d+\.\d+)"', header)
    assert m, "HALFBYTE_VERSION_STRING not found in version.hpp"
    assert halfbyte.__version__ == m.group(1)
    assert metadata.version("halfbyte") == m.group(1)


def test_installed_package_is_tested():
    # The source tree's package has no compiled _core: importing it would fail.
    assert Path(halfbyte.__file__).resolve().parent != REPO / "bindings" / "python" / "halfbyte"


def test_public_api():
    for name in halfbyte.__all__:
        assert hasattr(halfbyte, name), name
    assert halfbyte.__doc__ and halfbyte.quantize.__doc__ and halfbyte.QTensor.__doc__
    assert len(halfbyte.FORMATS) == 15
