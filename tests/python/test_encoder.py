"""halfbyte.Encoder against transformers + torch.

- all-MiniLM-L6-v2 (real weights, examples/fetch_minilm.sh): sentence embeddings
  (mean pooling, L2 normalization, 256 tokens, as sentence-transformers) over 200+
  texts: English prose from 1 word to past 256 tokens, accents, CJK, emoji,
  punctuation, control characters. Worst cosine >= 0.9999 in f32, >= 0.999 in q8_0;
  q4_0 measured. A text's embedding does not depend on its batch.
- Small random BERTs written with transformers (F32, F16, BF16 weights; "bert."
  prefix; CLS pooling) against their torch forward pass.
- Malformed folders: each a clean error naming the problem.
"""

import json
import os
import shutil

import numpy as np
import pytest

import halfbyte
from encoder_texts import EDGE_CASES, prose
from hf_models import read_safetensors, torch_embeddings, write_safetensors

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MINILM = os.environ.get("HALFBYTE_MINILM", os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                          "all-MiniLM-L6-v2"))
needs_minilm = pytest.mark.skipif(not os.path.exists(os.path.join(MINILM, "model.safetensors")),
                                  reason="all-MiniLM-L6-v2 not fetched (examples/fetch_minilm.sh; .ci/setup does it)")

TEXTS = EDGE_CASES + prose(160)


def cosines(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def minilm_ref():
    assert len(TEXTS) >= 200
    return torch_embeddings(MINILM, TEXTS, max_length=256)


@needs_minilm
@pytest.mark.parametrize("dtype, bound", [("f32", 0.9999), ("q8_0", 0.999), ("q4_0", 0.85)])
def test_minilm_matches_torch(minilm_ref, dtype, bound):
    enc = halfbyte.Encoder(MINILM, dtype=dtype)
    assert (enc.dim, enc.max_length, enc.pooling, enc.normalize) == (384, 256, "mean", True)
    ours = enc.embed(TEXTS)
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), 384)
    cos = cosines(ours, minilm_ref)
    print(f"all-MiniLM-L6-v2 {dtype}: cosine to torch over {len(TEXTS)} texts: min {cos.min():.7f} "
          f"mean {cos.mean():.6f} (worst: {TEXTS[int(cos.argmin())][:40]!r})")
    # q4_0: measured min 0.870 (mean 0.963) with int16/int8 activations, 0.908 (0.968) with
    # avx512's asymmetric int8: 4-bit weights on a 384-wide model lose that much.
    assert cos.min() >= bound
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@needs_minilm
@pytest.mark.parametrize("dtype", ["f32", "q8_0"])
def test_batched_equals_one_at_a_time(dtype):
    enc = halfbyte.Encoder(MINILM, dtype=dtype)
    texts = TEXTS[::3]
    batched = enc.embed(texts, batch_size=64)
    alone = np.concatenate([enc.embed([t]) for t in texts])
    shuffled = enc.embed(texts[::-1], batch_size=7)[::-1]
    diff = max(np.abs(batched - alone).max(), np.abs(batched - shuffled).max())
    print(f"{dtype}: batched vs one at a time: max |diff| {diff:.2e}")
    # Only the float GEMM's blocking may differ with the batch (fp32 rounding).
    assert diff <= 2e-6


@needs_minilm
def test_minilm_api():
    with halfbyte.Encoder(MINILM, dtype="f32", n_threads=1) as enc:
        assert enc.embed([]).shape == (0, 384)
        raw = enc.embed(["Hello world", ""], normalize=False)
        assert abs(np.linalg.norm(raw[0]) - 1.0) > 1e-3  # mean of hidden states, not unit length
        ref = torch_embeddings(MINILM, ["Hello world", ""], 256, normalize=False)
        assert cosines(raw, ref).min() >= 0.9999
        np.testing.assert_allclose(raw, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
        assert enc.tokenize("Hello world") == [101, 7592, 2088, 102]
        assert len(enc.tokenize("word " * 1000)) == 256
        with pytest.raises(TypeError, match="list of str"):
            enc.embed("not a list")
        with pytest.raises(TypeError, match="must be str"):
            enc.embed(["ok", 3])
        with pytest.raises(ValueError, match="batch_size"):
            enc.embed(["x"], batch_size=0)
    with pytest.raises(ValueError, match="closed"):
        enc.embed(["x"])
    with pytest.raises(ValueError, match="dtype"):
        halfbyte.Encoder(MINILM, dtype="q3_x")
    with pytest.raises(ValueError, match="precision"):
        halfbyte.Encoder(MINILM, precision="fast")
    with pytest.raises(RuntimeError, match="is an encoder"):
        halfbyte.Model(MINILM)


# ---- random BERTs written by transformers -------------------------------------------------


def random_bert(folder, dtype=torch.float32, cls=transformers.BertModel, pooling=None, seed=0):
    """A small BERT with MiniLM's tokenizer, saved by transformers as safetensors."""
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                  intermediate_size=160, max_position_embeddings=128, type_vocab_size=2)
    model = cls(cfg).eval()
    with torch.no_grad():  # LayerNorms and biases away from 1 / 0, so that mistakes show
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.2)
    model.to(dtype).save_pretrained(folder)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(MINILM, f), os.path.join(folder, f))
    if pooling:
        os.makedirs(os.path.join(folder, "1_Pooling"))
        with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": 64, "pooling_mode_cls_token": pooling == "cls",
                       "pooling_mode_mean_tokens": pooling == "mean"}, f)
    return folder


@needs_minilm
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_random_bert_matches_torch(tmp_path, dtype):
    d = random_bert(str(tmp_path / "bert"), dtype)
    texts = TEXTS[:60]
    ref = torch_embeddings(d, texts, max_length=128, normalize=False)
    ours = halfbyte.Encoder(d, dtype="f32").embed(texts)
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    print(f"random BERT {dtype}: max rel err {err:.1e}, min cos {cosines(ours, ref).min():.7f}")
    assert err < 1e-4


@needs_minilm
def test_prefixed_weights_and_cls_pooling(tmp_path):
    # BertForMaskedLM saves "bert."-prefixed tensors and a head halfbyte ignores.
    d = random_bert(str(tmp_path / "mlm"), cls=transformers.BertForMaskedLM, pooling="cls")
    header, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    assert any(k.startswith("bert.") for k in header)
    enc = halfbyte.Encoder(d, dtype="f32")
    assert enc.pooling == "cls" and not enc.normalize
    texts = TEXTS[:30]
    ref = torch_embeddings(d, texts, max_length=128, pooling="cls", normalize=False)
    np.testing.assert_allclose(enc.embed(texts), ref, rtol=0, atol=1e-4 * np.abs(ref).max())


# ---- malformed folders ------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_bert(tmp_path_factory):
    if not os.path.exists(os.path.join(MINILM, "model.safetensors")):
        pytest.skip("all-MiniLM-L6-v2 not fetched (its tokenizer is used)")
    return random_bert(str(tmp_path_factory.mktemp("good") / "bert"))


def broken_copy(good, tmp_path, config=None, tensors=None):
    d = str(tmp_path / "broken")
    shutil.copytree(good, d)
    if config:
        with open(os.path.join(d, "config.json")) as f:
            c = json.load(f)
        config(c)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f)
    if tensors:
        path = os.path.join(d, "model.safetensors")
        header, data = read_safetensors(path)
        tensors(header)
        write_safetensors(path, header, data)
    return d


def set_(key, value):
    return lambda c: c.__setitem__(key, value)


@pytest.mark.parametrize("config, tensors, exc, match", [
    (set_("model_type", "roberta"), None, RuntimeError, "model_type 'roberta' is not supported"),
    (lambda c: c.pop("hidden_size"), None, ValueError, "required key 'hidden_size' is missing"),
    (set_("hidden_act", "relu"), None, RuntimeError, "hidden_act 'relu' is not supported"),
    (set_("num_attention_heads", 5), None, ValueError, "not a multiple of num_attention_heads"),
    (set_("num_hidden_layers", 4), None, ValueError, "encoder.layer.3.attention.self.query.weight' is missing"),
    (set_("vocab_size", 100), None, ValueError, "more than the model's vocab_size"),
    (set_("position_embedding_type", "relative_key"), None, RuntimeError, "position_embedding_type"),
    (None, lambda h: h.pop("encoder.layer.1.output.dense.bias"), ValueError,
     "'encoder.layer.1.output.dense.bias' is missing"),
    (None, lambda h: h["encoder.layer.0.intermediate.dense.weight"].__setitem__("shape", [64, 160]), ValueError,
     "encoder.layer.0.intermediate.dense.weight"),
    (None, lambda h: h["embeddings.position_embeddings.weight"].__setitem__("shape", [64, 128]), ValueError,
     "embeddings.position_embeddings.weight' should have shape \\[128, 64\\]"),
    (None, lambda h: h["embeddings.LayerNorm.weight"].__setitem__("data_offsets", [0, 10**12]), ValueError,
     "data_offsets"),
])
def test_malformed_folders(good_bert, tmp_path, config, tensors, exc, match):
    d = broken_copy(good_bert, tmp_path, config, tensors)
    with pytest.raises(exc, match=match):
        halfbyte.Encoder(d, dtype="f32")


def test_missing_files(good_bert, tmp_path):
    with pytest.raises(FileNotFoundError):
        halfbyte.Encoder(str(tmp_path / "nowhere"))
    d = broken_copy(good_bert, tmp_path)
    os.remove(os.path.join(d, "tokenizer.json"))
    os.remove(os.path.join(d, "vocab.txt"))
    with pytest.raises(FileNotFoundError, match="no tokenizer.json nor vocab.txt"):
        halfbyte.Encoder(d)
