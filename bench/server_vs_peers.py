"""Serving throughput of `halfbyte serve` vs llama.cpp's llama-server and
llama-cpp-python's server (python3 -m llama_cpp.server), same model, 2 threads.

Each system is started in turn on a free 127.0.0.1 port, waited for (GET /health,
else /v1/models; 120 s at most), warmed up with one request, then loaded with
bench/server_load.py's run_load at 1, 4 and 8 concurrent streams: streamed chat
completions of 64 greedy tokens over a fixed list of 8 short prompts, each level
sending every prompt --rounds times. Then it is stopped (SIGTERM, then SIGKILL).
Prints one markdown table (aggregate and per-stream tokens/s, TTFT p50/p99,
errors, ratios) and, per system, whether its greedy answers at 8 streams are the
same as at 1 stream (same prompt -> same text).

    python3 bench/server_vs_peers.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
        [--only halfbyte,llama-server,llama-cpp-python] [--json OUT.json]

Peers: llama-server from `bash bench/build_llama_server.sh` (--llama-server PATH or
env LLAMA_SERVER; the script's default build dir is tried too), llama_cpp.server
from `bash .ci/peers` + `bash bench/build_llama_server.sh --python-server`.
A system that is missing is skipped with a message. Server logs (stdout+stderr)
go to a temp dir; a failing system's log tail is printed. llama_cpp.server runs
with --interrupt_requests False (by default a new request cuts off the stream in
progress); it serves one request at a time, so its extra streams only queue.

Timings on a shared machine are worthless on 2 cores: a level during which cc1plus
or ninja ran, or other processes used over 0.15 cores, is marked (!) in the table;
--wait-idle MIN first waits (up to MIN minutes) for the machine to be idle.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_load import DEFAULT_PROMPTS, fmt, run_load  # noqa: E402

SYSTEMS = ("halfbyte", "llama-server", "llama-cpp-python")
DEFAULT_LLAMA_SERVER = "/tmp/llama-server-build/build/bin/llama-server"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


FOREIGN_CPU_LIMIT = 0.15  # cores used by other processes above which timings are flagged


def compiling():
    """True while a compiler runs on this machine (timings beside a build are worthless)."""
    return subprocess.run(["pgrep", "-f", "cc1plus|ninja"], capture_output=True).returncode == 0


def machine_cpu_seconds():
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def process_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


class BusyWatch:
    """Whether the machine was shared during a measurement: a compile seen (polled
    every 2 s), and `foreign` = cores used on average by processes other than the
    server under test and this script."""

    def __init__(self, server_pid):
        self.pid, self.compile_seen, self.foreign = server_pid, False, 0.0
        self._done, self._t = threading.Event(), None

    def _cpu(self):
        t = os.times()
        return machine_cpu_seconds(), process_cpu_seconds(self.pid), t.user + t.system, time.monotonic()

    def start(self):
        self.compile_seen = compiling()
        self._t0 = self._cpu()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def _poll(self):
        while not self._done.wait(2.0):
            self.compile_seen = self.compile_seen or compiling()

    def stop(self):
        self._done.set()
        self._t.join()
        self.compile_seen = self.compile_seen or compiling()
        (m0, s0, me0, t0), (m1, s1, me1, t1) = self._t0, self._cpu()
        self.foreign = max(0.0, (m1 - m0) - (s1 - s0) - (me1 - me0)) / max(t1 - t0, 1e-9)
        return self

    @property
    def busy(self):
        return self.compile_seen or self.foreign > FOREIGN_CPU_LIMIT


def wait_idle(minutes):
    """Waits (up to `minutes`) until nothing compiles and other processes use under
    FOREIGN_CPU_LIMIT cores (over 5 s); False if the machine is still busy then."""
    deadline = time.monotonic() + 60 * minutes
    while True:
        m0 = machine_cpu_seconds()
        time.sleep(5)
        load = (machine_cpu_seconds() - m0) / 5
        if not compiling() and load < FOREIGN_CPU_LIMIT:
            return True
        if time.monotonic() >= deadline:
            return False
        log(f"machine busy (compile running: {compiling()}, {load:.2f} cores used); waiting 30 s")
        time.sleep(25)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def halfbyte_cmd(a, port):
    """(argv, None) or (None, why it is skipped)."""
    exe = shutil.which(a.halfbyte)
    if not exe:
        hint = " (try --halfbyte build/halfbyte)" if os.access(os.path.join(REPO, "build/halfbyte"), os.X_OK) else ""
        return None, f"'{a.halfbyte}' not found{hint}"
    try:
        p = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{exe} serve --help: {e}"
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).strip().splitlines()
        return None, f"{exe} has no working 'serve': {msg[-1] if msg else 'exit ' + str(p.returncode)}"
    return [exe, "serve", "-m", a.model, "--host", "127.0.0.1", "--port", str(port), "--parallel", "8", "-t", "2"], None


def llama_server_cmd(a, port):
    candidates = [a.llama_server, os.environ.get("LLAMA_SERVER"), DEFAULT_LLAMA_SERVER, "llama-server"]
    exe = next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)
    if not exe:
        return None, "no llama-server (build it with: bash bench/build_llama_server.sh; or set LLAMA_SERVER)"
    return [exe, "-m", a.model, "--host", "127.0.0.1", "--port", str(port), "-t", "2", "-np", "8", "-c", "4096"], None


def llama_cpp_python_cmd(a, port):
    p = subprocess.run([sys.executable, "-c", "import llama_cpp.server.app"], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        last = p.stderr.strip().splitlines()
        return None, ("llama_cpp.server not importable (bash .ci/peers; bash bench/build_llama_server.sh "
                      f"--python-server): {last[-1] if last else ''}")
    # --interrupt_requests False: by default a new request cuts off the one being
    # streamed, so concurrent clients would get truncated answers; this queues them.
    return [sys.executable, "-m", "llama_cpp.server", "--model", a.model, "--host", "127.0.0.1", "--port", str(port),
            "--n_threads", "2", "--n_ctx", "4096", "--interrupt_requests", "False"], None


COMMANDS = {"halfbyte": halfbyte_cmd, "llama-server": llama_server_cmd, "llama-cpp-python": llama_cpp_python_cmd}


# No proxy: these GETs go to the server on 127.0.0.1, whatever http_proxy says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, timeout=5):
    """(status, body) of a GET; status 0 when the server does not answer."""
    try:
        with _OPENER.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (OSError, ValueError):
        return 0, b""


def wait_ready(proc, base, timeout=120):
    """True once GET /health (or /v1/models where there is no /health) answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        status, _ = http_get(base + "/health")
        if status == 200:
            return True
        if status == 404 and http_get(base + "/v1/models")[0] == 200:
            return True
        time.sleep(0.5)
    return False


def served_model_id(base, fallback):
    status, body = http_get(base + "/v1/models")
    try:
        return json.loads(body)["data"][0]["id"] if status == 200 else fallback
    except (ValueError, KeyError, IndexError, TypeError):
        return fallback


def stop(proc):
    """SIGTERM to the server's process group, SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            pass


def tail(path, n=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def compare_answers(one, many):
    """How the greedy texts at many streams compare with those at 1 stream, per prompt."""
    def by_prompt(level):
        d = {}
        for prompt, text in level["texts"]:
            if text is not None:  # failed requests are counted as errors, not compared
                d.setdefault(prompt, set()).add(text)
        return d
    a, b = by_prompt(one), by_prompt(many)
    prompts = [p for p in a if p in b]
    differ = [p for p in prompts if a[p] != b[p] or len(a[p]) > 1]
    out = {"prompts": len(prompts), "differ": len(differ), "same": not differ and bool(prompts)}
    if differ:
        p = differ[0]
        out["example"] = {"prompt": p, "at_1": sorted(a[p]), f"at_{many['concurrency']}": sorted(b[p])}
    return out


def run_system(name, a, logdir):
    port = free_port()
    argv, why = COMMANDS[name](a, port)
    if argv is None:
        log(f"skip {name}: {why}")
        return {"system": name, "status": "skipped", "reason": why}
    logpath = os.path.join(logdir, f"{name}.log")
    log(f"{name}: {' '.join(argv)}  (log: {logpath})")
    base = f"http://127.0.0.1:{port}"
    res = {"system": name, "status": "failed", "command": argv, "log": logpath, "levels": []}
    with open(logpath, "wb") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
    try:
        t0 = time.monotonic()
        if not wait_ready(proc, base):
            res["reason"] = "exited before answering" if proc.poll() is not None else "not ready within 120 s"
            log(f"{name}: {res['reason']}; log tail:\n{tail(logpath)}")
            return res
        res["ready_s"] = time.monotonic() - t0
        model_id = served_model_id(base, os.path.basename(a.model))
        res["model_id"] = model_id
        warm = run_load(base, model_id, 1, 1, a.max_tokens, DEFAULT_PROMPTS[:1])
        if warm["errors"]:
            res["reason"] = f"warm-up request failed: {warm['error_messages'][0]}"
            log(f"{name}: {res['reason']}; log tail:\n{tail(logpath)}")
            return res
        total = a.rounds * len(DEFAULT_PROMPTS)
        for c in a.concurrency:
            watch = BusyWatch(proc.pid).start()
            r = run_load(base, model_id, c, -(-total // c), a.max_tokens, DEFAULT_PROMPTS)
            watch.stop()
            r.update(compile_seen=watch.compile_seen, foreign_cpu=watch.foreign, busy=watch.busy)
            if watch.busy:
                log(f"{name}: WARNING: machine shared during the {c}-stream run (compile: {watch.compile_seen}, "
                    f"other processes used {watch.foreign:.2f} cores): its timings are not valid")
            log(f"{name}: {c} streams: {r['aggregate_tps']:.1f} tok/s aggregate, {r['errors']} errors")
            for m in r["error_messages"]:
                log(f"  error: {m}")
            res["levels"].append(r)
        res["status"] = "ok"
        if proc.poll() is not None:
            res["status"] = "failed"
            res["reason"] = f"exited during the run (code {proc.returncode})"
            log(f"{name}: {res['reason']}; log tail:\n{tail(logpath)}")
        levels = {lv["concurrency"]: lv for lv in res["levels"]}
        if 1 in levels and max(levels) > 1:
            res["answers_vs_1_stream"] = compare_answers(levels[1], levels[max(levels)])
        return res
    finally:
        stop(proc)


def print_table(results):
    hb1 = next((lv["aggregate_tps"] for r in results if r["system"] == "halfbyte" and r["status"] == "ok"
                for lv in r["levels"] if lv["concurrency"] == 1), None)
    print("| system | streams | aggregate tok/s | per-stream tok/s | TTFT p50 ms | TTFT p99 ms | errors "
          "| x own 1-stream | x halfbyte 1-stream |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if r["status"] != "ok" and not r.get("levels"):
            print(f"| {r['system']} | {r['status']}: {r.get('reason', '')} |" + " |" * 7)
            continue
        own1 = next((lv["aggregate_tps"] for lv in r["levels"] if lv["concurrency"] == 1), None)
        for lv in r["levels"]:
            agg = lv["aggregate_tps"]
            own = f"{agg / own1:.2f}" if own1 else "-"
            vs_hb = f"{agg / hb1:.2f}" if hb1 else "n/a"
            busy = " (!)" if lv.get("busy") else ""
            print(f"| {r['system']} | {lv['concurrency']}{busy} | {fmt(agg)} | {fmt(lv['per_stream_tps'])} | "
                  f"{fmt(lv['ttft_p50_ms'])} | {fmt(lv['ttft_p99_ms'])} | {lv['errors']}/{lv['requests']} | "
                  f"{own} | {vs_hb} |")
    if hb1 is None:
        print("\n(no halfbyte run: the ratios vs halfbyte's single stream are n/a)")
    if any(lv.get("busy") for r in results for lv in r.get("levels", [])):
        print(f"\n(!) the machine was shared during this level (a compile, or other processes using over "
              f"{FOREIGN_CPU_LIMIT} cores): its timings are not valid")
    print()
    for r in results:
        cmp_ = r.get("answers_vs_1_stream")
        if cmp_ is None:
            continue
        n = max(lv["concurrency"] for lv in r["levels"])
        if cmp_["same"]:
            print(f"- {r['system']}: greedy answers at {n} streams equal those at 1 stream "
                  f"({cmp_['prompts']}/{cmp_['prompts']} prompts)")
        else:
            ex = cmp_["example"]
            print(f"- {r['system']}: greedy answers at {n} streams DIFFER from 1 stream on "
                  f"{cmp_['differ']}/{cmp_['prompts']} prompts, e.g. {ex['prompt']!r}:")
            for k, texts in ex.items():
                if k != "prompt":
                    for t in texts:
                        print(f"    {k}: {t[:160]!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="GGUF file every system serves")
    ap.add_argument("--only", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    ap.add_argument("--json", help="write all results (with texts) to this file")
    ap.add_argument("--halfbyte", default="halfbyte", help="halfbyte CLI (default: on PATH)")
    ap.add_argument("--llama-server", help="llama-server binary (default: env LLAMA_SERVER)")
    ap.add_argument("--concurrency", default="1,4,8", help="stream counts (default 1,4,8)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="times each prompt is sent per level (default 2)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="MIN",
                    help="first wait up to MIN minutes for the machine to be idle (default: just warn)")
    a = ap.parse_args()
    a.model = os.path.abspath(a.model)
    if not os.path.isfile(a.model):
        ap.error(f"no such model file: {a.model}")
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SYSTEMS]
    if bad:
        ap.error(f"unknown system(s) {bad}; choose from {SYSTEMS}")
    a.concurrency = [int(x) for x in a.concurrency.split(",")]
    if not wait_idle(a.wait_idle):
        log("WARNING: the machine is busy (a compile or other processes): timings beside it are not valid")
    logdir = tempfile.mkdtemp(prefix="server_vs_peers.")
    log(f"model {a.model}; {a.max_tokens} greedy tokens; {a.rounds * len(DEFAULT_PROMPTS)} requests per level; "
        f"logs in {logdir}")
    results = [run_system(name, a, logdir) for name in SYSTEMS if name in only]
    if not os.listdir(logdir):
        os.rmdir(logdir)
    print_table(results)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "max_tokens": a.max_tokens, "prompts": DEFAULT_PROMPTS,
                       "results": results}, f, indent=1)
        log(f"wrote {a.json}")


if __name__ == "__main__":
    main()
