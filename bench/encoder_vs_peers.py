"""all-MiniLM-L6-v2 sentence embeddings: halfbyte beside its peers, in one run.

    python3 bench/encoder_vs_peers.py                  # everything, 3 alternated reps
    python3 bench/encoder_vs_peers.py --write-perf     # ... and update docs/PERF.md's encoders section
    python3 bench/encoder_vs_peers.py --quick          # 64 sentences, 1 rep: checks that it runs
    python3 bench/encoder_vs_peers.py --only halfbyte --only ort --json /tmp/enc.json

Systems (the encoder issue's peers): halfbyte q8_0 and f32 (default ISA); torch fp32
(transformers, also the accuracy reference); ONNX Runtime fp32 on an ONNX export
and int8 (quantize_dynamic, what Transformers.js's quantized models are);
CTranslate2 int8; OpenVINO on the fp32 ONNX file (its default CPU precision,
recorded); llama.cpp (llama-cpp-python) on halfbyte-written GGUFs f32 and q8_0,
one text per call. Every system: mean pooling over the attention mask, L2
normalization, 256 tokens at most, --threads threads, tokenization timed.

Measures: throughput (sentences/s) embedding all the texts in batches of 32
sorted by length (one warm-up pass, then timed); single-text latency (median of
30 calls); worst and mean cosine to torch fp32 over all the texts. Systems
alternate within each repetition (A B C ... A B C ...); medians over the reps;
halfbyte q8_0's throughput over each peer's. The goal checks: q8_0 >= 1.7x the
fastest peer (>= 4x on a machine with AMX) with worst cosine >= 0.999, and its
single-text latency <= 0.7x the best peer's.

Texts: 512 KJV Exodus verses (the `bible` command: apt-get install bible-kjv) or,
without it, deterministic English prose (tests/python/encoder_texts.py).
Peers are optional, each skipped with a one-line message: bash
bench/install_encoder_peers.sh installs them. Converted models (ONNX, CTranslate2,
GGUF) are kept in --work-dir and reused. No network.
"""

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folders only: no network at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchlib.common import Skip, Skips, cpu_model, log, median, ratio  # noqa: E402

DEFAULT_MODEL = os.path.join(REPO, "models", "all-MiniLM-L6-v2")
BATCH = 32
GOAL_COS = 0.999
GOAL_LATENCY = 0.7  # single text: at most this times the best peer's latency
BEGIN, END = "<!-- encoders:begin -->", "<!-- encoders:end -->"
SECTION = "## Encoders: MiniLM embeddings vs peers (`bench/encoder_vs_peers.py`)"


def parse_args(argv=None) -> argparse.Namespace:
    from benchlib.encoders import GROUPS, SYSTEMS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="HF folder of the model (default models/all-MiniLM-L6-v2)")
    ap.add_argument("--threads", type=int, default=2, help="threads for every system (default 2)")
    ap.add_argument("--reps", type=int, default=None, help="alternated repetitions (default 3; --quick: 1)")
    ap.add_argument("--quick", action="store_true",
                    help="64 sentences, 1 rep, 10 latency calls; skips peers whose slow conversion is not done yet")
    ap.add_argument("--convert", action="store_true", help="with --quick: make missing ONNX / CTranslate2 models")
    ap.add_argument("--only", action="append", choices=sorted(SYSTEMS + list(GROUPS)), metavar="SYSTEM",
                    help="run only these systems (repeatable): " + ", ".join(SYSTEMS + sorted(GROUPS)))
    ap.add_argument("--n-texts", type=int, default=None, help="sentences (default 512; --quick: 64)")
    ap.add_argument("--latency-calls", type=int, default=None,
                    help="single-text calls per rep (default 30; --quick: 10)")
    ap.add_argument("--json", help="write every measurement as JSON here")
    ap.add_argument("--work-dir", default="/tmp/halfbyte-encoder-bench", help="converted models, reused if present")
    ap.add_argument("--write-perf", action="store_true", help="replace docs/PERF.md's encoders section")
    a = ap.parse_args(argv)
    a.reps = (1 if a.quick else 3) if a.reps is None else a.reps
    a.n_texts = (64 if a.quick else 512) if a.n_texts is None else a.n_texts
    a.latency_calls = (10 if a.quick else 30) if a.latency_calls is None else a.latency_calls
    if min(a.threads, a.reps, a.n_texts, a.latency_calls) < 1:
        ap.error("--threads, --reps, --n-texts and --latency-calls must be >= 1")
    keys = []
    for o in a.only or SYSTEMS:
        for k in GROUPS.get(o, [o]):
            if k not in keys:
                keys.append(k)
    a.systems = [k for k in SYSTEMS if k in keys]
    return a


# ---------------------------------------------------------------- texts

def kjv_exodus() -> Optional[List[str]]:
    """Every verse of Exodus from the `bible` command (bible-kjv), or None."""
    if not shutil.which("bible"):
        return None
    try:
        p = subprocess.run(["bible", "-l10000", "Exodus 1:1-40:38"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    verses: List[str] = []
    for line in p.stdout.splitlines():
        m = re.match(r"^\s*\d+\s+(\S.*)$", line)
        if m:
            verses.append(m.group(1).strip())
        elif line.strip() and verses and line.startswith(" ") and not line.strip().startswith("Exodus"):
            verses[-1] += " " + line.strip()  # a wrapped verse
    return verses if p.returncode == 0 and len(verses) > 100 else None


def load_texts(n: int):
    verses = kjv_exodus()
    if verses:
        step = len(verses) / n  # evenly spread over the book
        texts = [verses[int(i * step) % len(verses)] for i in range(n)]
        return texts, f"KJV Exodus verses (`bible`), {n} of {len(verses)} evenly spaced"
    sys.path.insert(0, os.path.join(REPO, "tests", "python"))
    from encoder_texts import prose
    return prose(n), "generated English prose (tests/python/encoder_texts.py prose(n), no `bible` command)"


# ---------------------------------------------------------------- measuring

def cosines(a, b):
    import numpy as np
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def run(a: argparse.Namespace, skips: Skips) -> dict:
    from benchlib import encoders as enc
    texts, source = load_texts(a.n_texts)
    lat_idx = [(i * len(texts)) // a.latency_calls for i in range(a.latency_calls)]
    lat_texts = [texts[i] for i in lat_idx]
    try:
        counts = enc.token_counts(a.model, texts)
        avg, mx = sum(counts) / len(counts), max(counts)
        log(f"texts: {len(texts)} {source}; average {avg:.1f} MiniLM tokens (max {mx}); "
            f"the {len(lat_idx)} latency texts average {sum(counts[i] for i in lat_idx) / len(lat_idx):.1f}")
    except Skip as e:  # no transformers: sorted by characters, no token count
        skips.add("token counts", str(e))
        counts, avg, mx = [len(t) for t in texts], None, None
    order = sorted(range(len(texts)), key=lambda i: counts[i])
    sorted_texts = [texts[i] for i in order]

    systems, ref = [], None
    for key in a.systems:
        s = enc.make_system(key, a.model, a.work_dir, a.threads, a.convert or not a.quick)
        log(f"setup {s.label} ...")
        try:
            s.setup()
            s.first = s.embed_all(sorted_texts, BATCH)  # warm-up pass: also the accuracy sample
            s.embed_one(lat_texts[0])
            systems.append(s)
            if key == "torch":
                ref = s.first
        except Skip as e:
            skips.add(key, str(e))
        except Exception as e:  # a peer that fails: one line, never a traceback
            skips.add(key, f"failed: {enc.first_line(e)}")
    if ref is None:
        try:  # the reference without timing torch
            t = enc.make_system("torch", a.model, a.work_dir, a.threads, False)
            t.setup()
            ref = t.embed_all(sorted_texts, BATCH)
            del t
        except Skip as e:
            skips.add("accuracy reference (torch fp32)", str(e))
        except Exception as e:
            skips.add("accuracy reference (torch fp32)", f"failed: {enc.first_line(e)}")

    res: Dict[str, dict] = {}
    for s in systems:
        r = {"label": s.label, "peer": s.peer, "info": s.info, "throughput": [], "latency_ms": []}
        if ref is not None:
            c = cosines(s.first, ref)
            r["cos_worst"], r["cos_mean"] = float(c.min()), float(c.mean())
        res[s.key] = r
    for rep in range(a.reps):
        for s in list(systems):  # alternated: A B C ... per rep
            try:
                t0 = time.perf_counter()
                s.embed_all(sorted_texts, BATCH)
                thr = len(texts) / (time.perf_counter() - t0)
                lat = []
                for t in lat_texts:
                    t0 = time.perf_counter()
                    s.embed_one(t)
                    lat.append((time.perf_counter() - t0) * 1e3)
            except Exception as e:
                skips.add(s.key, f"failed in rep {rep + 1}: {enc.first_line(e)}")
                systems.remove(s)
                del res[s.key]
                continue
            res[s.key]["throughput"].append(thr)
            res[s.key]["latency_ms"].append(median(lat))
            log(f"rep {rep + 1}/{a.reps} {s.label:40s} {thr:8.1f} sent/s  {median(lat):7.2f} ms")
    for r in res.values():
        r["throughput_median"] = median(r["throughput"])
        r["latency_ms_median"] = median(r["latency_ms"])
    return {"text_source": source, "n_texts": len(texts), "avg_tokens": avg, "max_tokens": mx,
            "systems": res}


def summarize(out: dict, amx: bool) -> None:
    sysr = out["systems"]
    hb = sysr.get("halfbyte-q8_0", {}).get("throughput_median")
    peers = {k: r for k, r in sysr.items() if r["peer"] and r.get("throughput_median")}
    out["ratios"] = {k: ratio(hb, r["throughput_median"]) for k, r in sysr.items()}
    fastest = max(peers, key=lambda k: peers[k]["throughput_median"]) if peers else None
    target = 4.0 if amx else 1.7
    worst = sysr.get("halfbyte-q8_0", {}).get("cos_worst")
    r = ratio(hb, peers[fastest]["throughput_median"]) if fastest else None
    # Single-text latency against the best peer's (the lowest median).
    lat = sysr.get("halfbyte-q8_0", {}).get("latency_ms_median")
    lat_peers = {k: r for k, r in peers.items() if r.get("latency_ms_median")}
    best = min(lat_peers, key=lambda k: lat_peers[k]["latency_ms_median"]) if lat_peers else None
    lat_r = lat / lat_peers[best]["latency_ms_median"] if best and lat else None
    out["goal"] = {"fastest_peer": fastest, "ratio_to_fastest_peer": r, "ratio_goal": target,
                   "amx": amx, "cos_worst": worst, "cos_goal": GOAL_COS,
                   "throughput_met": None if r is None else r >= target,
                   "cosine_met": None if worst is None else worst >= GOAL_COS,
                   "lowest_latency_peer": best, "latency_ratio": lat_r, "latency_goal": GOAL_LATENCY,
                   "latency_met": None if lat_r is None else lat_r <= GOAL_LATENCY}


def f(x, fmt):
    return "-" if x is None else format(x, fmt)


def markdown(out: dict) -> str:
    rows = ["| system | precision | sentences/s | halfbyte q8_0 ÷ it | latency (1 text) | worst cos | mean cos |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for k, r in out["systems"].items():
        rows.append(f"| {r['label']} | {r['info'].get('precision', '')} | {f(r['throughput_median'], '.1f')} | "
                    f"{f(out['ratios'].get(k), '.2f')}x | {f(r['latency_ms_median'], '.2f')} ms | "
                    f"{f(r.get('cos_worst'), '.5f')} | {f(r.get('cos_mean'), '.6f')} |")
    g = out["goal"]
    lines = ["\n".join(rows), ""]
    if g["fastest_peer"] and g["ratio_to_fastest_peer"] is not None:
        lab = out["systems"][g["fastest_peer"]]["label"]
        met = "met" if g["throughput_met"] else "not met"
        lines.append(f"Goal (throughput): halfbyte q8_0 is {g['ratio_to_fastest_peer']:.2f}x the fastest peer "
                     f"({lab}); goal >= {g['ratio_goal']:g}x{' (AMX machine)' if g['amx'] else ''}: {met}.")
    else:
        lines.append("Goal (throughput): not checked (needs halfbyte q8_0 and at least one peer).")
    if g["latency_ratio"] is not None:
        lab = out["systems"][g["lowest_latency_peer"]]["label"]
        lines.append(f"Goal (latency): halfbyte q8_0's single text takes {g['latency_ratio']:.2f}x the best peer's "
                     f"({lab}); goal <= {GOAL_LATENCY}x: {'met' if g['latency_met'] else 'not met'}.")
    else:
        lines.append("Goal (latency): not checked (needs halfbyte q8_0 and at least one peer).")
    if g["cos_worst"] is not None:
        lines.append(f"Goal (accuracy): halfbyte q8_0 worst cosine to torch fp32 {g['cos_worst']:.5f}; "
                     f"goal >= {GOAL_COS}: {'met' if g['cosine_met'] else 'not met'}.")
    else:
        lines.append("Goal (accuracy): not checked (needs halfbyte q8_0 and torch).")
    if out["skipped"]:
        lines.append("")
        lines.append("Skipped: " + "; ".join(f"{s['what']} ({s['why']})" for s in out["skipped"]) + ".")
    return "\n".join(lines) + "\n"


def perf_section(out: dict) -> str:
    v = ", ".join(f"{k} {x}" for k, x in out["versions"].items() if x)
    return (f"Measured {out['date']} on {out['cpu']} ({out['threads']} threads, halfbyte ISA "
            f"{out['isa']}; available: {', '.join(out['available_isas'])}), {out['reps']} alternated reps, "
            f"medians; {out['n_texts']} texts ({out['text_source']}), average {f(out['avg_tokens'], '.1f')} tokens; "
            f"throughput in batches of {BATCH} sorted by length, latency the median of "
            f"{out['latency_calls']} single-text calls, cosines against torch fp32 over every text; "
            f"1-minute load average {f(out.get('loadavg_start'), '.2f')} at the start, "
            f"{f(out.get('loadavg_end'), '.2f')} at the end.\n\n"
            f"```\n{out['command']}\n```\n\nVersions: {v}.\n\n{markdown(out)}")


def write_perf(path: str, body: str) -> None:
    text = open(path).read() if os.path.exists(path) else "# Performance\n"
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + f"\n\n{SECTION}\n\n{block}\n"
    with open(path, "w") as fh:
        fh.write(text)
    log(f"updated {path}")


def versions() -> dict:
    out = {}
    for name in ("halfbyte", "torch", "transformers", "onnxruntime", "onnx", "ctranslate2", "openvino",
                 "llama_cpp", "numpy"):
        try:
            m = __import__(name)
            out[name] = getattr(m, "__version__", None) or (m.get_version() if hasattr(m, "get_version") else None)
        except Exception:  # missing or broken: recorded as None
            out[name] = None
    return out


def main(argv=None) -> int:
    a = parse_args(argv)
    if not os.path.isfile(os.path.join(a.model, "model.safetensors")) or \
            not os.path.isfile(os.path.join(a.model, "config.json")):
        log(f"error: {a.model} is not an HF model folder with config.json and model.safetensors "
            f"(fetch all-MiniLM-L6-v2 with examples/fetch_minilm.sh, or pass --model)")
        return 2
    try:
        import halfbyte
    except ImportError:
        log("error: the halfbyte package is not importable (pip install . from the repository)")
        return 1
    amx = "amx" in halfbyte.available_isas()
    cmd = "python3 bench/encoder_vs_peers.py" + "".join(
        " " + shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    out = {"date": datetime.date.today().isoformat(), "command": cmd, "cpu": cpu_model(), "isa": halfbyte.isa(),
           "available_isas": list(halfbyte.available_isas()), "threads": a.threads, "reps": a.reps,
           "quick": a.quick, "batch": BATCH, "latency_calls": a.latency_calls, "model": os.path.abspath(a.model),
           "versions": versions(), "loadavg_start": os.getloadavg()[0]}
    log(f"halfbyte ISA {out['isa']} (available: {', '.join(out['available_isas'])}); {a.threads} threads; "
        f"{a.reps} reps; CPU {out['cpu']}")
    skips = Skips()
    try:
        out.update(run(a, skips))
    except Skip as e:
        log(f"error: {e}")
        return 1
    out["loadavg_end"] = os.getloadavg()[0]
    out["skipped"] = skips.items
    summarize(out, amx)
    md = markdown(out)
    print(md)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
        log(f"wrote {a.json}")
    if a.write_perf:
        if a.quick:
            log("note: --write-perf with --quick writes quick-run numbers into docs/PERF.md")
        write_perf(os.path.join(REPO, "docs", "PERF.md"), perf_section(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
