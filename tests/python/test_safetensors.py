"""HF safetensors folders (config.json + *.safetensors + tokenizer.json): halfbyte's
logits against transformers' own forward pass on the same random weights, its
tokenization against transformers' tokenizers and llama.cpp's test vectors, and
clean errors for malformed files."""

import inspect
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS
from hf_models import (SENTENCES, TOKENIZER_SOURCES, random_hf_model, read_safetensors, tokenizer_dir,
                       torch_logits, write_safetensors)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")
needs_vocab = pytest.mark.skipif(not os.path.exists(VOCABS["spm"]), reason="tests/data/tokenizer-tests not found")

TEXT = "Once upon a time, a little fox found 3 shiny stones. Ünïcödé 漢字 🦊!"
# An fp32 KV cache where the build offers the choice: then the only differences
# from torch are fp32 rounding.
KV = {"kv_cache": "f32"} if "kv_cache" in inspect.signature(halfbyte.Model.__init__).parameters else {}


def rel_err(ours, ref):
    """Per position max |diff| / std of the reference logits."""
    return np.abs(ours - ref).max(axis=1) / ref.std(axis=1)


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    """Tokenizer folders transformers converts from the GGUF vocabularies."""
    out = {}
    for kind, src in TOKENIZER_SOURCES.items():
        if os.path.exists(src):
            out[kind] = tokenizer_dir(kind, str(tmp_path_factory.mktemp("tok-" + kind)))
    return out


def hf_ids(tok_dir, text, special=True):
    tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    return tok(text, add_special_tokens=special)["input_ids"]


# --- logits against transformers -----------------------------------------------------

MODELS = {  # arch, tokenizer, tied
    "llama": ("llama", "spm", False),
    "llama-tied": ("llama", "spm", True),
    "qwen2": ("qwen2", "smollm2", False),
    "mistral": ("mistral", "spm", False),
}


@needs_vocab
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", list(MODELS))
def test_logits_match_transformers(tmp_path, toks, name, dtype):
    arch, tok, tied = MODELS[name]
    if tok not in toks:
        pytest.skip("SmolLM2 not fetched (examples/fetch_smollm2.sh)")
    folder = str(tmp_path / name)
    ref_model = random_hf_model(folder, arch=arch, dtype=dtype, tok_dir=toks[tok], tied=tied, seed=len(name))
    ids = hf_ids(toks[tok], TEXT)
    ref = torch_logits(ref_model, ids)
    with halfbyte.Model(folder, quantize="f32", precision="float", **KV) as m:
        assert m.tokenize(TEXT) == ids
        assert m.config["arch"] == arch and m.config["tied_output"] == tied
        assert m.config["n_layer"] == 2 and m.config["n_head_kv"] == 2 and m.config["head_dim"] == 32
        ours = m.logits(ids).astype(np.float64)
    err = rel_err(ours, ref)
    print(f"{name} {dtype}: max |diff| / std = {err.max():.1e}")
    # Measured 2.9e-6..3.6e-6 with the fp32 KV cache (16-bit weights are exact in
    # fp32, so every dtype is the same; torch fp32 vs fp64 differs by 2e-6 itself);
    # 0.8e-3..1.3e-3 with an fp16 cache.
    assert err.max() < (2e-5 if KV else 5e-3)
    assert (ours.argmax(axis=1) == ref.argmax(axis=1)).all()


@needs_vocab
def test_quantized_at_load(tmp_path, toks):
    folder = str(tmp_path / "m")
    ref_model = random_hf_model(folder, tok_dir=toks["spm"], seed=3)
    ids = hf_ids(toks["spm"], TEXT)
    ref = torch_logits(ref_model, ids)
    # Default: q8_0 at load (int8 activations); q4_0 much coarser. Measured rms |diff|
    # / std 0.019 and 0.20.
    for fmt, bound in ((None, 0.05), ("q4_0", 0.5)):
        with halfbyte.Model(folder, quantize=fmt) as m:
            ours = m.logits(ids).astype(np.float64)
        err = np.sqrt(((ours - ref) ** 2).mean(axis=1)) / ref.std(axis=1)
        print(f"quantize={fmt}: rms |diff| / std = {err.max():.2e}")
        assert err.max() < bound


@needs_vocab
def test_sharded_and_single_file_paths(tmp_path, toks):
    sharded = str(tmp_path / "sharded")
    ref_model = random_hf_model(sharded, tok_dir=toks["spm"], seed=5, max_shard_size="1MB")
    shards = sorted(f for f in os.listdir(sharded) if f.endswith(".safetensors"))
    assert len(shards) > 2 and os.path.exists(os.path.join(sharded, "model.safetensors.index.json"))
    ids = hf_ids(toks["spm"], TEXT)
    ref = torch_logits(ref_model, ids)
    for path in (sharded, os.path.join(sharded, shards[-1])):  # a shard named by the index: the whole model
        with halfbyte.Model(path, quantize="f32", precision="float", **KV) as m:
            assert rel_err(m.logits(ids).astype(np.float64), ref).max() < (2e-5 if KV else 5e-3)
    # Shards without an index: every *.safetensors of the folder.
    os.remove(os.path.join(sharded, "model.safetensors.index.json"))
    with halfbyte.Model(sharded, quantize="f32", precision="float", **KV) as m:
        assert rel_err(m.logits(ids).astype(np.float64), ref).max() < (2e-5 if KV else 5e-3)


@needs_vocab
def test_mistral_sliding_window_caps_the_context(tmp_path, toks):
    folder = str(tmp_path / "m")
    ref_model = random_hf_model(folder, arch="mistral", tok_dir=toks["spm"], sliding_window=64)
    ids = hf_ids(toks["spm"], TEXT)
    with halfbyte.Model(folder, quantize="f32", precision="float", **KV) as m:
        assert m.config["n_ctx_train"] == 64
        ours = m.logits(ids).astype(np.float64)
    assert rel_err(ours, torch_logits(ref_model, ids)).max() < (2e-5 if KV else 5e-3)


@needs_vocab
def test_cli_info_lists_gguf_names(tmp_path, toks):
    exe = shutil.which("halfbyte")
    if exe is None:
        pytest.skip("the halfbyte command is not on PATH")
    folder = str(tmp_path / "m")
    random_hf_model(folder, arch="qwen2", tok_dir=toks["smollm2" if "smollm2" in toks else "gpt2"], n_layer=1)
    r = subprocess.run([exe, "info", folder], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_q.bias", "blk.0.ffn_down.weight",
                 "output_norm.weight", "output.weight", "qwen2.context_length", "halfbyte.rope_neox",
                 "tokenizer.ggml.merges"):
        assert name in r.stdout, name
    assert "model.layers" not in r.stdout


# --- tokenizer.json against transformers and llama.cpp's vectors -----------------------

def vectors(path):
    with open(path + ".inp", encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")
    with open(path + ".out", encoding="utf-8") as f:
        ids = [[int(x) for x in line.split()] for line in f.read().split("\n")]
    return texts, ids


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small model folder without a tokenizer (tokenizer=... supplies one)."""
    folder = str(tmp_path_factory.mktemp("tiny") / "m")
    random_hf_model(folder, n_vocab=512, n_layer=1, hidden=64, n_head=2, n_head_kv=1, n_ff=64)
    return folder


def check_tokenizer(tiny, tok_json, reference, texts, special):
    with halfbyte.Model(tiny, tokenizer=tok_json) as m:
        for text in texts:
            assert m.tokenize(text, add_special=special) == reference(text), repr(text)


@needs_vocab
@pytest.mark.parametrize("kind", ["smollm2", "gpt2", "spm"])
def test_tokenizer_json_matches_transformers(tiny, toks, kind):
    if kind not in toks:
        pytest.skip("SmolLM2 not fetched (examples/fetch_smollm2.sh)")
    tok = transformers.AutoTokenizer.from_pretrained(toks[kind])
    texts = SENTENCES + vectors(VOCABS["gpt2"])[0]
    if kind == "spm":
        # HF's Metaspace (prepend_scheme "first") adds no "▁" to text that starts with
        # a space; SentencePiece, llama.cpp and halfbyte do (vectors test below).
        texts = [t for t in texts if not t.startswith(" ")]
    for special in (True, False):
        check_tokenizer(tiny, os.path.join(toks[kind], "tokenizer.json"),
                        lambda t: tok(t, add_special_tokens=special)["input_ids"], texts, special)


@needs_vocab
@pytest.mark.parametrize("kind", ["gpt2", "spm"])
def test_tokenizer_json_matches_llama_cpp_vectors(tiny, toks, kind):
    texts, ids = vectors(VOCABS[kind])
    expected = dict(zip(texts, ids))
    check_tokenizer(tiny, os.path.join(toks[kind], "tokenizer.json"), expected.__getitem__, texts, False)


REGEX = {
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


@needs_vocab
@pytest.mark.parametrize("variant", ["gpt2-split", "llama3", "llama3-ignore-merges", "qwen2", "digits",
                                     "spm-normalizer"])
def test_tokenizer_variants_built_with_tokenizers(tmp_path, tiny, toks, variant):
    """Pre-tokenizer and normalizer forms of other models' tokenizer.json, built with
    the `tokenizers` library on the shared vocabularies; `tokenizers` is the reference."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers

    t = Tokenizer.from_file(os.path.join(toks["spm" if variant.startswith("spm") else "gpt2"], "tokenizer.json"))
    if variant.split("-")[0] in REGEX:
        t.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(REGEX[variant.split("-")[0]]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        t.model.ignore_merges = variant.endswith("ignore-merges")
    elif variant == "digits":  # SmolLM2's own form
        t.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:  # Llama 2 / Mistral form: the space prefix is a normalizer (always added)
        t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        t.pre_tokenizer = None
    path = str(tmp_path / "tokenizer.json")
    t.save(path)
    texts = SENTENCES + vectors(VOCABS["gpt2"])[0] + ["don't 'S 'Ll x\r\n\r\ny 1234567 ab12cd"]
    check_tokenizer(tiny, path, lambda s: t.encode(s, add_special_tokens=False).ids, texts, False)
    if variant == "spm-normalizer":  # here HF agrees with llama.cpp on leading spaces too
        texts, ids = vectors(VOCABS["spm"])
        check_tokenizer(tiny, path, dict(zip(texts, ids)).__getitem__, texts, False)


# --- malformed input ---------------------------------------------------------------

@pytest.fixture
def bad(tmp_path, tiny):
    """A copy of the tiny model folder to break, with its header and data."""
    folder = str(tmp_path / "bad")
    shutil.copytree(tiny, folder)
    return folder


def st(folder):
    return os.path.join(folder, "model.safetensors")


def edit_header(folder, fn):
    header, data = read_safetensors(st(folder))
    fn(header)
    write_safetensors(st(folder), header, data)


def edit_config(folder, fn):
    p = os.path.join(folder, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    fn(cfg)
    with open(p, "w") as f:
        json.dump(cfg, f)


def norm(h):
    return h["model.norm.weight"]


def raw_file(data):
    def fn(folder):
        with open(st(folder), "wb") as f:
            f.write(data)
    return fn


BREAKS = {
    "truncated": (raw_file(b"\x10\x00\x00"), ValueError, "too short"),
    "header-beyond-file": (raw_file(b"\x00\x00\x10\x00\x00\x00\x00\x00{}"), ValueError, "beyond the end"),
    "invalid-json": (raw_file(b"\x06\x00\x00\x00\x00\x00\x00\x00{\"a\": "), ValueError, "not valid JSON"),
    "not-an-object": (raw_file(b"\x02\x00\x00\x00\x00\x00\x00\x00[]"), ValueError, "not a JSON object"),
    "deep-nesting": (raw_file(b"\x00\x01\x00\x00\x00\x00\x00\x00" + b"[" * 256), ValueError, "nested"),
    "duplicate-name": (lambda d: write_safetensors(st(d), None, b"\0" * 8, header_bytes=(
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
        b' "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}')), ValueError, "'a' appears twice"),
    "offsets-out-of-range": (lambda d: edit_header(d, lambda h: norm(h).update(data_offsets=[
        norm(h)["data_offsets"][0], 10**9])), ValueError, "model.norm.weight.*outside"),
    "offsets-reversed": (lambda d: edit_header(d, lambda h: norm(h).update(data_offsets=[
        8, 4])), ValueError, "model.norm.weight.*outside"),
    "shape-size-mismatch": (lambda d: edit_header(d, lambda h: norm(h).update(shape=[65])), ValueError,
                            "model.norm.weight.*needs 65 x 4"),
    "shape-overflow": (lambda d: edit_header(d, lambda h: norm(h).update(shape=[2**40, 2**40])), ValueError,
                       "overflows"),
    "negative-shape": (lambda d: edit_header(d, lambda h: norm(h).update(shape=[-64])), ValueError,
                       "not a size"),
    "unknown-dtype-used": (lambda d: edit_header(d, lambda h: norm(h).update(dtype="Q7")), ValueError,
                           "'Q7', which is not a safetensors dtype"),
    "int8-used": (lambda d: edit_header(d, lambda h: norm(h).update(dtype="I8", shape=[256])), RuntimeError,
                  "model.norm.weight' has dtype I8"),
    "unknown-tensor": (lambda d: edit_header(d, lambda h: h.update({"model.layers.0.self_attn.o_proj.bias": dict(
        norm(h))})), RuntimeError, "o_proj.bias' is not part of"),
    "layer-beyond-config": (lambda d: edit_header(d, lambda h: h.update({"model.layers.7.input_layernorm.weight": dict(
        norm(h))})), ValueError, "num_hidden_layers is 1"),
    "no-lm-head": (lambda d: edit_header(d, lambda h: h.pop("lm_head.weight")), ValueError, "lm_head.weight is missing"),
    "missing-config-key": (lambda d: edit_config(d, lambda c: c.pop("hidden_size")), ValueError,
                           "config.json: required key 'hidden_size'"),
    "config-key-type": (lambda d: edit_config(d, lambda c: c.update(num_attention_heads="4")), ValueError,
                        "num_attention_heads should be an integer"),
    "unsupported-arch": (lambda d: edit_config(d, lambda c: c.update(model_type="gemma",
                                                                     architectures=["GemmaForCausalLM"])),
                         RuntimeError, "model_type 'gemma', GemmaForCausalLM is not supported"),
    "rope-scaling": (lambda d: edit_config(d, lambda c: c.update(rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                                  "rope_theta": 1e4})),
                     RuntimeError, "RoPE scaling type 'linear'"),
    "old-rope-scaling": (lambda d: edit_config(d, lambda c: (c.pop("rope_parameters", None), c.update(
        rope_scaling={"type": "yarn", "factor": 4.0}))), RuntimeError, "RoPE scaling type 'yarn'"),
    "no-config": (lambda d: os.remove(os.path.join(d, "config.json")), FileNotFoundError, "config.json"),
    "no-weights": (lambda d: os.remove(st(d)), OSError, "no model.safetensors"),
    "bad-index": (lambda d: open(os.path.join(d, "model.safetensors.index.json"), "w").write(
        '{"weight_map": {"lm_head.weight": "../../etc/passwd.safetensors"}}'), ValueError, "weight_map"),
}


@pytest.mark.parametrize("name", list(BREAKS))
def test_malformed_model_raises_cleanly(bad, name):
    breaker, exc, message = BREAKS[name]
    breaker(bad)
    with pytest.raises(exc, match=message):
        halfbyte.Model(bad)


def test_missing_files_raise_file_not_found(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        halfbyte.Model(str(tmp_path / "nothing-here"))
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        halfbyte.Model(tiny, tokenizer=str(tmp_path / "tokenizer.json"))


@needs_vocab
def test_unused_tensor_with_an_unknown_dtype_is_ignored(bad, toks):
    edit_header(bad, lambda h: h.update({"model.layers.0.self_attn.rotary_emb.inv_freq": {
        "dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}))
    with halfbyte.Model(bad, tokenizer=os.path.join(toks["spm"], "tokenizer.json")) as m:
        assert m.logits([1, 2, 3]).shape == (3, 512)


TOKENIZER_BREAKS = {
    "invalid-json": (lambda j: "{\"model\": ", ValueError, "tokenizer.json: content is not valid JSON"),
    "wordpiece": (lambda j: {**j, "model": {"type": "WordPiece", "vocab": {"a": 0}}}, RuntimeError,
                  "tokenizer model 'WordPiece' is not supported"),
    "unigram": (lambda j: {**j, "model": {"type": "Unigram", "vocab": [["a", 0.0]]}}, RuntimeError, "'Unigram'"),
    "id-out-of-range": (lambda j: {**j, "model": {**j["model"], "vocab": {**j["model"]["vocab"], "zzz": 10**9}}},
                        ValueError, "model.vocab: token 'zzz' has id 1000000000, out of range"),
    "id-twice": (lambda j: {**j, "model": {**j["model"], "vocab": {**j["model"]["vocab"], "zzz": 5}}},
                 ValueError, "id 5 is both"),
    "bad-merge": (lambda j: {**j, "model": {**j["model"], "merges": [["Ġ", "qqqq"]]}}, ValueError,
                  r"model.merges\[0\].*not in model.vocab"),
    "no-vocab": (lambda j: {**j, "model": {k: v for k, v in j["model"].items() if k != "vocab"}}, ValueError,
                 "model.vocab is missing"),
    "unknown-regex": (lambda j: {**j, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\w+|\\s+"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}},
        RuntimeError, r"regex '\\w\+\|\\s\+' is not one halfbyte implements"),
    "bad-added-token": (lambda j: {**j, "added_tokens": [{"id": -1, "content": "<x>"}]}, ValueError, "added_tokens"),
}


@needs_vocab
@pytest.mark.parametrize("name", list(TOKENIZER_BREAKS))
def test_malformed_tokenizer_json_raises_cleanly(tmp_path, tiny, toks, name):
    with open(os.path.join(toks["gpt2"], "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    fn, exc, message = TOKENIZER_BREAKS[name]
    out = fn(j)
    path = tmp_path / "tokenizer.json"
    path.write_text(out if isinstance(out, str) else json.dumps(out), encoding="utf-8")
    with pytest.raises(exc, match=message):
        halfbyte.Model(tiny, tokenizer=str(path))


def test_folder_without_tokenizer_says_so(tiny):
    with pytest.raises(ValueError, match="no tokenizer.json beside it"):
        halfbyte.Model(tiny)
