"""halfbyte.ray's overhead on one node, and an actor's throughput, in one run.

    python3 bench/ray_overhead.py                      # 3 alternated reps, both text kinds
    python3 bench/ray_overhead.py --quick              # 1 rep, few texts: checks that it runs
    python3 bench/ray_overhead.py --json /tmp/ray.json

Compares, with the same threads (--threads, default: all CPUs) and the same texts:
- single process: halfbyte.Encoder(model, n_threads=T).embed(texts) (model loaded
  beforehand, not timed);
- Ray: halfbyte.ray.embed_dataset over a single-node Ray (num_cpus=T, one actor
  with T threads), every row pulled back to the driver with iter_batches; timed from
  the call to the last row, so the actor's start and model load count against Ray;
  the time to the first row back is printed too (start-up plus one block).
Text kinds: "sentences" (tests/python/encoder_texts.py prose: 1-40 words, 4% long)
and "chunks" (150-word chunks, what the RAG example and `embed --ray` on a text
folder make: ~200 tokens each). The two systems alternate within each repetition;
medians over the reps. Goal (the Ray issue): Ray >= 85% of single-process.

Ray runs in a network namespace with only `lo` up (made here, needs root; the
script re-runs itself inside it) so that it binds 127.0.0.1 and reaches nothing
else. Don't run it beside a build.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))


def reexec_in_netns():
    if os.environ.get("HALFBYTE_IN_NETNS"):
        return
    name = f"hbbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        env = dict(os.environ, HALFBYTE_IN_NETNS=name, RAY_USAGE_STATS_ENABLED="0")
        rc = subprocess.run(["ip", "netns", "exec", name, sys.executable, *sys.argv], env=env).returncode
    finally:
        for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split():
            subprocess.run(["kill", "-9", pid])
        subprocess.run(["ip", "netns", "delete", name])
    sys.exit(rc)


def texts_of(kind, n):
    from encoder_texts import _WORDS, prose

    if kind == "sentences":
        return prose(n, seed=21)
    rng = random.Random(22)
    return [" ".join(rng.choice(_WORDS) for _ in range(150)) + "." for _ in range(n)]


def single(encoder, texts):
    t = time.perf_counter()
    out = encoder.embed(texts, batch_size=64)
    return len(texts) / (time.perf_counter() - t), out


def through_ray(model, texts, threads, batch_size):
    import ray.data
    import halfbyte.ray as hray

    ds = ray.data.from_items([{"id": i, "text": s} for i, s in enumerate(texts)],
                             override_num_blocks=max(1, len(texts) // (4 * batch_size)))
    ds = ds.materialize()  # the input in the object store before the clock starts
    t0 = time.perf_counter()
    out = hray.embed_dataset(ds, model, batch_size=batch_size, actors=1, threads_per_actor=threads,
                             check_nodes=False)
    first, ids, embs = None, [], []
    for b in out.iter_batches(batch_format="numpy", batch_size=None):
        if first is None:
            first = time.perf_counter() - t0
        ids.append(b["id"])
        embs.append(b["embedding"])
    t1 = time.perf_counter()
    ids = np.concatenate(ids)
    emb = np.concatenate(embs)[np.argsort(ids)]
    return len(texts) / (t1 - t0), first, emb


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.quick:
        a.reps, a.sentences, a.chunks = 1, 600, 80
    if os.geteuid() == 0:
        reexec_in_netns()
    else:
        sys.exit("ray_overhead.py: needs root to make a loopback-only network namespace for Ray")

    import ray
    import ray.data
    import halfbyte

    ray.init(num_cpus=a.threads, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    import logging

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    encoder = halfbyte.Encoder(a.model, n_threads=a.threads)
    results = {"threads": a.threads, "cpu": halfbyte.isa(), "batch_size": a.batch_size, "kinds": {}}
    for kind, n in (("sentences", a.sentences), ("chunks", a.chunks)):
        texts = texts_of(kind, n)
        through_ray(a.model, texts[: 4 * a.batch_size], a.threads, a.batch_size)  # warm-up: workers, imports
        one, total, firsts = [], [], []
        for _ in range(a.reps):
            r, ref = single(encoder, texts)
            one.append(r)
            rt, first, emb = through_ray(a.model, texts, a.threads, a.batch_size)
            total.append(rt)
            firsts.append(first)
            cos = (emb * ref).sum(1).min()
            assert cos >= 0.99999, f"Ray's embeddings differ from single-process ones (cosine {cos})"
        m1, mt, mf = statistics.median(one), statistics.median(total), statistics.median(firsts)
        results["kinds"][kind] = {"texts": n, "single_rows_s": m1, "ray_rows_s": mt, "ratio": mt / m1,
                                  "ray_first_row_s": mf, "reps": {"single": one, "ray": total, "first": firsts}}
        print(f"{kind:9s} {n:6d} texts, {a.threads} threads: single process {m1:8.1f} rows/s, "
              f"Ray {mt:8.1f} rows/s ({100 * mt / m1:5.1f}%), first row back after {mf:.1f} s")
    ray.shutdown()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
