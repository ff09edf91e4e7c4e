"""bench/encoder_vs_peers.py (the encoder issue's benchmark) runs and reports.

A quick run of halfbyte and torch only (32 sentences, 1 rep) into a JSON: its
structure, halfbyte's worst cosine to torch fp32 >= 0.999 and a throughput > 0.
Bad arguments (unknown --only, missing model folder): a clear message, a non-zero
exit, no traceback.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(REPO, "bench", "encoder_vs_peers.py")
MINILM = os.environ.get("HALFBYTE_MINILM", os.path.join(REPO, "models", "all-MiniLM-L6-v2"))


def run(args, timeout=300):
    return subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True, timeout=timeout,
                          cwd="/tmp")


def test_quick_halfbyte_and_torch(tmp_path):
    if not os.path.exists(os.path.join(MINILM, "model.safetensors")):
        pytest.skip("all-MiniLM-L6-v2 not fetched (examples/fetch_minilm.sh)")
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    out = tmp_path / "enc.json"
    p = run(["--quick", "--only", "halfbyte", "--only", "torch", "--n-texts", "32", "--latency-calls", "3",
             "--model", MINILM, "--work-dir", str(tmp_path / "work"), "--json", str(out)])
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    res = json.loads(out.read_text())
    for k in ("date", "command", "cpu", "isa", "available_isas", "threads", "reps", "n_texts", "avg_tokens",
              "text_source", "versions", "systems", "ratios", "goal", "skipped"):
        assert k in res, k
    assert res["n_texts"] == 32 and res["reps"] == 1 and res["threads"] == 2
    assert res["avg_tokens"] > 3
    assert set(res["systems"]) == {"halfbyte-q8_0", "halfbyte-f32", "torch"}, res["skipped"]
    for key, r in res["systems"].items():
        for k in ("label", "peer", "info", "throughput", "throughput_median", "latency_ms", "latency_ms_median",
                  "cos_worst", "cos_mean"):
            assert k in r, (key, k)
        assert len(r["throughput"]) == 1 and r["throughput_median"] > 0
        assert r["latency_ms_median"] > 0
        assert r["cos_worst"] <= r["cos_mean"] <= 1.0 + 1e-6
    hb = res["systems"]["halfbyte-q8_0"]
    assert not hb["peer"] and res["systems"]["torch"]["peer"]
    assert hb["cos_worst"] >= 0.999
    assert res["systems"]["halfbyte-f32"]["cos_worst"] >= 0.9999
    assert res["systems"]["torch"]["cos_worst"] > 0.99999  # the reference itself
    assert res["ratios"]["halfbyte-q8_0"] == pytest.approx(1.0)
    g = res["goal"]
    assert g["fastest_peer"] == "torch" and g["ratio_to_fastest_peer"] > 0
    assert g["ratio_goal"] == (4.0 if "amx" in res["available_isas"] else 1.7)
    assert g["cosine_met"] is True
    assert g["lowest_latency_peer"] == "torch" and g["latency_ratio"] > 0 and g["latency_goal"] == 0.7
    assert "| halfbyte q8_0 |" in p.stdout and "Goal (throughput)" in p.stdout and "Goal (latency)" in p.stdout


def test_unknown_only():
    p = run(["--only", "no-such-system"], timeout=60)
    assert p.returncode != 0
    assert "invalid choice" in p.stderr and "no-such-system" in p.stderr
    assert "Traceback" not in p.stderr


def test_missing_model(tmp_path):
    p = run(["--quick", "--only", "halfbyte", "--model", str(tmp_path / "nowhere")], timeout=60)
    assert p.returncode != 0
    assert "error:" in p.stderr and "nowhere" in p.stderr
    assert "Traceback" not in p.stderr


def test_write_perf_section(tmp_path):
    sys.path.insert(0, os.path.join(REPO, "bench"))
    import encoder_vs_peers as bench
    out = {"date": "2026-01-01", "command": "python3 bench/encoder_vs_peers.py", "cpu": "a CPU", "isa": "avx2",
           "available_isas": ["scalar", "avx2"], "threads": 2, "reps": 1, "n_texts": 4, "text_source": "test",
           "avg_tokens": 10.0, "latency_calls": 3, "loadavg_start": 0.1, "loadavg_end": 0.2,
           "versions": {"halfbyte": "0"}, "skipped": [{"what": "openvino", "why": "missing"}],
           "systems": {"halfbyte-q8_0": {"label": "halfbyte q8_0", "peer": False, "info": {"precision": "q8_0"},
                                         "throughput_median": 300.0, "latency_ms_median": 2.0,
                                         "cos_worst": 0.9995, "cos_mean": 0.9998},
                       "torch": {"label": "torch fp32", "peer": True, "info": {"precision": "fp32"},
                                 "throughput_median": 100.0, "latency_ms_median": 9.0,
                                 "cos_worst": 1.0, "cos_mean": 1.0}}}
    bench.summarize(out, amx=False)
    assert out["goal"]["throughput_met"] and out["goal"]["cosine_met"] and out["ratios"]["torch"] == 3.0
    assert out["goal"]["latency_ratio"] == pytest.approx(2.0 / 9.0) and out["goal"]["latency_met"]
    perf = tmp_path / "PERF.md"
    perf.write_text("# Performance\n\nintro\n")
    bench.write_perf(str(perf), bench.perf_section(out))  # no markers: a new section at the end
    first = perf.read_text()
    assert first.startswith("# Performance\n\nintro\n") and first.count(bench.SECTION) == 1
    assert "| torch fp32 | fp32 | 100.0 | 3.00x |" in first and "openvino (missing)" in first
    out["systems"]["torch"]["throughput_median"] = 150.0
    bench.summarize(out, amx=False)
    perf.write_text(first + "\n## Later section\n")
    bench.write_perf(str(perf), bench.perf_section(out))  # markers: replaced in place
    second = perf.read_text()
    assert second.count(bench.BEGIN) == 1 and second.count(bench.SECTION) == 1
    assert "| torch fp32 | fp32 | 150.0 | 2.00x |" in second and "100.0" not in second
    assert second.rstrip().endswith("## Later section")
