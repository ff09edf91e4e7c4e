"""halfbyte.matmul against numpy on the dequantized weights, for every ISA."""

import threading

import numpy as np
import pytest

import halfbyte

FORMATS = ["q4_0", "q4_1", "q8_0", "int4_g128", "int4a_g64_bf16"]


@pytest.fixture(params=halfbyte.available_isas())
def isa(request):
    saved = halfbyte.isa()
    halfbyte.set_isa(request.param)
    yield request.param
    halfbyte.set_isa(saved)


def bound(x, w, precision):
    """Error bound of the kernels (see tests/kernels/test_matmul.cpp): fp32 rounding,
    plus, on the integer path, half a quantization step of each activation."""
    K = x.shape[-1]
    gamma = (K / 32 + 34) * 2.0**-24
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    act = np.zeros((x.shape[0], w.shape[0]))
    if precision == "int":
        step = np.abs(x64).reshape(x.shape[0], -1, 32).max(axis=2) / 127 / 2  # [M, K/32]
        act = np.repeat(step, 32, axis=1) @ np.abs(w64).T
    return (act + gamma * (np.abs(x64) @ np.abs(w64).T + act)) * 1.001 + 1e-30


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("precision", ["int", "float"])
@pytest.mark.parametrize("M", [1, 3, 17])
def test_matmul_matches_numpy(isa, fmt, precision, M):
    rng = np.random.default_rng(M)
    N, K = 45, 384
    w = rng.standard_normal((N, K), dtype=np.float32)
    qt = halfbyte.quantize(w, fmt)
    wd = qt.dequantize()
    x = rng.standard_normal((M, K), dtype=np.float32)
    y = halfbyte.matmul(x, qt, precision=precision)
    assert y.shape == (M, N) and y.dtype == np.float32
    ref = x.astype(np.float64) @ wd.astype(np.float64).T
    assert np.all(np.abs(y - ref) <= bound(x, wd, precision))


def test_vector_input_and_threads():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((100, 256), dtype=np.float32)
    qt = halfbyte.quantize(w, "q4_0")
    x = rng.standard_normal(256, dtype=np.float32)
    y = halfbyte.matmul(x, qt)
    assert y.shape == (100,)
    np.testing.assert_array_equal(y, halfbyte.matmul(x[None, :], qt)[0])
    np.testing.assert_array_equal(y, halfbyte.matmul(x, qt, n_threads=1))


def test_float_weights_use_eigen():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((33, 64), dtype=np.float32)
    x = rng.standard_normal((5, 64), dtype=np.float32)
    np.testing.assert_allclose(halfbyte.matmul(x, w), x @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        halfbyte.matmul(x, w.astype(np.float16)), x @ w.astype(np.float16).astype(np.float32).T, rtol=1e-5, atol=1e-5
    )


def test_num_threads():
    saved = halfbyte.num_threads()
    halfbyte.set_num_threads(1)
    assert halfbyte.num_threads() == 1
    halfbyte.set_num_threads(saved)
    with pytest.raises(ValueError):
        halfbyte.set_num_threads(0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda qt: halfbyte.matmul(np.ones((2, 64), np.float64), qt), "float32"),
        (lambda qt: halfbyte.matmul(np.ones((2, 32), np.float32), qt), "K = 32"),
        (lambda qt: halfbyte.matmul(np.ones((2, 2, 64), np.float32), qt), "1-D"),
        (lambda qt: halfbyte.matmul(np.ones((2, 64), np.float32), qt, precision="fast"), "precision"),
        (lambda qt: halfbyte.matmul(np.ones((2, 64), np.float32), qt, n_threads=0), "n_threads"),
        (lambda qt: halfbyte.matmul(np.ones((2, 64), np.float32), "w"), "QTensor"),
        (lambda qt: halfbyte.matmul(np.ones((2, 64), np.float32), np.ones((3, 64), np.int32)), "dtype"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    qt = halfbyte.quantize(np.ones((8, 64), np.float32), "q4_0")
    with pytest.raises(ValueError, match=message):
        call(qt)


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(3)
    qt = halfbyte.quantize(rng.standard_normal((64, 512), dtype=np.float32), "q4_1")
    x = rng.standard_normal((4, 512), dtype=np.float32)
    expected = halfbyte.matmul(x, qt)
    results = []

    def work():
        for _ in range(20):
            results.append(np.array_equal(halfbyte.matmul(x, qt), expected))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and all(results)


@pytest.mark.parametrize("precision", ["auto", "int", "float"])
@pytest.mark.parametrize("M", [1, 5, 48])
def test_non_finite_rows_give_non_finite_outputs(precision, M):
    """As numpy: a NaN or an infinity in a row of x leaves no finite value in that
    row of x @ w.T, and the other rows are what they are without it."""
    rng = np.random.default_rng(M)
    w = halfbyte.quantize(rng.standard_normal((40, 128)).astype(np.float32), "q4_0")
    x = rng.standard_normal((M, 128)).astype(np.float32)
    clean = halfbyte.matmul(x, w, precision=precision)
    x[0, 17] = np.nan
    if M > 1:
        x[M - 1, 100] = np.inf
    y = halfbyte.matmul(x, w, precision=precision)
    bad = [0] + ([M - 1] if M > 1 else [])
    assert not np.isfinite(y[bad]).any()
    good = [m for m in range(M) if m not in bad]
    np.testing.assert_array_equal(y[good], clean[good])
