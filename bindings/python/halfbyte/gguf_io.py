"""Reading and writing GGUF files from Python: halfbyte.load_gguf and halfbyte.save_gguf."""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, NamedTuple, Optional, Union

import numpy as np

from . import _core
from ._core import QTensor
from ._progress import ProgressArg, progress_callback

PathArg = Union[str, "os.PathLike[str]"]
Tensor = Union[QTensor, np.ndarray]


class _Contents(NamedTuple):
    metadata: Dict[str, Any]
    tensors: Dict[str, Tensor]


class GgufContents(_Contents):
    """What load_gguf returns: a (metadata, tensors) tuple, plus ``types``.

    Attributes:
        metadata: key -> value as Python objects (int, float, bool, str, lists).
        tensors: name -> QTensor (q4_0, q4_1, q8_0) or numpy array (other types).
        types: key -> GGUF value type of each metadata entry ("u32", "f32",
            "string", "array[i32]", "array[array]", ...): pass it to
            save_gguf(types=...) to write the values with the same types.
    """

    types: Dict[str, str]

    def __repr__(self) -> str:
        return f"GgufContents({len(self.metadata)} metadata keys, {len(self.tensors)} tensors)"


def load_gguf(path: PathArg, progress: ProgressArg = None) -> GgufContents:
    """Read a GGUF file (v2 or v3) for inspection: ``metadata, tensors = halfbyte.load_gguf(path)``.

    Metadata values become Python values: integers int, f32/f64 float, bool, str
    (UTF-8; invalid bytes kept as surrogate escapes, written back unchanged by
    save_gguf), arrays lists. ``.types`` on the result gives each key's GGUF type.

    Tensors, by name, in file order, with the numpy shape (GGUF's ne reversed: a
    weight [rows, cols] has ne = [cols, rows]):

    * q4_0, q4_1, q8_0: a QTensor of shape (rows, cols), cols = ne[0] and rows the
      product of the other dimensions (a copy of the bytes: QTensor owns them).
    * f32, f16, f64, i8, i16, i32, i64: a read-only numpy array that is a view of
      the memory-mapped file, without a copy (a copy if the file's data is not
      aligned for the dtype). The mapping stays open as long as any of these
      arrays lives; do not modify or truncate the file meanwhile. ``a.copy()``
      gives a writable array.
    * bf16, q5_0, q5_1 and the k-quants (q2_K ... q8_K): float32 arrays, decoded
      (a copy; bf16 is exact in float32).

    Args:
        path: the file (str or os.PathLike).
        progress: None, True (a progress bar) or a callable f(fraction) called after
            each tensor; returning False cancels (RuntimeError). Ctrl-C raises
            KeyboardInterrupt.

    Raises:
        FileNotFoundError / OSError: the file is missing or not a regular file.
        ValueError: the file is not valid GGUF (the message names the field).
        RuntimeError: a tensor type this version cannot decode (q8_1), or cancelled.

    The GIL is released while the file is parsed and while tensors are decoded.
    """
    with progress_callback(progress, f"reading {os.path.basename(os.fspath(path))}") as cb:
        metadata, types, tensors = _core.load_gguf(os.fsdecode(os.fspath(path)), cb)
    out = GgufContents(metadata, tensors)
    out.types = types
    return out


def save_gguf(
    path: PathArg,
    metadata: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    types: Optional[Mapping[str, str]] = None,
    progress: ProgressArg = None,
) -> None:
    """Write a GGUF v3 file.

    Args:
        path: the file to write (str or os.PathLike). It is written as
            ``<path>.tmp-<pid>`` and renamed to ``path`` when complete: an error or
            Ctrl-C leaves no partial file (and an existing ``path`` untouched).
        metadata: key (str) -> int, float, bool, str or a list of one of those
            (lists may nest; a 1-D numpy array counts as a list). Types when not
            given in ``types``: bool; int -> i32 if it fits, else i64 (u64 above
            2**63 - 1); float -> f32; str -> string; list -> array of the items'
            type (an empty list: array[i32]). Keys are written in dict order.
        tensors: name (str, at most 64 bytes) -> QTensor in q4_0, q4_1 or q8_0, or a
            numpy array of 1 to 4 dimensions, none empty, of dtype float32,
            float16, float64, int8, int16, int32 or int64. GGUF's shape is the
            numpy shape reversed (a QTensor (rows, cols) has ne = [cols, rows]).
            Non-contiguous arrays are copied first. Written in dict order.
        types: optional key -> GGUF type name ("u8", "i8", "u16", "i16", "u32",
            "i32", "u64", "i64", "f32", "f64", "bool", "string", "array[<type>]",
            "array[array]"), e.g. load_gguf(...).types. Keys not in metadata are
            ignored. "general.alignment" must be a u32 power of two (default 32).
        progress: None, True (a progress bar) or a callable f(fraction) called
            after each tensor; returning False cancels (RuntimeError).

    Raises:
        TypeError: metadata, tensors or types is not a mapping.
        ValueError: a value, tensor or type name that cannot be written; the
            message names its key.
        FileNotFoundError / OSError: the directory is missing, not writable, or
            ``path`` is a directory.
        KeyboardInterrupt: Ctrl-C while writing (nothing is left behind).

    The GIL is released while the file is written; do not modify the arrays from
    another thread meanwhile.
    """
    for name, arg in (("metadata", metadata), ("tensors", tensors)):
        if not isinstance(arg, Mapping):
            raise TypeError(f"save_gguf: {name} must be a dict, got {type(arg).__name__}")
    if types is not None and not isinstance(types, Mapping):
        raise TypeError(f"save_gguf: types must be a dict or None, got {type(types).__name__}")
    known = None if types is None else {k: v for k, v in types.items() if k in metadata}
    with progress_callback(progress, f"writing {os.path.basename(os.fspath(path))}") as cb:
        _core.save_gguf(os.fsdecode(os.fspath(path)), dict(metadata), dict(tensors), known, cb)
