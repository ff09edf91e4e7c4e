"""halfbyte.matmul vs ONNX Runtime's MatMulNBits (com.microsoft, bits 4, block 32,
accuracy_level 4 = int8 compute and 0 = float compute) on bench_matmul's shapes.

Both systems get the same Q4_0 weights: random 4-bit codes and fp16 scales, as a
halfbyte QTensor (GGUF Q4_0 blocks: fp16 scale, element j in the low nibble of
byte j and element j + 16 in its high nibble) and as MatMulNBits inputs (B uint8
[N, K/32, 16] with elements 2i / 2i + 1 in the low / high nibble of byte i,
scales float32 [N * K/32], no zero points: the default 8, as Q4_0's).
"""

from typing import Dict, List, Optional, Tuple

import numpy as np

from .common import log, median, ratio, seconds_per_call

# (M, N, K, what). GEMV at the SmolLM2-135M and TinyLlama-1.1B layer shapes, the
# 4096 square and bench_matmul's DRAM-bound case; GEMM (M = 512, a prompt batch).
FULL_SHAPES: List[Tuple[int, int, int, str]] = [
    (1, 1536, 576, "SmolLM2 gate/up"),
    (1, 576, 1536, "SmolLM2 down"),
    (1, 2048, 2048, "1.1B q/o"),
    (1, 5632, 2048, "1.1B gate/up"),
    (1, 2048, 5632, "1.1B down"),
    (1, 4096, 4096, "4096 square"),
    (1, 32768, 16384, "DRAM-bound (302 MB)"),
    (512, 1536, 576, "SmolLM2 gate/up"),
    (512, 576, 1536, "SmolLM2 down"),
    (512, 5632, 2048, "1.1B gate/up"),
    (512, 2048, 5632, "1.1B down"),
    (512, 4096, 4096, "4096 square"),
]
QUICK_SHAPES = [(1, 1536, 576, "SmolLM2 gate/up"), (1, 2048, 2048, "1.1B q/o"),
                (64, 1536, 576, "SmolLM2 gate/up")]
BLOCK = 32


def random_q4_0(n: int, k: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Q4_0 blocks [n, k/32, 18] (random codes, scales in [0.005, 0.02)) and their scales (float32 [n, k/32])."""
    rng = np.random.default_rng(seed)
    nb = k // BLOCK
    d = rng.uniform(0.005, 0.02, size=(n, nb)).astype(np.float16)
    blocks = np.empty((n, nb, 18), np.uint8)
    blocks[:, :, :2] = d.view(np.uint8).reshape(n, nb, 2)
    blocks[:, :, 2:] = rng.integers(0, 256, size=(n, nb, 16), dtype=np.uint8)
    return blocks, d.astype(np.float32)


def q4_0_to_nbits(blocks: np.ndarray) -> np.ndarray:
    """Re-packs Q4_0 codes for MatMulNBits: uint8 [N, K/32, 16], element 2i low nibble, 2i + 1 high."""
    qs = blocks[:, :, 2:]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=2)  # [N, nb, 32] in element order
    return (codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)).astype(np.uint8)


def dequant_q4_0(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    qs = blocks[:, :, 2:]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=2).astype(np.float32) - 8.0
    return (codes * scales[:, :, None]).reshape(blocks.shape[0], -1)


class OrtMatMul:
    """A one-node MatMulNBits model with B and scales as initializers."""

    def __init__(self, b: np.ndarray, scales: np.ndarray, n: int, k: int, accuracy: int, threads: int):
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        node = helper.make_node("MatMulNBits", ["A", "B", "S"], ["Y"], domain="com.microsoft", K=k, N=n, bits=4,
                                block_size=BLOCK, accuracy_level=accuracy)
        graph = helper.make_graph(
            [node], "matmulnbits",
            [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
            initializer=[numpy_helper.from_array(b, "B"), numpy_helper.from_array(scales.reshape(-1), "S")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("com.microsoft", 1)])
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.nbytes = b.nbytes + scales.nbytes  # what its kernel streams per GEMV

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(["Y"], {"A": x})[0]


def ort_missing() -> Optional[str]:
    """None if onnx and onnxruntime import, else why not."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed (python3 -m pip install onnxruntime onnx)"
    return None


def sanity_check(threads: int, use_ort: bool) -> dict:
    """Same weights, same input: both systems vs numpy on the dequantized weights (not timed)."""
    import halfbyte

    m, n, k = 8, 256, 576
    blocks, scales = random_q4_0(n, k, seed=5)
    qt = halfbyte.QTensor.from_bytes(blocks.tobytes(), "q4_0", (n, k))
    x = np.random.default_rng(6).standard_normal((m, k), dtype=np.float32)
    ref = x.astype(np.float64) @ dequant_q4_0(blocks, scales).astype(np.float64).T
    scale = float(np.abs(ref).max())

    def rel(y: np.ndarray) -> float:
        return float(np.abs(y - ref).max() / scale)

    out = {"shape": [m, n, k], "max_rel_err": {
        "halfbyte float": rel(halfbyte.matmul(x, qt, precision="float", n_threads=threads)),
        "halfbyte int": rel(halfbyte.matmul(x, qt, precision="int", n_threads=threads))}}
    if use_ort:
        b = q4_0_to_nbits(blocks)
        for acc in (0, 4):
            out["max_rel_err"][f"ort acc{acc}"] = rel(OrtMatMul(b, scales, n, k, acc, threads)(x))
    # Float paths agree with the exact product to rounding; int8 activations cost ~1%.
    limits = {"halfbyte float": 1e-4, "ort acc0": 1e-4, "halfbyte int": 3e-2, "ort acc4": 3e-2}
    out["ok"] = all(v <= limits[key] for key, v in out["max_rel_err"].items())
    errs = ", ".join(f"{key} {v:.1e}" for key, v in out["max_rel_err"].items())
    log(f"kernels: sanity {m}x{n}x{k} max relative error vs numpy: {errs} -> {'ok' if out['ok'] else 'MISMATCH'}")
    return out


def run_kernels(threads: int, reps: int, quick: bool, use_ort: bool, bw_probe=None) -> dict:
    """Times every shape, alternating halfbyte / ORT acc 4 / ORT acc 0 per repetition.

    bw_probe(): a DRAM read-bandwidth measurement, run alternately with the
    DRAM-bound GEMV (None: not measured)."""
    import halfbyte

    shapes = QUICK_SHAPES if quick else FULL_SHAPES
    min_time = 0.02 if quick else 0.25
    res = {"threads": threads, "reps": reps, "isa": halfbyte.isa(), "rows": [],
           "sanity": sanity_check(threads, use_ort)}
    for i, (m, n, k, what) in enumerate(shapes):
        blocks, scales = random_q4_0(n, k, seed=100 + i)
        qt = halfbyte.QTensor.from_bytes(blocks.tobytes(), "q4_0", (n, k))
        x = np.random.default_rng(7).standard_normal((m, k), dtype=np.float32)
        systems = {"halfbyte": (lambda: halfbyte.matmul(x, qt, precision="int", n_threads=threads), qt.nbytes)}
        if use_ort:
            b = q4_0_to_nbits(blocks)
            for acc in (4, 0):
                op = OrtMatMul(b, scales, n, k, acc, threads)
                systems[f"ort acc{acc}"] = (lambda op=op: op(x), op.nbytes)
            del b
        del blocks
        dram = n * k // 2 > 64 << 20
        times: Dict[str, List[float]] = {s: [] for s in systems}
        bw: List[float] = []
        for _ in range(reps):
            for name, (fn, _) in systems.items():
                times[name].append(seconds_per_call(fn, min_time))
            if dram and bw_probe is not None:
                g = bw_probe()
                if g:
                    bw.append(g)
        row = {"M": m, "N": n, "K": k, "what": what, "kind": "gemv" if m == 1 else "gemm",
               "weights_mb": qt.nbytes / 1e6, "us": {}, "gbs": {}, "gops": {}}
        for name, (_, nbytes) in systems.items():
            t = median(times[name])
            row["us"][name] = t * 1e6
            row["gbs"][name] = nbytes / t / 1e9
            row["gops"][name] = 2.0 * m * n * k / t / 1e9
        for peer in ("ort acc4", "ort acc0"):
            if peer in row["us"]:
                row[f"speedup vs {peer}"] = ratio(row["us"][peer], row["us"]["halfbyte"])
        if bw:
            row["read_gbs_alternated"] = median(bw)
        res["rows"].append(row)
        figs = ", ".join(f"{s} {row['us'][s]:.0f} us" for s in systems)
        log(f"kernels: {m}x{n}x{k} ({what}): {figs}")
        del systems, qt
    return res
