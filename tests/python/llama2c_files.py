"""llama2.c checkpoints and tokenizer.bin files for tests, written here from the
format's definition (Karpathy's run.c / export.py layout), not by halfbyte.

The weights come from a random-weight GGUF (gguf_models.write_random_llama, f32),
read back with the `gguf` package, so that llama.cpp on that GGUF is an independent
reference for halfbyte on the llama2.c file: both layouts hold Q and K in the
adjacent-pair RoPE order, so the matrices are written as they are."""

from __future__ import annotations

import struct

import numpy as np


def _gguf_tensors(path: str) -> dict:
    import gguf

    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32, f"{t.name} is not f32"
        shape = [int(n) for n in reversed(t.shape)]  # numpy order: rows first
        out[t.name] = np.asarray(t.data, dtype=np.float32).reshape(shape)
    return out


def _meta(path: str) -> dict:
    import gguf

    r = gguf.GGUFReader(path)
    f = lambda k: r.fields[k].parts[r.fields[k].data[0]][0].item()  # noqa: E731
    return {
        "dim": f("llama.embedding_length"),
        "hidden": f("llama.feed_forward_length"),
        "n_layers": f("llama.block_count"),
        "n_heads": f("llama.attention.head_count"),
        "n_kv_heads": f("llama.attention.head_count_kv"),
        "seq_len": f("llama.context_length"),
    }


def write_llama2c(gguf_path: str, out_path: str, version: int = 0) -> str:
    """Writes the f32 GGUF model at gguf_path as a llama2.c checkpoint (version 0:
    legacy headerless, version 1: "ak42" header). The classifier is shared if the
    GGUF has no output.weight."""
    w = _gguf_tensors(gguf_path)
    m = _meta(gguf_path)
    L = m["n_layers"]
    vocab = w["token_embd.weight"].shape[0]
    shared = "output.weight" not in w
    per = lambda name: [w[f"blk.{l}.{name}"] for l in range(L)]  # noqa: E731
    hs = m["dim"] // m["n_heads"]
    with open(out_path, "wb") as f:
        if version == 0:
            f.write(struct.pack("7i", m["dim"], m["hidden"], L, m["n_heads"], m["n_kv_heads"],
                                vocab if shared else -vocab, m["seq_len"]))
            order = ([w["token_embd.weight"]] + per("attn_norm.weight") + per("attn_q.weight") +
                     per("attn_k.weight") + per("attn_v.weight") + per("attn_output.weight") +
                     per("ffn_norm.weight") + per("ffn_gate.weight") + per("ffn_down.weight") +
                     per("ffn_up.weight") + [w["output_norm.weight"]])
            # run.c's precomputed RoPE table (ignored by readers that recompute it).
            freqs = 1.0 / (10000.0 ** (np.arange(0, hs, 2, dtype=np.float32) / hs))
            ang = np.outer(np.arange(m["seq_len"], dtype=np.float32), freqs)
            order += [np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)]
        else:
            f.write(struct.pack("Ii", 0x616B3432, 1))
            f.write(struct.pack("7i", m["dim"], m["hidden"], L, m["n_heads"], m["n_kv_heads"], vocab, m["seq_len"]))
            f.write(struct.pack("B", int(shared)))
            f.write(b"\0" * (256 - f.tell()))
            order = (per("attn_norm.weight") + per("ffn_norm.weight") + [w["output_norm.weight"]] +
                     [w["token_embd.weight"]] + per("attn_q.weight") + per("attn_k.weight") +
                     per("attn_v.weight") + per("attn_output.weight") + per("ffn_gate.weight") +
                     per("ffn_down.weight") + per("ffn_up.weight"))
        if not shared:
            order.append(w["output.weight"])
        for a in order:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
    return out_path


def write_tokenizer_bin(vocab_gguf: str, out_path: str) -> int:
    """Writes a SentencePiece vocabulary (from a vocab-only GGUF) as llama2.c's
    tokenizer.bin, the way its exporter does: U+2581 as ' ', BOS/EOS as
    "\\n<s>\\n" / "\\n</s>\\n". Returns the vocabulary size."""
    import gguf

    r = gguf.GGUFReader(vocab_gguf)
    fields = r.fields
    tokens = [bytes(fields["tokenizer.ggml.tokens"].parts[i]) for i in fields["tokenizer.ggml.tokens"].data]
    scores = [fields["tokenizer.ggml.scores"].parts[i][0].item() for i in fields["tokenizer.ggml.scores"].data]
    pieces = []
    for i, t in enumerate(tokens):
        s = t.decode("utf-8")
        if i == 1:
            s = "\n<s>\n"
        elif i == 2:
            s = "\n</s>\n"
        pieces.append(s.replace("\u2581", " ").encode("utf-8"))
    with open(out_path, "wb") as f:
        f.write(struct.pack("i", max(len(p) for p in pieces)))
        for p, s in zip(pieces, scores):
            f.write(struct.pack("fi", s, len(p)))
            f.write(p)
    return len(tokens)
