"""Prompt and decode speed of halfbyte vs llama.cpp (llama-cpp-python) on GGUF
files, same threads, runs alternated (halfbyte, llama.cpp, ...); medians printed.
A thin wrapper over bench/compare.py's model part (benchlib/models.py), for one
file at a time; `python3 bench/compare.py --only models` runs the standard set.

    python3 bench/model_vs_llama_cpp.py MODEL.gguf [MODEL2.gguf ...] [--threads 2] [--reps 2] [--busy N]

--busy N runs N busy-looping processes meanwhile (a machine whose cores other
programs use too: docs/PERF.md, "Under contention").
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import models  # noqa: E402
from benchlib.common import log  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--busy", type=int, default=0, help="busy-looping processes to run meanwhile")
    a = ap.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.busy)]
    try:
        run(a)
    finally:
        for p in busy:
            p.kill()
            p.wait()


def run(a: argparse.Namespace) -> None:
    why = models.llama_cpp_missing()
    if why:
        log(f"skip: llama.cpp: {why}")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = [(os.path.basename(p), p) for p in a.model]
    res = models.run_models(repo, files, a.threads, a.reps, a.prompt_tokens, a.decode_tokens, use_llama=not why)
    for r in res["rows"]:
        hb = r["halfbyte"]
        print(f"{r['model']}: {hb['prompt_tokens']:.0f}-token prompt, {a.decode_tokens} decoded, {a.threads} "
              f"threads, isa {res['isa']}, {a.busy} busy processes")
        for system in ("halfbyte", "llama.cpp"):
            if system in r:
                print(f"  {system:10s} prompt {r[system]['prompt']:8.1f}  decode {r[system]['decode']:7.1f} tokens/s")
        if "ratio_prompt" in r:
            print(f"  ratio prompt {r['ratio_prompt']:.2f}x, decode {r['ratio_decode']:.2f}x")


if __name__ == "__main__":
    main()
