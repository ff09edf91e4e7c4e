"""Text helpers shared by the RAG example (examples/python/rag.py) and
``halfbyte embed --ray`` (halfbyte.ray): cutting documents into chunks that fit an
encoder's context.

150 words is about 200 WordPiece tokens, within MiniLM's 256.
"""

from __future__ import annotations

import re
from itertools import groupby

MAX_WORDS, OVERLAP = 150, 30


def chunk_text(text: str, max_words: int = MAX_WORDS, overlap: int = OVERLAP) -> list[str]:
    """Split text into chunks of at most max_words whitespace-separated words, never inside a word.

    Paragraphs (separated by blank lines) are merged while they fit; one longer than
    max_words - overlap is cut into pieces of that many words. Every chunk after the
    first starts with the last `overlap` words of the previous chunk. Paragraph breaks
    inside a chunk are kept as blank lines, other whitespace becomes one space."""
    if max_words < 1 or not 0 <= overlap < max_words:
        raise ValueError(f"need max_words >= 1 and 0 <= overlap < max_words, got {max_words}, {overlap}")
    step = max_words - overlap  # the longest unit, so that overlap + unit <= max_words
    units: list[list[tuple[int, str]]] = []  # (paragraph number, word)
    for n, para in enumerate(re.split(r"\n\s*\n", text)):
        words = [(n, w) for w in para.split()]
        units += [words[i:i + step] for i in range(0, len(words), step)]
    chunks: list[str] = []
    current: list[tuple[int, str]] = []
    fresh = False  # current holds words not yet in any chunk

    for unit in units + [[]]:  # the empty unit at the end emits the last chunk
        if fresh and (not unit or len(current) + len(unit) > max_words):
            chunks.append("\n\n".join(" ".join(w for _, w in para) for _, para in groupby(current, lambda x: x[0])))
            current, fresh = current[len(current) - overlap:] if overlap else [], False
        current += unit
        fresh = fresh or bool(unit)
    return chunks
