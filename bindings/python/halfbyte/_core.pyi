"""Type stubs for halfbyte._core (the C++ extension module)."""

import sys
from typing import Any, ClassVar, List, Literal, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Buffer = Union[bytes, bytearray, memoryview, npt.NDArray[np.generic]]
_Method = Literal["auto", "rtn"]

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
    if sys.version_info >= (3, 12):
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
    """Threads used by calls that do not pass n_threads (int >= 1)."""

def num_threads() -> int:
    """Threads used by default."""
