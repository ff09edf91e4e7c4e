"""halfbyte.Encoder's sequence classification heads against transformers + torch.

No fine-tuned classifier ships in any package we can reach, so the models are
made here with transformers: a real encoder (all-MiniLM-L6-v2's weights, so that
the features, and their q8_0 errors, are a trained model's) under a head with
seeded random weights, saved as safetensors with MiniLM's tokenizer:
- DistilBertForSequenceClassification (labels NEGATIVE / POSITIVE) whose
  encoder is MiniLM's renamed to DistilBERT's tensors (token type 0 folded into
  the positions), 6 layers of width 384;
- BertForSequenceClassification with 3 labels (softmax), 4 labels with
  problem_type multi_label_classification (sigmoid), and one label (a
  cross-encoder: score(query, passages) on sentence pairs with token types).
Probabilities within 1e-4 of torch in f32; in q8_0 within 1e-2 and the same top
label on every text but near-ties of the random heads; batched == one at a time. Malformed heads (on small random models) give
clean errors.
"""

import json
import os
import shutil

import numpy as np
import pytest

import halfbyte
from encoder_texts import EDGE_CASES, prose
from hf_models import read_safetensors, write_safetensors

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MINILM = os.environ.get("HALFBYTE_MINILM", os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                          "all-MiniLM-L6-v2"))
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(MINILM, "vocab.txt")),
                                reason="all-MiniLM-L6-v2 not fetched (its tokenizer is used; examples/fetch_minilm.sh)")

TEXTS = EDGE_CASES + prose(50)
QUERY = "how do cats sleep"
PASSAGES = ["Cats sleep for twelve to sixteen hours a day, mostly in short naps.",
            "The stock market fell sharply on Tuesday.", "", "cats", "Dogs bark at night.",
            "Sleeping cats curl up to keep warm; kittens sleep even more."] + prose(20)


def copy_tokenizer(folder):
    os.makedirs(folder, exist_ok=True)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(MINILM, f)):
            shutil.copy(os.path.join(MINILM, f), os.path.join(folder, f))
    return folder


def bert_head(folder, seed, head_scale, **config):
    """MiniLM under BertForSequenceClassification's head (its own pooler, a seeded
    classifier scaled by head_scale so that it is decisive, as trained ones are)."""
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification.from_pretrained(MINILM, dtype=torch.float32, **config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(head_scale)
    return save_centered(model, folder)


def save_centered(model, folder):
    """Shifts the classifier's bias so that the mean logit over TEXTS is 0 (every
    label wins somewhere: a random head is otherwise ruled by its bias), saves."""
    copy_tokenizer(folder)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        b = tok(TEXTS, padding=True, truncation=True, max_length=512, return_tensors="pt")
        if model.config.model_type == "distilbert":
            b.pop("token_type_ids", None)
        model.classifier.bias.sub_(model(**b).logits.mean(0))
    model.save_pretrained(folder)
    return folder


# MiniLM's per-layer tensors under DistilBERT's names.
DISTIL_NAMES = {"attention.self.query": "attention.q_lin", "attention.self.key": "attention.k_lin",
                "attention.self.value": "attention.v_lin", "attention.output.dense": "attention.out_lin",
                "attention.output.LayerNorm": "sa_layer_norm", "intermediate.dense": "ffn.lin1",
                "output.dense": "ffn.lin2", "output.LayerNorm": "output_layer_norm"}


def distilbert_head(folder, seed, head_scale):
    """DistilBertForSequenceClassification: MiniLM's encoder renamed, a seeded head."""
    sd = transformers.BertModel.from_pretrained(MINILM, dtype=torch.float32).state_dict()
    cfg = transformers.DistilBertConfig(vocab_size=30522, dim=384, hidden_dim=1536, n_heads=12, n_layers=6,
                                        max_position_embeddings=512, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                                        label2id={"NEGATIVE": 0, "POSITIVE": 1})
    torch.manual_seed(seed)
    model = transformers.DistilBertForSequenceClassification(cfg).eval()
    new = {}
    for k, v in sd.items():
        if k.startswith("encoder.layer."):
            _, _, n, rest = k.split(".", 3)
            name = next(b + rest[len(a):] for a, b in DISTIL_NAMES.items() if rest.startswith(a + "."))
            new[f"distilbert.transformer.layer.{n}.{name}"] = v
        elif k.startswith("embeddings.") and "token_type" not in k and "position_ids" not in k:
            new["distilbert." + k] = v
    new["distilbert.embeddings.position_embeddings.weight"] = (sd["embeddings.position_embeddings.weight"] +
                                                               sd["embeddings.token_type_embeddings.weight"][0])
    missing, unexpected = model.load_state_dict(new, strict=False)
    assert not unexpected and all(k.startswith(("pre_classifier.", "classifier.")) for k in missing), missing
    with torch.no_grad():
        model.classifier.weight.mul_(head_scale)
    return save_centered(model, folder)


def small_bert(folder, seed, **kw):
    """A small random BertForSequenceClassification (for the malformed-head cases)."""
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=160, max_position_embeddings=128, **kw)
    transformers.BertForSequenceClassification(cfg).save_pretrained(folder)
    return copy_tokenizer(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    return {
        "distilbert": distilbert_head(str(root / "distilbert"), 1, 10.0),
        "bert3": bert_head(str(root / "bert3"), 2, 10.0,
                           id2label={0: "contradiction", 1: "entailment", 2: "neutral"}),
        "multi": bert_head(str(root / "multi"), 3, 10.0, id2label={i: f"tag{i}" for i in range(4)},
                           problem_type="multi_label_classification"),
        "cross": bert_head(str(root / "cross"), 4, 10.0, num_labels=1),
        "small3": small_bert(str(root / "small3"), 5, id2label={0: "a", 1: "b", 2: "c"}),
    }


def torch_logits(folder, texts, pairs=None):
    """transformers' logits, batches of 16 with padding and truncation as halfbyte's max_length."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    max_length = model.config.max_position_embeddings
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 16):
            args = (texts[i:i + 16],) if pairs is None else (texts[i:i + 16], pairs[i:i + 16])
            b = tok(*args, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            if model.config.model_type == "distilbert":
                b.pop("token_type_ids", None)
            out.append(model(**b).logits.numpy())
    return np.concatenate(out)


def softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("name, fn", [("distilbert", softmax), ("bert3", softmax), ("multi", sigmoid)])
def test_probabilities_match_torch(models, name, fn):
    ref = fn(torch_logits(models[name], TEXTS).astype(np.float64))
    enc = halfbyte.Encoder(models[name], dtype="f32")
    ours = enc.logits(TEXTS)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    probs = np.array([[d["score"] for d in sorted(r, key=lambda d: enc.labels.index(d["label"]))]
                      for r in enc.classify(TEXTS, top_k=None)])
    err = np.abs(probs - ref).max()
    top = ref.argmax(1)
    print(f"{name} f32: max |p - p_torch| {err:.1e}; torch top labels {np.bincount(top).tolist()}")
    assert err <= 1e-4
    np.testing.assert_allclose(probs, fn(ours.astype(np.float64)), rtol=0, atol=1e-6)
    # The generated heads are decisive and not constant, so that the q8_0 check means something.
    assert len(set(top.tolist())) > 1


@pytest.mark.parametrize("name, fn", [("distilbert", softmax), ("bert3", softmax), ("multi", sigmoid)])
def test_q8_0_same_top_label(models, name, fn):
    ref = fn(torch_logits(models[name], TEXTS).astype(np.float64))
    enc = halfbyte.Encoder(models[name], dtype="q8_0")
    probs = np.array([[d["score"] for d in sorted(r, key=lambda d: enc.labels.index(d["label"]))]
                      for r in enc.classify(TEXTS, top_k=None)])
    err = np.abs(probs - ref).max()
    s = np.sort(ref, 1)
    margin = s[:, -1] - s[:, -2]
    # q8_0 keeps every probability within 1e-2 of torch, so the top label agrees
    # on every text but those a random head puts on a tie (torch's top two
    # probabilities less than 2e-2 apart), where it may go either way.
    diff = probs.argmax(1) != ref.argmax(1)
    print(f"{name} q8_0: max |p - p_torch| {err:.1e}; top label differs on {int(diff.sum())} of {len(TEXTS)} "
          f"texts (torch margins {np.round(margin[diff], 4).tolist()}); {int((margin < 2e-2).sum())} texts "
          f"have a margin < 2e-2")
    assert err <= 1e-2
    assert [TEXTS[i][:30] for i in np.flatnonzero(diff) if margin[i] >= 2e-2] == []


def test_distilbert_api(models):
    enc = halfbyte.Encoder(models["distilbert"], dtype="f32")
    assert enc.labels == ["NEGATIVE", "POSITIVE"] and enc.problem_type == "single_label_classification"
    assert enc.dim == 384 and enc.max_length == 512
    one = enc.classify(["I loved this film"])
    assert len(one) == 1 and len(one[0]) == 1 and set(one[0][0]) == {"label", "score"}
    assert one[0][0]["label"] in ("NEGATIVE", "POSITIVE") and 0.5 <= one[0][0]["score"] <= 1.0
    both = enc.classify(["I loved this film"], top_k=None)[0]
    assert [d["label"] for d in both] == sorted(enc.labels, key=lambda lab: -next(
        d["score"] for d in both if d["label"] == lab))
    assert abs(sum(d["score"] for d in both) - 1.0) < 1e-6 and both[0] == one[0][0]
    assert len(enc.classify(["x"], top_k=5)[0]) == 2
    raw = enc.classify(["x"], top_k=None, function_to_apply="none")[0]
    np.testing.assert_allclose(sorted(d["score"] for d in raw), sorted(enc.logits(["x"])[0]), rtol=1e-6)
    assert enc.classify([]) == [] and enc.logits([]).shape == (0, 2)
    # DistilBERT has no token types: a pair is [CLS] a [SEP] b [SEP] either way.
    ref = torch_logits(models["distilbert"], ["a question?"], ["an answer."])
    np.testing.assert_allclose(enc.logits([("a question?", "an answer.")]), ref, rtol=0, atol=1e-4)
    # The encoder underneath: mean-pooled hidden states vs DistilBertModel's.
    base = transformers.AutoModel.from_pretrained(models["distilbert"], dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(models["distilbert"])
    with torch.no_grad():
        h = base(input_ids=torch.tensor([enc.tokenize(TEXTS[1])])).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(enc.embed([TEXTS[1]], normalize=False)[0], h, rtol=0, atol=1e-4 * np.abs(h).max())
    assert tok(TEXTS[1])["input_ids"] == enc.tokenize(TEXTS[1])
    with pytest.raises(TypeError, match="list of str or of \\(str, str\\) pairs"):
        enc.classify("a bare string")
    with pytest.raises(TypeError, match="an item of type <class 'int'>"):
        enc.logits(["ok", 3])
    with pytest.raises(ValueError, match="top_k"):
        enc.classify(["x"], top_k=0)
    with pytest.raises(ValueError, match="function_to_apply"):
        enc.classify(["x"], function_to_apply="relu")
    with pytest.raises(RuntimeError, match="one-label head"):
        enc.score("q", ["p"])


@pytest.mark.parametrize("dtype", ["f32", "q8_0"])
def test_batched_equals_one_at_a_time(models, dtype):
    for name in ("distilbert", "bert3"):
        enc = halfbyte.Encoder(models[name], dtype=dtype)
        texts = TEXTS[::2]
        batched = enc.logits(texts)
        alone = np.concatenate([enc.logits([t]) for t in texts])
        shuffled = enc.logits(texts[::-1], batch_size=5)[::-1]
        diff = max(np.abs(batched - alone).max(), np.abs(batched - shuffled).max())
        print(f"{name} {dtype}: batched vs one at a time: max |logit diff| {diff:.1e}")
        assert diff <= 1e-5 * np.abs(batched).max()


def test_cross_encoder_scores(models):
    d = models["cross"]
    queries = [QUERY] * len(PASSAGES)
    ref = torch_logits(d, queries, PASSAGES)[:, 0]
    enc = halfbyte.Encoder(d, dtype="f32")
    assert enc.labels == ["LABEL_0"] and enc.problem_type == "regression"
    s = enc.score(QUERY, PASSAGES)
    assert s.dtype == np.float32 and s.shape == (len(PASSAGES),)
    err = np.abs(s - ref).max()
    print(f"cross-encoder f32: max |score - torch| {err:.1e} (scores span {ref.min():.2f}..{ref.max():.2f})")
    assert err <= 1e-4 * max(1.0, np.abs(ref).max())
    np.testing.assert_allclose(enc.score(QUERY, PASSAGES, sigmoid=True), sigmoid(ref), rtol=0, atol=1e-5)
    # The same pairs through logits() / classify() (the raw logit: one label, regression).
    np.testing.assert_allclose(enc.logits([(QUERY, p) for p in PASSAGES])[:, 0], s, rtol=0, atol=1e-6)
    assert enc.classify([(QUERY, PASSAGES[0])])[0][0]["score"] == pytest.approx(float(s[0]), abs=1e-6)
    # Token types matter: the pair is not the concatenated text.
    assert abs(enc.logits([QUERY + " " + PASSAGES[0]])[0, 0] - s[0]) > 1e-3
    # q8_0: scores within 0.01 of torch (measured 0.0055 on this random model), and
    # every pair of passages whose reference scores differ by more than twice that
    # keeps its order (nearer pairs may swap: two of the top 5 here are 0.0096 apart).
    q8 = halfbyte.Encoder(d, dtype="q8_0").score(QUERY, PASSAGES)
    print(f"cross-encoder q8_0: max |score - torch| {np.abs(q8 - ref).max():.4f}")
    assert np.abs(q8 - ref).max() <= 0.01
    sure = (ref[:, None] - ref[None, :]) > 0.02
    assert sure.sum() > len(PASSAGES)  # the check below is not vacuous
    assert np.all((q8[:, None] - q8[None, :])[sure] > 0)
    assert np.argmax(q8) == np.argmax(ref)
    assert enc.score(QUERY, []).shape == (0,)
    with pytest.raises(TypeError, match="list of str"):
        enc.score(QUERY, "one passage")


def test_no_head(models, tmp_path):
    if not os.path.exists(os.path.join(MINILM, "model.safetensors")):
        pytest.skip("all-MiniLM-L6-v2 not fetched")
    enc = halfbyte.Encoder(MINILM, dtype="f32")
    assert enc.labels == [] and enc.problem_type is None
    for call in (lambda: enc.classify(["x"]), lambda: enc.logits(["x"]), lambda: enc.score("q", ["p"])):
        with pytest.raises(RuntimeError, match="no sequence classification head .*architectures: \\[BertModel\\]"):
            call()
    # A classification checkpoint whose config names another architecture runs as a plain encoder.
    d = broken_copy(models["bert3"], tmp_path, lambda c: c.__setitem__("architectures", ["BertModel"]))
    assert halfbyte.Encoder(d, dtype="f32").labels == []


# ---- malformed heads --------------------------------------------------------------------------


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


@pytest.mark.parametrize("name, config, tensors, exc, match", [
    ("small3", set_("id2label", {"0": "a", "1": "b"}), None, ValueError,
     "'classifier.weight' should have shape \\[2, 64\\] \\(one row per label.*has \\[3, 64\\]"),
    ("small3", set_("num_labels", 5), None, ValueError, "num_labels is 5 but id2label has 3 labels"),
    ("small3", set_("problem_type", "ranking"), None, ValueError, "problem_type 'ranking' is not one of"),
    ("small3", set_("id2label", {"0": "a", "2": "b", "1": "c", "3": "d"}), None, ValueError,
     "classifier.weight' should have shape \\[4, 64\\]"),
    ("small3", set_("id2label", {"0": "a", "1": "b", "5": "c"}), None, ValueError, "id2label key '5' is not an id"),
    ("small3", set_("id2label", {"0": "a", "1": "b", "01": "c"}), None, ValueError, "id2label key '01'"),
    ("small3", set_("id2label", {"0": "a", "1": 2, "2": "c"}), None, ValueError, "id2label\\['1'\\] should be a string"),
    ("small3", set_("id2label", []), None, ValueError, "id2label should be a non-empty object"),
    ("small3", set_("architectures", "BertForSequenceClassification"), None, ValueError,
     "architectures should be a list"),
    ("small3", None, lambda h: h.pop("classifier.bias"), ValueError,
     "'classifier.bias' of the BertForSequenceClassification head is missing"),
    ("small3", None, lambda h: h.pop("bert.pooler.dense.weight"), ValueError, "'bert.pooler.dense.weight' .* missing"),
    ("small3", None, lambda h: h["bert.pooler.dense.weight"].__setitem__("shape", [32, 128]), ValueError,
     "'bert.pooler.dense.weight' should have shape \\[64, 64\\]"),
    ("distilbert", None, lambda h: h.pop("pre_classifier.weight"), ValueError,
     "'pre_classifier.weight' of the DistilBertForSequenceClassification head is missing"),
    ("distilbert", None, lambda h: h.pop("distilbert.transformer.layer.1.ffn.lin2.bias"), ValueError,
     "'distilbert.transformer.layer.1.ffn.lin2.bias' is missing"),
    ("distilbert", set_("activation", "relu"), None, RuntimeError, "activation 'relu' is not supported"),
    ("distilbert", lambda c: c.pop("dim"), None, ValueError, "required key 'dim' is missing"),
    ("distilbert", set_("n_heads", 7), None, ValueError, "dim 384 is not a multiple of n_heads 7"),
])
def test_malformed_heads(models, tmp_path, name, config, tensors, exc, match):
    d = broken_copy(models[name], tmp_path, config, tensors)
    with pytest.raises(exc, match=match):
        halfbyte.Encoder(d, dtype="f32")
