"""`halfbyte imatrix`: the activation statistics it writes (llama.cpp's imatrix GGUF
layout, read here with the `gguf` package) against torch's, from forward hooks on
transformers' Llama run over the same chunks of the same tokens; with --covariance,
the second moments and the GPTQ files quantized with them."""

import os
import subprocess

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS
from hf_models import random_hf_model, tokenizer_dir
from test_cli import EXE

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")
pytestmark = [
    pytest.mark.skipif(EXE is None, reason="the halfbyte command is not installed"),
    pytest.mark.skipif(not os.path.exists(VOCABS["spm"]), reason="tests/data/tokenizer-tests not found"),
]

TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        "foolishness, it was the epoch of belief, it was the epoch of incredulity. ") * 12
HF_TO_GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}


def torch_imatrix(model, chunks, cov=False):
    """Per GGUF weight name: (sum over tokens of x^2 per input column, token count),
    and with cov=True a third item, the sum of x x^T."""
    sums = {}

    def hook(name):
        def f(_module, inputs):
            x = inputs[0].detach().double().reshape(-1, inputs[0].shape[-1])
            prev = sums.get(name, (0.0, 0, 0.0))
            sums[name] = (prev[0] + (x * x).sum(0).numpy(), prev[1] + x.shape[0],
                          prev[2] + (x.T @ x).numpy() if cov else 0.0)
        return f

    handles = []
    for name, mod in model.named_modules():
        for hf, gg in HF_TO_GGUF.items():
            if name.endswith(hf):
                layer = int(name.split(".")[2])
                handles.append(mod.register_forward_pre_hook(hook(f"blk.{layer}.{gg}.weight")))
    handles.append(model.lm_head.register_forward_pre_hook(hook("output.weight")))
    with torch.no_grad():
        for c in chunks:
            model(torch.tensor([c]), use_cache=False)
    for h in handles:
        h.remove()
    return {k: v if cov else v[:2] for k, v in sums.items()}


def model_and_chunks(tmp_path, ctx):
    tok = tokenizer_dir("spm", str(tmp_path / "tok"))
    folder = str(tmp_path / "hf")
    model = random_hf_model(folder, tok_dir=tok, n_layer=2, hidden=128, n_ff=256, seed=3)
    text_path = tmp_path / "calib.txt"
    text_path.write_text(TEXT)
    # The same chunks as halfbyte's: the text's tokens (BOS first) cut into ctx-token
    # chunks, each chunk's first token replaced by BOS.
    with halfbyte.Model(folder, quantize="f32") as m:
        ids = m.tokenize(TEXT)
    bos = ids[0]
    chunks = [[bos] + ids[c * ctx + 1:(c + 1) * ctx] for c in range(len(ids) // ctx)]
    assert len(chunks) >= 3
    return model, folder, text_path, chunks


def read_tensors(path):
    rd = gguf.GGUFReader(str(path))
    return rd, {t.name: t for t in rd.tensors}


def test_imatrix_matches_torch_activation_statistics(tmp_path):
    ctx = 64
    model, folder, text_path, chunks = model_and_chunks(tmp_path, ctx)
    out = tmp_path / "m.imatrix"
    r = subprocess.run([EXE, "imatrix", "-m", folder, "-f", str(text_path), "-o", str(out), "--ctx", str(ctx),
                        "--quantize", "f32"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ref = torch_imatrix(model, chunks)

    rd = gguf.GGUFReader(str(out))
    assert bytes(rd.fields["general.type"].parts[-1]).decode() == "imatrix"
    got = {}
    for t in rd.tensors:
        base, kind = t.name.rsplit(".", 1)
        got.setdefault(base, {})[kind] = np.array(t.data, dtype=np.float64).reshape(-1)
    assert set(got) == set(ref), (sorted(got), sorted(ref))
    worst = 0.0
    for name, (s, n) in ref.items():
        assert got[name]["counts"][0] == n, name
        rel = np.abs(got[name]["in_sum2"] - s) / (np.abs(s) + 1e-6 * np.abs(s).max())
        worst = max(worst, float(rel.max()))
    print(f"{len(ref)} matrices, {len(chunks)} chunks of {ctx}: worst relative difference {worst:.2e}")
    # fp32 forward passes on both sides (different summation orders), sums in double.
    assert worst < 1e-3


def test_imatrix_covariance_and_gptq(tmp_path):
    """--covariance stores sum x x^T per matrix input (torch's, shared inputs once);
    quantizing with it (GPTQ) lowers every matrix's output error on those
    activations, computed here in numpy from the gguf package's dequantized weights."""
    ctx = 64
    model, folder, text_path, chunks = model_and_chunks(tmp_path, ctx)
    im = tmp_path / "cov.imatrix"
    r = subprocess.run([EXE, "imatrix", "-m", folder, "-f", str(text_path), "-o", str(im), "--ctx", str(ctx),
                        "--quantize", "f32", "--covariance"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "with covariances" in r.stdout
    ref = torch_imatrix(model, chunks, cov=True)
    rd, tensors = read_tensors(im)
    shared = [bytes(rd.fields["halfbyte.imatrix.cov_shared"].parts[i]).decode()
              for i in rd.fields["halfbyte.imatrix.cov_shared"].data]
    alias = dict(zip(shared[0::2], shared[1::2]))
    # Q, K, V read one input, gate and up another: stored once per layer each.
    assert len(alias) == 2 * 3, alias
    worst = 0.0
    for name, (_s, _n, c) in ref.items():
        t = tensors[alias.get(name, name) + ".in_cov"]
        got = np.array(t.data, dtype=np.float64).reshape(c.shape)
        worst = max(worst, float(np.abs(got - c).max() / np.abs(c).max()))
    print(f"covariances of {len(ref)} matrices: worst difference {worst:.2e} of the largest entry")
    # As for the sums above: two fp32 forward passes (measured 2.7e-4), sums in fp32 here.
    assert worst < 1e-3

    src = tmp_path / "src.gguf"
    halfbyte.quantize_model(folder, src, type="f32")
    files = {}
    for gptq in (False, True):
        files[gptq] = tmp_path / f"q4_0-{gptq}.gguf"
        halfbyte.quantize_model(src, files[gptq], type="q4_0", imatrix=im, gptq=gptq)
    _, base = read_tensors(src)
    _, plain = read_tensors(files[False])
    _, gq = read_tensors(files[True])
    ratios = {}
    for name, (_s, _n, c) in ref.items():
        if name == "output.weight":
            continue  # the output head is q6_K under q4_0 in both files
        w = np.array(base[name].data, dtype=np.float64)
        err = {}
        for key, tens in ((False, plain[name]), (True, gq[name])):
            assert tens.tensor_type == gguf.GGMLQuantizationType.Q4_0, name
            e = w - gguf.quants.dequantize(tens.data, tens.tensor_type).astype(np.float64)
            err[key] = float(np.einsum("ri,ij,rj->", e, c, e))  # sum over rows of e H e^T
        ratios[name] = err[True] / err[False]
    print("GPTQ / importance-only output error: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(ratios.items())))
    # Measured 0.08-0.15 (few calibration tokens for these widths: GPTQ fits them closely).
    assert len(ratios) == 14 and max(ratios.values()) < 0.5, ratios


def test_imatrix_refuses_bad_arguments(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("too short")
    r = subprocess.run([EXE, "imatrix", "-m", str(tmp_path / "missing.gguf"), "-f", str(text), "-o",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "missing.gguf" in r.stderr
    r = subprocess.run([EXE, "imatrix", "-m", "x.gguf", "-f", str(text)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "-o FILE is required" in r.stderr
