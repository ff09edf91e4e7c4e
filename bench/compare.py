"""halfbyte beside its peers and the hardware limits, on this machine, in one run.

    python3 bench/compare.py                     # everything: ~15-25 minutes on 2 cores
    python3 bench/compare.py --write-perf        # ... and update docs/PERF.md's compare.py section
    python3 bench/compare.py --quick             # small shapes, 1 rep, SmolLM2 Q4_0 only: checks it all runs
    python3 bench/compare.py --only kernels --no-ort --threads 1

What it does, in order:
  roofline  bench_roofline: read GB/s (DRAM-sized array and 16 MiB, 1 and N
            threads), fp32 FMA and int8 dot peaks, the CPU model
            (--roofline-json FILE reads a JSON it wrote instead).
  models    halfbyte vs llama.cpp (llama-cpp-python) on the same GGUF files
            (SmolLM2-135M Q4_1, Q4_0, Q8_0, a TinyLlama-1.1B-shaped Q4_0; missing
            ones made by bench/make_bench_models.py), 512-token prompt and 128
            greedy tokens, runs alternated, medians and ratios; then bench_model's
            llama-bench style pp512 / tg128 for halfbyte; load time and peak RSS
            (fresh interpreters, warm page cache) against the inference issue's goals.
  kernels   halfbyte.matmul vs ONNX Runtime's MatMulNBits (accuracy_level 4 and
            0, block 32) on bench_matmul's shapes: GEMV (M = 1) in GB/s against
            the read-bandwidth roof, GEMM (M = 512) in GOP/s against the int8
            peak; the two checked to agree on one shape first. Then the kernels
            issue's goals from bench_matmul (GEMV vs DRAM read, GEMM vs int8
            peak and vs scalar, integer vs float GEMV, one row per ISA).
Writes bench/results/compare-<date>.json and .md, and the plots
(docs/plots/compare-{models,gemv,gemm}.png); with --quick all of it goes to
/tmp/halfbyte-compare/ instead, unless --out says where.

Peers are optional: a missing llama-cpp-python, onnxruntime/onnx, matplotlib,
model file or bench binary is skipped with a message (listed in the JSON under
"skipped"). Needs no network. Installs: `bash .ci/peers` (llama-cpp-python),
`python3 -m pip install onnxruntime onnx matplotlib`.
Bench binaries: cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release
-DHALFBYTE_BUILD_BENCH=ON && cmake --build build-bench --target bench_model bench_matmul bench_roofline.

The numbers are only as good as the machine is quiet: run it with nothing else
on the cores (bench_roofline flags contended runs, and the JSON keeps every rep).
"""

import argparse
import datetime
import json
import os
import shlex
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from benchlib import goals  # noqa: E402
from benchlib import kernels as kern  # noqa: E402
from benchlib import models as mod  # noqa: E402
from benchlib import report  # noqa: E402
from benchlib import roofline as roof  # noqa: E402
from benchlib.common import Skip, Skips, cpu_model, find_build_dir, log  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="threads for every system (default 2)")
    ap.add_argument("--reps", type=int, default=None, help="alternated repetitions (default 3; --quick: 1)")
    ap.add_argument("--quick", action="store_true", help="small shapes, 1 rep, SmolLM2 Q4_0 only")
    ap.add_argument("--only", choices=["models", "kernels", "roofline"], action="append",
                    help="run only these parts (repeatable; the roofline runs with kernels unless --no-roofline)")
    ap.add_argument("--no-roofline", action="store_true", help="do not run bench_roofline")
    ap.add_argument("--no-llama-cpp", action="store_true", help="leave llama.cpp out")
    ap.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    ap.add_argument("--build-dir", help="build folder with bench/bench_* (default: build/ or build-bench/)")
    ap.add_argument("--roofline-json", help="read bench_roofline --benchmark_format=json output instead of running it")
    ap.add_argument("--model-dir", default="/tmp/models", help="where the derived models are (made if missing)")
    ap.add_argument("--n-prompt", type=int, default=None, help="prompt tokens (default 512; --quick: 64)")
    ap.add_argument("--n-gen", type=int, default=None, help="decoded tokens (default 128; --quick: 16)")
    ap.add_argument("--out", help="folder for the JSON, Markdown and plots (default: bench/results and docs/plots; "
                                  "--quick: /tmp/halfbyte-compare)")
    ap.add_argument("--write-perf", action="store_true", help="replace docs/PERF.md's compare.py section")
    a = ap.parse_args(argv)
    a.reps = (1 if a.quick else 3) if a.reps is None else a.reps
    a.n_prompt = (64 if a.quick else 512) if a.n_prompt is None else a.n_prompt
    a.n_gen = (16 if a.quick else 128) if a.n_gen is None else a.n_gen
    if min(a.threads, a.reps, a.n_prompt, a.n_gen) < 1:
        ap.error("--threads, --reps, --n-prompt and --n-gen must be >= 1")
    return a


def versions() -> dict:
    out = {}
    for name in ("halfbyte", "llama_cpp", "onnxruntime", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # not installed, or broken: recorded as missing
            out[name] = None
    return out


def main(argv=None) -> int:
    a = parse_args(argv)
    parts = set(a.only or ["roofline", "models", "kernels"])
    if "kernels" in parts and not a.no_roofline:
        parts.add("roofline")  # the kernel tables are ratios to it
    skips = Skips()
    build_dir = find_build_dir(REPO, a.build_dir)
    if a.build_dir and build_dir is None:
        log(f"error: --build-dir {a.build_dir} is not a folder")
        return 2
    date = datetime.date.today().isoformat()
    cmd = "python3 bench/compare.py" + "".join(" " + shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    res = {"date": date, "command": cmd, "threads": a.threads, "reps": a.reps, "quick": a.quick,
           "build_dir": build_dir, "versions": versions(), "cpu": "unknown",
           "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "HALFBYTE_ISA")},
           "loadavg_start": load_average()}
    try:
        import halfbyte
    except ImportError:
        log("error: the halfbyte package is not importable (pip install . from the repository)")
        return 1
    halfbyte.set_num_threads(a.threads)

    if "roofline" in parts and not a.no_roofline:
        try:
            res["roofline"] = roof.run_roofline(build_dir, a.threads, a.quick, a.roofline_json)
            res["cpu"] = res["roofline"]["cpu_model"]
        except Skip as e:
            skips.add("roofline", str(e))
    if res["cpu"] == "unknown":
        res["cpu"] = cpu_model()

    if "models" in parts:
        use_llama = not a.no_llama_cpp
        why = None if not use_llama else mod.llama_cpp_missing()
        if why:
            skips.add("llama.cpp", why)
            use_llama = False
        models = mod.find_models(REPO, a.model_dir, a.quick, skips)
        if models:
            res["models"] = mod.run_models(REPO, models, a.threads, a.reps, a.n_prompt, a.n_gen, use_llama)
            try:
                res["bench_model"] = mod.run_bench_model(build_dir, models, a.threads, a.n_prompt, a.n_gen)
            except Skip as e:
                skips.add("bench_model", str(e))
            try:
                res["load"] = mod.run_load(models, a.threads, a.reps)
            except Skip as e:
                skips.add("load time and peak RSS", str(e))
        else:
            skips.add("models", "no model file found")

    if "kernels" in parts:
        use_ort = not a.no_ort
        why = None if not use_ort else kern.ort_missing()
        if why:
            skips.add("ONNX Runtime", why)
            use_ort = False
        probe = None
        if res.get("roofline") and not a.quick and not a.roofline_json:
            mib = int(res["roofline"]["dram_size"].replace("MiB", ""))
            probe = lambda: roof.read_probe(build_dir, a.threads, mib)  # noqa: E731
        res["kernels"] = kern.run_kernels(a.threads, a.reps, a.quick, use_ort, probe)
        if use_ort:
            res["kernels"]["onnxruntime_version"] = res["versions"]["onnxruntime"]
        try:
            res["goals"] = goals.run_goals(build_dir, a.threads, a.reps, a.quick, res.get("roofline"), probe)
        except Skip as e:
            skips.add("kernel goals (bench_matmul)", str(e))

    res["loadavg_end"] = load_average()
    res["skipped"] = skips.items
    write_outputs(a, res, skips)
    return 0


def load_average() -> Optional[float]:
    """1-minute load average: near 0 on a quiet machine (the figures are only then machine limits)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def write_outputs(a: argparse.Namespace, res: dict, skips: Skips) -> None:
    quick_default = a.quick and not a.out
    out_dir = a.out or ("/tmp/halfbyte-compare" if a.quick else os.path.join(REPO, "bench", "results"))
    plot_dir = a.out or ("/tmp/halfbyte-compare" if a.quick else os.path.join(REPO, "docs", "plots"))
    os.makedirs(out_dir, exist_ok=True)
    try:
        plots = report.plots(res, plot_dir)
    except Skip as e:
        skips.add("plots", str(e))
        plots = {}
    res["skipped"] = skips.items
    stem = os.path.join(out_dir, f"compare-{res['date']}")
    res["plots"] = {k: os.path.relpath(p, out_dir) for k, p in plots.items()}
    md = report.markdown(res)
    with open(stem + ".md", "w") as f:
        f.write(md)
    with open(stem + ".json", "w") as f:
        json.dump(res, f, indent=1)
    log(f"wrote {stem}.json, {stem}.md" + (f" and {len(plots)} plots in {plot_dir}" if plots else ""))
    print(md)
    if a.write_perf:
        if quick_default:
            log("note: --write-perf with --quick writes quick-run numbers into docs/PERF.md")
        docs = os.path.join(REPO, "docs")
        res["plots"] = {k: os.path.relpath(p, docs) for k, p in plots.items()}
        try:
            report.write_perf(os.path.join(docs, "PERF.md"), report.markdown(res))
        except Skip as e:
            log(f"error: {e}")


if __name__ == "__main__":
    sys.exit(main())
