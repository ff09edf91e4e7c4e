"""A private, fully offline RAG: index a folder of notes, ask questions about them.

    python examples/python/rag.py index DOCS_DIR --db rag.sqlite     # embed *.txt / *.md (recursive)
    python examples/python/rag.py ask "How do I feed the starter?" --db rag.sqlite [--top-k 4] [--no-answer]

Index: every .txt/.md file under DOCS_DIR (hidden files and folders skipped) is cut
into chunks (chunk_text: paragraphs, split on blank lines, merged up to MAX_WORDS
words; a longer paragraph is cut between words; each chunk after the first begins
with the last OVERLAP words of the one before), and the chunks are embedded with
halfbyte.Encoder (all-MiniLM-L6-v2, q8_0). 150 words is about 200 WordPiece tokens,
within MiniLM's 256. SQLite (one file) keeps, per file, its path relative to
DOCS_DIR, size, mtime and SHA-256, and per chunk its text and float32 embedding.
Re-running embeds only new files and files whose content changed (size or mtime
changed and then the hash differs), and drops files that are gone. The embedding
model, dtype and chunk sizes are stored too; changing them re-embeds everything.

Ask: the question is embedded with the same model, the top-k chunks by cosine
(numpy over all stored embeddings) are printed with file and score, then
SmolLM2-135M-Instruct (halfbyte.Model, chat template) streams an answer from a
prompt holding those chunks. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

import halfbyte
from halfbyte.text import MAX_WORDS, OVERLAP, chunk_text  # noqa: F401 (chunk_text: part of this module's API)

REPO = Path(__file__).resolve().parents[2]
EMBED_MODEL = REPO / "models" / "all-MiniLM-L6-v2"
CHAT_MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SUFFIXES = (".txt", ".md")
Progress = Union[None, bool, Callable[[float], object]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,
                                  mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id),
                                   seq INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
"""


class RagError(Exception):
    """A problem to report as a message (missing database, empty index, missing model)."""


@dataclass
class IndexStats:
    embedded: list[str] = field(default_factory=list)  # new or changed files (re-)embedded
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # in the database, no longer on disk
    chunks: int = 0  # chunks embedded by this run


@dataclass
class Hit:
    path: str  # relative to the indexed folder
    seq: int  # chunk number within the file
    text: str
    score: float  # cosine similarity to the question


class _Bar:
    """Progress over `total` chunks for a progress= argument, as halfbyte's: None/False quiet, True a
    bar (tqdm if installed, else one stderr line rewritten in place), a callable gets the fraction done."""

    def __init__(self, progress: Progress, desc: str, total: int) -> None:
        self.progress, self.desc, self.total, self.done = progress, desc, total, 0
        self.tqdm: Any = None
        if progress is True and total:
            try:  # imported by name: tqdm ships no type stubs
                self.tqdm = importlib.import_module("tqdm").tqdm(total=total, desc=desc, unit="chunk")
            except ImportError:
                pass

    def advance(self, n: int) -> None:
        self.done += n
        if self.tqdm is not None:
            self.tqdm.update(n)
        elif callable(self.progress):
            self.progress(self.done / max(self.total, 1))
        elif self.progress is True and self.total:
            sys.stderr.write(f"\r{self.desc}: {100 * self.done // self.total:3d}% ({self.done}/{self.total} chunks)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
        elif self.progress is True and self.total:
            sys.stderr.write("\n")


def _connect(db: Union[str, Path], create: bool) -> sqlite3.Connection:
    if not create and not os.path.isfile(db):
        raise RagError(f"no index at {db}: run `rag.py index DOCS_DIR --db {db}` first")
    try:
        con = sqlite3.connect(db)
        con.executescript(SCHEMA)
    except sqlite3.Error as e:
        raise RagError(f"{db}: not a usable SQLite database ({e})") from None
    return con


def _load_encoder(path: Union[str, Path], dtype: str) -> halfbyte.Encoder:
    if not os.path.isdir(path):
        raise RagError(f"embedding model folder {path} not found (bash examples/fetch_minilm.sh fetches MiniLM)")
    try:
        return halfbyte.Encoder(str(path), dtype=dtype)
    except (OSError, ValueError, RuntimeError) as e:
        raise RagError(f"cannot load embedding model {path}: {e}") from None


def index_folder(docs_dir: Union[str, Path], db: Union[str, Path], embed_model: Union[str, Path] = EMBED_MODEL,
                 dtype: str = "q8_0", max_words: int = MAX_WORDS, overlap: int = OVERLAP,
                 encoder: Optional[halfbyte.Encoder] = None, progress: Progress = None) -> IndexStats:
    """Bring the index in `db` up to date with the .txt/.md files under docs_dir (see the module doc).
    `encoder` reuses a loaded Encoder (it must be embed_model with dtype). Each file is committed
    on its own, so an interrupted run keeps what it finished."""
    root = Path(docs_dir)
    if not root.is_dir():
        raise RagError(f"{docs_dir} is not a folder")
    chunk_text("", max_words, overlap)  # bad sizes raise ValueError here, before the index is wiped
    found = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
             if p.suffix.lower() in SUFFIXES and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)}
    con = _connect(db, create=True)
    stats, todo = IndexStats(), []
    try:
        meta = {"embed_model": str(Path(embed_model).resolve()), "dtype": dtype, "max_words": str(max_words),
                "overlap": str(overlap)}
        if dict(con.execute("SELECT key, value FROM meta").fetchall()) != meta:  # new db or other settings
            con.executescript("DELETE FROM chunks; DELETE FROM files; DELETE FROM meta;")
            con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        for rel, fid, size, mtime, sha in con.execute("SELECT path, id, size, mtime_ns, sha256 FROM files").fetchall():
            if rel not in found:
                stats.removed.append(rel)
                con.execute("DELETE FROM chunks WHERE file_id = ?", (fid,))
                con.execute("DELETE FROM files WHERE id = ?", (fid,))
                continue
            st = found[rel].stat()
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                if hashlib.sha256(found[rel].read_bytes()).hexdigest() != sha:
                    continue  # changed: embedded again below
                con.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (st.st_size, st.st_mtime_ns, fid))
            stats.unchanged.append(rel)
        con.commit()
        for rel, p in found.items():
            if rel not in set(stats.unchanged):
                st, data = p.stat(), p.read_bytes()  # stat first: a write after it shows up next run
                todo.append((rel, st, hashlib.sha256(data).hexdigest(),
                             chunk_text(data.decode("utf-8", "replace"), max_words, overlap)))
        enc = encoder if encoder is not None or not todo else _load_encoder(embed_model, dtype)
        bar = _Bar(progress, f"embedding {len(todo)} files", sum(len(t[3]) for t in todo))
        try:
            for rel, st, sha, chunks in todo:
                assert enc is not None
                vecs = []
                for i in range(0, len(chunks), 16):
                    vecs.append(enc.embed(chunks[i:i + 16]).astype(np.float32))
                    bar.advance(len(vecs[-1]))
                con.execute("DELETE FROM chunks WHERE file_id IN (SELECT id FROM files WHERE path = ?)", (rel,))
                con.execute("DELETE FROM files WHERE path = ?", (rel,))
                fid = con.execute("INSERT INTO files (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                                  (rel, st.st_size, st.st_mtime_ns, sha)).lastrowid
                rows = [v.tobytes() for batch in vecs for v in batch]
                con.executemany("INSERT INTO chunks (file_id, seq, text, embedding) VALUES (?, ?, ?, ?)",
                                [(fid, i, c, e) for i, (c, e) in enumerate(zip(chunks, rows))])
                con.commit()
                stats.embedded.append(rel)
                stats.chunks += len(chunks)
        finally:
            bar.close()
    finally:
        con.close()
    return stats


def retrieve(question: str, db: Union[str, Path], top_k: int = 4, encoder: Optional[halfbyte.Encoder] = None,
             embed_model: Optional[Union[str, Path]] = None) -> list[Hit]:
    """The top_k chunks of the index by cosine similarity to the question, best first. The question is
    embedded with `encoder`, else with the model and dtype the index was built with (or embed_model)."""
    if top_k < 1:
        raise RagError(f"--top-k must be >= 1, got {top_k}")
    con = _connect(db, create=False)
    try:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        rows = con.execute("SELECT f.path, c.seq, c.text, c.embedding FROM chunks c JOIN files f ON f.id = c.file_id"
                           " ORDER BY c.id").fetchall()
    finally:
        con.close()
    if not rows:
        raise RagError(f"the index {db} is empty: index a folder with .txt/.md files first")
    enc = encoder or _load_encoder(embed_model or meta["embed_model"], meta.get("dtype", "q8_0"))
    matrix = np.stack([np.frombuffer(r[3], np.float32) for r in rows])  # [n_chunks, dim]
    q = enc.embed([question])[0]
    if q.shape[0] != matrix.shape[1]:
        raise RagError(f"the question's embedding has {q.shape[0]} dimensions, the index {matrix.shape[1]}:"
                       " use the embedding model the index was built with")
    scores = matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q) + 1e-12)
    best = np.argsort(-scores, kind="stable")[:top_k]
    return [Hit(rows[i][0], rows[i][1], rows[i][2], float(scores[i])) for i in best]


def build_prompt(question: str, hits: list[Hit]) -> str:
    """The user message for the chat model: the chunks, then the question. (With SmolLM2-135M, text
    first and "Based on the text above" answered best; numbered "[1]" contexts made it answer "1".)"""
    context = "\n\n".join(f"(from {h.path})\n{h.text}" for h in hits)
    return f"{context}\n\nBased on the text above, answer the question: {question}"


def answer(question: str, hits: list[Hit], model: halfbyte.Model, max_tokens: int = 256,
           temperature: float = 0.0) -> Iterator[str]:
    """Stream the chat model's answer to the question from the retrieved chunks. Chunks are dropped
    from the end (the least similar) while the prompt and the answer do not fit the context."""
    hits = list(hits)
    while len(hits) > 1 and len(model.tokenize(build_prompt(question, hits))) + max_tokens + 16 > model.config["n_ctx"]:
        hits.pop()
    pieces = model.generate(build_prompt(question, hits), chat=True, max_tokens=max_tokens, temperature=temperature,
                            stream=True)
    assert not isinstance(pieces, str)
    return pieces


def _ask(a: argparse.Namespace) -> None:
    if not a.no_answer and not os.path.isfile(a.model):
        raise RagError(f"chat model {a.model} not found (--model, or --no-answer for retrieval only)")
    hits = retrieve(a.question, a.db, a.top_k, embed_model=a.embed_model)
    for n, h in enumerate(hits, 1):
        snippet = " ".join(h.text.split())
        print(f"[{n}] {h.score:.3f}  {h.path} (chunk {h.seq})\n    {snippet[:300]}{'...' if len(snippet) > 300 else ''}")
    if a.no_answer:
        return
    try:
        model = halfbyte.Model(a.model, progress=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise RagError(f"cannot load chat model {a.model}: {e}") from None
    with model:
        print("\nAnswer: ", end="", flush=True, file=sys.stdout)
        for piece in answer(a.question, hits, model, a.max_tokens, a.temperature):
            print(piece, end="", flush=True)
        print()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    ix = sub.add_parser("index", help="index (or update the index of) a folder of .txt/.md files")
    ix.add_argument("docs_dir")
    ix.add_argument("--embed-model", default=str(EMBED_MODEL), help="a sentence-transformers BERT folder")
    ix.add_argument("--dtype", default="q8_0", help="the encoder's weights: q8_0 (default) or f32")
    ix.add_argument("--max-words", type=int, default=MAX_WORDS, help="words per chunk at most")
    ix.add_argument("--overlap", type=int, default=OVERLAP, help="words repeated from the previous chunk")
    ask = sub.add_parser("ask", help="retrieve the chunks closest to a question and answer it")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=4)
    ask.add_argument("--model", default=str(CHAT_MODEL), help="the chat model (GGUF)")
    ask.add_argument("--no-answer", action="store_true", help="only print the retrieved chunks")
    ask.add_argument("--max-tokens", type=int, default=256)
    ask.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    ask.add_argument("--embed-model", default=None, help="default: the one the index was built with")
    for s in (ix, ask):
        s.add_argument("--db", default="rag.sqlite", help="the SQLite index (default rag.sqlite)")
    a = p.parse_args(argv)
    try:
        if a.command == "index":
            st = index_folder(a.docs_dir, a.db, a.embed_model, a.dtype, a.max_words, a.overlap, progress=True)
            print(f"{a.db}: embedded {len(st.embedded)} new or changed files ({st.chunks} chunks),"
                  f" {len(st.unchanged)} unchanged, {len(st.removed)} removed")
        else:
            _ask(a)
    except (RagError, ValueError) as e:
        print(f"rag.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n[interrupted]", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
