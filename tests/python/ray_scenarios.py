"""Ray cluster scenarios for test_ray.py, each run as

    ip netns exec NS python3 ray_scenarios.py SCENARIO WORKDIR MODEL [ARGS...]

inside a network namespace where only `lo` is up, so that every Ray node is
127.0.0.1 and nothing outside the machine can be reached. Each scenario starts its
own cluster (ray.cluster_utils.Cluster: a head and a worker node, 1 CPU each),
writes its rows to WORKDIR (npz / Parquet) and prints one JSON line of facts for
the test to check; the test compares the rows with single-process halfbyte.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import ray
import ray.data
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import halfbyte.ray as hray
from encoder_texts import prose

N_EMBED = int(os.environ.get("HALFBYTE_RAY_ROWS", "20000"))


CLUSTERS = []


def start(worker_env=None):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1, env_vars=worker_env or {})
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    cluster.wait_for_nodes()
    CLUSTERS.append(cluster)
    ray.data.DataContext.get_current().enable_progress_bars = False
    return cluster, worker


@ray.remote(num_cpus=0)
def _here():
    return ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()


def addresses():
    """Each alive node's address as Ray lists it and as a task pinned there sees it."""
    nodes = [n for n in ray.nodes() if n["Alive"]]
    seen = ray.get([_here.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote() for n in nodes])
    return {"listed": sorted(n["NodeManagerAddress"] for n in nodes), "in_tasks": sorted(ip for ip, _ in seen),
            "gcs": ray.get_runtime_context().gcs_address}


def dataset(texts, blocks=40):
    return ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=blocks)


def collect(ds, on_rows=None):
    """(ids, embeddings) of every row the job returns, in arrival order; on_rows(n)
    is called after each batch with the rows received so far."""
    ids, embs = [], []
    for b in ds.iter_batches(batch_format="numpy", batch_size=None):
        ids.append(b["id"])
        embs.append(b["embedding"])
        if on_rows:
            on_rows(sum(len(i) for i in ids))
    return np.concatenate(ids), np.concatenate(embs)


def scenario_embed(work, model, clf):
    """20,000 texts over two nodes; a classifier; the model through the object store."""
    os.environ["HALFBYTE_CACHE_DIR"] = os.path.join(work, "cache")  # inherited by both nodes
    start()
    facts = {"addresses": addresses()}
    t = time.monotonic()
    ids, emb = collect(hray.embed_dataset(dataset(prose(N_EMBED)), model, batch_size=256))
    facts["embed_seconds"] = time.monotonic() - t
    np.savez(os.path.join(work, "embed.npz"), ids=ids, emb=emb)

    texts = prose(300, seed=7)
    rows = hray.classify_dataset(dataset(texts, 4), clf, all_scores=True).take_all()
    with open(os.path.join(work, "classify.json"), "w") as f:
        json.dump([{"id": int(r["id"]), "label": r["label"], "score": float(r["score"]),
                    "scores": [float(x) for x in r["scores"]]} for r in rows], f)

    ids, emb = collect(hray.embed_dataset(dataset(texts, 4), model, model_source="object_store"))
    np.savez(os.path.join(work, "object_store.npz"), ids=ids, emb=emb)
    facts["cache"] = sorted(os.listdir(os.path.join(work, "cache", "ray-models")))
    return facts


def scenario_mismatch(work, model, _):
    """The worker node's ~/minilm differs from the driver's (HOME differs per node)."""
    homes = [os.path.join(work, h) for h in ("home1", "home2")]
    for home in homes:
        os.makedirs(os.path.join(home, "minilm"), exist_ok=True)
        for name in os.listdir(model):
            src, dst = os.path.join(model, name), os.path.join(home, "minilm", name)
            if home == homes[1] and name == "model.safetensors":
                data = bytearray(open(src, "rb").read())
                data[-1000] ^= 1  # one bit of one weight: a stale or damaged copy
                open(dst, "wb").write(data)
            else:
                os.symlink(src, dst)
    os.environ["HOME"] = homes[0]  # the driver and the head node
    _, worker = start(worker_env={"HOME": homes[1]})
    facts = {"addresses": addresses(), "worker_node_id": worker.node_id,
             "head_node_id": ray.get_runtime_context().get_node_id()}
    try:
        hray.embed_dataset(dataset(["a", "b"], 2), "~/minilm")
        facts["error"] = None
    except hray.ModelMismatchError as e:
        facts["error"] = str(e)
    # From the object store every node gets the driver's bytes, whatever its disk holds.
    ids, emb = collect(hray.embed_dataset(dataset(prose(200, seed=3), 4), "~/minilm", model_source="object_store"))
    np.savez(os.path.join(work, "object_store.npz"), ids=ids, emb=emb)
    facts["caches"] = [sorted(os.listdir(os.path.join(h, ".cache", "halfbyte", "ray-models"))) for h in homes]
    return facts


def scenario_remove_node(work, model, _):
    """The worker node leaves (its processes killed) once 1,000 rows are back."""
    cluster, worker = start()
    state = {"removed_at": None}

    def on_rows(n):
        if state["removed_at"] is None and n >= 1000:
            state["removed_at"] = n
            cluster.remove_node(worker, allow_graceful=False)

    ids, emb = collect(hray.embed_dataset(dataset(prose(5000, seed=5), 50), model, batch_size=64), on_rows)
    np.savez(os.path.join(work, "rows.npz"), ids=ids, emb=emb)
    return {"removed_at": state["removed_at"], "alive_after": sum(n["Alive"] for n in ray.nodes())}


def _udf_workers():
    """Pids of the processes running an EmbedUDF actor (Ray titles them after the actor)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"MapBatches(EmbedUDF)" in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def scenario_kill_worker(work, model, _):
    """An actor's worker process gets SIGKILL once 1,000 rows are back."""
    start()
    state = {"killed": None}

    def on_rows(n):
        if state["killed"] is None and n >= 1000:
            victims = _udf_workers()
            state["killed"] = {"pid": victims[0] if victims else None, "of": len(victims)}
            if victims:
                os.kill(victims[0], signal.SIGKILL)

    ids, emb = collect(hray.embed_dataset(dataset(prose(5000, seed=6), 50), model, batch_size=64), on_rows)
    np.savez(os.path.join(work, "rows.npz"), ids=ids, emb=emb)
    return {"killed": state["killed"]}


def scenario_cli(work, model, cli):
    """`halfbyte embed --ray ADDRESS`: the driver killed after two shards, then a re-run;
    a folder of text files."""
    cluster, _ = start()
    command = json.loads(cli)  # the halfbyte executable, or [python, -m, halfbyte.ray]
    out = os.path.join(work, "out")
    args = ["embed", "--ray", cluster.address, "-m", model, "-i", os.path.join(work, "in.jsonl"), "-o", out,
            "--shard-rows", "300", "--batch-size", "64"]
    first = subprocess.Popen(command + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if os.path.isdir(out) and sum(f.startswith("part-") for f in os.listdir(out)) >= 2:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = {f: (os.stat(os.path.join(out, f)).st_ino, os.stat(os.path.join(out, f)).st_mtime_ns)
            for f in os.listdir(out) if f.startswith("part-")}
    second = subprocess.run(command + args, capture_output=True, text=True, timeout=600)
    after = {f: (os.stat(os.path.join(out, f)).st_ino, os.stat(os.path.join(out, f)).st_mtime_ns)
             for f in kept}
    folder = subprocess.run(command + ["embed", "--ray", cluster.address, "-m", model, "-i",
                                       os.path.join(work, "docs"), "-o", os.path.join(work, "docs_out"),
                                       "--max-words", "40", "--overlap", "8", "-q"],
                            capture_output=True, text=True, timeout=600)
    return {"first_rc": first.returncode, "kept": sorted(kept), "kept_untouched": after == kept,
            "second_rc": second.returncode, "second_out": second.stdout, "second_err": second.stderr[-3000:],
            "folder_rc": folder.returncode, "folder_err": folder.stderr[-3000:]}


def main():
    name, work, model, *rest = sys.argv[1:]
    facts = globals()[f"scenario_{name}"](work, model, *(rest or [None]))
    print("RESULT " + json.dumps(facts))
    sys.stdout.flush()
    ray.shutdown()
    for cluster in CLUSTERS:
        cluster.shutdown()


if __name__ == "__main__":
    main()
