#!/usr/bin/env python3
"""What int8 activations would cost MiniLM's accuracy, simulated in torch.

halfbyte runs the encoder's LayerNorm-fed projections (query/key/value, FFN up)
with int16 activations because per-32-block int8 loses their outlier channels.
This script fake-quantizes all-MiniLM-L6-v2 the way halfbyte's kernels would
(q8_0 weights: per-32-block symmetric int8 along K; activations per row and
32-block, int8 or int16) and prints the worst and mean cosine of the mean-pooled,
normalized embeddings to torch fp32 over the test texts (tests/python's
EDGE_CASES + prose(160)), for these schemes of the LayerNorm-fed layers:

  int16         what halfbyte does (int8 elsewhere)
  int8          plain int8 everywhere
  sorted        int8, the input channels reordered by their calibration |x| max
                (outlier channels share blocks), W's columns alike
  smooth:A      int8, each channel divided by s_j = cal_max_j^A / max|W_j|^(1-A)
                (SmoothQuant; W's columns multiplied by it), then sorted
  smooth-only:A the same without the reordering
  MODE+asym     the LayerNorm-fed layers' int8 asymmetric: per 32-block 256 levels
                from the block's min to its max (halfbyte's Int8Asym)
  MODE+asymall  every layer's int8 asymmetric (what halfbyte does on avx512)
  MODE+asymall:K  ... with each block's step rounded up to the row's largest
                times 2^(-i/K) (K levels per octave; an idea, not implemented)

Calibration: the per-channel |x| max of each layer's input on --calib texts, run
in fp32 (default: one English sentence); --calib @ln:K estimates it with no data
from the LayerNorm feeding the layer as |beta| + K |gamma| (halfbyte: K = 8).
--pool cls compares the first token's hidden state (classification heads,
rerankers) instead of the mean-pooled embedding. query/key/value share one scale
per channel (halfbyte fuses them).

  python3 bench/encoder_int8_sim.py [--model models/all-MiniLM-L6-v2]
      [--modes int16,int8,sorted,smooth:0.5] [--calib "text" ...]
"""
import argparse
import os
import sys

import torch
from transformers import AutoModel, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
from encoder_texts import EDGE_CASES, prose  # noqa: E402

LN_FED = ("query", "key", "value", "intermediate.dense")


def fake_quant(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-32-block symmetric quantization along the last dimension, dequantized."""
    shape = x.shape
    xb = x.reshape(*shape[:-1], shape[-1] // 32, 32)
    d = xb.abs().amax(-1, keepdim=True) / (2 ** (bits - 1) - 1)
    q = torch.where(d > 0, torch.round(xb / d.clamp_min(1e-30)), torch.zeros_like(xb))
    return (q * d).reshape(shape)


def fake_quant_asym(x: torch.Tensor) -> torch.Tensor:
    """Per-32-block asymmetric 8-bit quantization (256 levels from the block's min to its max)."""
    shape = x.shape
    xb = x.reshape(*shape[:-1], shape[-1] // 32, 32)
    lo, hi = xb.amin(-1, keepdim=True), xb.amax(-1, keepdim=True)
    d = (hi - lo) / 255
    q = torch.where(d > 0, torch.round((xb - lo) / d.clamp_min(1e-30)), torch.zeros_like(xb))
    return (lo + q * d).reshape(shape)


def fake_quant_asym_steps(x: torch.Tensor, k: int) -> torch.Tensor:
    """fake_quant_asym with each block's step rounded up to the row's largest step times
    2^(-i/k) for an integer i >= 0 (k steps per octave): a kernel could then scale a
    block's integer sums by one of k stored multiples of the weight scale with the
    exponent adjusted in integer arithmetic, and the row's scale once at the end."""
    shape = x.shape
    xb = x.reshape(*shape[:-1], shape[-1] // 32, 32)
    lo, hi = xb.amin(-1, keepdim=True), xb.amax(-1, keepdim=True)
    need = (hi - lo) / 255
    top = need.amax(-2, keepdim=True).clamp_min(1e-30)
    i = torch.floor(torch.log2(top / need.clamp_min(1e-30)) * k)  # steps down from the row's largest
    d = top * torch.exp2(-i / k)
    d = torch.where(d < need, d * 2 ** (1 / k), d)  # (rounding in log2)
    d = torch.where(need > 0, d, need)
    q = torch.where(d > 0, torch.round((xb - lo) / d.clamp_min(1e-30)), torch.zeros_like(xb))
    return (lo + q * d).reshape(shape)


POOL = "mean"


def embed(model, tok, texts):
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            b = tok(texts[i:i + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
            h = model(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            if POOL == "cls":  # the first token's hidden state (classification heads, rerankers)
                m = torch.zeros_like(m)
                m[:, 0] = 1
            out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1))
    return torch.cat(out)


def ln_estimate(model, k):
    """No calibration: max |x| per channel estimated from the feeding LayerNorm as |beta| + k |gamma|."""
    mods = dict(model.named_modules())
    cal = {}
    for name in mods:
        if name.endswith(".attention.self.query"):
            i = int(name.split(".")[2])
            ln = mods["embeddings.LayerNorm"] if i == 0 else mods[f"encoder.layer.{i - 1}.output.LayerNorm"]
        elif name.endswith(".intermediate.dense"):
            ln = mods[name.replace("intermediate.dense", "attention.output.LayerNorm")]
        else:
            continue
        cal[name] = (ln.bias.detach().abs() + k * ln.weight.detach().abs())
    return cal


def calibrate(path, tok, texts):
    """Per LayerNorm-fed layer (query stands for key and value): max |x| per input channel."""
    model = AutoModel.from_pretrained(path).eval()
    if len(texts) == 1 and texts[0].startswith("@ln:"):
        cal = ln_estimate(model, float(texts[0][4:]))
        return {n: cal[n.replace("key", "query").replace("value", "query")]
                for n, _ in model.named_modules() if n.endswith(LN_FED)}
    cal = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.endswith(("query", "intermediate.dense")):
            def hook(mod, args, name=name):
                a = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0)
                cal[name] = torch.maximum(cal.get(name, a), a)
            mod.register_forward_pre_hook(hook)
    with torch.no_grad():
        model(**tok(texts, padding=True, return_tensors="pt"))
    return {n: cal[n.replace("key", "query").replace("value", "query")]
            for n, _ in model.named_modules() if n.endswith(LN_FED)}


def build(path, mode, cal):
    model = AutoModel.from_pretrained(path).eval()
    mode, _, flag = mode.partition("+")  # +asym: LayerNorm-fed int8 asymmetric; +asymall: every int8
    kind, _, alpha = mode.partition(":")
    flag, _, steps = flag.partition(":")  # +asymall:K: block steps on K levels per octave
    mods = dict(model.named_modules())
    asym = fake_quant_asym if not steps else lambda x: fake_quant_asym_steps(x, int(steps))
    q8_ln = asym if flag in ("asym", "asymall") else fake_quant
    q8_other = asym if flag == "asymall" else fake_quant
    for name, mod in model.named_modules():
        if not (isinstance(mod, torch.nn.Linear) and "encoder.layer" in name):
            continue
        ln_fed = name.endswith(LN_FED)
        scale, order = None, None
        if ln_fed and kind in ("smooth", "smooth-only"):
            a = float(alpha)
            wmax = mod.weight.detach().abs().amax(0).clamp_min(1e-8)
            if name.endswith(("query", "key", "value")):  # halfbyte fuses the three: one scale
                att = name.rsplit(".", 1)[0]
                wmax = torch.stack([mods[f"{att}.{p}"].weight.detach().abs().amax(0)
                                    for p in ("query", "key", "value")]).amax(0).clamp_min(1e-8)
            scale = cal[name].clamp_min(1e-5) ** a / wmax ** (1 - a)
            scale = scale / scale.median()
            with torch.no_grad():
                mod.weight.mul_(scale)
        if ln_fed and kind in ("sorted", "smooth"):
            order = torch.argsort(-(cal[name] / (scale if scale is not None else 1.0)))
        with torch.no_grad():  # q8_0 weights, in blocks of the order the kernel would see
            if order is None:
                mod.weight.copy_(fake_quant(mod.weight))
            else:
                mod.weight[:, order] = fake_quant(mod.weight[:, order])

        def hook(mod, args, ln_fed=ln_fed, scale=scale, order=order):
            x = args[0]
            if not ln_fed:
                return (q8_other(x),)
            if kind == "int8":
                return (q8_ln(x),)
            if kind == "int16":
                return (fake_quant(x, 16),)
            if scale is not None:
                x = x / scale
            if order is None:
                return (q8_ln(x),)
            out = torch.empty_like(x)
            out[..., order] = q8_ln(x[..., order])
            return (out,)
        mod.register_forward_pre_hook(hook)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--modes", default="int16,int8,sorted,smooth:0.5,smooth-only:0.5")
    ap.add_argument("--calib", nargs="*", default=[
        "The quick brown fox jumps over the lazy dog. A private note, kept on this machine, "
        "about the weather and the market."])
    ap.add_argument("--pool", choices=("mean", "cls"), default="mean",
                    help="compare mean-pooled embeddings (default) or the first token's hidden state")
    a = ap.parse_args()
    global POOL
    POOL = a.pool
    torch.set_num_threads(os.cpu_count() or 1)
    tok = AutoTokenizer.from_pretrained(a.model)
    texts = EDGE_CASES + prose(160)
    ref = embed(AutoModel.from_pretrained(a.model).eval(), tok, texts)
    cal = calibrate(a.model, tok, a.calib)
    print(f"{len(texts)} texts; calibration: {a.calib!r}")
    for mode in a.modes.split(","):
        cos = (embed(build(a.model, mode, cal), tok, texts) * ref).sum(-1)
        print(f"{mode:16s} worst cosine {cos.min().item():.5f}  mean {cos.mean().item():.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
