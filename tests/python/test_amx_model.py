"""The AMX issue's model-level test (issue #9): the prompt path on AMX tiles gives the
same last-position logits and greedy tokens as the avx512 kernels, for SmolLM2-135M
in each integer-path format, and the encoder's embeddings likewise.

The tile GEMM computes the kernel contract's exact block sums and applies the scales in
the avx512 kernel's order, so the bound is equality; the comparison reports the largest
difference if it is not. On a CPU without AMX the whole module is skipped with
"skipped: no AMX on this CPU" (the tile kernel itself is tested on emulated tiles in
C++: tests/kernels/test_amx.cpp)."""

from pathlib import Path

import numpy as np
import pytest

import halfbyte

REPO = Path(__file__).resolve().parents[2]
SMOLLM2 = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = REPO / "models" / "all-MiniLM-L6-v2"

if "amx" not in halfbyte.available_isas():
    pytest.skip("skipped: no AMX on this CPU (tile kernels tested on emulated tiles in C++)",
                allow_module_level=True)

PROMPT = ("The history of the printing press begins in the fifteenth century, when Johannes "
          "Gutenberg combined movable metal type, oil-based ink and a wooden press adapted from "
          "those used for wine. Within fifty years presses were running in more than two hundred "
          "cities across Europe, and the price of books fell so far that")


@pytest.fixture
def isa_restored():
    saved = halfbyte.isa()
    yield
    halfbyte.set_isa(saved)


def _run(model, ids, isa):
    halfbyte.set_isa(isa)
    logits = np.array(model.logits(ids), dtype=np.float32)
    text = model.generate(PROMPT, max_tokens=24, temperature=0.0)
    return logits, text


@pytest.mark.skipif(not SMOLLM2.is_file(), reason="SmolLM2 not fetched (examples/fetch_smollm2.sh)")
@pytest.mark.parametrize("fmt", [None, "q4_0", "q8_0"])
def test_prompt_on_tiles_equals_avx512(fmt, isa_restored):
    with halfbyte.Model(str(SMOLLM2), n_ctx=256, n_threads=2, quantize=fmt) as m:
        ids = m.tokenize(PROMPT)
        assert len(ids) >= 48  # several 16-row tile steps, and a tail
        ref_logits, ref_text = _run(m, ids, "avx512")
        amx_logits, amx_text = _run(m, ids, "amx")
    assert np.all(np.isfinite(amx_logits))
    diff = float(np.max(np.abs(amx_logits - ref_logits)))
    assert diff == 0.0, f"{fmt or 'q4_1'}: amx logits differ from avx512's by up to {diff}"
    assert amx_text == ref_text


@pytest.mark.skipif(not (MINILM / "config.json").is_file(), reason="MiniLM not fetched (examples/fetch_minilm.sh)")
def test_encoder_batch_on_tiles_equals_avx512(isa_restored):
    texts = [PROMPT, "A short one.", "Private retrieval keeps documents on the device. " * 6]
    with halfbyte.Encoder(str(MINILM), dtype="q8_0", n_threads=2) as enc:
        halfbyte.set_isa("avx512")
        ref = enc.embed(texts)
        halfbyte.set_isa("amx")
        got = enc.embed(texts)
    assert float(np.max(np.abs(got - ref))) == 0.0
