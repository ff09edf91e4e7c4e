"""Inputs and outputs of ``halfbyte embed --ray``: the rows of a Parquet file or
folder, a JSONL file or a folder of text files (chunked), numbered in a fixed
order; the plan that cuts them into shards of N rows; and the shards themselves,
Parquet files written under a temporary name and renamed when complete, so that a
re-run knows which are done."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from ..text import chunk_text

FORMAT = "halfbyte-embed-shards/1"
# "_" first: Parquet readers (pyarrow, Ray, pandas) skip it when they read OUTDIR as a dataset.
MANIFEST = "_halfbyte_manifest.json"
KINDS = ("parquet", "jsonl", "text")
TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


class ShardError(RuntimeError):
    """An input or output directory that cannot be used as asked (message says why)."""


def _visible(root: Path, p: Path) -> bool:
    return not any(part.startswith(".") for part in p.relative_to(root).parts)


def input_files(path: Path, kind: str) -> Tuple[str, List[Path]]:
    """(kind, files in row order) for INPUT; kind "auto" picks by suffix, and for a
    folder: Parquet files if it has any, else JSONL files, else .txt/.md files."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such input file or folder")
    if path.is_file():
        if kind == "auto":
            suffix = path.suffix.lower()
            kind = "parquet" if suffix == ".parquet" else "jsonl" if suffix in JSONL_SUFFIXES else "text"
        return kind, [path]
    found = sorted((p for p in path.rglob("*") if p.is_file() and _visible(path, p)),
                   key=lambda p: p.relative_to(path).as_posix())
    by_kind = {"parquet": [p for p in found if p.suffix.lower() == ".parquet"],
               "jsonl": [p for p in found if p.suffix.lower() in JSONL_SUFFIXES],
               "text": [p for p in found if p.suffix.lower() in TEXT_SUFFIXES]}
    if kind == "auto":
        kind = next((k for k in KINDS if by_kind[k]), "text")
    if not by_kind[kind]:
        raise ShardError(f"{path}: the folder holds no {kind} files "
                         f"({', '.join(TEXT_SUFFIXES) if kind == 'text' else kind})")
    return kind, by_kind[kind]


@dataclass
class Source:
    """The rows of INPUT, in order: row i has id i."""

    root: str
    kind: str
    column: str
    max_words: int
    overlap: int
    files: List[str]

    @staticmethod
    def open(path: "str | os.PathLike[str]", kind: str = "auto", column: str = "text",
             max_words: int = 150, overlap: int = 30) -> "Source":
        if kind not in KINDS + ("auto",):
            raise ValueError(f"input format must be auto, {', '.join(KINDS)}; got {kind!r}")
        chunk_text("", max_words, overlap)  # bad chunk sizes raise ValueError now
        root = Path(path).resolve()
        kind, files = input_files(root, kind)
        return Source(str(root), kind, column, max_words, overlap, [str(f) for f in files])

    def _rel(self, f: str) -> str:
        root = Path(self.root)
        return Path(f).name if root.is_file() else Path(f).relative_to(root).as_posix()

    def fingerprint(self) -> str:
        """Changes when a file is added, removed, resized or touched, or the reading changes."""
        h = hashlib.sha256(json.dumps([self.kind, self.column, self.max_words, self.overlap]).encode())
        for f in self.files:
            st = os.stat(f)
            h.update(f"{self._rel(f)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    @property
    def extra_columns(self) -> Dict[str, pa.DataType]:
        """Columns besides id/text that a shard keeps: where a text folder's chunk came from."""
        return {"path": pa.string(), "chunk": pa.int32()} if self.kind == "text" else {}

    def batches(self) -> Iterator[Dict[str, List[Any]]]:
        """The rows as dicts of lists ({"text": [...]} plus extra_columns), in id order."""
        if self.kind == "parquet":
            for f in self.files:
                pf = pq.ParquetFile(f)
                schema = pf.schema_arrow
                if self.column not in schema.names:
                    raise ShardError(f"{f}: no column {self.column!r} (columns: {', '.join(schema.names)})")
                if not (pa.types.is_string(schema.field(self.column).type)
                        or pa.types.is_large_string(schema.field(self.column).type)):
                    raise ShardError(f"{f}: column {self.column!r} is {schema.field(self.column).type}, expected strings")
                for b in pf.iter_batches(columns=[self.column], batch_size=8192):
                    if b.column(0).null_count:
                        raise ShardError(f"{f}: column {self.column!r} has nulls, expected a string in every row")
                    yield {"text": b.column(0).to_pylist()}
        elif self.kind == "jsonl":
            for f in self.files:
                texts = []
                with open(f, encoding="utf-8") as fh:
                    for line_no, line in enumerate(fh, 1):
                        if not line.strip():
                            continue
                        try:
                            rec = json.loads(line)
                        except json.JSONDecodeError as e:
                            raise ShardError(f"{f}:{line_no}: not JSON: {e.msg}") from None
                        if not isinstance(rec, dict) or not isinstance(rec.get(self.column), str):
                            raise ShardError(f"{f}:{line_no}: expected an object with a string {self.column!r}")
                        texts.append(rec[self.column])
                        if len(texts) == 8192:
                            yield {"text": texts}
                            texts = []
                if texts:
                    yield {"text": texts}
        else:
            for f in self.files:
                chunks = chunk_text(Path(f).read_bytes().decode("utf-8", "replace"), self.max_words, self.overlap)
                if chunks:
                    yield {"text": chunks, "path": [self._rel(f)] * len(chunks), "chunk": list(range(len(chunks)))}

    def count(self) -> int:
        if self.kind == "parquet":
            return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)
        return sum(len(b["text"]) for b in self.batches())


@dataclass
class Manifest:
    """OUTDIR/_halfbyte_manifest.json: what the shards were made from and how they are cut."""

    format: str
    input: str
    input_kind: str
    input_fingerprint: str
    column: str
    model: str
    model_sha256: str
    dtype: str
    normalize: Optional[bool]
    max_words: int
    overlap: int
    rows: int
    shard_rows: int

    @property
    def shards(self) -> int:
        return -(-self.rows // self.shard_rows)

    def shard_range(self, k: int) -> Tuple[int, int]:
        return k * self.shard_rows, min((k + 1) * self.shard_rows, self.rows)

    def differences(self, other: "Manifest") -> List[str]:
        skip = {"input", "model"}  # paths may be spelled differently; what they hold must match
        a, b = asdict(self), asdict(other)
        return [f"{k}: {a[k]!r} now, {b[k]!r} before" for k in a if k not in skip and a[k] != b[k]]


def shard_path(outdir: Path, k: int) -> Path:
    return outdir / f"part-{k:05d}.parquet"


def open_outdir(outdir: Path, manifest: Manifest) -> List[int]:
    """Create OUTDIR with its manifest, or check an existing one against this run; remove
    leftovers of interrupted writes; return the shards still to do."""
    outdir.mkdir(parents=True, exist_ok=True)
    mpath = outdir / MANIFEST
    if mpath.exists():
        try:
            old = Manifest(**json.loads(mpath.read_text()))
        except (ValueError, TypeError) as e:
            raise ShardError(f"{mpath}: not a halfbyte shard manifest ({e})") from None
        diff = manifest.differences(old)
        if diff:
            raise ShardError(f"{outdir} holds shards of another job ({'; '.join(diff)}): "
                             "use another output folder, or delete this one to start over")
    else:
        text = json.dumps(asdict(manifest), indent=1) + "\n"
        _write_then_rename(mpath, lambda tmp: tmp.write_text(text))
    for tmp in [*outdir.glob(".part-*.tmp*"), *outdir.glob(f".{MANIFEST}.tmp*")]:
        tmp.unlink()
    todo = []
    for k in range(manifest.shards):
        p = shard_path(outdir, k)
        lo, hi = manifest.shard_range(k)
        if p.exists():
            try:
                if pq.read_metadata(p).num_rows == hi - lo:
                    continue
            except (OSError, pa.ArrowInvalid):
                pass
            p.unlink()  # not a complete shard: redo it
        todo.append(k)
    return todo


def _write_then_rename(path: Path, write: Callable[[Path], Any]) -> None:
    """write(tmp) to a hidden temporary name beside path, flushed to disk, then renamed:
    path is either absent or complete (open_outdir removes leftovers of a crash)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ShardWriter:
    """Collects a shard's rows as they come back (in any order, once each: a row seen
    twice is counted and dropped) and writes the shard when its last row arrives."""

    def __init__(self, outdir: Path, manifest: Manifest, extra: Dict[str, pa.DataType]) -> None:
        self.outdir, self.m, self.extra = outdir, manifest, extra
        self.open: Dict[int, Dict[str, Any]] = {}
        self.duplicates = 0
        self.written: List[int] = []

    def add(self, batch: Dict[str, np.ndarray]) -> int:
        """Take a batch of results (id, text_sha256, embedding, extra columns); returns
        the number of new rows."""
        ids = np.asarray(batch["id"], dtype=np.int64)
        new = 0
        for k in np.unique(ids // self.m.shard_rows):
            sel = np.nonzero(ids // self.m.shard_rows == k)[0]
            lo, hi = self.m.shard_range(int(k))
            st = self.open.setdefault(int(k), {"seen": np.zeros(hi - lo, bool), "parts": []})
            local = ids[sel] - lo
            fresh = ~st["seen"][local] & _first_occurrence(local)
            self.duplicates += int((~fresh).sum())
            sel, local = sel[fresh], local[fresh]
            st["seen"][local] = True
            st["parts"].append({c: batch[c][sel] for c in ("id", "text_sha256", "embedding", *self.extra)})
            new += len(sel)
            if st["seen"].all():
                self._write(int(k), st["parts"])
                del self.open[int(k)]
        return new

    def _write(self, k: int, parts: List[Dict[str, np.ndarray]]) -> None:
        cols = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
        order = np.argsort(cols["id"], kind="stable")
        emb = np.ascontiguousarray(cols["embedding"][order], dtype=np.float32)
        dim = emb.shape[1]
        arrays = {"id": pa.array(cols["id"][order], pa.int64()),
                  "text_sha256": pa.array(cols["text_sha256"][order].tolist(), pa.string()),
                  "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim)}
        for c, t in self.extra.items():
            arrays[c] = pa.array(cols[c][order].tolist(), t)
        meta = {b"halfbyte": json.dumps({"format": FORMAT, "shard": k, "model_sha256": self.m.model_sha256,
                                         "dtype": self.m.dtype}).encode()}
        table = pa.table(arrays).replace_schema_metadata(meta)
        _write_then_rename(shard_path(self.outdir, k), lambda tmp: pq.write_table(table, tmp))
        self.written.append(k)


def _first_occurrence(local: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each value in local (duplicates within one batch)."""
    first = np.zeros(local.size, bool)
    first[np.unique(local, return_index=True)[1]] = True
    return first
