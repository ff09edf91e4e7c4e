"""The `halfbyte` command-line tool as installed by pip with the package (into the
environment's scripts folder, the one on PATH when the environment is active)."""

import os
import shutil
import subprocess
import sysconfig
from importlib import metadata

import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama


def installed_cli():
    """The executable pip installed with this halfbyte (listed in the distribution's
    RECORD), else whatever `halfbyte` is on PATH."""
    try:
        files = metadata.files("halfbyte") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name in ("halfbyte", "halfbyte.exe") and f.parent.name in ("bin", "Scripts"):
            p = os.path.realpath(f.locate())
            if os.access(p, os.X_OK):
                return p
    return shutil.which("halfbyte")


EXE = installed_cli()
needs_cli = pytest.mark.skipif(EXE is None, reason="the halfbyte command is not installed")
pytestmark = [
    needs_cli,
    pytest.mark.skipif(not os.path.exists(VOCABS["gpt2"]), reason="tests/data/tokenizer-tests not found"),
]


def test_cli_is_installed_into_the_scripts_folder_of_this_environment():
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("halfbyte", path=scripts)
    assert found is not None, f"no halfbyte in {scripts}"
    assert os.path.realpath(found) == EXE
    # The same build as the module: same version.
    out = subprocess.run([EXE, "version"], capture_output=True, text=True, timeout=60).stdout
    assert out.startswith(f"halfbyte {halfbyte.__version__} ")


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


def test_info_memory_reports_what_the_model_api_reports(model):
    r = run("info", "--memory", model, "--ctx", "96", "--kv-cache", "f32")
    assert r.returncode == 0, r.stderr
    assert "n_ctx 96, KV cache f32" in r.stdout
    with halfbyte.Model(model, n_ctx=96, kv_cache="f32") as m:
        mem = m.memory()
    def mb(label):  # the first figure on the line that starts with label
        line = next(x for x in r.stdout.splitlines() if x.strip().startswith(label))
        return float(line[len(line) - len(line.lstrip()) + len(label):].split("MB")[0])

    assert mb("file (mapped, shared page cache)") == round(mem["file"] / 1e6, 1)
    assert mb("weights, repacked / converted (owned)") == round(mem["weights_owned"] / 1e6, 1)
    assert mb("KV cache, reserved for n_ctx") == round(mem["kv_cache"] / 1e6, 1)
    # fp32 keys and values: 1 layer x 2 KV heads x 32 dims x (96 keys + 96 values) x 4 bytes.
    assert mem["kv_cache"] == 1 * 2 * 32 * (96 + 96) * 4
    bad = run("info", "--memory", model, "--kv-cache", "q4")
    assert bad.returncode != 0 and "--kv-cache must be f16 or f32" in bad.stderr


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
