"""Random-weight Llama-family GGUF files for tests, written with the `gguf` package
(llama.cpp's own writer), with a real tokenizer copied from a vocab-only GGUF."""

from __future__ import annotations

import os

import numpy as np

# Folder holding tokenizer-tests/ (llama.cpp's vocabularies and test vectors): the
# copy in tests/data unless HALFBYTE_SHARED_DIR names another.
SHARED = os.environ.get("HALFBYTE_SHARED_DIR", os.path.join(os.path.dirname(__file__), "..", "data"))
VOCABS = {
    "spm": os.path.join(SHARED, "tokenizer-tests", "ggml-vocab-llama-spm.gguf"),
    "gpt2": os.path.join(SHARED, "tokenizer-tests", "ggml-vocab-gpt-2.gguf"),
}


def _copy_field(writer, key: str, f) -> None:
    """Copies one metadata field of a gguf.GGUFReader to a GGUFWriter, types kept."""
    import gguf

    vtype = f.types[0]
    if vtype == gguf.GGUFValueType.ARRAY:
        sub = f.types[1]
        if sub == gguf.GGUFValueType.STRING:
            val = [bytes(f.parts[i]).decode("utf-8", errors="surrogateescape") for i in f.data]
        else:
            val = [f.parts[i][0].item() for i in f.data]
        writer.add_key_value(key, val, vtype, sub_type=sub)
    elif vtype == gguf.GGUFValueType.STRING:
        writer.add_key_value(key, bytes(f.parts[f.data[0]]).decode(), vtype)
    else:
        writer.add_key_value(key, f.parts[f.data[0]][0].item(), vtype)


def _copy_tokenizer(writer, vocab_path: str) -> int:
    import gguf

    r = gguf.GGUFReader(vocab_path)
    for key, f in r.fields.items():
        if key.startswith("tokenizer."):
            _copy_field(writer, key, f)
    return len(r.fields["tokenizer.ggml.tokens"].data)


def write_random_llama(
    path: str,
    dtype: str = "f32",
    vocab: str = "spm",
    n_layer: int = 2,
    n_embd: int = 128,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 256,
    n_ctx: int = 512,
    tied: bool = False,
    arch: str = "llama",
    seed: int = 0,
) -> str:
    """Writes a random Llama (or Qwen2 with q/k/v biases) model; dtype is the type of
    the 2-D weights: f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, or a k-quant q2_k, q3_k,
    q4_k, q5_k, q6_k (norms stay f32). K-quant rows must be multiples of 256
    (n_embd, n_ff, n_head * head_dim); their blocks are random codes (see
    random_kquant_blocks), the others are quantized by the gguf package."""
    import gguf

    rng = np.random.default_rng(seed)
    qtypes = {
        "f32": gguf.GGMLQuantizationType.F32,
        "f16": gguf.GGMLQuantizationType.F16,
        "q4_0": gguf.GGMLQuantizationType.Q4_0,
        "q4_1": gguf.GGMLQuantizationType.Q4_1,
        "q5_0": gguf.GGMLQuantizationType.Q5_0,
        "q5_1": gguf.GGMLQuantizationType.Q5_1,
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
        "q2_k": gguf.GGMLQuantizationType.Q2_K,
        "q3_k": gguf.GGMLQuantizationType.Q3_K,
        "q4_k": gguf.GGMLQuantizationType.Q4_K,
        "q5_k": gguf.GGMLQuantizationType.Q5_K,
        "q6_k": gguf.GGMLQuantizationType.Q6_K,
    }
    qt = qtypes[dtype]
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"random-{arch}-{dtype}")
    n_vocab = _copy_tokenizer(w, VOCABS[vocab])
    head_dim = n_embd // n_head
    w.add_block_count(n_layer)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)

    def mat(name: str, rows: int, cols: int, scale: float) -> None:
        a = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        if qt == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, a)
        elif qt == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, a.astype(np.float16))
        elif dtype.endswith("_k"):
            w.add_tensor(name, random_kquant_blocks(rng, qt, rows, cols, scale), raw_dtype=qt)
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qt), raw_dtype=qt)

    def vec(name: str, n: int, around: float, spread: float) -> None:
        w.add_tensor(name, (around + spread * rng.standard_normal(n)).astype(np.float32))

    mat("token_embd.weight", n_vocab, n_embd, 1.0)
    for l in range(n_layer):
        p = f"blk.{l}."
        vec(p + "attn_norm.weight", n_embd, 1.0, 0.1)
        mat(p + "attn_q.weight", n_head * head_dim, n_embd, n_embd**-0.5)
        mat(p + "attn_k.weight", n_head_kv * head_dim, n_embd, n_embd**-0.5)
        mat(p + "attn_v.weight", n_head_kv * head_dim, n_embd, n_embd**-0.5)
        if arch == "qwen2":
            vec(p + "attn_q.bias", n_head * head_dim, 0.0, 0.1)
            vec(p + "attn_k.bias", n_head_kv * head_dim, 0.0, 0.1)
            vec(p + "attn_v.bias", n_head_kv * head_dim, 0.0, 0.1)
        mat(p + "attn_output.weight", n_embd, n_head * head_dim, (n_head * head_dim) ** -0.5)
        vec(p + "ffn_norm.weight", n_embd, 1.0, 0.1)
        mat(p + "ffn_gate.weight", n_ff, n_embd, n_embd**-0.5)
        mat(p + "ffn_up.weight", n_ff, n_embd, n_embd**-0.5)
        mat(p + "ffn_down.weight", n_embd, n_ff, n_ff**-0.5)
    vec("output_norm.weight", n_embd, 1.0, 0.1)
    if not tied:
        mat("output.weight", n_vocab, n_embd, n_embd**-0.5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def random_kquant_blocks(rng, qt, rows: int, cols: int, scale: float) -> np.ndarray:
    """[rows, cols] weights of a k-quant type as raw blocks ([rows, cols / 256 * block
    bytes] uint8): random codes with sub-block scales (and mins, chosen so values are
    centred near 0), then one fp16 super-block scale per tensor that brings the
    std of the dequantized values (by the gguf package) to `scale`. The gguf
    package cannot quantize to k-quants, and random codes are valid blocks."""
    import gguf

    T = gguf.GGMLQuantizationType
    assert cols % 256 == 0, "k-quant rows must be multiples of 256"
    nb = rows * cols // 256
    u8 = lambda n, hi=256, lo=0: rng.integers(lo, hi, size=(nb, n)).astype(np.uint8)  # noqa: E731
    f16 = lambda v: np.full(nb, np.float16(v)).view(np.uint8).reshape(nb, 2)  # noqa: E731

    def pack_k4(sc, mn):  # eight 6-bit (scale, min) pairs -> 12 bytes (q4_K / q5_K)
        b = np.zeros((nb, 12), dtype=np.uint8)
        b[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
        b[:, 4:8] = mn[:, 0:4] | ((mn[:, 4:8] >> 4) << 6)
        b[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((mn[:, 4:8] & 0x0F) << 4)
        return b

    def build(d):  # d: (nb, 2) uint8, the fp16 super-block scale (also used as dmin)
        if qt == T.Q2_K:  # scales(16: sc | min << 4) qs(64) d dmin
            return np.concatenate([codes["sc"] | (codes["mn"] << 4), codes["qs"], d, d], axis=1)
        if qt == T.Q3_K:  # hmask(32) qs(64) scales(12) d
            return np.concatenate([codes["hmask"], codes["qs"], codes["scales"], d], axis=1)
        if qt == T.Q4_K:  # d dmin scales(12) qs(128)
            return np.concatenate([d, d, pack_k4(codes["sc"], codes["mn"]), codes["qs"]], axis=1)
        if qt == T.Q5_K:  # d dmin scales(12) qh(32) qs(128)
            return np.concatenate([d, d, pack_k4(codes["sc"], codes["mn"]), codes["qh"], codes["qs"]], axis=1)
        if qt == T.Q6_K:  # ql(128) qh(64) scales(16, int8) d
            return np.concatenate([codes["ql"], codes["qh"], codes["scales"], d], axis=1)
        raise ValueError(f"not a k-quant: {qt}")

    if qt == T.Q2_K:
        sc = u8(16, 11, 2)
        codes = {"sc": sc, "mn": np.round(sc * 1.5).astype(np.uint8), "qs": u8(64)}
    elif qt == T.Q3_K:
        codes = {"hmask": u8(32), "qs": u8(64), "scales": u8(12)}
    elif qt == T.Q4_K:
        sc = u8(8, 9, 4)
        codes = {"sc": sc, "mn": np.round(sc * 7.5).astype(np.uint8), "qs": u8(128)}
    elif qt == T.Q5_K:
        sc = u8(8, 5, 2)
        codes = {"sc": sc, "mn": np.round(sc * 15.5).astype(np.uint8), "qh": u8(32), "qs": u8(128)}
    elif qt == T.Q6_K:
        sc = rng.integers(-40, 41, size=(nb, 16))
        sc[sc == 0] = 1
        codes = {"ql": u8(128), "qh": u8(64), "scales": sc.astype(np.int8).view(np.uint8)}
    else:
        raise ValueError(f"not a k-quant: {qt}")
    std = gguf.quants.dequantize(build(f16(1.0)), qt).std()
    return build(f16(scale / std)).reshape(rows, -1)


if __name__ == "__main__":
    import sys

    write_random_llama(sys.argv[1], *(sys.argv[2:3] or []))


def write_dequantized_copy(src: str, dst: str, transform=None) -> str:
    """The same model with every tensor dequantized to f32 (by the gguf package):
    the exact arithmetic a quantized model's weights stand for. `transform(tensor,
    values)`, if given, may replace the f32 values of a tensor (a gguf ReaderTensor)."""
    import gguf

    r = gguf.GGUFReader(src)
    arch = bytes(r.fields["general.architecture"].parts[r.fields["general.architecture"].data[0]]).decode()
    w = gguf.GGUFWriter(dst, arch)
    for key, f in r.fields.items():
        if not key.startswith("GGUF.") and key != "general.architecture":
            _copy_field(w, key, f)
    for t in r.tensors:
        v = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, transform(t, v) if transform else v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst
