"""compare.py's outputs from its results dict: Markdown tables, PNG plots
(matplotlib, each titled with the date, CPU and command) and the marked section
of docs/PERF.md."""

import os
import re
import textwrap
from typing import List, Optional

from .common import Skip, log
from .goals import goals_table

BEGIN, END = "<!-- compare.py:begin -->", "<!-- compare.py:end -->"
PLOTS = {"models": "compare-models.png", "gemv": "compare-gemv.png", "gemm": "compare-gemm.png"}


def _f(v: Optional[float], fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _x(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}x"


def roofline_table(r: dict) -> List[str]:
    t = r["threads"]
    rows = ["| limit (`bench_roofline`) | 1 thread | %d threads |" % t, "|---|---:|---:|"]
    for key, what in ((r["dram_size"], f"read bandwidth, {r['dram_size']} array (DRAM), GB/s"),
                      ("16MiB", "read bandwidth, 16 MiB (L3), GB/s")):
        rows.append(f"| {what} | {_f(r['read_gbs'].get(f'{key}/t1'), '{:.1f}')} | "
                    f"{_f(r['read_gbs'].get(f'{key}/t{t}'), '{:.1f}')} |")
    fams = {"fp32_gflops": "fp32 FMA", "int8_gops": "int8 dot", "amx_int8_gops": "int8 tile product"}
    for table, unit in (("fp32_gflops", "GFLOP/s"), ("int8_gops", "GOP/s"), ("amx_int8_gops", "GOP/s")):
        fam = fams[table]
        for isa in dict.fromkeys(k.split("/")[0] for k in r.get(table, {})):
            rows.append(f"| {fam} `{isa}`, {unit} | {_f(r[table].get(f'{isa}/t1'))} | "
                        f"{_f(r[table].get(f'{isa}/t{t}'))} |")
    if r.get("contended"):
        rows.append("")
        n = len(r["read_gbs"]) + len(r["fp32_gflops"]) + len(r["int8_gops"])
        rows.append(f"**Contended**: {len(r['contended'])} of {n} measurements got less than 90% of their cores "
                    f"(bench_roofline's cpu_share): not machine limits; rerun on a quiet machine.")
    return rows


def models_table(m: dict, bench_model: Optional[dict]) -> List[str]:
    n_p, n_g = m["n_prompt"], m["n_gen"]
    rows = [f"| model | file | halfbyte prompt / decode | llama.cpp prompt / decode | ratio prompt / decode |",
            "|---|---:|---:|---:|---:|"]
    for r in m["rows"]:
        hb, lc = r["halfbyte"], r.get("llama.cpp")
        peer = f"{lc['prompt']:.0f} / {lc['decode']:.1f}" if lc else "-"
        rows.append(f"| {r['model']} | {r['size_mb']:.0f} MB | {hb['prompt']:.0f} / {hb['decode']:.1f} | {peer} | "
                    f"{_x(r.get('ratio_prompt'))} / {_x(r.get('ratio_decode'))} |")
    rows += ["", f"tokens/s; {n_p}-token prompt then {n_g} greedy tokens, {m['threads']} threads, medians of "
                 f"{m['reps']} alternated runs; halfbyte `{m['isa']}`"
                 + (f", llama-cpp-python {m['llama_cpp_version']}" if m.get("llama_cpp_version") else "") + "."]
    if bench_model:
        rows += ["", f"`bench_model` (llama-bench style: random tokens, tg from an empty cache, one run):", "",
                 f"| model | pp{n_p} | tg{n_g} | tg weights GB/s |", "|---|---:|---:|---:|"]
        for label, e in bench_model.items():
            rows.append(f"| {label} | {_f(e.get(f'pp{n_p}'))} | {_f(e.get(f'tg{n_g}'), '{:.1f}')} | "
                        f"{_f(e.get(f'tg{n_g} wGB/s'), '{:.1f}')} |")
    return rows


def load_table(ld: dict) -> List[str]:
    rows = ["| model | file | load (warm) | goal | peak RSS | goal: file + KV + 30 MB |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in ld["rows"]:
        met_t = "" if r["file_mb"] > 150 else (" yes" if r["load_s"] < 0.2 else " **no**")
        met_m = " yes" if r["peak_mb"] <= r["peak_goal_mb"] else " **no**"
        load_goal = "< 0.2 s" + met_t if met_t else "-"
        rows.append(f"| {r['model']} | {r['file_mb']:.0f} MB | {r['load_s']:.2f} s | {load_goal} | "
                    f"{r['peak_mb']:.0f} MB | {r['peak_goal_mb']:.0f} MB{met_m} |")
    rows += ["", f"`halfbyte.Model(path, n_ctx=512)` in a fresh interpreter, then 64 greedy tokens; peak RSS minus "
                 f"the interpreter's; KV cache fp16; medians of {ld['reps']} after one warm-up load. The load-time "
                 f"goal is for a ~100 MB file."]
    return rows


def kernel_tables(k: dict, roof: Optional[dict]) -> List[str]:
    peers = [p for p in ("ort acc4", "ort acc0") if any(p in r["us"] for r in k["rows"])]
    rows: List[str] = []
    gemv = [r for r in k["rows"] if r["kind"] == "gemv"]
    gemm = [r for r in k["rows"] if r["kind"] == "gemm"]
    if gemv:
        head = "| GEMV M x N x K | weights | halfbyte us | GB/s |" + "".join(f" {p} us | GB/s |" for p in peers)
        head += "".join(f" vs {p} |" for p in peers) + " halfbyte / read roof |"
        rows += [head, "|---|" + "---:|" * (head.count("|") - 2)]
        for r in gemv:
            roof_bw = r.get("read_gbs_alternated") or (roof and (roof["dram_read_gbs"] if r["weights_mb"] > 64
                                                                  else roof["l3_read_gbs"]))
            line = (f"| {r['M']}x{r['N']}x{r['K']} ({r['what']}) | {r['weights_mb']:.1f} MB | "
                    f"{r['us']['halfbyte']:.0f} | {r['gbs']['halfbyte']:.1f} |")
            line += "".join(f" {_f(r['us'].get(p))} | {_f(r['gbs'].get(p), '{:.1f}')} |" for p in peers)
            line += "".join(f" {_x(r.get('speedup vs ' + p))} |" for p in peers)
            line += f" {_f(100 * r['gbs']['halfbyte'] / roof_bw if roof_bw else None)}% |"
            rows.append(line)
        rows += ["", "GB/s: each system's own weight bytes per call (Q4_0 blocks: 18 B per 32 weights for halfbyte; "
                     "MatMulNBits: 16 B of codes + a 4 B float scale). Read roof: DRAM read bandwidth for weights "
                     "over 64 MB (measured alternately with the kernel where marked in the JSON), else the 16 MiB "
                     "(L3) read. 'vs' columns: halfbyte's speed-up (peer time / halfbyte time).", ""]
    if gemm:
        head = "| GEMM M x N x K | halfbyte GOP/s |" + "".join(f" {p} GOP/s |" for p in peers)
        head += "".join(f" vs {p} |" for p in peers) + " halfbyte / int8 peak |"
        rows += [head, "|---|" + "---:|" * (head.count("|") - 2)]
        peak = roof and roof.get("int8_peak_gops")
        peak_what = f"bench_roofline's best int8 dot (`{roof.get('int8_isa')}`, {peak or 0:.0f} GOP/s)"
        if k.get("isa") == "amx" and roof and roof.get("amx_int8_peak_gops"):  # GEMMs run on tiles
            peak = roof["amx_int8_peak_gops"]
            peak_what = f"the AMX int8 tile peak (`tdpbssd`, {peak:.0f} GOP/s)"
        for r in gemm:
            line = f"| {r['M']}x{r['N']}x{r['K']} ({r['what']}) | {r['gops']['halfbyte']:.0f} |"
            line += "".join(f" {_f(r['gops'].get(p))} |" for p in peers)
            line += "".join(f" {_x(r.get('speedup vs ' + p))} |" for p in peers)
            line += f" {_f(100 * r['gops']['halfbyte'] / peak if peak else None)}% |"
            rows.append(line)
        rows += ["", "GOP/s: 2 M N K per second. int8 peak: " + (peak_what if peak else "not measured") + "."]
    s = k.get("sanity")
    if s:
        errs = ", ".join(f"{name} {v:.1e}" for name, v in s["max_rel_err"].items())
        rows += ["", f"Same weights, same input ({'x'.join(map(str, s['shape']))}): largest error relative to "
                     f"numpy on the dequantized weights: {errs} ({'agree' if s['ok'] else 'MISMATCH'})."]
    rows += ["", f"halfbyte `{k['isa']}`, int8 activations (`precision=\"int\"`); ONNX Runtime "
                 f"{k.get('onnxruntime_version', '-')} MatMulNBits, block 32, accuracy_level 4 (int8) and 0 (float); "
                 f"{k['threads']} threads each (intra_op_num_threads), medians of {k['reps']} alternated runs."]
    return rows


def markdown(res: dict) -> str:
    la = [res.get("loadavg_start"), res.get("loadavg_end")]
    busy = f" (load average {la[0]:.1f} at the start, {la[1]:.1f} at the end)" if None not in la else ""
    out = [f"Measured {res['date']} on {res['cpu']}, {res['threads']} threads{busy}, by", "",
           "```", res["command"], "```", ""]
    if res.get("roofline"):
        out += roofline_table(res["roofline"]) + [""]
    if res.get("models"):
        out += models_table(res["models"], res.get("bench_model")) + [""]
    if res.get("load"):
        out += load_table(res["load"]) + [""]
    if res.get("kernels"):
        out += kernel_tables(res["kernels"], res.get("roofline")) + [""]
    if res.get("goals"):
        out += goals_table(res["goals"]) + [""]
    for s in res.get("skipped", []):
        out.append(f"- skipped: {s['what']}: {s['why']}")
    for name, path in res.get("plots", {}).items():
        out.append(f"![{name}]({path})")
    return "\n".join(out).rstrip() + "\n"


# --- plots ----------------------------------------------------------------------

def _title(ax_or_fig, what: str, res: dict) -> None:
    cmd = "\n".join(textwrap.wrap(res["command"], 110))
    ax_or_fig.suptitle(f"{what}\n{res['date']} · {res['cpu']} · {res['threads']} threads\n{cmd}", fontsize=8)


def plots(res: dict, out_dir: str) -> dict:
    """Writes the PNGs; returns {name: path}. Skip if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Skip("matplotlib is not installed (python3 -m pip install matplotlib)")
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    roof = res.get("roofline") or {}
    colors = {"halfbyte": "tab:blue", "llama.cpp": "tab:orange", "ort acc4": "tab:green", "ort acc0": "tab:red"}

    m = res.get("models")
    if m and m["rows"]:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
        labels = [r["model"] for r in m["rows"]]
        for ax, key in zip(axes, ("prompt", "decode")):
            systems = [s for s in ("halfbyte", "llama.cpp") if any(s in r for r in m["rows"])]
            w = 0.8 / len(systems)
            for i, s in enumerate(systems):
                vals = [r[s][key] if s in r else 0 for r in m["rows"]]
                bars = ax.bar([j + i * w for j in range(len(labels))], vals, w, label=s, color=colors[s])
                ax.bar_label(bars, fmt="%.0f", fontsize=7)
            ax.set_xticks([j + w * (len(systems) - 1) / 2 for j in range(len(labels))], labels, fontsize=8)
            n = m["n_prompt"] if key == "prompt" else m["n_gen"]
            ax.set_title(f"{key} ({n} tokens)", fontsize=9)
            ax.set_ylabel("tokens/s")
            ax.legend(fontsize=8)
        _title(fig, "Model speed, halfbyte vs llama.cpp", res)
        fig.tight_layout()
        written["models"] = os.path.join(out_dir, PLOTS["models"])
        fig.savefig(written["models"], dpi=110)
        plt.close(fig)

    k = res.get("kernels")
    gemv = [r for r in (k or {}).get("rows", []) if r["kind"] == "gemv"]
    if gemv:
        fig, ax = plt.subplots(figsize=(8, 5))
        for s in ("halfbyte", "ort acc4", "ort acc0"):
            pts = [(r["weights_mb"], r["gbs"][s]) for r in gemv if s in r["gbs"]]
            if pts:
                ax.plot(*zip(*pts), "o-", label=s, color=colors[s])
        for key, style, what in (("dram_read_gbs", "--", f"DRAM read ({roof.get('dram_size')})"),
                                 ("l3_read_gbs", ":", "16 MiB (L3) read")):
            if roof.get(key):
                ax.axhline(roof[key], ls=style, color="k", lw=1)
                ax.text(0.01, roof[key], f"{what} {roof[key]:.0f} GB/s", transform=ax.get_yaxis_transform(),
                        fontsize=7, va="bottom")
        ax.set_xscale("log")
        ax.set_xlabel("weights (MB, Q4_0)")
        ax.set_ylabel("GB/s of weights read")
        ax.legend(fontsize=8)
        _title(fig, "GEMV (M = 1) vs the read-bandwidth roof", res)
        fig.tight_layout()
        written["gemv"] = os.path.join(out_dir, PLOTS["gemv"])
        fig.savefig(written["gemv"], dpi=110)
        plt.close(fig)

    gemm = [r for r in (k or {}).get("rows", []) if r["kind"] == "gemm"]
    if gemm:
        fig, ax = plt.subplots(figsize=(9, 5))
        systems = [s for s in ("halfbyte", "ort acc4", "ort acc0") if any(s in r["gops"] for r in gemm)]
        w = 0.8 / len(systems)
        for i, s in enumerate(systems):
            bars = ax.bar([j + i * w for j in range(len(gemm))], [r["gops"].get(s, 0) for r in gemm], w, label=s,
                          color=colors[s])
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([j + w * (len(systems) - 1) / 2 for j in range(len(gemm))],
                      [f"{r['M']}x{r['N']}x{r['K']}\n{r['what']}" for r in gemm], fontsize=7)
        for key, style, what in (("int8_peak_gops", "--", f"int8 peak ({roof.get('int8_isa')})"),
                                 ("fp32_peak_gflops", ":", f"fp32 FMA peak ({roof.get('fp32_isa')})")):
            if roof.get(key):
                ax.axhline(roof[key], ls=style, color="k", lw=1)
                ax.text(0.01, roof[key], f"{what} {roof[key]:.0f}", transform=ax.get_yaxis_transform(), fontsize=7,
                        va="bottom")
        ax.set_ylabel("GOP/s (2 M N K / s)")
        ax.legend(fontsize=8)
        _title(fig, "GEMM vs the int8 and fp32 peaks", res)
        fig.tight_layout()
        written["gemm"] = os.path.join(out_dir, PLOTS["gemm"])
        fig.savefig(written["gemm"], dpi=110)
        plt.close(fig)
    return written


def write_perf(perf_md: str, section: str) -> None:
    """Replaces the text between the compare.py markers of docs/PERF.md."""
    with open(perf_md) as f:
        text = f.read()
    pat = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pat.search(text):
        raise Skip(f"{perf_md} has no '{BEGIN}' ... '{END}' markers")
    text = pat.sub(lambda _: f"{BEGIN}\n{section}{END}", text, count=1)
    with open(perf_md, "w") as f:
        f.write(text)
    log(f"wrote the compare.py section of {perf_md}")
