"""Prompt and decode speed, halfbyte vs llama.cpp (llama-cpp-python), on the same
GGUF files with the same threads, runs alternated (halfbyte, llama.cpp, halfbyte,
llama.cpp, ...) in one process; also bench_model's llama-bench style figures.

The prompt is the repository's README tokenized by halfbyte and cut to
n_prompt tokens (both systems get the same text; each adds its BOS); decode is
n_gen greedy tokens after it. halfbyte's times are its own (Model.generate's
prompt and decode timers), llama.cpp's are wall time around Llama.eval.
"""

import gc
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from .common import Skip, Skips, bench_binary, log, median, ratio, run_gbench

# (label, file name, folder: "repo" = <repo>/models, "made" = --model-dir)
MODELS = [
    ("SmolLM2 Q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf", "repo"),
    ("SmolLM2 Q4_0", "SmolLM2-135M-Instruct.Q4_0.gguf", "made"),
    ("SmolLM2 Q8_0", "SmolLM2-135M-Instruct.Q8_0.gguf", "made"),
    ("1.1B shape Q4_0", "tinyllama-1.1b-shape.Q4_0.gguf", "made"),
]
QUICK_MODELS = ["SmolLM2 Q4_0"]


def llama_cpp_missing() -> Optional[str]:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return "llama-cpp-python is not installed (bash .ci/peers, see ../shared/PEERS.md)"
    return None


def find_models(repo: str, model_dir: str, quick: bool, skips: Skips) -> List[Tuple[str, str]]:
    """(label, path) of the benchmark models, making the derived ones with
    bench/make_bench_models.py if missing (needs llama-cpp-python and the Q4_1 file)."""
    wanted = [m for m in MODELS if not quick or m[0] in QUICK_MODELS]
    path = {label: os.path.join(repo, "models", f) if where == "repo" else os.path.join(model_dir, f)
            for label, f, where in wanted}
    source = os.path.join(repo, "models", MODELS[0][1])
    missing = [label for label, _, where in wanted if where == "made" and not os.path.exists(path[label])]
    if missing:
        if not os.path.exists(source):
            pass  # reported below
        elif llama_cpp_missing():
            skips.add(", ".join(missing), "not made: bench/make_bench_models.py needs llama-cpp-python")
        else:
            log(f"models: making {', '.join(missing)} in {model_dir} (bench/make_bench_models.py)")
            script = os.path.join(repo, "bench", "make_bench_models.py")
            p = subprocess.run([sys.executable, script, model_dir], capture_output=True, text=True)
            if p.returncode != 0:
                skips.add("make_bench_models.py", (p.stderr.strip().splitlines() or ["failed"])[-1])
    found = []
    for label, _, _ in wanted:
        if os.path.exists(path[label]):
            found.append((label, path[label]))
        elif not os.path.exists(source):
            skips.add(label, f"{source} is missing (examples/fetch_smollm2.sh fetches it)")
        else:
            skips.add(label, f"{path[label]} is missing")
    return found


def prompt_text(repo: str, m, n_prompt: int) -> str:
    with open(os.path.join(repo, "README.md")) as f:
        text = f.read() * 8
    ids = m.tokenize(text)[:n_prompt]
    return m.detokenize(ids)  # control tokens (BOS) detokenize to nothing


def time_halfbyte(m, prompt: str, n_gen: int) -> Dict[str, float]:
    st = m._m.generate_stream(prompt, lambda p: True, n_gen, 0.0, 40, 0.95, 0.0, 1.0, None, [], False)
    return {"prompt": st["prompt_tokens_per_s"], "decode": st["decode_tokens_per_s"],
            "prompt_tokens": st["prompt_tokens"], "decode_tokens": st["generated_tokens"]}


def time_llama_cpp(llm, prompt: str, n_gen: int) -> Dict[str, float]:
    ids = llm.tokenize(prompt.encode(), add_bos=True)
    llm.reset()
    t = time.perf_counter()
    llm.eval(ids)
    pp = len(ids) / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(n_gen):
        llm.eval([llm.sample(top_k=1)])
    return {"prompt": pp, "decode": n_gen / (time.perf_counter() - t), "prompt_tokens": len(ids),
            "decode_tokens": n_gen}


def run_models(repo: str, models: List[Tuple[str, str]], threads: int, reps: int, n_prompt: int, n_gen: int,
               use_llama: bool) -> dict:
    import halfbyte

    n_ctx = n_prompt + n_gen + 16
    res = {"threads": threads, "reps": reps, "n_prompt": n_prompt, "n_gen": n_gen, "isa": halfbyte.isa(),
           "rows": []}
    if use_llama:
        import llama_cpp
        res["llama_cpp_version"] = llama_cpp.__version__
    for label, path in models:
        m = halfbyte.Model(path, n_ctx=n_ctx, n_threads=threads)
        prompt = prompt_text(repo, m, n_prompt)
        llm = None
        if use_llama:
            llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_threads=threads,
                                  n_threads_batch=threads, verbose=False)
        runs: Dict[str, List[dict]] = {"halfbyte": [], "llama.cpp": []}
        for _ in range(reps):
            runs["halfbyte"].append(time_halfbyte(m, prompt, n_gen))
            if llm is not None:
                runs["llama.cpp"].append(time_llama_cpp(llm, prompt, n_gen))
        row = {"model": label, "file": path, "size_mb": os.path.getsize(path) / 1e6}
        for system, rs in runs.items():
            if rs:
                row[system] = {k: median([r[k] for r in rs]) for k in rs[0]}
                row[system]["all_prompt"] = [r["prompt"] for r in rs]
                row[system]["all_decode"] = [r["decode"] for r in rs]
        if "llama.cpp" in row:
            row["ratio_prompt"] = ratio(row["halfbyte"]["prompt"], row["llama.cpp"]["prompt"])
            row["ratio_decode"] = ratio(row["halfbyte"]["decode"], row["llama.cpp"]["decode"])
        res["rows"].append(row)
        msg = f"models: {label}: halfbyte {row['halfbyte']['prompt']:.0f} / {row['halfbyte']['decode']:.1f}"
        if "llama.cpp" in row:
            msg += (f", llama.cpp {row['llama.cpp']['prompt']:.0f} / {row['llama.cpp']['decode']:.1f} tokens/s, "
                    f"ratio {row['ratio_prompt']:.2f}x / {row['ratio_decode']:.2f}x")
        log(msg)
        del m, llm
        gc.collect()
    return res


def run_bench_model(build_dir: Optional[str], models: List[Tuple[str, str]], threads: int, n_prompt: int,
                    n_gen: int) -> dict:
    """bench_model's pp/tg (llama-bench style: random tokens, tg from an empty cache), one run."""
    exe = bench_binary(build_dir, "bench_model")
    args = [f"--model={p}" for _, p in models] + [f"--threads={threads}", f"--n_prompt={n_prompt}",
                                                   f"--n_gen={n_gen}", "--benchmark_min_time=0.2"]
    log(f"models: {exe} {' '.join(args)}")
    data = run_gbench(exe, args, threads)
    label_of = {os.path.basename(p): label for label, p in models}
    out: Dict[str, dict] = {}
    for b in data.get("benchmarks", []):
        test, fname = b["name"].split("/")[:2]
        entry = out.setdefault(label_of.get(fname, fname), {})
        entry[test] = b.get("tokens/s")
        if "wGB/s" in b:
            entry[test + " wGB/s"] = b["wGB/s"]
    return out


# Run in a fresh interpreter per measurement: peak RSS (VmHWM; not ru_maxrss, which
# Linux carries over from the parent across fork and exec) minus the RSS after
# import, load time of Model(path, n_ctx=512), 64 greedy tokens.
_LOAD_SNIPPET = """
import json, sys, time
import halfbyte
def status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))
path, threads = sys.argv[1], int(sys.argv[2])
base = status_kb("VmRSS")
t = time.perf_counter()
m = halfbyte.Model(path, n_ctx=512, n_threads=threads)
load = time.perf_counter() - t
m.generate("The capital of France is", max_tokens=64)
peak = status_kb("VmHWM")
c = m.config
kv = 2 * 2 * c["n_layer"] * c["n_head_kv"] * c["head_dim"] * 512
print(json.dumps({"load_s": load, "peak_mb": (peak - base) / 1e3, "kv_mb": kv / 1e6}))
"""


def run_load(models: List[Tuple[str, str]], threads: int, reps: int) -> dict:
    """The inference issue's load goals (warm page cache): load time of a ~100 MB
    file < 0.2 s; peak RSS <= file + KV cache (fp16, n_ctx 512) + 30 MB."""
    out = {"threads": threads, "reps": reps, "rows": []}
    for label, path in models:
        runs = []
        for _ in range(reps + 1):  # the first one warms the page cache
            p = subprocess.run([sys.executable, "-c", _LOAD_SNIPPET, path, str(threads)], capture_output=True,
                               text=True, timeout=600)
            if p.returncode != 0:
                raise Skip(f"load of {path} failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
            runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
        runs = runs[1:]
        file_mb = os.path.getsize(path) / 1e6
        row = {"model": label, "file_mb": file_mb, "load_s": median([r["load_s"] for r in runs]),
               "peak_mb": median([r["peak_mb"] for r in runs]), "kv_mb": runs[0]["kv_mb"]}
        row["peak_goal_mb"] = file_mb + row["kv_mb"] + 30
        out["rows"].append(row)
        log(f"load: {label}: {row['load_s']:.3f} s, peak RSS {row['peak_mb']:.0f} MB "
            f"(goal <= {row['peak_goal_mb']:.0f} MB)")
    return out
