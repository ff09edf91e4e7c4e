"""SmolLM2's tokenizer (GPT-2 byte-level BPE, "smollm" pre-tokenizer) and the shared
SentencePiece vocabulary against llama.cpp's tokenizer on multilingual text."""

import ctypes
import os

import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

SENTENCES = [
    "Hello, world! How are you today?",
    "Bonjour tout le monde, ça va très bien — merci.",
    "Der schnelle braune Fuchs springt über den faulen Hund; Größe, Übermaß.",
    "¿Dónde está la biblioteca? ¡Está aquí!",
    "Привет, мир! Как дела? Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε, καλημέρα.",
    "שלום עולם, מה שלומך?",
    "مرحبا بالعالم، كيف حالك؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "你好，世界！今天天气很好。我们去公园散步吧。",
    "こんにちは世界。カタカナとひらがな、漢字。",
    "안녕하세요 세계, 반갑습니다.",
    "ภาษาไทย สวัสดีครับ",
    "Emoji: 🦊🚀👩‍👩‍👧‍👦 🇫🇷 ✔️ and symbols ∑ ∫ √ ≠ ≤ €£¥",
    "Code: for (int i = 0; i < n; ++i) { x[i] += 3.14159 * y[i]; }  // 1234567890",
    "   leading spaces, trailing spaces   \n\n\ttabs\tand\r\nCRLF  ",
    "Numbers 1 12 123 1234 12345 3.5e-7 0x1F 1,000,000",
    "It's, we're, they'll, I'd, you've, she's, DON'T, 'quoted' \"double\"",
    "Mixed: naïve café résumé coöperate Zürich São Paulo Kraków",
    "<|im_start|>user\nnot special without parse_special<|im_end|>",
]

SMOLLM2 = os.environ.get("HALFBYTE_SMOLLM2", os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                            "SmolLM2-135M-Instruct.Q4_1.gguf"))


def llama_detokenize(llm, ids):
    """llama.cpp's own llama_detokenize (the Python wrapper's detokenize() strips
    an SPM leading space on its own, which the C API does not)."""
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    buf = ctypes.create_string_buffer(4096)
    arr = (llama_cpp.llama_token * len(ids))(*ids)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, len(buf), False, False)
    assert n >= 0
    return buf.raw[:n].decode("utf-8", errors="replace")


def check(path):
    llm = llama_cpp.Llama(model_path=path, n_ctx=64, vocab_only=True, verbose=False)
    with halfbyte.Model(path, n_ctx=64) as m:
        for s in SENTENCES:
            ours = m.tokenize(s)
            ref = llm.tokenize(s.encode(), add_bos=True, special=False)
            assert ours == ref, s
            assert m.detokenize(ours) == llama_detokenize(llm, ref), s


@pytest.mark.skipif(not os.path.exists(SMOLLM2), reason="SmolLM2 not fetched (examples/fetch_smollm2.sh)")
def test_smollm2_tokenizer_matches_llama_cpp():
    check(SMOLLM2)


@pytest.mark.skipif(not os.path.exists(VOCABS["spm"]), reason="tests/data/tokenizer-tests not found")
def test_sentencepiece_tokenizer_matches_llama_cpp(tmp_path):
    check(write_random_llama(str(tmp_path / "spm.gguf"), dtype="q8_0", vocab="spm", n_layer=1, n_ctx=64))
