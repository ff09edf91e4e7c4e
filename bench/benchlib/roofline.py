"""The machine's limits from bench_roofline: read bandwidth (DRAM-sized array and
16 MiB, 1 and N threads), fp32 FMA and int8 dot peaks, the CPU model."""

import json
from typing import Optional

from .common import Skip, bench_binary, log, run_gbench


def summarize(data: dict, threads: int) -> dict:
    """Turns bench_roofline's JSON into the figures compare.py uses."""
    ctx = data.get("context", {})
    out = {
        "cpu_model": ctx.get("cpu_model", "unknown"),
        "cpu_features": ctx.get("cpu_features", ""),
        "read_isa": ctx.get("roofline_read_isa", ""),
        "skipped": ctx.get("roofline_skipped", ""),
        "threads": threads,
        "read_gbs": {},      # "<size>/t<threads>" -> GB/s
        "fp32_gflops": {},   # "<isa>/t<threads>" -> GFLOP/s
        "int8_gops": {},     # "<isa>/t<threads>" -> GOP/s
        "amx_int8_gops": {},  # "amx/t<threads>" -> GOP/s (tile unit, kept apart from the vector peak)
        "contended": [],     # names whose cpu_share was < 0.9
    }
    sizes = []
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        parts = b["name"].split("/")
        t = next((p.split(":")[1] for p in parts if p.startswith("threads:")), "1")
        key = f"{parts[1]}/t{t}"
        if parts[0] == "read_bw":
            out["read_gbs"][key] = b.get("GB/s")
            if parts[1] not in sizes:
                sizes.append(parts[1])
        elif parts[0] == "fp32_fma":
            out["fp32_gflops"][key] = b.get("GFLOP/s")
        elif parts[0] == "int8_dot":
            out["int8_gops"][key] = b.get("GOP/s")
        elif parts[0] == "int8_tile":
            out["amx_int8_gops"][key] = b.get("GOP/s")
        if "CONTENDED" in b.get("label", ""):
            out["contended"].append(b["name"])
    # The first size registered is the DRAM one (largest); 16MiB is the L3-resident read.
    dram = sizes[0] if sizes else None
    out["dram_size"] = dram
    out["dram_read_gbs_1t"] = out["read_gbs"].get(f"{dram}/t1")
    out["dram_read_gbs"] = out["read_gbs"].get(f"{dram}/t{threads}", out["dram_read_gbs_1t"])
    out["l3_read_gbs"] = out["read_gbs"].get(f"16MiB/t{threads}")

    def best(table: dict, t: int):
        cands = [(v, k.split("/")[0]) for k, v in table.items() if k.endswith(f"/t{t}") and v]
        return max(cands) if cands else (None, None)

    out["fp32_peak_gflops"], out["fp32_isa"] = best(out["fp32_gflops"], threads)
    out["int8_peak_gops"], out["int8_isa"] = best(out["int8_gops"], threads)
    out["amx_int8_peak_gops"] = best(out["amx_int8_gops"], threads)[0]
    return out


def run_roofline(build_dir: Optional[str], threads: int, quick: bool, from_json: Optional[str] = None) -> dict:
    """Runs bench_roofline (or reads a JSON it wrote) and summarizes it."""
    if from_json:
        with open(from_json) as f:
            data = json.load(f)
        log(f"roofline: read {from_json}")
    else:
        exe = bench_binary(build_dir, "bench_roofline")
        args = [f"--roofline_threads={threads}", "--benchmark_min_time=" + ("0.05" if quick else "0.5")]
        if quick:
            args.append("--roofline_dram_mib=256")
        log(f"roofline: {exe} {' '.join(args)}")
        data = run_gbench(exe, args, threads)
    s = summarize(data, threads)
    if s["dram_read_gbs"] is None:
        raise Skip("bench_roofline reported no read bandwidth")
    log(f"roofline: {s['cpu_model']}; read {s['dram_size']} {s['dram_read_gbs']:.1f} GB/s "
        f"({threads} threads), int8 {s['int8_isa']} {s['int8_peak_gops'] or 0:.0f} GOP/s, "
        f"fp32 {s['fp32_isa']} {s['fp32_peak_gflops'] or 0:.0f} GFLOP/s")
    return s


def read_probe(build_dir: Optional[str], threads: int, dram_mib: int) -> Optional[float]:
    """One DRAM read-bandwidth measurement (N threads), run between kernel timings."""
    exe = bench_binary(build_dir, "bench_roofline")
    data = run_gbench(exe, [f"--roofline_threads={threads}", f"--roofline_dram_mib={dram_mib}",
                            f"--benchmark_filter=read_bw/{dram_mib}MiB/threads:{threads}/",
                            "--benchmark_min_time=0.3"], threads)
    for b in data.get("benchmarks", []):
        if not b.get("error_occurred"):
            return b.get("GB/s")
    return None
