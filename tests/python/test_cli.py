"""The `halfbyte` command-line tool as installed on PATH by pip."""

import os
import shutil
import subprocess

import pytest

from gguf_models import VOCABS, write_random_llama

EXE = shutil.which("halfbyte")
pytestmark = [
    pytest.mark.skipif(EXE is None, reason="the halfbyte command is not on PATH"),
    pytest.mark.skipif(not os.path.exists(VOCABS["gpt2"]), reason="../shared/tokenizer-tests not found"),
]


def run(*args, env=None):
    # Random weights may emit byte tokens that are not valid UTF-8 on their own.
    return subprocess.run([EXE, *args], capture_output=True, text=True, errors="replace", timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_random_llama(str(tmp_path_factory.mktemp("cli") / "m.gguf"), dtype="q4_0", vocab="gpt2",
                              n_layer=1, n_ctx=128)


def test_run_streams_text_and_reports_speed(model):
    r = run("run", "-m", model, "-p", "Hello", "-n", "8", "--seed", "1", "-t", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Hello")
    assert "prompt:" in r.stderr and "decode:" in r.stderr and "tokens/s" in r.stderr


def test_info_lists_metadata_and_tensors(model):
    r = run("info", model)
    assert r.returncode == 0, r.stderr
    assert "general.architecture" in r.stdout and "blk.0.attn_q.weight" in r.stdout and "q4_0" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "-p", "x"), "-m MODEL is required"),
        (("run", "-m", "/nonexistent.gguf", "-p", "x"), "/nonexistent.gguf"),
        (("run", "-m", "M", "-p", "x", "-n", "many"), "-n expects an integer"),
        (("run", "--bogus"), "unknown option '--bogus'"),
        (("info",), "MODEL is required"),
        (("frobnicate",), "unknown command 'frobnicate'"),
    ],
)
def test_bad_arguments_fail_clearly(args, message):
    r = run(*args)
    assert r.returncode != 0
    assert message in r.stderr


def test_isa_override_and_refusal():
    assert "isa: scalar" in run("version", env={"HALFBYTE_ISA": "scalar"}).stdout
    r = run("version", env={"HALFBYTE_ISA": "pentium"})
    assert r.returncode != 0 and "unknown ISA 'pentium'" in r.stderr
