"""The installed package as a package: type stubs for everything public (checked
against the runtime with mypy's stubtest when mypy is installed), py.typed, and
docstrings that help() can show."""

import ast
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import halfbyte
from halfbyte import _core

PKG = Path(halfbyte.__file__).resolve().parent


def public(obj):
    return sorted(n for n in dir(obj) if not n.startswith("_"))


def stub_tree():
    return ast.parse((PKG / "_core.pyi").read_text())


def stub_names(body):
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.If):  # version-dependent definitions
            names |= stub_names(node.body) | stub_names(node.orelse)
    return names


def test_typing_files_are_installed():
    assert (PKG / "py.typed").is_file()
    assert (PKG / "_core.pyi").is_file()
    for module in ("model.py", "gguf_io.py", "_progress.py"):
        assert (PKG / module).is_file(), module


def test_stub_declares_every_public_name_of_the_extension():
    tree = stub_tree()
    top = stub_names(tree.body)
    assert set(public(_core)) <= top, set(public(_core)) - top
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for cls in ("QTensor", "Model"):
        declared = stub_names(classes[cls].body)
        missing = set(public(getattr(_core, cls))) - declared
        assert not missing, (cls, missing)


def test_every_public_name_is_typed_and_documented():
    for name in halfbyte.__all__:
        obj = getattr(halfbyte, name)
        if name in ("FORMATS", "__version__"):
            continue
        assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
        module = getattr(obj, "__module__", "")
        if module.startswith("halfbyte.") and module != "halfbyte._core":
            src = inspect.getsource(obj)  # pure Python: annotated in its source
            assert "->" in src, f"{name} has no return annotation"
    for cls in (halfbyte.QTensor, halfbyte.Model):
        for name in public(cls):
            assert (getattr(cls, name).__doc__ or "").strip(), f"{cls.__name__}.{name} has no docstring"


def test_help_explains_the_main_entry_points():
    text = {f: inspect.getdoc(getattr(halfbyte, f)) for f in ("quantize", "matmul", "load_gguf", "save_gguf")}
    assert "Raises" in text["quantize"] and "ValueError" in text["quantize"]
    assert "GIL" in text["matmul"]
    assert "view" in text["load_gguf"] and "bf16" in text["load_gguf"]
    assert ".tmp-" in text["save_gguf"]
    assert "progress" in inspect.getdoc(halfbyte.Model)


ALLOWLIST = """
# pybind11 classes have pybind11's metaclass and no Python-level constructor
halfbyte._core.Encoder
halfbyte._core.Model
halfbyte._core.QTensor
halfbyte._core.QTensor.__init__
# buffer protocol declared for every Python version (PEP 688); a slot before 3.12
halfbyte._core.QTensor.__buffer__
"""


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_stubtest_finds_stub_and_runtime_consistent(tmp_path):
    allow = tmp_path / "allowlist.txt"
    allow.write_text(ALLOWLIST)
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "halfbyte._core", "--allowlist", str(allow),
         "--ignore-unused-allowlist"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_package_and_typical_use_pass_mypy_strict(tmp_path):
    use = tmp_path / "use.py"
    use.write_text(
        "import numpy as np\n"
        "import halfbyte\n"
        "w = np.zeros((4, 64), np.float32)\n"
        "q = halfbyte.quantize(w, 'q4_0')\n"
        "y = halfbyte.matmul(np.ones((2, 64), np.float32), q)\n"
        "raw = np.frombuffer(memoryview(q), np.uint8)  # numpy's stubs want a memoryview\n"
        "meta, tensors = halfbyte.load_gguf('x.gguf')\n"
        "c = halfbyte.load_gguf('x.gguf')\n"
        "halfbyte.save_gguf('y.gguf', meta, tensors, types=c.types, progress=True)\n"
        "with halfbyte.Model('m.gguf', progress=lambda f: True) as m:\n"
        "    ids: list[int] = m.tokenize('x')\n"
    )
    for target in (["-p", "halfbyte"], [str(use)]):
        r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", *target],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
