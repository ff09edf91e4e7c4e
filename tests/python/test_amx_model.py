"""The AMX issue's model-level test (issue #9): the prompt path on AMX tiles against
the avx512 kernels, for SmolLM2-135M in q4_1 (its file), q4_0 and q8_0 (written by
halfbyte.quantize_model), and MiniLM's embeddings.

On amx, GEMMs of 48 rows or more run on bf16 tiles (bf16 activations and weights,
fp32 sums: kernels/amx/tile_gemm_bf16.inl), so the logits are not avx512's integer
path bit for bit. The bound: over every position of a 59-token prompt, amx's logits
are at least as close to the float path's (fp32 activations, precision="float") as
avx512's integer path is, and the 24 greedy tokens are the same text. On a CPU
without AMX the whole module is skipped with "skipped: no AMX on this CPU" (the
tile kernels are tested on emulated tiles in C++: tests/kernels/test_amx.cpp)."""

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


def _run(path, isa, precision="int"):
    halfbyte.set_isa(isa)
    with halfbyte.Model(str(path), n_ctx=256, n_threads=2, precision=precision) as m:
        ids = m.tokenize(PROMPT)
        assert len(ids) >= 48  # the bf16 tiles' crossover, and a 16-row tail
        return np.array(m.logits(ids), dtype=np.float64), m.generate(PROMPT, max_tokens=24, temperature=0.0)


@pytest.fixture(scope="module")
def smollm2_files(tmp_path_factory):
    if not SMOLLM2.is_file():
        pytest.skip("SmolLM2 not fetched (examples/fetch_smollm2.sh)")
    d = tmp_path_factory.mktemp("amx")
    files = {"q4_1": SMOLLM2}
    for t in ("q4_0", "q8_0"):
        files[t] = d / f"smollm2-{t}.gguf"
        halfbyte.quantize_model(str(SMOLLM2), str(files[t]), type=t, progress=False)
    return files


@pytest.mark.filterwarnings("ignore:.*dequantized before quantizing again")
@pytest.mark.parametrize("fmt", ["q4_1", "q4_0", "q8_0"])
def test_prompt_on_tiles_against_avx512(fmt, smollm2_files, isa_restored):
    path = smollm2_files[fmt]
    ref, ref_text = _run(path, "avx512", "float")
    vnni, vnni_text = _run(path, "avx512")
    tiles, tiles_text = _run(path, "amx")
    assert np.all(np.isfinite(tiles))
    err_tiles, err_vnni = np.abs(tiles - ref).max(), np.abs(vnni - ref).max()
    print(f"{fmt}: max |logit - float path|: amx {err_tiles:.3f}, avx512 int {err_vnni:.3f} (logit std {ref.std():.2f})")
    assert err_tiles <= err_vnni
    assert tiles_text == vnni_text


@pytest.mark.skipif(not (MINILM / "config.json").is_file(), reason="MiniLM not fetched (examples/fetch_minilm.sh)")
def test_encoder_batch_on_tiles_against_avx512(isa_restored):
    texts = [PROMPT, "A short one.", "Private retrieval keeps documents on the device. " * 6]
    with halfbyte.Encoder(str(MINILM), dtype="q8_0", n_threads=2) as enc:
        halfbyte.set_isa("avx512")
        ref = enc.embed(texts)
        halfbyte.set_isa("amx")
        got = enc.embed(texts)
    cos = (got * ref).sum(1)  # both L2-normalized
    assert cos.min() >= 0.9999, cos
