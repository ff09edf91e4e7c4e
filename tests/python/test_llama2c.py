"""llama2.c checkpoints and tokenizer.bin: halfbyte on a llama2.c file written here
(llama2c_files.py) against llama.cpp on the GGUF that holds the same weights, and
the tokenizer.bin vocabulary against the SentencePiece test vectors."""

import os
import shutil
import struct

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama
from llama2c_files import write_llama2c, write_tokenizer_bin
from llama_cpp_ref import llama_cpp_logits

needs_vocab = pytest.mark.skipif(not os.path.exists(VOCABS["spm"]), reason="tests/data/tokenizer-tests not found")
TEXT = "Once upon a time, a little fox found 3 shiny stones. Ünïcödé 漢字 🦊!"


@pytest.fixture(scope="module")
def tok_bin(tmp_path_factory):
    p = str(tmp_path_factory.mktemp("tok") / "tokenizer.bin")
    write_tokenizer_bin(VOCABS["spm"], p)
    return p


def _vectors(path):
    with open(path + ".inp", encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")
    with open(path + ".out", encoding="utf-8") as f:
        ids = [[int(x) for x in line.split()] for line in f.read().split("\n")]
    return texts, ids


@needs_vocab
@pytest.mark.parametrize("version,tied", [(0, False), (0, True), (1, False), (1, True)],
                         ids=["v0-separate", "v0-shared", "v1-separate", "v1-shared"])
def test_llama2c_logits_match_llama_cpp_on_the_same_weights(tmp_path, tok_bin, version, tied):
    gg = write_random_llama(str(tmp_path / "m.gguf"), dtype="f32", vocab="spm", tied=tied, seed=7 + version)
    ckpt = write_llama2c(gg, str(tmp_path / "model.bin"), version=version)
    with halfbyte.Model(ckpt, tokenizer=tok_bin, n_ctx=256, quantize="f32", precision="float") as m:
        ids = m.tokenize(TEXT)
        ours = m.logits(ids).astype(np.float64)
        assert m.config["n_layer"] == 2 and m.config["n_head_kv"] == 2
    ref = llama_cpp_logits(gg, ids)
    err = np.abs(ours - ref).max(axis=1) / ref.std(axis=1)
    print(f"llama2.c v{version} {'shared' if tied else 'separate'}: max |diff| / std = {err.max():.1e}")
    assert err.max() < 5e-3  # measured 1.4e-3..1.6e-3 (llama.cpp keeps K/V in fp16)
    assert (ours.argmax(axis=1) == ref.argmax(axis=1)).all()


@needs_vocab
def test_llama2c_quantized_at_load_by_default(tmp_path, tok_bin):
    gg = write_random_llama(str(tmp_path / "m.gguf"), dtype="f32", vocab="spm", seed=3)
    ckpt = write_llama2c(gg, str(tmp_path / "model.bin"))
    ref = llama_cpp_logits(gg, [1, 450, 4996, 17354, 1701, 29916])
    shutil.copy(tok_bin, tmp_path / "tokenizer.bin")  # found beside the checkpoint
    for fmt, bound in ((None, 0.05), ("q4_0", 0.6)):  # default q8_0; measured 0.017 and 0.17
        with halfbyte.Model(ckpt, n_ctx=64, quantize=fmt) as m:
            ours = m.logits([1, 450, 4996, 17354, 1701, 29916]).astype(np.float64)
        err = np.sqrt(((ours - ref) ** 2).mean(axis=1)) / ref.std(axis=1)
        print(f"quantize={fmt}: rms |diff| / std = {err.max():.2e}")
        assert err.max() < bound


@needs_vocab
def test_tokenizer_bin_gives_the_sentencepiece_ids(tmp_path, tok_bin):
    gg = write_random_llama(str(tmp_path / "m.gguf"), dtype="f32", vocab="spm", n_layer=1, n_embd=64, n_head=2,
                            n_head_kv=1, n_ff=64)
    ckpt = write_llama2c(gg, str(tmp_path / "model.bin"))
    texts, expected = _vectors(VOCABS["spm"])
    with halfbyte.Model(ckpt, tokenizer=tok_bin, n_ctx=64) as m:
        for text, ids in zip(texts, expected):
            assert m.tokenize(text, add_special=False) == ids, repr(text)
        assert m.tokenize("Hello")[0] == 1  # BOS
        for text in texts:
            assert m.detokenize(m.tokenize(text, add_special=False)) == text, repr(text)


def _header_v0(dim=64, hidden=64, layers=1, heads=2, kv=1, vocab=32000, seq=64):
    return struct.pack("7i", dim, hidden, layers, heads, kv, vocab, seq)


@pytest.mark.parametrize("content,match", [
    (b"", "too short"),
    (b"\x01\x02\x03", "too short"),
    (_header_v0(dim=0), "dim = 0"),
    (_header_v0(heads=3), "heads"),
    (_header_v0(vocab=-(1 << 30)), "vocab_size"),
    (_header_v0() + b"\0" * 1000, "truncated"),
    (struct.pack("Ii", 0x616B3432, 2) + b"\0" * 300, "version 2"),
    (struct.pack("Ii", 0x616B3432, 1) + b"\0" * 20, "truncated"),
], ids=["empty", "tiny", "zero-dim", "odd-heads", "huge-vocab", "truncated", "v2", "short-v1"])
def test_malformed_llama2c_files_give_clean_errors(tmp_path, content, match):
    p = tmp_path / "bad.bin"
    p.write_bytes(content)
    with pytest.raises((ValueError, RuntimeError), match=match):
        halfbyte.Model(str(p), tokenizer=str(p))


@needs_vocab
def test_llama2c_tokenizer_problems_give_clean_errors(tmp_path, tok_bin):
    gg = write_random_llama(str(tmp_path / "m.gguf"), dtype="f32", vocab="spm", n_layer=1, n_embd=64, n_head=2,
                            n_head_kv=1, n_ff=64)
    ckpt = write_llama2c(gg, str(tmp_path / "model.bin"))
    with pytest.raises(ValueError, match="tokenizer.bin"):
        halfbyte.Model(ckpt)  # none beside it, none given
    with pytest.raises(FileNotFoundError):
        halfbyte.Model(ckpt, tokenizer=str(tmp_path / "missing.bin"))
    data = open(tok_bin, "rb").read()
    for name, bad, match in (("short", data[: len(data) // 2], "truncated"),
                             ("maxlen", struct.pack("i", -5) + data[4:], "max_token_length"),
                             ("toklen", data[:8] + struct.pack("i", 1 << 20) + data[12:], "length")):
        p = tmp_path / f"{name}.bin"
        p.write_bytes(bad)
        with pytest.raises(ValueError, match=match):
            halfbyte.Model(ckpt, tokenizer=str(p))
