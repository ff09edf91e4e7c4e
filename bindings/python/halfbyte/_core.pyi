"""Type stubs for halfbyte._core (the C++ extension module)."""

import os
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Literal, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Buffer = Union[bytes, bytearray, memoryview, npt.NDArray[np.generic]]
_Method = Literal["auto", "rtn"]
_Progress = Optional[Callable[[float], Optional[bool]]]
# Encoder.embed: None/False, True (a bar) or f(texts done, total).
_EmbedProgress = Union[None, bool, Callable[[int, int], Optional[bool]]]
_Tensor = Union["QTensor", npt.NDArray[Any]]

class QTensor:
    """A quantized matrix [rows, cols]: raw GGUF-layout block bytes, rows back to back.

    Immutable; exports a read-only 1-D uint8 buffer (no copy); picklable.
    """

    __hash__: ClassVar[None]  # type: ignore[assignment]

    @property
    def format(self) -> str:
        """Format name, e.g. 'q4_0'."""
    @property
    def shape(self) -> Tuple[int, int]:
        """(rows, cols) of the unquantized matrix."""
    @property
    def nbytes(self) -> int:
        """Size of the raw block bytes."""
    def dequantize(self) -> npt.NDArray[np.float32]:
        """A new float32 array of shape (rows, cols)."""
    def to_bytes(self) -> bytes:
        """A copy of the raw block bytes (length nbytes)."""
    @staticmethod
    def from_bytes(buf: _Buffer, fmt: str, shape: Tuple[int, int]) -> QTensor:
        """Copy raw block bytes (exactly rows * bytes-per-row) into a new QTensor."""
    def __eq__(self, other: object) -> bool: ...
    # The C-level buffer protocol (PEP 688: declared for every Python version, so
    # that memoryview(qt) and np.frombuffer(qt) type-check before 3.12 too).
    def __buffer__(self, flags: int, /) -> memoryview: ...  # 1-D uint8, read-only
    def __getstate__(self) -> Tuple[str, Tuple[int, int], bytes]: ...
    def __setstate__(self, state: Tuple[str, Tuple[int, int], bytes], /) -> None: ...

def quantize(
    a: Union[npt.NDArray[np.float32], npt.NDArray[np.float16]],
    fmt: str = "q4_0",
    method: _Method = "auto",
    importance: Optional[npt.NDArray[np.floating[Any]]] = None,
) -> QTensor:
    """Quantize a 2-D float32/float16 array [rows, cols] along its columns."""

def dequantize(qt: QTensor) -> npt.NDArray[np.float32]:
    """Same as qt.dequantize(): float32 array of shape qt.shape."""

def isa() -> str:
    """Name of the kernel set in use."""

def available_isas() -> List[str]:
    """Kernel sets this build contains and this CPU can run, best last."""

def set_isa(name: str) -> None:
    """Select the kernel set by name; ValueError if unknown, RuntimeError if unsupported."""

def matmul(
    x: npt.NDArray[np.float32],
    w: Union[QTensor, npt.NDArray[np.float32], npt.NDArray[np.float16]],
    precision: Literal["auto", "int", "float"] = "auto",
    n_threads: Optional[int] = None,
) -> npt.NDArray[np.float32]:
    """y = x @ w.T: x [M, K] or [K] float32, w QTensor or float array [N, K]; returns [M, N] or [N]."""

def set_num_threads(n: int) -> None:
    """Threads used by calls that do not pass n_threads (1 <= n <= 1024; else ValueError)."""

def num_threads() -> int:
    """Threads used by default."""

class Model:
    """The C++ model behind halfbyte.Model (use that: it adds streaming and progress bars)."""

    def __init__(
        self,
        path: str,
        tokenizer: Optional[str] = None,
        n_threads: Optional[int] = None,
        n_ctx: Optional[int] = None,
        precision: str = "int",
        quantize: Optional[str] = None,
        kv_cache: str = "f16",
        progress: _Progress = None,
        n_batch: Optional[int] = None,
    ) -> None: ...
    def tokenize(self, text: str, add_special: bool = True) -> List[int]: ...
    def detokenize(self, ids: Iterable[int]) -> str: ...
    def logits(self, ids: Iterable[int]) -> npt.NDArray[np.float32]: ...
    def generate(
        self,
        prompt: str,
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        seed: Optional[int] = None,
        stop: List[str] = ...,
        chat: bool = False,
    ) -> str: ...
    def generate_stream(
        self,
        prompt: str,
        on_piece: Callable[[str], Optional[bool]],
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        seed: Optional[int] = None,
        stop: List[str] = ...,
        chat: bool = False,
    ) -> Dict[str, Union[int, float]]: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    def memory(self) -> Dict[str, int]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Model: ...
    def __exit__(self, *args: object) -> None: ...

class Encoder:
    """A BERT-family text encoder (BERT, MiniLM, bge, e5, DistilBERT): embeddings and classification."""

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        dtype: str = "q8_0",
        n_threads: Optional[int] = None,
        max_length: Optional[int] = None,
        precision: str = "auto",
    ) -> None: ...
    def embed(
        self,
        texts: Iterable[str],
        batch_size: int = 64,
        normalize: Optional[bool] = None,
        progress: _EmbedProgress = None,
    ) -> npt.NDArray[np.float32]: ...
    def logits(
        self, texts: Iterable[Union[str, Tuple[str, str], List[str]]], batch_size: int = 64
    ) -> npt.NDArray[np.float32]: ...
    def classify(
        self,
        texts: Iterable[Union[str, Tuple[str, str], List[str]]],
        top_k: Optional[int] = 1,
        function_to_apply: Optional[str] = None,
        batch_size: int = 64,
    ) -> List[List[Dict[str, Any]]]: ...
    def score(
        self, query: str, passages: Iterable[str], sigmoid: bool = False, batch_size: int = 64
    ) -> npt.NDArray[np.float32]: ...
    def tokenize(self, text: str) -> List[int]: ...
    def tokenize_pair(self, a: str, b: str) -> Tuple[List[int], List[int]]: ...
    @property
    def labels(self) -> List[str]: ...
    @property
    def problem_type(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @property
    def pooling(self) -> str: ...
    @property
    def normalize(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Encoder: ...
    def __exit__(self, *args: object) -> None: ...

def load_gguf(
    path: str, progress: _Progress = None
) -> Tuple[Dict[str, Any], Dict[str, str], Dict[str, _Tensor]]:
    """(metadata, types, tensors) of a GGUF file; use halfbyte.load_gguf()."""

def save_gguf(
    path: str,
    metadata: Dict[str, Any],
    tensors: Dict[str, _Tensor],
    types: Optional[Dict[str, str]] = None,
    progress: _Progress = None,
) -> None:
    """Write a GGUF v3 file; use halfbyte.save_gguf()."""

QUANTIZE_TYPES: List[str]

def quantize_model(
    path_in: str,
    path_out: str,
    type: str,
    imatrix: str = "",
    tokenizer: str = "",
    n_threads: int = 0,
    pure: bool = False,
    gptq: bool = True,
    progress: _Progress = None,
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Quantize a model to a GGUF file; use halfbyte.quantize_model()."""

def perplexity(
    path: str,
    text: str,
    ctx: int = 512,
    base: str = "",
    chunks: int = 0,
    n_threads: int = 0,
    progress: _Progress = None,
) -> Dict[str, Any]:
    """Perplexity (and KL vs a base model) by llama.cpp's method; use halfbyte.perplexity()."""
