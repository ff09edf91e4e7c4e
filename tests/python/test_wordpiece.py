"""halfbyte's WordPiece tokenizer (through halfbyte.Encoder.tokenize) against
Hugging Face tokenizers on all-MiniLM-L6-v2's vocabulary: the folder as shipped
(tokenizer.json), vocab.txt alone, and tokenizer.json variants with the other
normalizer settings (cased, accents kept, accents stripped without lower-casing).
Single texts, pairs with token types, truncation."""

import json
import os
import shutil

import pytest

import halfbyte
from encoder_texts import EDGE_CASES, prose, random_strings

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

MINILM = os.environ.get("HALFBYTE_MINILM", os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                          "all-MiniLM-L6-v2"))
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(MINILM, "model.safetensors")),
                                reason="all-MiniLM-L6-v2 not fetched (examples/fetch_minilm.sh; .ci/setup does it)")

TEXTS = EDGE_CASES + random_strings(120) + prose(60)
# transformers treats an empty second text as no pair at all (a Python truthiness
# check); the pairs with an empty side are compared with tokenizers instead.
PAIRS = [(EDGE_CASES[i], EDGE_CASES[-1 - i]) for i in range(len(EDGE_CASES)) if EDGE_CASES[i] and EDGE_CASES[-1 - i]] + [
    ("a b c d e", "f g h"), ("a b c", "f g h i j k"), ("a b", "f g h i j k"), ("x y z w", "x y z w")]
EMPTY_PAIRS = [("\n\n", ""), ("", "x"), ("", "")]


def variant(tmp_path, name, normalizer=None, drop_json=False):
    """A folder with MiniLM's weights (linked) and its tokenizer, modified."""
    d = tmp_path / name
    d.mkdir()
    for f in ("config.json", "model.safetensors"):
        os.symlink(os.path.abspath(os.path.join(MINILM, f)), d / f)
    for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(MINILM, f), d / f)
    if not drop_json:
        with open(os.path.join(MINILM, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        if normalizer is not None:
            tj["normalizer"].update(normalizer)
        with open(d / "tokenizer.json", "w", encoding="utf-8") as f:
            json.dump(tj, f)
    return str(d)


def hf_reference(folder):
    """tokenizers' Tokenizer for the folder's tokenizer.json, without the file's padding/truncation."""
    tk = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(max_length=512)  # the folder's model_max_length, as halfbyte reads it
    return tk


def check_same(enc, encode_ref, texts):
    bad = [(t, ours, ref) for t in texts if (ours := enc.tokenize(t)) != (ref := encode_ref(t))]
    for t, ours, ref in bad[:5]:
        print(repr(t), "\n  ours", ours, "\n  ref ", ref)
    assert not bad, f"{len(bad)} of {len(texts)} texts differ"


def test_minilm_folder_matches_transformers():
    enc = halfbyte.Encoder(MINILM, dtype="f32")
    ref = transformers.AutoTokenizer.from_pretrained(MINILM)
    assert enc.max_length == 256  # sentence_bert_config.json
    check_same(enc, lambda t: ref(t, truncation=True, max_length=256)["input_ids"], TEXTS)
    for a, b in PAIRS:
        r = ref(a, b, truncation=True, max_length=256)
        assert enc.tokenize_pair(a, b) == (r["input_ids"], r["token_type_ids"]), (a, b)
    tk = hf_reference(MINILM)
    for a, b in EMPTY_PAIRS:
        r = tk.encode(a, b)
        assert enc.tokenize_pair(a, b) == (r.ids, r.type_ids), (a, b)


@pytest.mark.parametrize("max_length", [4, 5, 7, 8, 9, 12])
def test_truncation_matches_transformers(tmp_path, max_length):
    enc = halfbyte.Encoder(MINILM, dtype="f32", max_length=max_length)
    ref = transformers.AutoTokenizer.from_pretrained(MINILM)
    check_same(enc, lambda t: ref(t, truncation=True, max_length=max_length)["input_ids"], TEXTS[:80])
    for a, b in PAIRS:
        r = ref(a, b, truncation="longest_first", max_length=max_length)
        assert enc.tokenize_pair(a, b) == (r["input_ids"], r["token_type_ids"]), (a, b, max_length)


def test_vocab_txt_matches_transformers(tmp_path):
    d = variant(tmp_path, "vocab_only", drop_json=True)
    enc = halfbyte.Encoder(d, dtype="f32")
    ref = transformers.AutoTokenizer.from_pretrained(d)  # builds its tokenizer from vocab.txt
    assert not os.path.exists(os.path.join(d, "tokenizer.json"))
    assert enc.max_length == 512  # tokenizer_config.json's model_max_length
    check_same(enc, lambda t: ref(t, truncation=True, max_length=512)["input_ids"], TEXTS)


@pytest.mark.parametrize("normalizer", [
    {"lowercase": False, "strip_accents": None},   # cased BERT
    {"lowercase": True, "strip_accents": False},   # lower case, accents kept
    {"lowercase": False, "strip_accents": True},   # accents stripped, case kept
    {"handle_chinese_chars": False},
    {"clean_text": False},
])
def test_normalizer_options_match_tokenizers(tmp_path, normalizer):
    d = variant(tmp_path, "variant", normalizer=normalizer)
    enc = halfbyte.Encoder(d, dtype="f32")
    ref = hf_reference(d)
    check_same(enc, lambda t: ref.encode(t).ids, TEXTS)
