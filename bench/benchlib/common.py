"""Shared helpers of bench/compare.py: messages, skips, Google Benchmark runs, timing."""

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional


class Skip(Exception):
    """A part of the comparison cannot run here (missing peer, model or binary)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Skips:
    """Collects skip messages: printed at once, kept for the results JSON."""

    def __init__(self) -> None:
        self.items: List[Dict[str, str]] = []

    def add(self, what: str, why: str) -> None:
        self.items.append({"what": what, "why": why})
        log(f"skip: {what}: {why}")


def median(xs: List[float]) -> Optional[float]:
    return float(statistics.median(xs)) if xs else None


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a and b else None


def find_build_dir(repo: str, given: Optional[str]) -> Optional[str]:
    """The build folder with the bench binaries: `given`, else whichever of build/ and
    build-bench/ has more of bench_roofline, bench_model and bench_matmul."""
    if given:
        return os.path.abspath(given) if os.path.isdir(given) else None
    best, best_n = None, 0
    for d in (os.path.join(repo, "build"), os.path.join(repo, "build-bench")):
        n = sum(os.path.isfile(os.path.join(d, "bench", b)) for b in ("bench_roofline", "bench_model", "bench_matmul"))
        if n > best_n:
            best, best_n = os.path.abspath(d), n
    return best


def bench_binary(build_dir: Optional[str], name: str) -> str:
    """Path of bench/<name> in the build folder; Skip if it is not built."""
    if build_dir is None:
        raise Skip(f"no build folder with bench binaries (build with -DHALFBYTE_BUILD_BENCH=ON, "
                   f"target {name}, or pass --build-dir)")
    path = os.path.join(build_dir, "bench", name)
    if not os.path.isfile(path):
        raise Skip(f"{path} is not built (cmake --build {build_dir} --target {name})")
    return path


def run_gbench(binary: str, args: List[str], threads: int, timeout: float = 1800) -> dict:
    """Runs a Google Benchmark binary with JSON output; returns the parsed JSON.

    OMP_NUM_THREADS is set to `threads` (bench_roofline's "N threads")."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [binary, "--benchmark_format=json"] + args
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Skip(f"{os.path.basename(binary)} took more than {timeout:.0f} s")
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise Skip(f"{' '.join(cmd)} failed (exit {p.returncode}): {' | '.join(tail)}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise Skip(f"{os.path.basename(binary)} printed no valid JSON ({e})")


def seconds_per_call(fn: Callable[[], object], min_time: float, warmup: int = 2) -> float:
    """Mean wall time of fn() over a batch lasting at least min_time (after warm-up calls)."""
    for _ in range(warmup):
        fn()
    n, elapsed = 0, 0.0
    t0 = time.perf_counter()
    while elapsed < min_time or n < 3:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
    return elapsed / n


def cpu_model() -> str:
    """/proc/cpuinfo's model name (x86), else platform.processor(), else "unknown"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"
