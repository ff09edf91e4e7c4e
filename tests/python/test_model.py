"""halfbyte.Model against llama.cpp (PyPI llama-cpp-python) on the same GGUF files:
random-weight models written here with the `gguf` package, and SmolLM2-135M-Instruct.

Bounds: logits are compared per position as max|halfbyte - llama.cpp| / std(llama.cpp
logits). Both run the same math with different roundings: llama.cpp keeps its KV
cache in fp16 and, for f16 weights, rounds activations to fp16; both quantize
activations to 8 bits per 32-block for quantized weights (halfbyte rounds ties to
even, ggml away from zero). The bounds below are a few times what was measured.
"""

import os

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

# (dtype, vocab, arch, tied, bound on max|d| / std)
MODELS = [
    ("f32", "spm", "llama", False, 2e-3),
    ("f16", "gpt2", "llama", True, 2e-2),
    ("q8_0", "spm", "llama", False, 3e-2),
    ("q4_0", "gpt2", "llama", False, 5e-2),
    ("q4_1", "spm", "llama", True, 5e-2),
    ("q8_0", "gpt2", "qwen2", False, 3e-2),
]
TEXT = "The quick brown fox jumps over the lazy dog. Ünïcödé, 漢字 and emoji 🦊 too: 12345 + 678."

needs_vocab = pytest.mark.skipif(not os.path.exists(VOCABS["spm"]), reason="../shared/tokenizer-tests not found")


@pytest.fixture(scope="module", params=MODELS, ids=lambda m: f"{m[0]}-{m[1]}-{m[2]}{'-tied' if m[3] else ''}")
def random_model(request, tmp_path_factory):
    dtype, vocab, arch, tied, bound = request.param
    path = str(tmp_path_factory.mktemp("models") / f"{arch}-{dtype}-{vocab}.gguf")
    write_random_llama(path, dtype=dtype, vocab=vocab, arch=arch, tied=tied, seed=len(dtype))
    return path, bound


def llama_cpp_logits(path, ids):
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, logits_all=True, n_threads=2,
                          n_threads_batch=2, verbose=False)
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)], dtype=np.float64)
    tokens = llm.tokenize(TEXT.encode(), add_bos=True, special=False)
    llm.close()
    return out, tokens


@needs_vocab
def test_random_models_match_llama_cpp_at_every_position(random_model):
    path, bound = random_model
    with halfbyte.Model(path, n_ctx=512) as m:
        ids = m.tokenize(TEXT)
        ours = m.logits(ids).astype(np.float64)
    ref, ref_ids = llama_cpp_logits(path, ids)
    assert ids == ref_ids, "tokenization differs from llama.cpp"
    rel = np.abs(ours - ref).max(axis=1) / ref.std(axis=1)
    print(f"{os.path.basename(path)}: {len(ids)} positions, max |d|/std = {rel.max():.2e} (bound {bound:.0e})")
    assert rel.max() < bound
    assert (ours.argmax(axis=1) == ref.argmax(axis=1)).mean() > 0.9


SMOLLM2 = os.environ.get("HALFBYTE_SMOLLM2", os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                            "SmolLM2-135M-Instruct.Q4_1.gguf"))
needs_smollm2 = pytest.mark.skipif(not os.path.exists(SMOLLM2), reason="SmolLM2 not fetched (examples/fetch_smollm2.sh)")
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three primary colors are",
]


@needs_smollm2
def test_smollm2_greedy_text_and_logits_match_llama_cpp():
    llm = llama_cpp.Llama(model_path=SMOLLM2, n_ctx=512, logits_all=True, n_threads=2, verbose=False)
    with halfbyte.Model(SMOLLM2, n_ctx=512) as m:
        for prompt in PROMPTS:
            ids = m.tokenize(prompt)
            assert ids == llm.tokenize(prompt.encode(), add_bos=True, special=False)
            ours = m.generate(prompt, max_tokens=32)
            ref = llm(prompt, max_tokens=32, temperature=0.0, top_k=1)["choices"][0]["text"]
            print(f"{prompt!r}\n  halfbyte : {ours!r}\n  llama.cpp: {ref!r}")
            assert ours == ref
            llm.reset()
            llm.eval(ids)
            ref_logits = np.array(llm.scores[len(ids) - 1], dtype=np.float64)
            our_logits = m.logits(ids)[-1].astype(np.float64)
            rel = np.abs(our_logits - ref_logits).max() / ref_logits.std()
            print(f"  last-position max |d|/std = {rel:.2e}")
            assert rel < 5e-2
            assert our_logits.argmax() == ref_logits.argmax()
    llm.close()
