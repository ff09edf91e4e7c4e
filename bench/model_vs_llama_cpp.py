"""Prompt and decode speed of halfbyte vs llama.cpp (llama-cpp-python) on one GGUF
file, same threads, runs alternated (halfbyte, llama.cpp, halfbyte, llama.cpp);
medians printed. A stop-gap until bench/compare.py (the benchmarks issue).

    python3 bench/model_vs_llama_cpp.py models/SmolLM2-135M-Instruct.Q4_1.gguf [--threads 2] [--reps 2]
"""

import argparse
import os
import time

import numpy as np

import halfbyte

try:
    import llama_cpp
except ImportError:  # pragma: no cover
    llama_cpp = None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128)
    a = ap.parse_args()
    text = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read() * 8
    m = halfbyte.Model(a.model, n_ctx=a.prompt_tokens + a.decode_tokens + 8, n_threads=a.threads)
    ids = m.tokenize(text)[: a.prompt_tokens]
    prompt = m.detokenize(ids)  # control tokens (BOS) detokenize to nothing
    res = {"halfbyte prompt": [], "halfbyte decode": [], "llama.cpp prompt": [], "llama.cpp decode": []}
    llm = None
    if llama_cpp is not None:
        llm = llama_cpp.Llama(model_path=a.model, n_ctx=a.prompt_tokens + a.decode_tokens + 8, n_batch=512,
                              n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    for _ in range(a.reps):
        st = m._m.generate_stream(prompt, lambda p: True, a.decode_tokens, 0.0, 40, 0.95, 0.0, 1.0, None, [], False)
        res["halfbyte prompt"].append(st["prompt_tokens_per_s"])
        res["halfbyte decode"].append(st["decode_tokens_per_s"])
        if llm is None:
            continue
        lids = llm.tokenize(prompt.encode(), add_bos=True)
        llm.reset()
        t = time.perf_counter()
        llm.eval(lids)
        res["llama.cpp prompt"].append(len(lids) / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(a.decode_tokens):
            llm.eval([llm.sample(top_k=1)])
        res["llama.cpp decode"].append(a.decode_tokens / (time.perf_counter() - t))
    med = {k: float(np.median(v)) for k, v in res.items() if v}
    print(f"{os.path.basename(a.model)}: {len(ids)}-token prompt, {a.decode_tokens} decoded, {a.threads} threads, "
          f"isa {halfbyte.isa()}")
    for k, v in med.items():
        print(f"  {k:18s} {v:8.1f} tokens/s")
    if "llama.cpp prompt" in med:
        print(f"  ratio prompt {med['halfbyte prompt'] / med['llama.cpp prompt']:.2f}x, "
              f"decode {med['halfbyte decode'] / med['llama.cpp decode']:.2f}x")


if __name__ == "__main__":
    main()
