"""``halfbyte embed --ray [ADDRESS] -m MODEL -i INPUT -o OUTDIR`` (also ``python -m
halfbyte.ray embed ...``): embed every row of INPUT on a Ray cluster into
resumable Parquet shards.

The driver (this process) reads INPUT and writes OUTDIR; the nodes need only the
model (shared storage or the object store) and halfbyte. Rows are numbered in
input order (Parquet files and JSONL files in path order, rows in file order; a
folder of .txt/.md files: files in path order, each cut into chunks as the RAG
example does) and cut into shards of --shard-rows rows; shard k is
OUTDIR/part-0000k.parquet with columns id (int64), text_sha256 (hex SHA-256 of the
UTF-8 text), embedding (fixed_size_list<float32>[dim]), plus path and chunk for a
text folder. A shard is written under a temporary name and renamed when all its
rows are in, so a re-run (same arguments) skips the complete shards and redoes only
the rest. OUTDIR/_halfbyte_manifest.json records the input's fingerprint (file names, sizes,
mtimes), the model's SHA-256 and the settings; a re-run with anything different is
refused. Work goes to Ray in windows of --window-rows rows (bounding the driver's
memory); each window is one Dataset.map_batches over the cluster's actors.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pyarrow as pa  # type: ignore[import-untyped]

from . import _map, plan_actors
from ._model import SOURCES, ModelMismatchError, check_nodes, make_spec
from ._shards import FORMAT, Manifest, ShardError, ShardWriter, Source, open_outdir
from ._udf import EmbedUDF


class _Progress:
    """rows done / total and rows per second on one stderr line, at most 4 updates a second."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self.start, self.run_rows, self.last = time.monotonic(), 0, 0.0

    def add(self, n: int) -> None:
        self.done += n
        self.run_rows += n
        now = time.monotonic()
        if self.enabled and (now - self.last >= 0.25 or self.done == self.total):
            self.last = now
            pct = 100.0 * self.done / self.total if self.total else 100.0
            sys.stderr.write(f"\rembed: {self.done}/{self.total} rows ({pct:5.1f}%), {self.rate():.0f} rows/s ")
            sys.stderr.flush()

    def rate(self) -> float:
        return self.run_rows / max(time.monotonic() - self.start, 1e-9)

    def close(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="halfbyte embed --ray", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ray", nargs="?", const="", default="", metavar="ADDRESS",
                   help="Ray cluster to use: 'auto', host:port or ray://host:port; none: RAY_ADDRESS "
                        "if set, else a Ray started here for this machine")
    p.add_argument("-m", "--model", required=True, help="encoder: a Hugging Face folder or a GGUF file")
    p.add_argument("-i", "--input", required=True, help="a Parquet file or folder, a JSONL file, or a folder of "
                                                         ".txt/.md files")
    p.add_argument("-o", "--output", required=True, help="output folder of Parquet shards (created)")
    p.add_argument("--input-format", default="auto", choices=("auto", "parquet", "jsonl", "text"))
    p.add_argument("--column", default="text", help="text column of Parquet/JSONL input (default text)")
    p.add_argument("--dtype", default="q8_0", help="weights: q8_0 (default), q4_0, f16, f32")
    p.add_argument("--no-normalize", action="store_true", help="skip the model's L2 normalization")
    p.add_argument("--batch-size", type=int, default=256, help="rows per actor call (default 256)")
    p.add_argument("--shard-rows", type=int, default=10000, help="rows per output shard (default 10000)")
    p.add_argument("--window-rows", type=int, default=200000,
                   help="rows handed to Ray at a time; bounds the driver's memory (default 200000)")
    p.add_argument("--actors", type=int, default=None, help="actors (default: as many as fit)")
    p.add_argument("--threads-per-actor", type=int, default=None,
                   help="threads (and CPUs reserved) per actor (default: the smallest node's CPUs, <= 8)")
    p.add_argument("--model-source", default="shared", choices=SOURCES,
                   help="where nodes get the model: the same path on every node (shared, default) or the "
                        "driver's copy through Ray's object store")
    p.add_argument("--max-words", type=int, default=150, help="text folders: words per chunk (default 150)")
    p.add_argument("--overlap", type=int, default=30, help="text folders: words shared by neighbour chunks")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _windows(source: Source, m: Manifest, todo: List[int], window_rows: int) -> Iterator[List[Any]]:
    """Per window, a list of pyarrow tables (one per shard still to do) with id, text, extras."""
    todo_set, extra = set(todo), list(source.extra_columns)
    rows, pos = 0, 0
    window: List[Any] = []
    cur: Optional[Tuple[int, Dict[str, List[Any]]]] = None  # (k, columns) of the shard being filled
    for batch in source.batches():
        n = len(batch["text"])
        start = 0
        while start < n:
            k = (pos + start) // m.shard_rows
            lo, hi = m.shard_range(k)
            take = min(n - start, hi - (pos + start))
            if k in todo_set:
                if cur is None or cur[0] != k:
                    cur = (k, {"id": [], "text": [], **{c: [] for c in extra}})
                cols = cur[1]
                cols["id"].extend(range(pos + start, pos + start + take))
                for c in ("text", *extra):
                    cols[c].extend(batch[c][start:start + take])
                if pos + start + take == hi:  # shard complete: into the window
                    window.append(pa.table(cols))
                    rows += hi - lo
                    cur = None
                    if rows >= window_rows:
                        yield window
                        window, rows = [], 0
            start += take
        pos += n
    if pos != m.rows:
        raise ShardError(f"{source.root}: the input changed while it was read ({pos} rows, planned {m.rows})")
    if window:
        yield window


def run(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    for name in ("batch_size", "shard_rows", "window_rows"):
        if getattr(a, name) < 1:
            raise SystemExit(f"halfbyte embed --ray: --{name.replace('_', '-')} must be >= 1")
    import ray
    import ray.data

    source = Source.open(a.input, a.input_format, a.column, a.max_words, a.overlap)
    out = Path(a.output)
    ray.init(address=a.ray or None, logging_level=logging.WARNING, log_to_driver=False)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # our own progress line instead
    ray.data.DataContext.get_current().enable_progress_bars = False
    spec = make_spec(a.model, a.model_source)
    normalize = False if a.no_normalize else None
    m = Manifest(FORMAT, source.root, source.kind, source.fingerprint(), a.column, str(Path(a.model).resolve()),
                 spec.sha256, a.dtype, normalize, a.max_words, a.overlap, source.count(), a.shard_rows)
    todo = open_outdir(out, m)
    done_rows = m.rows - sum(m.shard_range(k)[1] - m.shard_range(k)[0] for k in todo)
    n_actors, threads = plan_actors(a.actors, a.threads_per_actor)
    nodes = check_nodes(spec)
    if not a.quiet:
        print(f"{m.rows} rows in {m.shards} shards: {m.shards - len(todo)} complete, {len(todo)} to do; "
              f"{n_actors} actors x {threads} threads on {len(nodes)} nodes", file=sys.stderr)
    writer = ShardWriter(out, m, source.extra_columns)
    bar = _Progress(m.rows, done_rows, not a.quiet)
    kwargs = dict(dtype=a.dtype, column="text", max_length=None, inner_batch=64, normalize=normalize,
                  output_column="embedding", hash_column="text_sha256", drop_text=True)
    try:
        for window in _windows(source, m, todo, a.window_rows):
            # Blocks of a few actor calls: the unit Ray schedules and retries after a failure.
            step = 4 * a.batch_size
            blocks = [t.slice(i, step) for t in window for i in range(0, t.num_rows, step)]
            ds = _map(ray.data.from_arrow(blocks), EmbedUDF, kwargs, spec, a.batch_size, n_actors, threads, False)
            for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
                bar.add(writer.add(batch))
    finally:
        bar.close()
    if writer.open:
        missing = sorted(writer.open)
        raise ShardError(f"shards {missing} did not get all their rows back from Ray")
    print(f"{out}: wrote {len(writer.written)} shards ({bar.run_rows} rows, {bar.rate():.0f} rows/s), "
          f"skipped {m.shards - len(todo)} complete shards, {m.rows} rows in all"
          + (f"; dropped {writer.duplicates} rows Ray delivered twice" if writer.duplicates else ""))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "embed":
        print("usage: python -m halfbyte.ray embed --ray [ADDRESS] -m MODEL -i INPUT -o OUTDIR [options]\n"
              "       (python -m halfbyte.ray embed --help for the options)", file=sys.stderr)
        return 2
    try:
        return run(args[1:])
    except (ShardError, ModelMismatchError, FileNotFoundError, ValueError, ConnectionError) as e:
        print(f"halfbyte embed --ray: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhalfbyte embed --ray: interrupted; complete shards are kept, a re-run resumes", file=sys.stderr)
        return 130
