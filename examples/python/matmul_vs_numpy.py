"""halfbyte.matmul with quantized weights against numpy on the same (dequantized)
weights: how close the results are and how long each takes.

    python examples/python/matmul_vs_numpy.py                     # M=8, N=K=4096, q4_0
    python examples/python/matmul_vs_numpy.py -m 1 -n 256 -k 512 --format q8_0

halfbyte's default "int" precision quantizes the activations per 32-block to int8
(as llama.cpp does): the difference to numpy is that rounding, not the weights'.
"float" precision uses float32 activations: the difference is only summation order.
"""

import argparse
import time

import numpy as np

import halfbyte


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", type=int, default=8, help="rows of x (tokens)")
    p.add_argument("-n", type=int, default=4096, help="rows of W (outputs)")
    p.add_argument("-k", type=int, default=4096, help="columns of x and W (inputs)")
    p.add_argument("--format", default="q4_0", choices=halfbyte.FORMATS)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((a.n, a.k)) / np.sqrt(a.k)).astype(np.float32)
    x = rng.standard_normal((a.m, a.k), dtype=np.float32)
    qt = halfbyte.quantize(w, a.format)
    w_hat = qt.dequantize()  # the weights the quantized kernel computes with
    ref = x.astype(np.float64) @ w_hat.T.astype(np.float64)
    print(f"x [{a.m}, {a.k}] @ W[{a.n}, {a.k}].T, W in {a.format} ({qt.nbytes / 2**20:.1f} MiB), "
          f"kernels {halfbyte.isa()}, {halfbyte.num_threads()} threads")
    halfbyte.matmul(x, qt)  # first call packs W for the kernels (cached in qt)
    for precision in ("int", "float"):
        y = halfbyte.matmul(x, qt, precision=precision)
        rel = np.linalg.norm(y - ref) / np.linalg.norm(ref)
        t = best_of(a.runs, lambda: halfbyte.matmul(x, qt, precision=precision))
        print(f"halfbyte {precision:5s}: rel. error vs float64 {rel:.2e}, {t * 1e3:8.3f} ms")
    y_np = x @ w_hat.T
    t = best_of(a.runs, lambda: x @ w_hat.T)
    rel = np.linalg.norm(y_np - ref) / np.linalg.norm(ref)
    print(f"numpy float32 : rel. error vs float64 {rel:.2e}, {t * 1e3:8.3f} ms (weights as float32: "
          f"{w_hat.nbytes / 2**20:.1f} MiB)")
    rel_w = np.linalg.norm(x @ w.T - ref) / np.linalg.norm(ref)
    print(f"(quantizing W itself changes the product by {rel_w:.2e})")


if __name__ == "__main__":
    main()
