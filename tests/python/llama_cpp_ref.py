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
