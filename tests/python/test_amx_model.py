"""The AMX issue's model-level test (issue #9): the prompt path on AMX tiles against
the avx512 kernels, for SmolLM2-135M in q4_1 (its file), q4_0 and q8_0 (written by
halfbyte.quantize_model), and MiniLM's embeddings.

On amx, GEMMs of 48 rows or more run on bf16 tiles (bf16 activations and weights,
fp32 sums: kernels/amx/tile_gemm_bf16.inl), so the logits are not avx512's integer
path bit for bit. The bound: over every position of a 59-token prompt, amx's logits
are at least as close to the float path's (fp32 activations, precision="float") as
avx512's integer path is, and the 24 greedy tokens are the same text.

On a CPU without AMX the same tests run on the "amx_emulated" ISA (the same tile
kernels on the C++ emulation of the tile instructions, offered with
HALFBYTE_AMX_EMULATION=1; an AVX-512 CPU is needed), so every CI machine checks the
model paths through the tiles; each test prints which of the two it ran on. Without
AVX-512 the module is skipped."""

from pathlib import Path

import os

import numpy as np
import pytest

import halfbyte

REPO = Path(__file__).resolve().parents[2]
SMOLLM2 = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = REPO / "models" / "all-MiniLM-L6-v2"


def _tile_isa():
    if "amx" in halfbyte.available_isas():
        return "amx"
    saved = os.environ.get("HALFBYTE_AMX_EMULATION")
    os.environ["HALFBYTE_AMX_EMULATION"] = "1"
    try:
        return "amx_emulated" if "amx_emulated" in halfbyte.available_isas() else None
    finally:
        if saved is None:
            del os.environ["HALFBYTE_AMX_EMULATION"]
        else:
            os.environ["HALFBYTE_AMX_EMULATION"] = saved


TILES = _tile_isa()
if TILES is None:
    pytest.skip("skipped: no AMX on this CPU, and no AVX-512 for the emulated tiles", allow_module_level=True)

PROMPT = ("The history of the printing press begins in the fifteenth century, when Johannes "
          "Gutenberg combined movable metal type, oil-based ink and a wooden press adapted from "
          "those used for wine. Within fifty years presses were running in more than two hundred "
          "cities across Europe, and the price of books fell so far that")


@pytest.fixture
def isa_restored(monkeypatch):
    """The ISA in use restored afterwards; amx_emulated offered meanwhile (only here:
    the other modules' tests must not see it in available_isas())."""
    saved = halfbyte.isa()
    if TILES == "amx_emulated":
        monkeypatch.setenv("HALFBYTE_AMX_EMULATION", "1")
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
    tiles, tiles_text = _run(path, TILES)
    assert np.all(np.isfinite(tiles))
    err_tiles, err_vnni = np.abs(tiles - ref).max(), np.abs(vnni - ref).max()
    print(f"{fmt}: max |logit - float path|: {TILES} {err_tiles:.3f}, avx512 int {err_vnni:.3f} "
          f"(logit std {ref.std():.2f})")
    assert err_tiles <= err_vnni
    assert tiles_text == vnni_text


@pytest.mark.skipif(not (MINILM / "config.json").is_file(), reason="MiniLM not fetched (examples/fetch_minilm.sh)")
def test_encoder_batch_on_tiles_against_avx512(isa_restored):
    texts = [PROMPT, "A short one.", "Private retrieval keeps documents on the device. " * 6]
    with halfbyte.Encoder(str(MINILM), dtype="q8_0", n_threads=2) as enc:
        halfbyte.set_isa("avx512")
        ref = enc.embed(texts)
        halfbyte.set_isa(TILES)
        got = enc.embed(texts)
    cos = (got * ref).sum(1)  # both L2-normalized
    print(f"MiniLM q8_0 on {TILES}: worst cosine to avx512 {cos.min():.6f}")
    assert cos.min() >= 0.9999, cos
