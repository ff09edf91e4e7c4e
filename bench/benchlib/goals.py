"""The kernels issue's goals, from bench_matmul (the C++ kernels without Python in
the way), as ratios to bench_roofline's limits:

  GEMV Q4_0, weights >= 256 MB, N threads   >= 85% of the DRAM read bandwidth
  GEMM Q4_0, M = 512, K = N = 4096          >= 50% of the int8 peak, >= 10x scalar (M = 8)
  integer GEMV vs float GEMV, in cache      >= 2x (4096 x 4096, 1 thread)
  one row per ISA                           no ISA falls back silently

--quick uses the SmolLM2 shape (1536 x 576) instead and skips the DRAM case.
"""

import re
from typing import Dict, List, Optional

from .common import Skip, bench_binary, log, median, ratio, run_gbench


def _names(isa: str, isas: List[str], t: int, quick: bool) -> Dict[str, str]:
    """bench_matmul names of the goal rows. On an AMX machine (isa "amx") the vector
    kernels' goals are measured on avx512 (amx runs GEMV and the float path there),
    and the AMX issue's tile GEMM rows are added."""
    big, small = "N4096/K4096", "N1536/K576"
    shape = small if quick else big
    amx = isa == "amx"
    if amx:
        isa = "avx512"
    names = {
        "gemm": f"q4_0/{isa}/int/M{32 if quick else 512}/{shape}/t{t}",
        "gemm_scalar": f"q4_0/scalar/int/M8/{shape}/t{t}",
        "gemv_int": f"q4_0/{isa}/int/M1/{shape}/t1",
        "gemv_float": f"q4_0/{isa}/float/M1/{shape}/t1",
    }
    if not quick:
        names["gemv_dram"] = f"q4_0/{isa}/int/M1/N32768/K16384/t{t}"
    for other in isas:
        if other != "amx":  # GEMV on amx is avx512's kernel
            names[f"isa {other}"] = f"q4_0/{other}/int/M1/{shape}/t1"
    if amx:  # bench_matmul's amx rows: M in {16, 64, 512}; avx512 beside it at 64
        m = 64 if quick else 512
        names["gemm_amx"] = f"q4_0/amx/int/M{m}/{shape}/t{t}"
        names["gemm_avx512_same"] = f"q4_0/avx512/int/M{m}/{shape}/t{t}"
    return names


def run_goals(build_dir: Optional[str], threads: int, reps: int, quick: bool, roof: Optional[dict],
              bw_probe=None) -> dict:
    """Runs the goal benchmarks `reps` times (alternating with bw_probe(), a DRAM read
    measurement, when given) and returns the medians and ratios."""
    import halfbyte

    if threads not in (1, 2):
        raise Skip(f"bench_matmul registers 1 and 2 threads only (--threads {threads})")
    exe = bench_binary(build_dir, "bench_matmul")
    isa = halfbyte.isa()
    isas = list(halfbyte.available_isas())
    names = _names(isa, isas, threads, quick)
    if isa == "amx":
        isa = "avx512"
    flt = "^(" + "|".join(re.escape(n) for n in dict.fromkeys(names.values())) + ")/real_time$"
    args = [f"--benchmark_filter={flt}", "--benchmark_min_time=" + ("0.01" if quick else "0.3")]
    log(f"goals: {exe} {' '.join(args)}" + (f" (x{reps}, alternated with a DRAM read)" if bw_probe else ""))
    runs: Dict[str, List[dict]] = {}
    bw: List[float] = []
    for _ in range(reps):
        for b in run_gbench(exe, args, threads).get("benchmarks", []):
            if not b.get("error_occurred"):
                runs.setdefault(b["name"].replace("/real_time", ""), []).append(b)
        if bw_probe is not None:
            g = bw_probe()
            if g:
                bw.append(g)

    def fig(key: str, counter: str) -> Optional[float]:
        return median([b[counter] for b in runs.get(names[key], []) if counter in b])

    out = {"isa": isa, "threads": threads, "reps": reps, "benchmarks": names, "figures": {}, "goals": []}
    f = out["figures"]
    f["gemv_int_gbs"], f["gemv_float_gbs"] = fig("gemv_int", "wGB/s"), fig("gemv_float", "wGB/s")
    f["gemm_gops"], f["gemm_scalar_gops"] = fig("gemm", "GOP/s"), fig("gemm_scalar", "GOP/s")
    f["isa_gemv_gbs"] = {o: fig(f"isa {o}", "wGB/s") for o in isas if f"isa {o}" in names}
    roof = roof or {}
    int8_peak = roof.get("int8_gops", {}).get(f"vnni512/t{threads}") or roof.get("int8_peak_gops")

    def goal(what: str, measured: str, r: Optional[float], target: float, cmd_names: List[str]) -> None:
        out["goals"].append({"goal": what, "measured": measured, "ratio": r, "target": target,
                             "met": None if r is None else r >= target, "bench_matmul": cmd_names})

    if "gemv_dram" in names:
        g = fig("gemv_dram", "wGB/s")
        read = median(bw) or roof.get("dram_read_gbs")
        f["gemv_dram_gbs"], f["dram_read_gbs"] = g, read
        goal(f"GEMV Q4_0 302 MB, {threads} threads, vs DRAM read", f"{g or 0:.1f} vs {read or 0:.1f} GB/s",
             ratio(g, read), 0.85, [names["gemv_dram"]])
    shape = "M32 N1536 K576" if quick else "M512 K=N=4096"
    goal(f"GEMM Q4_0 {shape}, {threads} threads, vs int8 peak",
         f"{f['gemm_gops'] or 0:.0f} vs {int8_peak or 0:.0f} GOP/s",
         ratio(f["gemm_gops"], int8_peak), 0.5, [names["gemm"]])
    goal(f"same GEMM vs the scalar kernel (M8)", f"{f['gemm_gops'] or 0:.0f} vs {f['gemm_scalar_gops'] or 0:.1f} GOP/s",
         ratio(f["gemm_gops"], f["gemm_scalar_gops"]), 10.0, [names["gemm"], names["gemm_scalar"]])
    goal("integer GEMV vs float GEMV, in cache, 1 thread",
         f"{f['gemv_int_gbs'] or 0:.1f} vs {f['gemv_float_gbs'] or 0:.1f} GB/s",
         ratio(f["gemv_int_gbs"], f["gemv_float_gbs"]), 2.0, [names["gemv_int"], names["gemv_float"]])
    if "gemm_amx" in names:
        f["gemm_amx_gops"], f["gemm_avx512_same_gops"] = fig("gemm_amx", "GOP/s"), fig("gemm_avx512_same", "GOP/s")
        shape = "M64 N1536 K576" if quick else "M512 K=N=4096"
        goal(f"AMX tile GEMM Q4_0 {shape}, {threads} threads, vs avx512 (issue #9)",
             f"{f['gemm_amx_gops'] or 0:.0f} vs {f['gemm_avx512_same_gops'] or 0:.0f} GOP/s",
             ratio(f["gemm_amx_gops"], f["gemm_avx512_same_gops"]), 2.5, [names["gemm_amx"], names["gemm_avx512_same"]])
        amx_peak = roof.get("amx_int8_peak_gops")
        if amx_peak:
            goal(f"AMX tile GEMM Q4_0 {shape}, {threads} threads, vs AMX int8 peak",
                 f"{f['gemm_amx_gops'] or 0:.0f} vs {amx_peak:.0f} GOP/s",
                 ratio(f["gemm_amx_gops"], amx_peak), 0.15, [names["gemm_amx"]])
    for g in out["goals"]:
        met = {True: "met", False: "NOT met", None: "not measured"}[g["met"]]
        log(f"goals: {g['goal']}: {g['measured']} -> {g['ratio'] or 0:.2f} (goal {g['target']}) {met}")
    return out


def goals_table(g: dict) -> List[str]:
    rows = ["| kernels goal (`bench_matmul`) | measured | ratio | goal | met |", "|---|---|---:|---:|---|"]
    for x in g["goals"]:
        r = "-" if x["ratio"] is None else (f"{100 * x['ratio']:.0f}%" if x["target"] < 1 else f"{x['ratio']:.1f}x")
        t = f"{100 * x['target']:.0f}%" if x["target"] < 1 else f"{x['target']:g}x"
        met = {True: "yes", False: "**no**", None: "-"}[x["met"]]
        rows.append(f"| {x['goal']} | {x['measured']} | {r} | {t} | {met} |")
    per_isa = ", ".join(f"{k} {v:.3g}" for k, v in g["figures"]["isa_gemv_gbs"].items() if v)
    rows += ["", f"Each ISA, its own row (GEMV q4_0, 1 thread, GB/s): {per_isa}. Benchmarks: "
                 + ", ".join(f"`{n}`" for n in dict.fromkeys(g["benchmarks"].values())) + "."]
    return rows
