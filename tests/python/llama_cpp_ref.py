"""llama.cpp (PyPI llama-cpp-python) as the reference: logits at every position."""

import numpy as np


def llama_cpp_logits(path, ids, n_ctx=512):
    """float64 [len(ids), n_vocab] logits of llama.cpp on the GGUF file at path."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, n_threads=2,
                          n_threads_batch=2, verbose=False)
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)], dtype=np.float64)
    llm.close()
    return out


# Greedy agreement with llama.cpp, teacher-forced. Free-running greedy texts split
# wherever two candidates are within the arithmetic noise of the two programs, and
# where that happens depends on the CPU (llama.cpp's AVX2 and AVX-512 kernels round
# differently): on a Zen 3 "Water boils at" split after 20 tokens, on the Xeons not.
# So halfbyte's logits are taken on llama.cpp's own greedy continuation, and at
# every position where halfbyte's argmax is another token, that token's lead over
# llama.cpp's must be a near-tie: below NEAR_TIE logits. Measured on SmolLM2 (Q4_1
# and a halfbyte-written Q4_0), Zen 3: leads 0.004-0.31 at 0-3 of 32 positions per
# prompt, while the two programs' logits differ by 0.5-1.1 at a position (max |a-b|)
# and llama.cpp's batch evaluation alone disagrees with its own token-by-token
# choice by up to 0.23. A wrong model (RoPE, attention, a kernel) leads by whole
# logits at most positions.
NEAR_TIE = 0.5
MAX_SPLITS = 4  # of 32 positions


def llama_cpp_greedy_tokens(llm, ids, n):
    """llama.cpp's greedy continuation of ids: up to n tokens (stops at end of text)."""
    llm.reset()
    out = []
    for t in llm.generate(ids, temp=0.0, top_k=1):
        if t == llm.token_eos() or len(out) >= n:
            break
        out.append(int(t))
    llm.reset()
    return out


def assert_greedy_agrees(model, llm, prompt, n=32):
    """halfbyte's model picks llama.cpp's greedy tokens for prompt, or a near-tie."""
    ids = model.tokenize(prompt)
    ref = llama_cpp_greedy_tokens(llm, ids, n)
    logits = model.logits(ids + ref).astype(np.float64)
    splits = []
    for j, t in enumerate(ref):
        row = logits[len(ids) - 1 + j]
        ours = int(row.argmax())
        if ours != t:
            splits.append((j, ours, t, float(row[ours] - row[t])))
    print(f"{prompt!r}: {len(ref)} tokens, halfbyte picks another at {[(j, round(d, 3)) for j, _, _, d in splits]}")
    assert len(ref) >= min(n, 30), "llama.cpp stopped early: pick a prompt that runs on"
    for j, ours, t, lead in splits:
        assert lead < NEAR_TIE, f"{prompt!r} token {j}: halfbyte prefers {ours} over llama.cpp's {t} by {lead:.3f}"
    assert len(splits) <= MAX_SPLITS, f"{prompt!r}: {len(splits)} of {len(ref)} tokens differ"
    return ref
