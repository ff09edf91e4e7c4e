"""BERT as GGUF in llama.cpp's layout (general.architecture "bert"), both ways.

- halfbyte writes all-MiniLM-L6-v2 (HF folder) as GGUF (f32, f16, q8_0) with
  `quantize_model`; llama.cpp (llama-cpp-python) loads it and embeds ~100 texts:
  its embeddings are within cosine 0.9999 (f32, f16) of halfbyte's on the same
  file, and those of halfbyte on the GGUF within 0.9999 of halfbyte on the folder.
  llama.cpp's token ids equal halfbyte's on prose (its WordPiece differs from
  Hugging Face's on a few edge cases); halfbyte's equal on the GGUF and the folder.
- The GGUF that llama.cpp's own convert_hf_to_gguf.py writes from the folder loads in
  halfbyte and matches transformers + torch (mean pooled, normalized) within 0.9999.
  The converter comes from llama-cpp-python's sdist, which .ci/peers keeps in models/peers/.
- Hostile GGUFs (missing key, wrong tensor shape, head count not dividing the
  width, another architecture): a ValueError/RuntimeError naming the problem.
"""

import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import halfbyte
from encoder_texts import EDGE_CASES, prose
from gguf_models import _copy_field
from hf_models import torch_embeddings

MINILM = os.environ.get("HALFBYTE_MINILM", os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                          "all-MiniLM-L6-v2"))
needs_minilm = pytest.mark.skipif(not os.path.exists(os.path.join(MINILM, "model.safetensors")),
                                  reason="all-MiniLM-L6-v2 not fetched (examples/fetch_minilm.sh; .ci/setup does it)")
try:
    import llama_cpp
except ImportError:  # pragma: no cover - the reference is optional on a developer machine
    llama_cpp = None
needs_llama_cpp = pytest.mark.skipif(llama_cpp is None, reason="llama_cpp (llama-cpp-python) is not importable")

LLAMA_CPP_PYTHON = "0.3.36"  # its sdist ships llama.cpp's convert_hf_to_gguf.py and gguf-py

# Edge cases (accents, CJK, emoji, control characters, ...) and prose of 1 word to a
# few hundred tokens: all under llama.cpp's n_ctx=512 with [CLS] and [SEP].
TEXTS = EDGE_CASES + prose(40)


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cosines(a, b):
    return (unit(a) * unit(b)).sum(1)


def llama_cpp_embed(path, texts):
    """llama.cpp's pooled embeddings (its pooling_type from the file) and token ids."""
    llm = llama_cpp.Llama(model_path=path, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                          n_threads_batch=2, verbose=False)
    try:
        ids = [llm.tokenize(t.encode("utf-8"), add_bos=True, special=False) for t in texts]
        emb = np.array([llm.embed(t) for t in texts], dtype=np.float64)
    finally:
        llm.close()
    return emb, ids


@pytest.fixture(scope="module")
def folder_encoder():
    # The folder's own max_length is 256 (sentence_bert_config.json); the GGUF has no
    # such key, so it runs to bert.context_length (512) as llama.cpp does.
    return halfbyte.Encoder(MINILM, dtype="f32", max_length=512)


@pytest.fixture(scope="module")
def folder_embeddings(folder_encoder):
    return folder_encoder.embed(TEXTS)


@needs_minilm
@needs_llama_cpp
@pytest.mark.parametrize("gtype, bound_llama, bound_folder",
                         [("f32", 0.9999, 0.9999), ("f16", 0.9999, 0.9999), ("q8_0", 0.998, 0.999)])  # q8_0: two quantized runs (llama.cpp q8 activations) differ more
def test_halfbyte_written_gguf_in_llama_cpp(tmp_path, folder_encoder, folder_embeddings, gtype, bound_llama,
                                            bound_folder):
    path = str(tmp_path / f"minilm-{gtype}.gguf")
    table = halfbyte.quantize_model(MINILM, path, type=gtype)
    names = {t["name"]: t for t in table}
    assert "token_embd.weight" in names and "blk.5.layer_output_norm.bias" in names
    assert names["position_embd.weight"]["type"] == "f32" and names["token_types.weight"]["type"] == "f32"
    assert not any(n.startswith(("pooler", "bert.", "embeddings.")) for n in names)

    enc = halfbyte.Encoder(path, dtype="f32")
    assert (enc.dim, enc.max_length, enc.pooling, enc.normalize) == (384, 512, "mean", True)
    ours = enc.embed(TEXTS)
    ref, ref_ids = llama_cpp_embed(path, TEXTS)
    our_ids = [enc.tokenize(t) for t in TEXTS]
    # llama.cpp's WordPiece differs from Hugging Face tokenizers (halfbyte's reference,
    # test_wordpiece.py) on some edge cases (combining marks of Devanagari/Hangul, words
    # over 100 characters, special tokens written in the text): ids are compared on
    # the prose, and the embeddings on the texts both tokenize alike.
    prose_bad = [t for t, a, b in zip(TEXTS, our_ids, ref_ids) if a != b and t not in EDGE_CASES]
    assert not prose_bad, f"{len(prose_bad)} prose texts tokenized differently by llama.cpp: {prose_bad[:3]!r}"
    same = np.array([a == b for a, b in zip(our_ids, ref_ids)])
    assert our_ids == [folder_encoder.tokenize(t) for t in TEXTS]  # the vocabulary survives the round trip

    c_llama = cosines(ours[same], ref[same])
    c_folder = cosines(ours, folder_embeddings)
    print(f"halfbyte-written {gtype} GGUF, {int(same.sum())}/{len(TEXTS)} texts: cosine to llama.cpp min {c_llama.min():.7f} "
          f"mean {c_llama.mean():.7f}; to halfbyte on the folder min {c_folder.min():.7f}")
    assert c_llama.min() >= bound_llama
    assert c_folder.min() >= bound_folder


SDIST = os.path.join(os.path.dirname(__file__), "..", "..", "models", "peers",
                     f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz")


@pytest.fixture(scope="session")
def llama_cpp_converter(tmp_path_factory):
    """vendor/llama.cpp of llama-cpp-python's sdist (convert_hf_to_gguf.py, conversion/,
    gguf-py/), from the copy .ci/peers keeps in models/peers/."""
    if not os.path.isfile(SDIST):
        pytest.skip(f"{SDIST} is missing: .ci/peers downloads it (llama.cpp's converter comes from it)")
    root = tmp_path_factory.mktemp("llama-cpp-python-sdist")
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
    wanted = (prefix + "convert_hf_to_gguf.py", prefix + "conversion/", prefix + "gguf-py/")
    with tarfile.open(SDIST) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(wanted) and (m.isfile() or m.isdir())]
        tar.extractall(root, members=members)
    src = root / prefix
    assert (src / "convert_hf_to_gguf.py").is_file(), "the sdist has no vendor/llama.cpp/convert_hf_to_gguf.py"
    return src


def convert_with_llama_cpp(src, out, outtype):
    env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    r = subprocess.run([sys.executable, str(src / "convert_hf_to_gguf.py"), MINILM, "--outfile", out, "--outtype",
                        outtype], capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0:
        pytest.skip(f"llama.cpp's convert_hf_to_gguf.py could not run here: {r.stderr[-600:]}")


@needs_minilm
@pytest.mark.parametrize("outtype, bound", [("f32", 0.9999), ("q8_0", 0.999)])
def test_llama_cpp_converted_gguf_in_halfbyte(tmp_path, llama_cpp_converter, folder_encoder, outtype, bound):
    path = str(tmp_path / f"minilm-llama-cpp-{outtype}.gguf")
    convert_with_llama_cpp(llama_cpp_converter, path, outtype)
    enc = halfbyte.Encoder(path, dtype="f32")
    assert (enc.dim, enc.max_length, enc.pooling, enc.normalize) == (384, 512, "mean", True)
    assert [enc.tokenize(t) for t in TEXTS] == [folder_encoder.tokenize(t) for t in TEXTS]
    ours = enc.embed(TEXTS)
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    ref = torch_embeddings(MINILM, TEXTS, 512)
    c = cosines(ours, ref)
    print(f"llama.cpp-converted {outtype} GGUF in halfbyte, {len(TEXTS)} texts: cosine to torch min {c.min():.7f} "
          f"mean {c.mean():.7f}")
    assert c.min() >= bound
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    if outtype == "f32":  # the file llama.cpp wrote and the file halfbyte writes hold the same model
        mine = str(tmp_path / "minilm-halfbyte-f32.gguf")
        halfbyte.quantize_model(MINILM, mine, type="f32")
        np.testing.assert_allclose(halfbyte.Encoder(mine, dtype="f32").embed(TEXTS[:20]), ours[:20], atol=1e-6)


# --- hostile files ---------------------------------------------------------------

def rewrite(src, dst, drop=(), set_keys=None, tensors=None):
    """A copy of the GGUF at src with keys dropped or set (key -> (value, GGUFValueType))
    and tensors replaced (name -> array, or None to drop)."""
    import gguf

    set_keys = dict(set_keys or {})
    tensors = tensors or {}
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, set_keys.pop("general.architecture", ("bert", None))[0])
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in drop or key in set_keys:
            continue
        _copy_field(w, key, f)
    for key, (value, vtype) in set_keys.items():
        w.add_key_value(key, value, vtype)
    for t in r.tensors:  # f32 / f16 files: t.data is typed, its shape is numpy's
        if t.name in tensors:
            if tensors[t.name] is not None:
                w.add_tensor(t.name, tensors[t.name])
            continue
        w.add_tensor(t.name, np.array(t.data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


@pytest.fixture(scope="module")
def minilm_f16_gguf(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("gguf") / "minilm-f16.gguf")
    halfbyte.quantize_model(MINILM, path, type="f16")
    return path


@needs_minilm
@pytest.mark.parametrize("case, error, match", [
    ("missing_key", ValueError, "bert.block_count' is missing"),
    ("missing_eps", ValueError, "bert.attention.layer_norm_epsilon' is missing"),
    ("heads", ValueError, "bert.embedding_length 384 is not a multiple of bert.attention.head_count 5"),
    ("qshape", ValueError, "blk.0.attn_q.weight.*should have"),
    ("types_shape", ValueError, "token_types.weight' should have shape \\[2, 384\\]"),
    ("missing_tensor", ValueError, "tensor 'blk.3.ffn_down.weight' is missing"),
    ("vocab", ValueError, "token_embd.weight' should have shape \\[30000, 384\\]"),
    ("bad_unk", ValueError, "tokenizer.ggml.unknown_token_id = 99999 is outside the vocabulary"),
    ("pooling", RuntimeError, "bert.pooling_type = 3 \\(last token\\) is not supported"),
    ("causal", RuntimeError, "bert.attention.causal"),
    ("tokenizer", RuntimeError, "tokenizer.ggml.model 'gpt2' is not supported"),
])
def test_hostile_gguf(tmp_path, minilm_f16_gguf, case, error, match):
    import gguf

    T = gguf.GGUFValueType
    dst = str(tmp_path / f"{case}.gguf")
    if case == "missing_key":
        rewrite(minilm_f16_gguf, dst, drop=("bert.block_count",))
    elif case == "missing_eps":
        rewrite(minilm_f16_gguf, dst, drop=("bert.attention.layer_norm_epsilon",))
    elif case == "heads":
        rewrite(minilm_f16_gguf, dst, set_keys={"bert.attention.head_count": (5, T.UINT32)})
    elif case == "qshape":
        rewrite(minilm_f16_gguf, dst, tensors={"blk.0.attn_q.weight": np.zeros((383, 384), np.float32)})
    elif case == "types_shape":
        rewrite(minilm_f16_gguf, dst, tensors={"token_types.weight": np.zeros((2, 380), np.float32)})
    elif case == "missing_tensor":
        rewrite(minilm_f16_gguf, dst, tensors={"blk.3.ffn_down.weight": None})
    elif case == "vocab":  # 30000 tokens for a 30522-row embedding table
        r = gguf.GGUFReader(minilm_f16_gguf)
        f = r.fields["tokenizer.ggml.tokens"]
        toks = [bytes(f.parts[i]).decode() for i in f.data][:30000]
        tt = r.fields["tokenizer.ggml.token_type"]
        types = [int(tt.parts[i][0]) for i in tt.data][:30000]
        rewrite(minilm_f16_gguf, dst, set_keys={"tokenizer.ggml.tokens": (toks, T.ARRAY),
                                                "tokenizer.ggml.token_type": (types, T.ARRAY)})
    elif case == "bad_unk":
        rewrite(minilm_f16_gguf, dst, set_keys={"tokenizer.ggml.unknown_token_id": (99999, T.UINT32)})
    elif case == "pooling":
        rewrite(minilm_f16_gguf, dst, set_keys={"bert.pooling_type": (3, T.UINT32)})
    elif case == "causal":
        rewrite(minilm_f16_gguf, dst, set_keys={"bert.attention.causal": (True, T.BOOL)})
    elif case == "tokenizer":
        rewrite(minilm_f16_gguf, dst, set_keys={"tokenizer.ggml.model": ("gpt2", T.STRING)})
    with pytest.raises(error, match=match):
        halfbyte.Encoder(dst, dtype="f32")


@needs_minilm
def test_not_bert_and_writer_refusals(tmp_path, minilm_f16_gguf):
    import json
    import shutil

    import gguf

    llama_like = rewrite(minilm_f16_gguf, str(tmp_path / "arch.gguf"),
                         set_keys={"general.architecture": ("llama", gguf.GGUFValueType.STRING)})
    with pytest.raises(RuntimeError, match="general.architecture 'llama' is not an encoder"):
        halfbyte.Encoder(llama_like)
    # A classification head would be lost: refused, named.
    d = tmp_path / "clf"
    shutil.copytree(MINILM, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["BertForSequenceClassification"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="sequence classification head"):
        halfbyte.quantize_model(str(d), str(tmp_path / "clf.gguf"), type="f16")
    assert not (tmp_path / "clf.gguf").exists()
