"""Progress reporting for long calls (Model loading, load_gguf, save_gguf).

``progress=None`` reports nothing, ``progress=True`` shows a bar (tqdm if it is
installed, else one line on stderr rewritten in place), and a callable is called
as ``progress(fraction)`` with the fraction done in (0, 1]; returning False cancels
the call (RuntimeError). Ctrl-C cancels with KeyboardInterrupt in every case.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Any, Callable, Iterator, Optional, Union

ProgressArg = Union[None, bool, Callable[[float], Optional[bool]]]


class _Bar:
    """A progress bar over [0, 1]: tqdm when importable, else a plain stderr line."""

    def __init__(self, desc: str) -> None:
        self._desc = desc
        self._shown = -1  # last whole percent printed by the plain bar
        self._tqdm: Any = None
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            pass
        else:
            self._tqdm = tqdm(total=1.0, desc=desc, bar_format="{l_bar}{bar}| [{elapsed}<{remaining}]")

    def __call__(self, fraction: float) -> bool:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self._tqdm is not None:
            self._tqdm.update(fraction - self._tqdm.n)
        else:
            percent = int(fraction * 100)
            if percent != self._shown:
                self._shown = percent
                sys.stderr.write(f"\r{self._desc}: {percent:3d}%")
                sys.stderr.flush()
        return True

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        elif self._shown >= 0:
            sys.stderr.write("\n")
            sys.stderr.flush()


@contextlib.contextmanager
def progress_callback(progress: ProgressArg, desc: str) -> Iterator[Optional[Callable[[float], Optional[bool]]]]:
    """The callable to hand to the C++ side for a ``progress=`` argument (None for
    no reporting); a bar it made is closed on exit, also on errors and Ctrl-C."""
    if progress is None or progress is False:
        yield None
    elif progress is True:
        bar = _Bar(desc)
        try:
            yield bar
        finally:
            bar.close()
    elif callable(progress):
        yield progress
    else:
        raise ValueError(
            f"progress must be None, True or a callable f(fraction) -> bool, got {type(progress).__name__}"
        )
