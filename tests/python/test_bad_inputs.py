"""Every public function fed bad inputs: the exception type is the documented one
(ValueError for bad values, TypeError for what is not even the accepted Python
type, FileNotFoundError / OSError for files, RuntimeError for the rest), the
message names the argument, and the interpreter survives. Hostile files (every
truncation, random corruption) run in a child process, so a crash fails the test
instead of killing the test run."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama

HERE = os.path.dirname(os.path.abspath(__file__))
GOOD = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
QT = halfbyte.quantize(GOOD, "q4_0")
HAVE_VOCAB = os.path.exists(VOCABS["gpt2"])


class Ctx:
    """Files and models the cases use, made once per module."""


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    c = Ctx()
    c.dir = str(d / "a_directory")
    os.mkdir(c.dir)
    c.missing = str(d / "missing.gguf")
    c.empty = str(d / "empty.gguf")
    open(c.empty, "wb").close()
    c.text = str(d / "text.gguf")
    with open(c.text, "w") as f:
        f.write("not a model\n")
    c.small = str(d / "small.gguf")
    halfbyte.save_gguf(c.small, {"general.architecture": "llama"}, {"w": GOOD})
    c.truncated = str(d / "truncated.gguf")
    with open(c.small, "rb") as f, open(c.truncated, "wb") as g:
        g.write(f.read()[:100])
    if HAVE_VOCAB:
        c.model_path = write_random_llama(str(d / "m.gguf"), dtype="q8_0", vocab="gpt2", n_layer=1, n_ctx=32)
        c.model = halfbyte.Model(c.model_path)
        c.closed = halfbyte.Model(c.model_path)
        c.closed.close()
    return c


def nan_matrix():
    a = GOOD.copy()
    a[1, 2] = np.nan
    return a


q = halfbyte.quantize
mm = halfbyte.matmul
X = np.ones((2, 64), np.float32)

# (name, call(ctx), exception type, fragment the message contains or None)
CASES = [
    # quantize
    ("quantize float64", lambda c: q(GOOD.astype(np.float64)), ValueError, "dtype"),
    ("quantize int32", lambda c: q(GOOD.astype(np.int32)), ValueError, "dtype"),
    ("quantize bool", lambda c: q(GOOD > 0), ValueError, "dtype"),
    ("quantize complex", lambda c: q(GOOD.astype(np.complex64)), ValueError, "dtype"),
    ("quantize object", lambda c: q(GOOD.astype(object)), ValueError, "dtype"),
    ("quantize big-endian", lambda c: q(GOOD.astype(">f4")), ValueError, "byte order"),
    ("quantize list", lambda c: q(GOOD.tolist()), TypeError, None),  # not an array: convert it first
    ("quantize 1-D", lambda c: q(GOOD[0]), ValueError, "2-D"),
    ("quantize 3-D", lambda c: q(GOOD[None]), ValueError, "2-D"),
    ("quantize 0-d", lambda c: q(np.array(1.0, np.float32)), ValueError, "2-D"),
    ("quantize cols 33", lambda c: q(np.ones((2, 33), np.float32)), ValueError, "33 columns"),
    ("quantize cols 0", lambda c: q(np.ones((2, 0), np.float32)), ValueError, "0 columns"),
    ("quantize NaN", lambda c: q(nan_matrix()), ValueError, "nan"),
    ("quantize Inf", lambda c: q(GOOD * np.float32(np.inf)), ValueError, "inf"),
    ("quantize fmt", lambda c: q(GOOD, "q4_2"), ValueError, "q4_2"),
    ("quantize fmt empty", lambda c: q(GOOD, ""), ValueError, "fmt"),
    ("quantize fmt None", lambda c: q(GOOD, None), TypeError, None),
    ("quantize method", lambda c: q(GOOD, method="best"), ValueError, "method"),
    ("quantize a None", lambda c: q(None), TypeError, None),
    ("importance length", lambda c: q(GOOD, importance=np.ones(63, np.float32)), ValueError, "importance"),
    ("importance NaN", lambda c: q(GOOD, importance=np.full(64, np.nan)), ValueError, "importance"),
    ("importance negative", lambda c: q(GOOD, importance=-np.ones(64)), ValueError, "importance"),
    ("importance int", lambda c: q(GOOD, importance=np.ones(64, np.int64)), ValueError, "importance"),
    ("importance 2-D", lambda c: q(GOOD, importance=np.ones((1, 64))), ValueError, "importance"),
    # dequantize / QTensor
    ("dequantize array", lambda c: halfbyte.dequantize(GOOD), TypeError, None),
    ("from_bytes length", lambda c: halfbyte.QTensor.from_bytes(b"\0" * 35, "q4_0", (2, 32)), ValueError, "35 bytes"),
    ("from_bytes fmt", lambda c: halfbyte.QTensor.from_bytes(b"", "q9", (0, 32)), ValueError, "fmt"),
    ("from_bytes rows", lambda c: halfbyte.QTensor.from_bytes(b"", "q4_0", (-1, 32)), ValueError, "rows"),
    ("from_bytes cols", lambda c: halfbyte.QTensor.from_bytes(b"", "q4_0", (0, 48)), ValueError, "48"),
    ("from_bytes huge", lambda c: halfbyte.QTensor.from_bytes(b"\0" * 18, "q4_0", (2**62, 2**40)), ValueError, "bytes"),
    ("from_bytes strided", lambda c: halfbyte.QTensor.from_bytes(np.zeros(72, np.uint8)[::2], "q4_0", (1, 32)),
     ValueError, "contiguous"),
    ("from_bytes str", lambda c: halfbyte.QTensor.from_bytes("abc", "q4_0", (1, 32)), TypeError, None),
    ("from_bytes shape 3", lambda c: halfbyte.QTensor.from_bytes(b"", "q4_0", (1, 2, 3)), TypeError, None),
    ("setstate arity", lambda c: halfbyte.QTensor.__new__(halfbyte.QTensor).__setstate__(("q4_0",)), ValueError,
     "setstate"),
    ("buffer is read-only", lambda c: np.frombuffer(QT, np.uint8).__setitem__(0, 1), ValueError, "read-only"),
    ("memoryview is read-only", lambda c: memoryview(QT).__setitem__(0, 1), TypeError, "read-only"),
    ("pickle truncated", lambda c: pickle.loads(pickle.dumps(QT)[:-5]), pickle.UnpicklingError, None),
    # matmul
    ("matmul x float64", lambda c: mm(X.astype(np.float64), QT), ValueError, "x must have dtype float32"),
    ("matmul x 3-D", lambda c: mm(X[None], QT), ValueError, "x must be 1-D"),
    ("matmul x 0-d", lambda c: mm(np.array(1.0, np.float32), QT), ValueError, "x must be 1-D"),
    ("matmul K", lambda c: mm(np.ones((2, 32), np.float32), QT), ValueError, "K = 32"),
    ("matmul w list", lambda c: mm(X, [[1.0] * 64]), ValueError, "w must be a QTensor"),
    ("matmul w int", lambda c: mm(X, np.ones((2, 64), np.int32)), ValueError, "w must be"),
    ("matmul w 1-D", lambda c: mm(X, np.ones(64, np.float32)), ValueError, "w must be 2-D"),
    ("matmul precision", lambda c: mm(X, QT, precision="fast"), ValueError, "precision"),
    ("matmul n_threads 0", lambda c: mm(X, QT, n_threads=0), ValueError, "n_threads"),
    ("matmul n_threads huge", lambda c: mm(X, QT, n_threads=10**6), ValueError, "n_threads"),
    # runtime settings
    ("set_num_threads 0", lambda c: halfbyte.set_num_threads(0), ValueError, "n must be"),
    ("set_num_threads huge", lambda c: halfbyte.set_num_threads(10**6), ValueError, "n must be"),
    ("set_num_threads str", lambda c: halfbyte.set_num_threads("4"), TypeError, None),
    ("set_isa unknown", lambda c: halfbyte.set_isa("nonsense"), ValueError, "nonsense"),
    ("set_isa empty", lambda c: halfbyte.set_isa(""), ValueError, None),
    # load_gguf
    ("load_gguf missing", lambda c: halfbyte.load_gguf(c.missing), FileNotFoundError, "missing.gguf"),
    ("load_gguf directory", lambda c: halfbyte.load_gguf(c.dir), OSError, "a_directory"),
    ("load_gguf empty", lambda c: halfbyte.load_gguf(c.empty), ValueError, "truncated"),
    ("load_gguf truncated", lambda c: halfbyte.load_gguf(c.truncated), ValueError, "truncated.gguf"),
    ("load_gguf not gguf", lambda c: halfbyte.load_gguf(c.text), ValueError, "not a GGUF file"),
    ("load_gguf None", lambda c: halfbyte.load_gguf(None), TypeError, None),
    ("load_gguf progress", lambda c: halfbyte.load_gguf(c.small, progress=3), ValueError, "progress"),
    # save_gguf: values, types, tensors; the key is named
    ("save None value", lambda c: halfbyte.save_gguf(c.missing, {"k.none": None}, {}), ValueError, "'k.none'"),
    ("save dict value", lambda c: halfbyte.save_gguf(c.missing, {"k.d": {}}, {}), ValueError, "'k.d'"),
    ("save mixed list", lambda c: halfbyte.save_gguf(c.missing, {"k.m": [1, "a"]}, {}), ValueError, "'k.m'"),
    ("save 2**70", lambda c: halfbyte.save_gguf(c.missing, {"k.big": 2**70}, {}), ValueError, "'k.big'"),
    ("save f32 overflow", lambda c: halfbyte.save_gguf(c.missing, {"k.f": 1e300}, {}), ValueError, "'k.f'"),
    ("save u8 range", lambda c: halfbyte.save_gguf(c.missing, {"k.u": 300}, {}, types={"k.u": "u8"}), ValueError,
     "'k.u'"),
    ("save type name", lambda c: halfbyte.save_gguf(c.missing, {"k.t": 1}, {}, types={"k.t": "int"}), ValueError,
     "types['k.t']"),
    ("save type mismatch", lambda c: halfbyte.save_gguf(c.missing, {"k.s": "x"}, {}, types={"k.s": "u32"}),
     ValueError, "'k.s'"),
    ("save key not str", lambda c: halfbyte.save_gguf(c.missing, {1: 1}, {}), ValueError, "keys must be str"),
    ("save tensor list", lambda c: halfbyte.save_gguf(c.missing, {}, {"t": [1.0]}), ValueError, "tensors['t']"),
    ("save tensor bool", lambda c: halfbyte.save_gguf(c.missing, {}, {"t": GOOD > 0}), ValueError, "tensors['t']"),
    ("save tensor 0-d", lambda c: halfbyte.save_gguf(c.missing, {}, {"t": np.float32(1) * np.ones(())}),
     ValueError, "tensors['t']"),
    ("save tensor 5-D", lambda c: halfbyte.save_gguf(c.missing, {}, {"t": np.ones((1,) * 5, np.float32)}),
     ValueError, "tensors['t']"),
    ("save tensor empty", lambda c: halfbyte.save_gguf(c.missing, {}, {"t": np.ones((0, 3), np.float32)}),
     ValueError, "tensors['t']"),
    ("save tensor big-endian", lambda c: halfbyte.save_gguf(c.missing, {}, {"t": GOOD.astype(">f4")}), ValueError,
     "tensors['t']"),
    ("save int4 QTensor", lambda c: halfbyte.save_gguf(c.missing, {}, {"t": q(GOOD, "int4_g64")}), ValueError,
     "tensors['t']"),
    ("save empty QTensor", lambda c: halfbyte.save_gguf(c.missing, {}, {"t": q(np.ones((0, 32), np.float32))}),
     ValueError, "tensors['t']"),
    ("save long name", lambda c: halfbyte.save_gguf(c.missing, {}, {"n" * 65: GOOD}), ValueError, "64"),
    ("save name not str", lambda c: halfbyte.save_gguf(c.missing, {}, {("a",): GOOD}), ValueError, "names must be str"),
    ("save metadata list", lambda c: halfbyte.save_gguf(c.missing, [("k", 1)], {}), TypeError, "metadata"),
    ("save missing dir", lambda c: halfbyte.save_gguf(os.path.join(c.missing, "x.gguf"), {}, {}), FileNotFoundError,
     "x.gguf"),
    ("save onto directory", lambda c: halfbyte.save_gguf(c.dir, {}, {}), OSError, "a_directory"),
]

MODEL_CASES = [
    ("Model missing", lambda c: halfbyte.Model(c.missing), FileNotFoundError, "missing.gguf"),
    ("Model directory", lambda c: halfbyte.Model(c.dir), OSError, "a_directory"),
    ("Model empty", lambda c: halfbyte.Model(c.empty), ValueError, "empty.gguf"),
    ("Model text", lambda c: halfbyte.Model(c.text), ValueError, "text.gguf"),
    ("Model truncated", lambda c: halfbyte.Model(c.truncated), ValueError, "truncated.gguf"),
    ("Model no tensors", lambda c: halfbyte.Model(c.small), ValueError, None),
    ("Model None", lambda c: halfbyte.Model(None), TypeError, None),
    ("Model n_ctx", lambda c: halfbyte.Model(c.model_path, n_ctx=0), ValueError, "n_ctx"),
    ("Model n_batch", lambda c: halfbyte.Model(c.model_path, n_batch=0), ValueError, "n_batch"),
    ("Model n_threads", lambda c: halfbyte.Model(c.model_path, n_threads=0), ValueError, "n_threads"),
    ("Model n_threads huge", lambda c: halfbyte.Model(c.model_path, n_threads=10**6), ValueError, "n_threads"),
    ("Model precision", lambda c: halfbyte.Model(c.model_path, precision="half"), ValueError, "precision"),
    ("Model kv_cache", lambda c: halfbyte.Model(c.model_path, kv_cache="f8"), ValueError, "kv_cache"),
    ("Model quantize", lambda c: halfbyte.Model(c.model_path, quantize="q3_x"), ValueError, "q3_x"),
    ("Model tokenizer empty", lambda c: halfbyte.Model(c.model_path, tokenizer=""), ValueError, "tokenizer"),
    ("Model tokenizer missing", lambda c: halfbyte.Model(c.model_path, tokenizer=c.missing), FileNotFoundError,
     "missing.gguf"),
    ("Model progress", lambda c: halfbyte.Model(c.model_path, progress=3), ValueError, "progress"),
    ("logits empty", lambda c: c.model.logits([]), ValueError, "empty"),
    ("logits id", lambda c: c.model.logits([10**9]), ValueError, "outside the vocabulary"),
    ("logits huge id", lambda c: c.model.logits([10**30]), ValueError, "outside the vocabulary"),
    ("logits negative id", lambda c: c.model.logits([-1]), ValueError, "outside the vocabulary"),
    ("logits str id", lambda c: c.model.logits(["a"]), TypeError, "integers"),
    ("logits float id", lambda c: c.model.logits([1.5]), TypeError, "integers"),
    ("logits not iterable", lambda c: c.model.logits(5), TypeError, None),
    ("logits too long", lambda c: c.model.logits(list(range(33))), ValueError, "context length"),
    ("detokenize id", lambda c: c.model.detokenize([-1]), ValueError, "outside the vocabulary"),
    ("tokenize None", lambda c: c.model.tokenize(None), TypeError, None),
    ("generate max_tokens", lambda c: c.model.generate("x", max_tokens=-1), ValueError, "max_tokens"),
    ("generate temperature", lambda c: c.model.generate("x", temperature=-1), ValueError, "temperature"),
    ("generate temperature NaN", lambda c: c.model.generate("x", temperature=float("nan")), ValueError,
     "temperature"),
    ("generate top_p", lambda c: c.model.generate("x", top_p=0), ValueError, "top_p"),
    ("generate min_p", lambda c: c.model.generate("x", min_p=1), ValueError, "min_p"),
    ("generate repeat_penalty", lambda c: c.model.generate("x", repeat_penalty=0), ValueError, "repeat_penalty"),
    ("generate seed", lambda c: c.model.generate("x", seed=-1), ValueError, "seed"),
    ("generate empty prompt", lambda c: c.model.generate(""), ValueError, "prompt"),
    ("generate stream bad", lambda c: list(c.model.generate("x", max_tokens=-1, stream=True)), ValueError,
     "max_tokens"),
    ("generate chat template", lambda c: c.model.generate("x", chat=True), RuntimeError, "chat template"),
    ("closed generate", lambda c: c.closed.generate("x"), ValueError, "closed"),
    ("closed logits", lambda c: c.closed.logits([1]), ValueError, "closed"),
    ("closed tokenize", lambda c: c.closed.tokenize("x"), ValueError, "closed"),
    ("closed detokenize", lambda c: c.closed.detokenize([1]), ValueError, "closed"),
    ("closed config", lambda c: c.closed.config, ValueError, "closed"),
    ("closed stream", lambda c: list(c.closed.generate("x", stream=True)), ValueError, "closed"),
]


def run_case(ctx, call, exc, fragment):
    with pytest.raises(exc) as info:
        call(ctx)
    assert type(info.value) is exc or exc is OSError, f"{type(info.value).__name__}: {info.value}"
    if fragment is not None:
        assert fragment.lower() in str(info.value).lower(), str(info.value)


@pytest.mark.parametrize("name, call, exc, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ctx, name, call, exc, fragment):
    run_case(ctx, call, exc, fragment)


@pytest.mark.skipif(not HAVE_VOCAB, reason="tests/data/tokenizer-tests not found")
@pytest.mark.parametrize("name, call, exc, fragment", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model_input(ctx, name, call, exc, fragment):
    run_case(ctx, call, exc, fragment)


def test_no_partial_files_after_failed_saves(ctx):
    assert not os.path.exists(ctx.missing)
    leftovers = [n for n in os.listdir(os.path.dirname(ctx.missing)) if ".tmp-" in n]
    assert leftovers == []


def test_interpreter_and_library_survive_every_bad_input(ctx):
    cases = CASES + (MODEL_CASES if HAVE_VOCAB else [])
    y_before = halfbyte.matmul(X, QT)
    for _, call, exc, _ in cases * 2:
        with pytest.raises(exc):
            call(ctx)
    # Everything still works, with the same results as before.
    assert halfbyte.quantize(GOOD, "q4_0") == QT
    np.testing.assert_array_equal(halfbyte.matmul(X, QT), y_before)
    assert halfbyte.load_gguf(ctx.small).tensors["w"].shape == GOOD.shape
    if HAVE_VOCAB:
        assert ctx.model.generate("Hi", max_tokens=4) == ctx.model.generate("Hi", max_tokens=4)
        ctx.closed.close()  # closing twice is fine


def test_setstate_on_a_live_tensor_does_not_change_it():
    qt = halfbyte.quantize(GOOD, "q8_0")
    view = np.frombuffer(qt, np.uint8)
    before = view.copy()
    qt.__setstate__(("q4_0", (1, 32), b"\0" * 18))  # pybind11: a no-op once constructed
    assert qt.shape == GOOD.shape and qt.format == "q8_0"
    np.testing.assert_array_equal(view, before)


HOSTILE = textwrap.dedent(
    """
    import os, random, sys
    sys.path.insert(0, {here!r})
    import numpy as np
    import halfbyte
    from gguf_models import VOCABS, write_random_llama
    d = {tmp!r}
    small = os.path.join(d, "s.gguf")
    halfbyte.save_gguf(small, {{"general.architecture": "llama", "a": [1, 2, 3], "s": ["x", "yz"]}},
                       {{"w": np.ones((2, 32), np.float32), "q": halfbyte.quantize(np.ones((2, 32), np.float32))}})
    data = open(small, "rb").read()
    bad = os.path.join(d, "bad.gguf")
    outcomes = {{}}

    def attempt(fn, blob):
        with open(bad, "wb") as f:
            f.write(blob)
        try:
            fn(bad)
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except (ValueError, OSError, RuntimeError) as e:
            outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1

    for n in range(len(data)):  # every truncation
        attempt(halfbyte.load_gguf, data[:n])
    rng = random.Random(1)
    for _ in range(300):  # random byte corruption
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        attempt(halfbyte.load_gguf, bytes(b))
    if os.path.exists(VOCABS["gpt2"]):
        model = open(write_random_llama(os.path.join(d, "m.gguf"), dtype="q4_0", vocab="gpt2", n_layer=1,
                                        n_ctx=32), "rb").read()
        for n in sorted({{int(len(model) * k / 40) for k in range(40)}}):
            attempt(halfbyte.Model, model[:n])
    print("survived", outcomes)
    """
)


def test_hostile_files_in_a_child_process(tmp_path):
    code = HOSTILE.format(here=HERE, tmp=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"child died with {r.returncode}: {r.stderr[-2000:]}"
    assert "survived" in r.stdout and "ValueError" in r.stdout, r.stdout
    outcomes = eval(r.stdout.split("survived", 1)[1])  # a dict literal printed by the child
    assert set(outcomes) <= {"ok", "ValueError", "RuntimeError"}, outcomes  # exactly these, no subclasses
