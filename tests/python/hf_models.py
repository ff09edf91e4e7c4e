"""Hugging Face model folders for tests, made by transformers itself (the reference):
random-weight Llama / Mistral / Qwen2 models saved with save_pretrained as
safetensors, and real tokenizer.json files that transformers converts from GGUF
vocabularies (no network). Callers pytest.importorskip torch and transformers."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np

from gguf_models import VOCABS

HERE = os.path.dirname(__file__)
SMOLLM2 = os.environ.get("HALFBYTE_SMOLLM2",
                         os.path.join(HERE, "..", "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
# GGUF files whose vocabulary transformers turns into a tokenizer.json.
TOKENIZER_SOURCES = {"smollm2": SMOLLM2, "spm": VOCABS["spm"], "gpt2": VOCABS["gpt2"]}

# Text in several scripts, with digits, code, emoji and runs of whitespace.
SENTENCES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé àccents: café, naïve, Zürich, São Paulo, Łódź.",
    "日本語のテキストと中文文本，还有한국어.",
    "Emoji: 🦙🔥👍🏽 and flags 🇫🇷!",
    "def f(x):\n    return x ** 2  # square\n",
    "Numbers 3.14159, 1,000,000 and 2024-01-15; 12345678901234567890",
    "   leading spaces, double  spaces,\ttabs\t\tand\n\nnewlines   ",
    "I'm sure you'll see they've done it, haven't they? WE'RE HERE!",
    "Привет, мир! Γειά σου κόσμε. مرحبا بالعالم",
    "<html><body class=\"x\">a&amp;b</body></html>",
]


def tokenizer_dir(kind: str, out: str) -> str:
    """Writes tokenizer.json (+ tokenizer_config.json) for `kind` (smollm2, spm,
    gpt2) into `out`, converted by transformers from the GGUF vocabulary."""
    from transformers import AutoTokenizer

    src = TOKENIZER_SOURCES[kind]
    tok = AutoTokenizer.from_pretrained(os.path.dirname(src), gguf_file=os.path.basename(src))
    tok.save_pretrained(out)
    return out


def vocab_size(tok_dir: str) -> int:
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    ids = list(j["model"]["vocab"].values()) + [t["id"] for t in j.get("added_tokens", [])]
    return max(ids) + 1


def random_hf_model(folder: str, arch: str = "llama", dtype: str = "float32", tok_dir: str | None = None,
                    n_vocab: int | None = None, tied: bool = False, seed: int = 0, n_layer: int = 2,
                    hidden: int = 128, n_head: int = 4, n_head_kv: int = 2, n_ff: int = 256,
                    max_shard_size: str | None = None, **extra):
    """Saves a random-weight model of `arch` (llama, mistral, qwen2) in `dtype`
    (float32, float16, bfloat16) to `folder`, with the tokenizer files of tok_dir.
    Returns the float32 torch model holding exactly the saved weights (16-bit weights
    are exact in float32), the reference for the logits."""
    import torch
    import transformers as tf

    classes = {
        "llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
        "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
        "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
    }
    if n_vocab is None:
        n_vocab = vocab_size(tok_dir)
    cfg_cls, model_cls = classes[arch]
    cfg = cfg_cls(vocab_size=n_vocab, hidden_size=hidden, intermediate_size=n_ff, num_hidden_layers=n_layer,
                  num_attention_heads=n_head, num_key_value_heads=n_head_kv, max_position_embeddings=512,
                  tie_word_embeddings=tied, rms_norm_eps=1e-5, **extra)
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    # Weights of the scale of a trained model (the default init, std 0.02, makes
    # nearly constant logits): N(0, 1/fan_in) matrices, N(0, 1) embeddings, norms
    # around 1, biases large enough to matter.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
        tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        for p in model.parameters():  # the weights as they will be stored
            p.copy_(p.to(tdt).to(torch.float32))
    saved = model_cls(cfg).eval()
    saved.load_state_dict(model.state_dict())
    saved = saved.to(tdt)
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    saved.save_pretrained(folder, **kw)
    if tok_dir:
        for name in os.listdir(tok_dir):
            shutil.copy(os.path.join(tok_dir, name), folder)
    return model


def torch_logits(model, ids) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(torch.tensor([list(ids)]), use_cache=False)
    return out.logits[0].double().numpy()


# --- raw safetensors bytes, for malformed files -------------------------------------

def read_safetensors(path: str):
    """(header dict, data bytes) of a .safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_safetensors(path: str, header, data: bytes, header_bytes: bytes | None = None) -> None:
    """Writes a .safetensors file from a header (dict, or raw JSON bytes) and data."""
    hb = header_bytes if header_bytes is not None else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + data)


def torch_embeddings(folder, texts, max_length, pooling="mean", normalize=True):
    """The reference sentence embeddings: transformers' BertModel on the folder (torch,
    fp32), batches of 16 with padding, mean pooling over the attention mask (or the
    CLS token), L2-normalized unless normalize=False. Callers importorskip torch and
    transformers first."""
    import torch
    import transformers

    model = transformers.AutoModel.from_pretrained(str(folder), dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 16):
            b = tok(texts[i:i + 16], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            h = model(**b).last_hidden_state
            if pooling == "cls":
                e = h[:, 0]
            else:
                m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
                e = (h * m).sum(1) / m.sum(1)
            if normalize:
                e = torch.nn.functional.normalize(e, dim=1)
            out.append(e.numpy())
    return np.concatenate(out)
