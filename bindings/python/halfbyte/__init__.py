"""halfbyte: 4-bit weight quantization with GGUF-compatible block formats.

Quantize a float32 or float16 matrix [rows, cols] along its columns into one of
the formats in ``FORMATS`` and get it back as float32::

    import numpy as np
    import halfbyte

    w = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
    qt = halfbyte.quantize(w, "q4_0")            # error-minimising scale search
    qt_ref = halfbyte.quantize(w, "q4_0", method="rtn")  # ggml's round-to-nearest
    w_hat = qt.dequantize()                      # float32 [4096, 4096]
    raw = qt.to_bytes()                          # GGUF Q4_0 block bytes, rows back to back
    same = halfbyte.QTensor.from_bytes(raw, "q4_0", w.shape)
    x = np.ones((8, 4096), dtype=np.float32)
    y = halfbyte.matmul(x, qt)                   # x @ w_hat.T, float32 [8, 4096]

``q4_0``, ``q4_1`` and ``q8_0`` are byte-identical to GGUF's Q4_0, Q4_1 and Q8_0;
``int4_gG`` / ``int4a_gG`` are group-wise INT4 (symmetric / with a min) with
group G in {32, 64, 128}, fp16 scales, or bf16 scales with the ``_bf16`` suffix.

Models: ``halfbyte.Model(path)`` runs Llama-family GGUF / llama2.c / safetensors
models (generate, logits, tokenize); ``halfbyte.Encoder(path)`` runs BERT-family
encoders (MiniLM, bge, e5) for sentence embeddings (``embed(texts)``) and, with a
classification head, labels (``classify(texts)``); ``halfbyte.pipeline(task,
model=folder)`` wraps it as transformers' "feature-extraction" and
"text-classification" / "sentiment-analysis" pipelines.
Files: ``halfbyte.load_gguf(path)`` gives a
GGUF file's metadata and tensors (QTensor or numpy, zero-copy where possible),
``halfbyte.save_gguf(path, metadata, tensors)`` writes one.
``halfbyte.quantize_model(path_in, path_out, type="q4_k_m")`` writes a whole model
as a quantized GGUF file (also ``halfbyte quantize`` on the command line).

Errors: bad arguments raise ValueError, OS failures OSError (FileNotFoundError for
a missing file), and everything else (requests this build or CPU cannot serve,
cancelled calls) RuntimeError. Long calls take ``progress=True`` for a progress
bar and stop on Ctrl-C with KeyboardInterrupt. See docs/python.md.
"""

from ._core import (
    Encoder,
    QTensor,
    __version__,
    available_isas,
    dequantize,
    isa,
    matmul,
    num_threads,
    quantize,
    set_isa,
    set_num_threads,
)

from .gguf_io import GgufContents, load_gguf, save_gguf
from .model import Model
from .model_quantize import QUANTIZE_TYPES, perplexity, quantize_model
from .pipeline import TASKS, pipeline

#: Format names accepted by quantize() and QTensor.from_bytes().
FORMATS = (
    "q4_0",
    "q4_1",
    "q8_0",
    "int4_g32",
    "int4_g64",
    "int4_g128",
    "int4a_g32",
    "int4a_g64",
    "int4a_g128",
    "int4_g32_bf16",
    "int4_g64_bf16",
    "int4_g128_bf16",
    "int4a_g32_bf16",
    "int4a_g64_bf16",
    "int4a_g128_bf16",
)

__all__ = [
    "Encoder",
    "FORMATS",
    "GgufContents",
    "Model",
    "QUANTIZE_TYPES",
    "QTensor",
    "TASKS",
    "__version__",
    "available_isas",
    "dequantize",
    "isa",
    "load_gguf",
    "matmul",
    "num_threads",
    "perplexity",
    "pipeline",
    "quantize",
    "quantize_model",
    "save_gguf",
    "set_isa",
    "set_num_threads",
]
