"""Quantize a numpy matrix in each format and report the error.

    python examples/python/quantize_error.py                 # 1024 x 4096 Gaussian weights
    python examples/python/quantize_error.py --rows 64 --cols 256 --formats q4_0 q8_0

For each format: bits per weight, RMS error relative to the weights' RMS, the
largest absolute error, and the signal-to-noise ratio in dB, for the error-
minimising quantizer ("auto") and round-to-nearest ("rtn", ggml's reference).
"""

import argparse
import time

import numpy as np

import halfbyte


def report(w: np.ndarray, fmt: str, method: str) -> str:
    t0 = time.perf_counter()
    qt = halfbyte.quantize(w, fmt, method=method)
    seconds = time.perf_counter() - t0
    err = qt.dequantize() - w
    rms = float(np.sqrt(np.mean(err.astype(np.float64) ** 2)))
    rel = rms / float(np.sqrt(np.mean(w.astype(np.float64) ** 2)))
    bits = 8 * qt.nbytes / w.size
    return (f"{fmt:16s} {method:5s} {bits:5.2f} b/w  rel RMS {rel:8.5f}  max |err| {np.abs(err).max():8.5f}  "
            f"SNR {-20 * np.log10(rel):5.1f} dB  ({seconds * 1e3:6.1f} ms)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--cols", type=int, default=4096, help="a multiple of 128 fits every format")
    p.add_argument("--formats", nargs="+", default=list(halfbyte.FORMATS), choices=halfbyte.FORMATS)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    w = np.random.default_rng(a.seed).standard_normal((a.rows, a.cols), dtype=np.float32)
    print(f"weights: {a.rows} x {a.cols} float32 ({w.nbytes / 2**20:.1f} MiB), kernels: {halfbyte.isa()}")
    for fmt in a.formats:
        for method in ("auto", "rtn"):
            print(report(w, fmt, method))


if __name__ == "__main__":
    main()
