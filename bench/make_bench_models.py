"""Writes the model files of docs/PERF.md's model table into a folder (default
/tmp/models): SmolLM2-135M-Instruct re-quantized to Q4_0 and Q8_0 by llama.cpp's
own quantizer (from models/SmolLM2-135M-Instruct.Q4_1.gguf, examples/fetch_smollm2.sh),
and a TinyLlama-1.1B-shaped random-weight Q4_0 model.

    python3 bench/make_bench_models.py [OUT_DIR]
"""

import ctypes
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "python"))

import llama_cpp  # noqa: E402
from gguf_models import write_random_llama  # noqa: E402

out_dir = sys.argv[1] if len(sys.argv) > 1 else "/tmp/models"
os.makedirs(out_dir, exist_ok=True)
src = os.path.join(here, "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
for name, ftype in (("Q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0), ("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)):
    out = os.path.join(out_dir, f"SmolLM2-135M-Instruct.{name}.gguf")
    if not os.path.exists(out):
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = ftype
        p.allow_requantize = True
        p.nthread = 2
        rc = llama_cpp.llama_model_quantize(src.encode(), out.encode(), ctypes.byref(p))
        print(name, rc, os.path.getsize(out))
out = os.path.join(out_dir, "tinyllama-1.1b-shape.Q4_0.gguf")
if not os.path.exists(out):
    write_random_llama(out, dtype="q4_0", vocab="spm", n_layer=22, n_embd=2048, n_head=32, n_head_kv=4,
                       n_ff=5632, n_ctx=2048, seed=11)
    print("1.1B shape", os.path.getsize(out))
