"""halfbyte.Model's Python API on a small random-weight model (no peer needed)."""

import os

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama

pytestmark = pytest.mark.skipif(not os.path.exists(VOCABS["gpt2"]), reason="tests/data/tokenizer-tests not found")


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = str(tmp_path_factory.mktemp("m") / "tiny.gguf")
    return write_random_llama(p, dtype="q8_0", vocab="gpt2", n_layer=1, n_ctx=64)


def test_generate_is_deterministic_and_streams(path):
    with halfbyte.Model(path) as m:
        greedy = m.generate("Hello", max_tokens=12)
        assert greedy == m.generate("Hello", max_tokens=12)
        assert "".join(m.generate("Hello", max_tokens=12, stream=True)) == greedy
        a = m.generate("Hello", max_tokens=12, temperature=0.8, seed=7)
        assert a == m.generate("Hello", max_tokens=12, temperature=0.8, seed=7)
        assert m.config["n_layer"] == 1 and m.config["n_ctx"] == 64


def test_stop_strings_and_logits_shape(path):
    with halfbyte.Model(path) as m:
        full = m.generate("Hello", max_tokens=16)
        if len(full) > 4:
            for stop in (full[2:4], full[3:9], "no such text" + full[:2]):
                cut = m.generate("Hello", max_tokens=16, stop=[stop])
                assert cut == (full[: full.index(stop)] if stop in full else full)
                pieces = list(m.generate("Hello", max_tokens=16, stop=[stop], stream=True))
                assert "".join(pieces) == cut  # streamed text never shows part of a stop string
        ids = m.tokenize("Hello world")
        lg = m.logits(ids)
        assert lg.shape == (len(ids), m.config["n_vocab"]) and lg.dtype == np.float32
        assert m.detokenize(ids) == "Hello world"


def test_errors(path, tmp_path):
    with pytest.raises(OSError):
        halfbyte.Model(str(tmp_path / "missing.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 20)
    with pytest.raises(ValueError):
        halfbyte.Model(str(bad))
    m = halfbyte.Model(path)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m.logits([10**9])
    with pytest.raises(ValueError, match="context length"):
        m.logits(list(range(65)))
    with pytest.raises(ValueError):
        m.generate("x", max_tokens=-1)
    with pytest.raises(ValueError):
        m.generate("x", temperature=-1.0)
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.generate("x")


def test_load_options_are_checked(path, tmp_path):
    with pytest.raises(FileNotFoundError):
        halfbyte.Model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ValueError, match="kv_cache"):
        halfbyte.Model(path, kv_cache="f8")
    with pytest.raises(ValueError, match="format"):
        halfbyte.Model(path, quantize="q3_x")
    with pytest.raises(ValueError, match="tokenizer"):
        halfbyte.Model(path, tokenizer="")


def test_kv_cache_f16_stays_close_to_f32(path):
    # fp16 keys and values (the default) against the fp32 cache on the same model:
    # the same math with K and V rounded to 11 significant bits.
    with halfbyte.Model(path, kv_cache="f32", precision="float") as m:
        ids = m.tokenize("The quick brown fox jumps over the lazy dog, again and again.")
        ref = m.logits(ids).astype(np.float64)
    with halfbyte.Model(path, precision="float") as m:
        ours = m.logits(ids).astype(np.float64)
    err = np.abs(ours - ref).max(axis=1) / ref.std(axis=1)
    assert 0 < err.max() < 5e-3  # not identical (the cache is fp16), but close
