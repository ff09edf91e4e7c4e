"""The Python examples (examples/python) and the README's `python -c` line run, on
small inputs, against the installed package."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gguf_models import VOCABS, write_random_llama

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"
SMOLLM2 = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def run(*args, timeout=300):
    r = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, errors="replace",
                       timeout=timeout, cwd="/tmp")
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_quantize_error():
    out = run(EXAMPLES / "quantize_error.py", "--rows", "16", "--cols", "256", "--formats", "q4_0", "q8_0").stdout
    rows = {tuple(line.split()[:2]): line for line in out.splitlines()[1:]}
    assert set(rows) == {("q4_0", "auto"), ("q4_0", "rtn"), ("q8_0", "auto"), ("q8_0", "rtn")}
    snr = {k: float(re.search(r"SNR\s+([\d.]+) dB", v).group(1)) for k, v in rows.items()}
    assert 15 < snr[("q4_0", "rtn")] <= snr[("q4_0", "auto")] < 30  # ~4.5 bits: ~20 dB on Gaussian data
    assert snr[("q8_0", "auto")] > 40


def test_matmul_vs_numpy():
    out = run(EXAMPLES / "matmul_vs_numpy.py", "-m", "3", "-n", "64", "-k", "256", "--runs", "2").stdout
    err = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(halfbyte int|halfbyte float|numpy float32)\s*:"
                                                             r" rel. error vs float64 ([\d.e+-]+)", out, re.M)}
    assert err["halfbyte float"] < 1e-5 and err["numpy float32"] < 1e-5
    assert err["halfbyte int"] < 2e-2  # int8 activations


def model_for_streaming(tmp_path):
    if SMOLLM2.exists():
        return str(SMOLLM2), ["--chat", "-p", "What is the capital of France?"]
    if not os.path.exists(VOCABS["gpt2"]):
        pytest.skip("neither models/SmolLM2-135M-Instruct.Q4_1.gguf nor tests/data/tokenizer-tests")
    return write_random_llama(str(tmp_path / "m.gguf"), dtype="q4_0", vocab="gpt2", n_layer=1, n_ctx=64), ["-p", "Hi"]


def test_run_model_streaming(tmp_path):
    model, args = model_for_streaming(tmp_path)
    r = run(EXAMPLES / "run_model_streaming.py", model, "-n", "16", *args)
    assert "pieces in" in r.stderr and "loading" in r.stderr
    if model == str(SMOLLM2):
        # The streamed text is the model's greedy chat answer. (The chat prompt carries
        # the default system message of SmolLM2's template, as llama.cpp renders it;
        # with it this 135M model answers with Paris landmarks rather than "Paris".)
        import halfbyte
        want = halfbyte.Model(model).generate("What is the capital of France?", max_tokens=16, chat=True)
        assert r.stdout.strip() == want.strip()


def test_readme_python_one_liner():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Using it from Python", 1)[1].split("\n## ", 1)[0]
    lines = re.findall(r'^python -c "(.*)"$', section, re.M)
    assert lines, "no python -c example in the README's Python section"
    for code in lines:
        run("-c", code, timeout=120)


def python_blocks(path):
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.M | re.S)


@pytest.mark.skipif(not SMOLLM2.exists(), reason="models/SmolLM2-135M-Instruct.Q4_1.gguf not found")
def test_docs_python_md_snippets_run(tmp_path):
    tour, round_trip = python_blocks(REPO / "docs" / "python.md")[:2]
    code = tour.replace('"models/', f'"{REPO}/models/') + round_trip.replace('"in.gguf"', '"out.gguf"')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "QTensor(format='q4_0', shape=(4096, 4096)" in r.stdout and "Paris" in r.stdout
    assert (tmp_path / "out.gguf").exists() and not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
