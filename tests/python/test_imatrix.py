"""`halfbyte imatrix`: the activation statistics it writes (llama.cpp's imatrix GGUF
layout, read here with the `gguf` package) against torch's, from forward hooks on
transformers' Llama run over the same chunks of the same tokens."""

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


def torch_imatrix(model, chunks):
    """Per GGUF weight name: (sum over tokens of x^2 per input column, token count)."""
    sums = {}

    def hook(name):
        def f(_module, inputs):
            x = inputs[0].detach().double().reshape(-1, inputs[0].shape[-1])
            s, n = sums.get(name, (0.0, 0))
            sums[name] = (s + (x * x).sum(0).numpy(), n + x.shape[0])
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
    return sums


def test_imatrix_matches_torch_activation_statistics(tmp_path):
    tok = tokenizer_dir("spm", str(tmp_path / "tok"))
    folder = str(tmp_path / "hf")
    model = random_hf_model(folder, tok_dir=tok, n_layer=2, hidden=128, n_ff=256, seed=3)
    text_path = tmp_path / "calib.txt"
    text_path.write_text(TEXT)
    out = tmp_path / "m.imatrix"
    ctx = 64
    r = subprocess.run([EXE, "imatrix", "-m", folder, "-f", str(text_path), "-o", str(out), "--ctx", str(ctx),
                        "--quantize", "f32"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # The same chunks: the text's tokens (BOS first) cut into ctx-token chunks, each
    # chunk's first token replaced by BOS.
    with halfbyte.Model(folder, quantize="f32") as m:
        ids = m.tokenize(TEXT)
    bos = ids[0]
    chunks = [[bos] + ids[c * ctx + 1:(c + 1) * ctx] for c in range(len(ids) // ctx)]
    assert len(chunks) >= 3
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


def test_imatrix_refuses_bad_arguments(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("too short")
    r = subprocess.run([EXE, "imatrix", "-m", str(tmp_path / "missing.gguf"), "-f", str(text), "-o",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "missing.gguf" in r.stderr
    r = subprocess.run([EXE, "imatrix", "-m", "x.gguf", "-f", str(text)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "-o FILE is required" in r.stderr
