"""Peak RSS of halfbyte and llama.cpp on the same GGUF files (docs/PERF.md, "Memory").

    python3 bench/memory_vs_llama_cpp.py MODEL.gguf [MODEL.gguf ...] [--ctx 512] [--tokens 64]

Each system runs in a fresh interpreter: load the model with n_ctx, generate
--tokens greedy tokens, and report the peak RSS (VmHWM) minus the RSS right after
importing the library (the interpreter's baseline; Linux /proc). halfbyte also prints
its own memory report (Model.memory()). llama.cpp comes from PyPI's
llama-cpp-python; without it, its column says so. Prints a Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys

PROMPT = "The capital of France is"

HALFBYTE = r'''
import json, sys
import halfbyte
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
base = status("VmRSS:")
m = halfbyte.Model(sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=2)
m.generate(sys.argv[4], max_tokens=int(sys.argv[3]))
peak = status("VmHWM:")
print(json.dumps({"peak": peak - base, "report": m.memory()}))
'''

LLAMA_CPP = r'''
import json, sys
import llama_cpp
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
base = status("VmRSS:")
m = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=2, verbose=False)
m(sys.argv[4], max_tokens=int(sys.argv[3]), temperature=0.0)
peak = status("VmHWM:")
print(json.dumps({"peak": peak - base}))
'''


def measure(code, path, ctx, tokens):
    out = subprocess.run([sys.executable, "-c", code, path, str(ctx), str(tokens), PROMPT], capture_output=True,
                         text=True, timeout=1800)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=64)
    a = ap.parse_args()
    try:
        import llama_cpp  # noqa: F401
        have_llama = True
    except ImportError:
        have_llama = False
        print("llama-cpp-python is not installed: llama.cpp's column is skipped "
              "(pip install llama-cpp-python, see docs/PERF.md)", file=sys.stderr)
    mb = lambda b: f"{b / 1e6:.0f} MB"  # noqa: E731
    print(f"n_ctx {a.ctx}, {a.tokens} generated tokens, peak RSS (VmHWM) minus the RSS after import\n")
    print("| file | size | KV cache (f16) | halfbyte peak | goal 1.15x (file + KV) + 16 MB | llama.cpp peak "
          "| halfbyte / llama.cpp |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in a.models:
        size = os.path.getsize(path)
        h = measure(HALFBYTE, path, a.ctx, a.tokens)
        if "error" in h:
            print(f"| {os.path.basename(path)} | {mb(size)} | | error: {h['error']} | | | |")
            continue
        kv = h["report"]["kv_cache"]
        goal = 1.15 * (size + kv) + 16e6
        l = measure(LLAMA_CPP, path, a.ctx, a.tokens) if have_llama else {"error": "not installed"}
        lp = mb(l["peak"]) if "peak" in l else l["error"]
        ratio = f"{h['peak'] / l['peak']:.2f}x" if "peak" in l else "-"
        print(f"| {os.path.basename(path)} | {mb(size)} | {mb(kv)} | {mb(h['peak'])} | {mb(goal)} "
              f"{'(met)' if h['peak'] <= goal else '(NOT met)'} | {lp} | {ratio} |")
        r = h["report"]
        print(f"<!-- {os.path.basename(path)}: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in r.items()) + " -->")


if __name__ == "__main__":
    main()
