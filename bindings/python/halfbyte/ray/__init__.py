"""halfbyte on Ray: embed or classify a Ray Dataset with halfbyte encoders, one model
load per actor, across every node of an existing Ray cluster.

    import ray, halfbyte.ray
    ds = ray.data.read_parquet("s3://bucket/chunks/")          # a column "text"
    ds = halfbyte.ray.embed_dataset(ds, "/models/all-MiniLM-L6-v2", threads_per_actor=2)
    ds.write_parquet("/data/embeddings/")                        # + column "embedding"

``pip install 'halfbyte[ray]'`` brings Ray Data. Both functions build on
``Dataset.map_batches`` with a callable class: each actor loads the model once,
reserves ``num_cpus`` equal to its threads (so a node runs node_cpus // threads
actors and nothing is oversubscribed), and Ray restarts actors and retries their
batches when a node or a worker dies. Before returning, the driver checks on every
alive node that the model there has the driver's SHA-256 (``model_sha256``) and
raises ModelMismatchError naming each node that differs; actors check again when
they start (nodes that join later). The model reaches the nodes from shared storage
(``model_source="shared"``: the same path on every node, ``~`` expanded per node) or
from the driver through Ray's object store (``"object_store"``: written once per
node under ``$HALFBYTE_CACHE_DIR`` or ``~/.cache/halfbyte``). Actors on one node
read the model file through the same page cache; weights quantized at load
(``dtype`` differing from the file's) are private to each actor (docs/scale.md: an
actor's memory is mostly its Python and Ray, not the model).

The command line, for Parquet, JSONL or a folder of text files, with resumable
Parquet shards: ``halfbyte embed --ray [ADDRESS] -m MODEL -i INPUT -o OUTDIR``
(``python -m halfbyte.ray embed ...``); see docs/scale.md.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple, Union

try:
    import ray
    import ray.data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("halfbyte.ray needs Ray Data: pip install 'halfbyte[ray]' "
                      "(or pip install 'ray[data]')") from e

from ._model import ModelMismatchError, ModelSpec, check_nodes, make_spec, model_sha256
from ._udf import ClassifyUDF, EmbedUDF

__all__ = ["ModelMismatchError", "classify_dataset", "embed_dataset", "model_sha256", "plan_actors"]

PathLike = Union[str, "os.PathLike[str]"]
#: Threads per actor when threads_per_actor is None: the smallest node's CPUs, at most this.
MAX_DEFAULT_THREADS = 8


def plan_actors(actors: Optional[int], threads_per_actor: Optional[int]) -> Tuple[int, int]:
    """(actors, threads per actor) for the connected cluster. threads_per_actor None:
    the CPU count of the smallest node with CPUs, capped at MAX_DEFAULT_THREADS (one
    actor per node on equal nodes); actors None: as many as fit, sum over nodes of
    node_cpus // threads."""
    if threads_per_actor is not None and (not isinstance(threads_per_actor, int) or threads_per_actor < 1):
        raise ValueError(f"threads_per_actor must be a positive int, got {threads_per_actor!r}")
    if actors is not None and (not isinstance(actors, int) or actors < 1):
        raise ValueError(f"actors must be a positive int, got {actors!r}")
    if not ray.is_initialized():
        ray.init()
    cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    cpus = [c for c in cpus if c > 0]
    if not cpus:
        raise RuntimeError("halfbyte.ray: the Ray cluster has no node with CPUs")
    threads = threads_per_actor or min(min(cpus), MAX_DEFAULT_THREADS)
    fit = sum(c // threads for c in cpus)
    if fit == 0:
        raise ValueError(f"threads_per_actor={threads} fits on no node (CPUs per node: {sorted(set(cpus))})")
    return (actors or fit), threads


def _check_args(batch_size: int, column: str) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(column, str) or not column:
        raise ValueError(f"column must be a column name, got {column!r}")


def _map(ds: "ray.data.Dataset", udf: type, kwargs: Dict[str, Any], spec: ModelSpec, batch_size: int,
         actors: Optional[int], threads_per_actor: Optional[int], check: bool) -> "ray.data.Dataset":
    n_actors, threads = plan_actors(actors, threads_per_actor)
    if check:
        check_nodes(spec)
    # Autoscaling pool (1..n): the job goes on with the actors left when a node leaves.
    pool = ray.data.ActorPoolStrategy(min_size=1, max_size=n_actors, initial_size=n_actors)
    return ds.map_batches(udf, fn_constructor_kwargs=dict(kwargs, spec=spec, threads=threads),
                          batch_size=batch_size, batch_format="numpy", num_cpus=threads, compute=pool)


def embed_dataset(ds: "ray.data.Dataset", model: PathLike, column: str = "text", dtype: str = "q8_0",
                  batch_size: int = 256, actors: Optional[int] = None, threads_per_actor: Optional[int] = None,
                  *, normalize: Optional[bool] = None, output_column: str = "embedding",
                  max_length: Optional[int] = None, model_source: str = "shared",
                  check_nodes: bool = True) -> "ray.data.Dataset":
    """``ds`` with a column ``output_column``: float32 [dim] embeddings (a fixed-shape
    tensor column) of the strings in ``column``, as ``halfbyte.Encoder(model,
    dtype).embed(texts, normalize=normalize)`` gives them in one process (the same
    numbers: a text's embedding does not depend on its batch).

    batch_size: rows per actor call (packed into forward passes of 64 texts);
    actors / threads_per_actor: see plan_actors; model_source: "shared" or
    "object_store" (see the module doc). Lazy like any Dataset transform, except for
    the node check, which runs now (check_nodes=False skips it; actors still check).
    A null or non-string text fails the job with TypeError naming the column."""
    _check_args(batch_size, column)
    spec = make_spec(model, model_source)
    kwargs = dict(dtype=dtype, column=column, max_length=max_length, inner_batch=64, normalize=normalize,
                  output_column=output_column)
    return _map(ds, EmbedUDF, kwargs, spec, batch_size, actors, threads_per_actor, check_nodes)


def classify_dataset(ds: "ray.data.Dataset", model: PathLike, column: str = "text", dtype: str = "q8_0",
                     batch_size: int = 256, actors: Optional[int] = None, threads_per_actor: Optional[int] = None,
                     *, function_to_apply: Optional[str] = None, all_scores: bool = False,
                     max_length: Optional[int] = None, model_source: str = "shared",
                     check_nodes: bool = True) -> "ray.data.Dataset":
    """``ds`` with columns ``label`` (the best label, str) and ``score`` (its score,
    float32), as ``halfbyte.Encoder(model).classify(texts)`` gives them; with
    all_scores=True also ``scores``: float32 [n_labels] in the head's label order
    (``Encoder.labels``). function_to_apply: "softmax", "sigmoid" or "none" (None:
    per the model's problem_type). Other arguments as embed_dataset. A model without
    a classification head fails the job with ValueError."""
    _check_args(batch_size, column)
    spec = make_spec(model, model_source)
    kwargs = dict(dtype=dtype, column=column, max_length=max_length, inner_batch=64,
                  function_to_apply=function_to_apply, all_scores=all_scores)
    return _map(ds, ClassifyUDF, kwargs, spec, batch_size, actors, threads_per_actor, check_nodes)

