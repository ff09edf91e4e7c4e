"""Whole-model quantization and its quality from Python: halfbyte.quantize_model and
halfbyte.perplexity."""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Optional, Union

from . import _core
from ._progress import ProgressArg, progress_callback

PathArg = Union[str, "os.PathLike[str]"]

#: Type names accepted by quantize_model(type=...).
QUANTIZE_TYPES = tuple(_core.QUANTIZE_TYPES)


def quantize_model(
    path_in: PathArg,
    path_out: PathArg,
    type: str = "q4_0",
    imatrix: Optional[PathArg] = None,
    progress: ProgressArg = None,
    tokenizer: Optional[PathArg] = None,
    n_threads: Optional[int] = None,
    pure: bool = False,
    gptq: bool = True,
) -> List[Dict[str, Any]]:
    """Quantize a model into a GGUF file that halfbyte and llama.cpp both load.

    Args:
        path_in: a GGUF file, a llama2.c checkpoint or an HF safetensors folder.
        path_out: the GGUF file to write; written as ``<path_out>.tmp-<pid>`` and
            renamed when complete (an error or Ctrl-C leaves nothing behind).
        type: one of QUANTIZE_TYPES: "f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0",
            "q4_k", "q6_k" (every weight matrix in that type, except the output
            head, i.e. output.weight or a tied token_embd.weight, at q6_K under the
            4/5-bit types as llama.cpp does), "q4_k_s" (llama.cpp's Q4_K_S: output
            head q6_K, attn_v of layers 0-3 and ffn_down of the first eighth of
            the layers q5_K, the rest q4_K) or "q4_k_m" (token embedding and
            output q6_K, attn_v / ffn_down q6_K in the first and last eighth of the
            layers and every third layer between, the rest q4_K).
            Norms and biases stay f32; rows that are not a whole number of blocks
            fall back (q4_K -> q5_0 -> f16, q5_K -> q5_1 -> f16, q6_K -> q8_0 -> f16,
            others -> f16).
        imatrix: an importance matrix file (``halfbyte imatrix``, or llama.cpp's
            GGUF imatrix): the error of each column is weighted by its mean squared
            activation. If the file also holds input covariances (``halfbyte
            imatrix --covariance``), the matrices they cover are quantized with
            GPTQ: each column's error is compensated by the columns after it,
            minimising the layer's output error on the calibration activations.
        progress: None, True (a bar) or a callable f(fraction) -> bool; returning
            False cancels (RuntimeError). Ctrl-C raises KeyboardInterrupt.
        tokenizer: a tokenizer file for inputs without one (llama2.c tokenizer.bin,
            HF tokenizer.json).
        n_threads: threads (default halfbyte.num_threads()).
        pure: the output head in ``type`` too (llama.cpp's --pure).
        gptq: False quantizes with the importances only, even if the imatrix file
            has covariances.

    Returns:
        One dict per tensor, in file order: ``name``, ``source_type`` and ``type``
        (ggml type names, e.g. "f16", "q4_K"), ``shape`` (numpy order), ``bytes``
        in the output and ``rel_rms_error`` = sqrt(sum (x - x')^2 / sum x^2) of
        the written tensor against the input (0.0 for tensors copied exactly).

    Raises:
        ValueError: unknown type, malformed input, or a value that cannot be
            quantized (the message names the tensor).
        FileNotFoundError / OSError: a missing input, or an output folder that
            does not exist.
        RuntimeError: an input this version cannot read, or cancelled.

    Input tensors that are already quantized (in another type than their target)
    are dequantized first; a UserWarning says so. The GIL is released meanwhile.
    """
    if not isinstance(type, str):
        raise TypeError(f"quantize_model: type must be a str, got {type.__class__.__name__}")
    if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1):
        raise ValueError(f"quantize_model: n_threads must be a positive int or None, got {n_threads!r}")
    src = os.fsdecode(os.fspath(path_in))
    dst = os.fsdecode(os.fspath(path_out))
    im = "" if imatrix is None else os.fsdecode(os.fspath(imatrix))
    tok = "" if tokenizer is None else os.fsdecode(os.fspath(tokenizer))
    with progress_callback(progress, f"quantizing {os.path.basename(src)}") as cb:
        table, notes = _core.quantize_model(src, dst, type, im, tok, n_threads or 0, bool(pure), bool(gptq), cb)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return list(table)


def perplexity(
    model: PathArg,
    text: str,
    ctx: int = 512,
    kl_base: Optional[PathArg] = None,
    chunks: Optional[int] = None,
    progress: ProgressArg = None,
    n_threads: Optional[int] = None,
) -> Dict[str, Any]:
    """Perplexity of a model on ``text``, by llama.cpp's method (``halfbyte perplexity``).

    The text is tokenized (BOS first if the model adds one) and cut into chunks of
    ``ctx`` tokens; each chunk is evaluated from an empty cache with BOS as its first
    token, and its second half is scored (each position predicting the next token).

    Args:
        model: the model file (any format halfbyte loads), loaded with n_ctx = ctx.
        text: the evaluation text; it needs at least 2 * ctx tokens.
        ctx: tokens per chunk.
        kl_base: another model with the same vocabulary (e.g. the f16 source of a
            quantized file), evaluated on the same chunks.
        chunks: score at most this many chunks (default: all whole chunks).
        progress: None, True (a bar) or a callable f(fraction) -> bool (False stops:
            RuntimeError).
        n_threads: threads (default halfbyte.num_threads()).

    Returns:
        ``chunks``, ``scored`` (positions), ``ppl``, ``ppl_err`` (exp(mean nll) and
        its standard error), ``nll`` (mean, nats); with kl_base also ``base_ppl``,
        ``kl``, ``kl_err`` (mean KL(base || model), nats), ``top1``, ``top1_err``
        (share of positions whose most likely tokens agree).
    """
    if not isinstance(text, str):
        raise TypeError(f"perplexity: text must be a str, got {text.__class__.__name__}")
    for name, v in (("ctx", ctx), ("chunks", chunks), ("n_threads", n_threads)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"perplexity: {name} must be a positive int, got {v!r}")
    path = os.fsdecode(os.fspath(model))
    base = "" if kl_base is None else os.fsdecode(os.fspath(kl_base))
    with progress_callback(progress, f"perplexity {os.path.basename(path)}") as cb:
        return dict(_core.perplexity(path, text, ctx, base, chunks or 0, n_threads or 0, cb))
