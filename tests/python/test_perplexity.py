"""halfbyte.perplexity against llama.cpp: the same GGUF, the same text, perplexity
computed in numpy from llama.cpp's logits (llama-cpp-python, logits_all) by
llama.cpp's method: chunks of ctx tokens, BOS first, the second half scored."""

import os

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama

llama_cpp = pytest.importorskip("llama_cpp")

# Plain English prose written for this test (about 700 tokens).
TEXT = " ".join(
    [
        "The river ran slowly past the mill, carrying leaves from the hills where the early frost had come.",
        "In the village the baker opened his shutters before dawn, and the smell of bread drifted over the square.",
        "Children walked to school along the lane, counting the crows on the fence and arguing about the weather.",
        "The schoolmaster, a patient man with ink on his fingers, wrote the day's lesson on the board in careful letters.",
        "By noon the sun had burned away the mist, and farmers stood at the market talking about prices and rain.",
        "An old woman sold apples from a wooden cart, polishing each one on her apron before she handed it over.",
        "Travellers stopped at the inn to water their horses, and some stayed the night when the road grew dark.",
        "In the evening lamps were lit in every window, and the bells of the church rang the hour across the fields.",
    ]
    * 4
)

SMOLLM2 = os.environ.get("HALFBYTE_SMOLLM2", os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                            "SmolLM2-135M-Instruct.Q4_1.gguf"))


def llama_cpp_chunk_logprobs(path, text, ctx, max_chunks=None):
    """(tokens, [(chunk start, log-probs [ctx, n_vocab])]) by llama.cpp's perplexity method."""
    llm = llama_cpp.Llama(model_path=path, n_ctx=ctx, n_batch=ctx, logits_all=True, n_threads=2, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    add_bos = len(tokens) > len(llm.tokenize(text.encode(), add_bos=False, special=False))
    out = []
    for c in range(min(len(tokens) // ctx, max_chunks or 1 << 30)):
        chunk = list(tokens[c * ctx : (c + 1) * ctx])
        if add_bos:
            chunk[0] = llm.token_bos()
        llm.reset()
        llm.eval(chunk)
        z = np.array(llm.scores[:ctx], dtype=np.float64)
        z -= z.max(axis=1, keepdims=True)
        out.append((c * ctx, z - np.log(np.exp(z).sum(axis=1, keepdims=True))))
    llm.close()
    return tokens, out


def numpy_stats(path, text, ctx, base=None, max_chunks=None):
    tokens, chunks = llama_cpp_chunk_logprobs(path, text, ctx, max_chunks)
    nll, kl, same = [], [], []
    base_chunks = llama_cpp_chunk_logprobs(base, text, ctx, max_chunks)[1] if base else None
    first = ctx // 2
    for k, (start, lq) in enumerate(chunks):
        for j in range(first, ctx - 1):
            nll.append(-lq[j, tokens[start + j + 1]])
            if base_chunks:
                lp = base_chunks[k][1][j]
                kl.append(float((np.exp(lp) * (lp - lq[j])).sum()))
                same.append(lp.argmax() == lq[j].argmax())
    nll = np.array(nll)
    ppl = float(np.exp(nll.mean()))
    return {"ppl": ppl, "ppl_err": ppl * nll.std() / np.sqrt(len(nll) - 1), "scored": len(nll),
            "chunks": len(chunks), "kl": np.mean(kl) if kl else None, "top1": np.mean(same) if same else None}


@pytest.mark.skipif(not os.path.exists(SMOLLM2), reason="SmolLM2 not fetched (examples/fetch_smollm2.sh)")
def test_smollm2_perplexity_and_kl_match_llama_cpp(tmp_path):
    ctx = 128
    ours = halfbyte.perplexity(SMOLLM2, TEXT, ctx=ctx)
    ref = numpy_stats(SMOLLM2, TEXT, ctx)
    print(f"halfbyte {ours}\nllama.cpp {ref}")
    assert ours["chunks"] == ref["chunks"] >= 4 and ours["scored"] == ref["scored"]
    assert ours["ppl"] == pytest.approx(ref["ppl"], rel=0.01)
    assert ours["ppl_err"] == pytest.approx(ref["ppl_err"], rel=0.05)
    # KL and top-1 of a q4_0 file against its source, on the same chunks.
    q = str(tmp_path / "q4_0.gguf")
    halfbyte.quantize_model(SMOLLM2, q, type="q4_0")
    ours = halfbyte.perplexity(q, TEXT, ctx=ctx, kl_base=SMOLLM2, chunks=2)
    ref = numpy_stats(q, TEXT, ctx, base=SMOLLM2, max_chunks=2)
    print(f"halfbyte {ours}\nllama.cpp {ref}")
    assert ours["chunks"] == ref["chunks"] == 2 and ours["base_ppl"] > 1
    # Both runtimes round activations to 8 bits in their own way: KL (small) agrees
    # loosely, top-1 agreement within a few positions of 126.
    assert ours["kl"] == pytest.approx(ref["kl"], rel=0.3)
    assert abs(ours["top1"] - ref["top1"]) < 0.08


@pytest.mark.skipif(not os.path.exists(VOCABS["spm"]), reason="tests/data/tokenizer-tests not found")
def test_random_model_perplexity_matches_llama_cpp(tmp_path):
    path = write_random_llama(str(tmp_path / "r.gguf"), dtype="q8_0", n_layer=2, seed=7)
    ours = halfbyte.perplexity(path, TEXT, ctx=64)
    ref = numpy_stats(path, TEXT, 64)
    assert ours["chunks"] == ref["chunks"] and ours["scored"] == ref["scored"]
    assert ours["ppl"] == pytest.approx(ref["ppl"], rel=0.01)


def test_perplexity_refuses_short_texts_and_bad_arguments(tmp_path):
    if not os.path.exists(VOCABS["spm"]):
        pytest.skip("tests/data/tokenizer-tests not found")
    path = write_random_llama(str(tmp_path / "r.gguf"), dtype="q8_0", n_layer=1, seed=8)
    with pytest.raises(ValueError, match="needs at least 1024"):
        halfbyte.perplexity(path, "Too short.", ctx=512)
    with pytest.raises(ValueError, match="ctx must be a positive int"):
        halfbyte.perplexity(path, TEXT, ctx=0)
    with pytest.raises(FileNotFoundError):
        halfbyte.perplexity(str(tmp_path / "none.gguf"), TEXT)
    with pytest.raises(RuntimeError, match="cancelled"):
        halfbyte.perplexity(path, TEXT, ctx=64, progress=lambda f: False)
