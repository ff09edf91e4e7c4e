"""halfbyte.Model: a Llama-family model (GGUF, llama2.c, safetensors) with generate(), logits() and tokenize()."""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._progress import ProgressArg, progress_callback

_DONE = object()
PathArg = Union[str, "os.PathLike[str]"]


class Model:
    """A Llama-family model (Llama, SmolLM2, TinyLlama, Mistral, Qwen2).

    Args:
        path: a .gguf file, a llama2.c checkpoint (stories*.bin) or an HF safetensors
            folder (config.json, *.safetensors, tokenizer.json).
        tokenizer: a llama2.c tokenizer.bin or HF tokenizer.json, for models that carry
            no vocabulary (llama2.c: default tokenizer.bin beside the checkpoint) or to
            replace theirs.
        n_threads: threads for this model (default: halfbyte.num_threads()).
        n_ctx: context length (default: the model's, at most 4096).
        precision: "int" (default: activations quantized to int8 per 32-block for the
            quantized layers, as llama.cpp does) or "float" (fp32 activations against
            dequantized weights: slower, closer to the unquantized arithmetic).
        quantize: format of weight matrices stored as float: "q4_0", "q4_1", "q8_0",
            "int4_g64", ... or "f32" to keep them float. Default: q8_0 for llama2.c and
            safetensors models; GGUF files run as stored.
        kv_cache: "f16" (default: half the memory, as llama.cpp) or "f32" elements in the
            KV cache.
        progress: None, True (a progress bar while the weights load: tqdm if installed,
            else a line on stderr) or a callable f(fraction) called after each layer;
            returning False cancels the load (RuntimeError). Ctrl-C during the load
            raises KeyboardInterrupt and frees what was loaded.
        n_batch: tokens per forward pass when evaluating a prompt (default 256, at most
            n_ctx): the scratch memory scales with it; 1 evaluates token by token.

    Use it as a context manager (or call close()) to free its memory at once::

        with halfbyte.Model("SmolLM2-135M-Instruct.Q4_1.gguf") as m:
            print(m.generate("The capital of France is", max_tokens=16))

    Calls on one Model from several Python threads run one at a time (they queue
    up; close() waits for the running call); different Models run in parallel. The
    GIL is released while the model computes. Ctrl-C stops generate() (the main
    thread checks once per token) with KeyboardInterrupt.
    """

    def __init__(self, path: PathArg, tokenizer: Optional[PathArg] = None, n_threads: Optional[int] = None,
                 n_ctx: Optional[int] = None, precision: str = "int", quantize: Optional[str] = None,
                 kv_cache: str = "f16", progress: ProgressArg = None, n_batch: Optional[int] = None) -> None:
        file = os.fsdecode(os.fspath(path))  # TypeError for what is not a path
        tok = None if tokenizer is None else os.fsdecode(os.fspath(tokenizer))
        with progress_callback(progress, f"loading {os.path.basename(file)}") as cb:
            self._m = _core.Model(file, tok, n_threads, n_ctx, precision, quantize, kv_cache, cb, n_batch)

    @property
    def config(self) -> Dict[str, Any]:
        """Hyper-parameters: arch, n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx, ..."""
        return self._m.config

    def memory(self) -> Dict[str, int]:
        """Where the model's memory goes, in bytes.

        ``file``: the model file, mapped read-only (page cache, shared between
        processes). ``weights_owned``: weights repacked or converted at load (private
        memory). ``weights_mapped``: tensors read in place from the mapping (the token
        embedding), of which ``mapped_resident`` bytes of the mapping are resident now.
        ``kv_cache`` / ``scratch``: reserved at load for n_ctx tokens / a batch, of
        which ``kv_cache_resident`` / ``scratch_resident`` are in use (resident as they
        fill). ``tokenizer``: vocabulary and tables (estimate). ``resident``: the sum
        of what is in RAM now; ``reserved``: the most it can grow to.
        """
        return self._m.memory()

    def tokenize(self, text: str, add_special: bool = True) -> List[int]:
        """Token ids of text; add_special adds BOS/EOS as the model's metadata says (as llama.cpp does)."""
        return self._m.tokenize(text, add_special)

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of token ids (control tokens are omitted)."""
        return self._m.detokenize(list(ids))

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """float32 [len(ids), n_vocab]: the logits after each token, starting from an empty context."""
        return self._m.logits(list(ids))

    def generate(self, prompt: str, max_tokens: int = 128, temperature: float = 0.0, top_k: int = 40,
                 top_p: float = 0.95, seed: Optional[int] = None, stream: bool = False, chat: bool = False,
                 stop: Sequence[str] = (), min_p: float = 0.0,
                 repeat_penalty: float = 1.0) -> Union[str, Iterator[str]]:
        """Generate text after prompt (the prompt is not included).

        Greedy when temperature == 0; otherwise sampled with top_k, top_p, min_p and a
        repetition penalty, reproducibly for a given seed. chat=True wraps the prompt
        in the model's chat template. Generation stops at an end-of-generation token,
        at max_tokens, or at any of the stop strings (not included). With stream=True
        returns an iterator of text pieces as they are produced.
        """
        args = (prompt, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, list(stop), chat)
        if not stream:
            m = self._m
            return m.generate(*args)
        return self._stream(args)

    def _stream(self, args: Tuple[Any, ...]) -> Iterator[str]:
        pieces: "queue.Queue[object]" = queue.Queue()
        cancelled = threading.Event()
        errors: List[BaseException] = []

        def on_piece(piece: str) -> bool:
            pieces.put(piece)
            return not cancelled.is_set()

        def run() -> None:
            try:
                prompt, *rest = args
                self._m.generate_stream(prompt, on_piece, *rest)
            except BaseException as e:  # re-raised in the consumer
                errors.append(e)
            finally:
                pieces.put(_DONE)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            while True:
                item = pieces.get()
                if item is _DONE:
                    break
                yield item  # type: ignore[misc]
        finally:
            cancelled.set()
            worker.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Free the model's memory; later calls raise ValueError."""
        self._m.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
