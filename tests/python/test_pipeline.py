"""halfbyte.pipeline against halfbyte.Encoder and against transformers' own
pipeline("text-classification") on a DistilBERT classifier generated as in
test_encoder_heads.py (f32: same label on every text, scores within 1e-4, the same
output structure for one text, a list, top_k, text pairs); feature-extraction
equals Encoder.embed. And Encoder.embed(progress=...): counts per packed batch,
cancellation, exceptions, the bar."""

import math
import os
import sys

import numpy as np
import pytest

import halfbyte
from encoder_texts import EDGE_CASES, prose

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from test_encoder_heads import MINILM, distilbert_head, small_bert  # noqa: E402
from halfbyte.pipeline import TextClassificationPipeline  # noqa: E402  (halfbyte.pipeline is the function)

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(MINILM, "model.safetensors")),
                                reason="all-MiniLM-L6-v2 not fetched (examples/fetch_minilm.sh)")

TEXTS = EDGE_CASES + prose(40)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    return {"distilbert": distilbert_head(str(root / "distilbert"), 1, 10.0),
            "one": small_bert(str(root / "one"), 6, num_labels=1),
            "small3": small_bert(str(root / "small3"), 5, id2label={0: "a", 1: "b", 2: "c"})}


def hf_pipeline(folder):
    return transformers.pipeline("text-classification", model=folder, tokenizer=folder, device="cpu",
                                 dtype=torch.float32)


def assert_same(ours, theirs, atol=1e-4):
    """Same nesting, labels and keys; scores within atol."""
    if isinstance(theirs, dict):
        assert set(ours) == {"label", "score"} == set(theirs)
        assert ours["label"] == theirs["label"]
        assert abs(ours["score"] - theirs["score"]) <= atol, (ours, theirs)
        return
    assert isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert_same(o, t, atol)


def test_text_classification_matches_transformers(models):
    d = models["distilbert"]
    hf = hf_pipeline(d)
    ours = halfbyte.pipeline("text-classification", model=d, dtype="f32")
    theirs = hf(TEXTS, truncation=True)
    got = ours(TEXTS)
    assert len(got) == len(TEXTS) and all(isinstance(g, dict) for g in got)
    err = max(abs(g["score"] - t["score"]) for g, t in zip(got, theirs))
    print(f"pipeline vs transformers: {len(TEXTS)} texts, max |score diff| {err:.1e}, labels "
          f"{sorted(set(t['label'] for t in theirs))}")
    assert_same(got, theirs)
    assert len({t["label"] for t in theirs}) == 2  # both labels occur: the comparison means something
    # One text: a list of one dict; top_k: lists, for one text and for a list.
    assert_same(ours("I loved this film"), hf("I loved this film"))
    assert ours("I loved this film")[0]["label"] in ("NEGATIVE", "POSITIVE")
    assert_same(ours("I loved this film", top_k=2), hf("I loved this film", top_k=2))
    assert_same(ours(TEXTS[:5], top_k=1), hf(TEXTS[:5], top_k=1))
    assert_same(ours(TEXTS[:5], top_k=None), hf(TEXTS[:5], top_k=None))
    assert_same(ours(TEXTS[:5], function_to_apply="none"), hf(TEXTS[:5], function_to_apply="none"))
    # Text pairs as transformers takes them: {"text": ..., "text_pair": ...}.
    pair = {"text": "a question?", "text_pair": "an answer."}
    assert isinstance(ours(pair), dict)  # transformers' shape for one dict input
    assert_same(ours(pair), hf(pair))
    assert_same(ours([pair, "plain"]), hf([pair, "plain"]))


def test_sentiment_analysis_is_text_classification(models):
    d = models["distilbert"]
    a = halfbyte.pipeline("sentiment-analysis", model=d, dtype="f32")
    b = halfbyte.pipeline("text-classification", model=d, dtype="f32")
    assert a.task == "sentiment-analysis" and isinstance(a, TextClassificationPipeline)
    assert a(TEXTS[:10]) == b(TEXTS[:10])


def test_text_classification_equals_encoder_classify(models):
    d = models["small3"]
    enc = halfbyte.Encoder(d, dtype="q8_0")
    p = halfbyte.pipeline("text-classification", model=enc)
    assert p.model is enc
    assert p(TEXTS) == [r[0] for r in enc.classify(TEXTS)]
    assert p(TEXTS, top_k=2, batch_size=3) == enc.classify(TEXTS, top_k=2, batch_size=3)
    assert p("x", top_k=None) == enc.classify(["x"], top_k=None)[0]
    assert p([("q", "p")], function_to_apply="sigmoid") == [enc.classify([("q", "p")], function_to_apply="sigmoid")[0][0]]
    # Defaults for each call given to pipeline().
    q = halfbyte.pipeline("text-classification", model=d, top_k=None, function_to_apply="none")
    np.testing.assert_allclose(sorted(x["score"] for x in q("x")), sorted(q.model.logits(["x"])[0]), rtol=1e-6)
    p.close()  # an Encoder passed in stays open
    assert enc.dim == 64


def test_one_label_head_gets_sigmoid_as_in_transformers(models):
    d = models["one"]
    theirs = hf_pipeline(d)(TEXTS[:20], truncation=True)
    ours = halfbyte.pipeline("text-classification", model=d, dtype="f32")(TEXTS[:20])
    assert_same(ours, theirs)
    assert all(0.0 < x["score"] < 1.0 for x in ours)


def test_feature_extraction_equals_encoder_embed():
    fe = halfbyte.pipeline("feature-extraction", model=MINILM, dtype="f32")
    enc = halfbyte.Encoder(MINILM, dtype="f32")
    e = fe(TEXTS)
    assert e.dtype == np.float32 and e.shape == (len(TEXTS), 384)
    np.testing.assert_array_equal(e, enc.embed(TEXTS))
    one = fe("A cat sits on the mat.")
    assert one.shape == (1, 384)
    np.testing.assert_array_equal(one, enc.embed(["A cat sits on the mat."]))
    np.testing.assert_array_equal(fe(TEXTS[:7], normalize=False, batch_size=2), enc.embed(TEXTS[:7], normalize=False))
    assert fe([]).shape == (0, 384)
    with fe:
        pass
    with pytest.raises(ValueError, match="closed"):
        fe(["x"])


def test_pipeline_errors(models):
    with pytest.raises(ValueError, match="unknown task 'summarization'.*'feature-extraction', "
                                         "'sentiment-analysis', 'text-classification'"):
        halfbyte.pipeline("summarization", model=MINILM)
    with pytest.raises(ValueError, match="model= is required"):
        halfbyte.pipeline("feature-extraction")
    with pytest.raises(ValueError, match="text-classification needs a BertForSequenceClassification or "
                                         "DistilBertForSequenceClassification folder.*no classification head"):
        halfbyte.pipeline("text-classification", model=MINILM)
    with pytest.raises(FileNotFoundError):
        halfbyte.pipeline("feature-extraction", model=MINILM + "-missing")
    with pytest.raises(TypeError, match="top_k only applies to text-classification"):
        halfbyte.pipeline("feature-extraction", model=MINILM, top_k=2)
    with pytest.raises(TypeError, match="dtype only apply when model is a path"):
        halfbyte.pipeline("feature-extraction", model=halfbyte.Encoder(MINILM), dtype="f32")
    clf = halfbyte.pipeline("text-classification", model=models["small3"])
    with pytest.raises(ValueError, match="top_k"):
        clf("x", top_k=0)
    with pytest.raises(TypeError, match="top_k must be an int or None"):
        clf("x", top_k="2")
    with pytest.raises(ValueError, match="a dict input needs the keys 'text'"):
        clf({"txt": "x"})
    with pytest.raises(ValueError, match="function_to_apply"):
        clf("x", function_to_apply="relu")


# ---- Encoder.embed(progress=...) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def enc():
    return halfbyte.Encoder(MINILM, dtype="q8_0")


def test_embed_progress_counts_each_batch(enc):
    seen = []
    e = enc.embed(TEXTS, batch_size=16, progress=lambda done, total: seen.append((done, total)))
    n = len(TEXTS)
    assert len(seen) == math.ceil(n / 16)  # short texts: batches of batch_size
    assert [t for _, t in seen] == [n] * len(seen)
    done = [d for d, _ in seen]
    assert done == sorted(set(done)) and done[-1] == n and done[0] == 16
    np.testing.assert_array_equal(e, enc.embed(TEXTS, batch_size=16))
    assert enc.embed([], progress=lambda d, t: seen.append("called")).shape == (0, 384)
    assert seen[-1] != "called"


def test_embed_progress_false_cancels(enc):
    with pytest.raises(RuntimeError, match="embed: cancelled after 10 of 30 texts"):
        enc.embed(TEXTS[:30], batch_size=10, progress=lambda done, total: done < 10)
    calls = []
    enc.embed(TEXTS[:30], batch_size=10, progress=lambda done, total: calls.append(done) or None)  # None: go on
    assert calls == [10, 20, 30]


def test_embed_progress_exception_propagates(enc):
    class Boom(Exception):
        pass

    def boom(done, total):
        raise Boom(f"at {done}")

    with pytest.raises(Boom, match="at 5"):
        enc.embed(TEXTS[:20], batch_size=5, progress=boom)

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        enc.embed(TEXTS[:20], batch_size=5, progress=interrupt)
    assert enc.embed(["still works"]).shape == (1, 384)


def test_embed_progress_true_and_bad_values(enc, capsys, monkeypatch):
    enc.embed(TEXTS[:20], batch_size=5, progress=True)
    assert "embedding" in capsys.readouterr().err  # tqdm writes to stderr
    monkeypatch.setitem(sys.modules, "tqdm", None)
    enc.embed(TEXTS[:20], batch_size=5, progress=True)
    assert "embedding: 100%" in capsys.readouterr().err
    enc.embed(TEXTS[:3], progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="progress must be None, True or a callable f\\(done, total\\)"):
        enc.embed(["x"], progress=3)
    # Through the pipeline too.
    seen = []
    halfbyte.pipeline("feature-extraction", model=enc)(TEXTS[:9], batch_size=4, progress=lambda d, t: seen.append(d))
    assert seen == [4, 8, 9]
