"""The model a Ray job runs, as every node sees it: its SHA-256, where a node finds
it (shared storage or the driver's copy through the object store), and the check
that each node holds the same bytes as the driver before any row is processed."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

SOURCES = ("shared", "object_store")
_CHUNK = 1 << 20


class ModelMismatchError(RuntimeError):
    """A node's copy of the model differs from the driver's (or is missing there)."""


def _files(root: Path) -> List[Path]:
    """The regular files of a model folder, recursively (symbolic links followed, as in a
    Hugging Face cache), hidden ones skipped, in a fixed order."""
    found = []
    for d, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        found += [Path(d) / n for n in names if not n.startswith(".") and (Path(d) / n).is_file()]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def model_sha256(path: "str | os.PathLike[str]") -> str:
    """SHA-256 (hex) of a model: of the file's bytes for a file (GGUF); for a folder
    (Hugging Face), of the lines "<relative path>\\t<size>\\t<sha256 of the file>\\n" of
    every non-hidden file under it, sorted by path. ``~`` is expanded on the machine
    that calls this, so each node hashes its own copy of a path like ``~/models/x``."""
    p = Path(os.path.expanduser(os.fspath(path)))
    if p.is_file():
        return _file_sha256(p)
    if not p.is_dir():
        raise FileNotFoundError(f"{path}: no such model file or folder")
    files = _files(p)
    if not files:
        raise FileNotFoundError(f"{path}: the model folder holds no files")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(p).as_posix()}\t{f.stat().st_size}\t{_file_sha256(f)}\n".encode())
    return h.hexdigest()


def node_name() -> str:
    """This process's node as a message should name it: address, host name, Ray node id."""
    import ray

    try:
        ctx = ray.get_runtime_context()
        ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        return f"node {ip} ({socket.gethostname()}, id {ctx.get_node_id()[:12]})"
    except Exception:  # not in a Ray worker: name the host only
        return f"host {socket.gethostname()}"


def _pack(path: Path) -> Dict[str, bytes]:
    """A model as {relative path: bytes} ("" for a single file) for the object store."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {f.relative_to(path).as_posix(): f.read_bytes() for f in _files(path)}


def _cache_root() -> Path:
    root = os.environ.get("HALFBYTE_CACHE_DIR")
    return Path(root) if root else Path(os.path.expanduser("~/.cache/halfbyte"))


def _materialize(packed: Dict[str, bytes], sha256: str, name: str) -> Path:
    """Write the driver's model into this node's cache (once per node: concurrent actors
    each write a private temporary copy and rename it into place; the loser removes
    its copy) and return its path. A cached copy whose hash is wrong is replaced."""
    final_dir = _cache_root() / "ray-models" / sha256
    target = final_dir / name if "" in packed else final_dir
    if final_dir.exists():
        if model_sha256(target) == sha256:
            return target
        shutil.rmtree(final_dir, ignore_errors=True)  # corrupt or partial: write it again
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sha256[:16]}-{uuid.uuid4().hex[:8]}-", dir=final_dir.parent))
    try:
        for rel, data in packed.items():
            dest = tmp / (rel or name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        try:
            os.rename(tmp, final_dir)
        except OSError:  # another actor on this node was first
            if not final_dir.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass
class ModelSpec:
    """What a worker needs to find the model: the path as the driver gave it (expanded
    on each node), the driver's SHA-256, and for source="object_store" the reference
    to the packed bytes."""

    path: str
    sha256: str
    source: str = "shared"
    packed_ref: Any = None  # ray.ObjectRef of _pack(path), source == "object_store"
    name: str = "model"  # file name of a single-file model in the node cache

    def local_path(self) -> str:
        """The model on this node, checked against the driver's hash; raises
        ModelMismatchError naming the node when it differs or is missing."""
        if self.source == "object_store":
            import ray

            packed = ray.get(self.packed_ref)
            path = _materialize(packed, self.sha256, self.name)
        else:
            path = Path(os.path.expanduser(self.path))
        try:
            got = model_sha256(path)
        except FileNotFoundError as e:
            raise ModelMismatchError(f"{node_name()}: the model is missing: {e}") from None
        if got != self.sha256:
            raise ModelMismatchError(
                f"{node_name()}: the model at {path} has SHA-256 {got}, the driver's has {self.sha256}; "
                f"give every node the same file (or use model_source='object_store')")
        return os.fspath(path)


def make_spec(model: "str | os.PathLike[str]", source: str) -> ModelSpec:
    """The driver's side: hash the model (and ship it when source == "object_store")."""
    if source not in SOURCES:
        raise ValueError(f"model_source must be one of {', '.join(SOURCES)}, got {source!r}")
    raw = os.fspath(model)
    local = Path(os.path.expanduser(raw))
    sha = model_sha256(local)
    if source == "shared":
        return ModelSpec(raw, sha)
    import ray

    return ModelSpec(raw, sha, source, ray.put(_pack(local)), local.name if local.is_file() else "model")


def _check_here(spec: ModelSpec) -> Tuple[str, Optional[str]]:
    try:
        spec.local_path()
        return node_name(), None
    except Exception as e:  # reported per node by check_nodes
        return node_name(), str(e)


def check_nodes(spec: ModelSpec, timeout_s: float = 600.0) -> List[str]:
    """Run the hash check once on every alive node that has CPUs (a zero-CPU task
    pinned to it) and raise ModelMismatchError listing every node that failed.
    Returns the names of the nodes checked."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(num_cpus=0, max_retries=0)(_check_here)
    alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    nodes = [n for n in alive if n.get("Resources", {}).get("CPU", 0) > 0]
    refs = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(spec)
            for n in nodes]
    results = ray.get(refs, timeout=timeout_s)
    bad = [err for _, err in results if err]
    if bad:
        raise ModelMismatchError("the model differs between nodes:\n  " + "\n  ".join(bad))
    return [name for name, _ in results]
