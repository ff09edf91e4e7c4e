"""halfbyte.Model: load progress and cancellation, Ctrl-C (a real SIGINT, in a child
process), and calls from several Python threads on one model and on several."""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama

pytestmark = pytest.mark.skipif(not os.path.exists(VOCABS["gpt2"]), reason="tests/data/tokenizer-tests not found")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = str(tmp_path_factory.mktemp("prog") / "m.gguf")
    return write_random_llama(p, dtype="q8_0", vocab="gpt2", n_layer=3, n_ctx=128)


def test_progress_is_called_per_layer_then_at_the_end(path):
    seen = []
    with halfbyte.Model(path, progress=seen.append) as m:
        assert m.generate("Hi", max_tokens=2) is not None
    assert seen == [0.25, 0.5, 0.75, 1.0]  # 3 layers, then the output head and the rest


def test_progress_returning_false_cancels_with_runtime_error(path):
    with pytest.raises(RuntimeError, match="load cancelled"):
        halfbyte.Model(path, progress=lambda f: f < 0.5)


def test_progress_exception_cancels_and_is_reraised(path):
    def interrupt(fraction):
        if fraction >= 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        halfbyte.Model(path, progress=interrupt)

    class Boom(Exception):
        pass

    def boom(fraction):
        raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback"):
        halfbyte.Model(path, progress=boom)
    # The interpreter and the library are fine afterwards.
    with halfbyte.Model(path) as m:
        assert m.config["n_layer"] == 3


def test_progress_true_shows_a_bar(path, capsys, monkeypatch):
    halfbyte.Model(path, progress=True).close()
    assert "loading m.gguf" in capsys.readouterr().err  # tqdm writes to stderr
    monkeypatch.setitem(sys.modules, "tqdm", None)
    halfbyte.Model(path, progress=True).close()
    assert "loading m.gguf: 100%" in capsys.readouterr().err
    with pytest.raises(ValueError, match="progress"):
        halfbyte.Model(path, progress=3)


CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    sys.path.insert(0, {here!r})
    import halfbyte
    from gguf_models import write_random_llama
    p = write_random_llama({model!r}, dtype="q8_0", vocab="gpt2", n_layer=2, n_ctx=4096, n_embd=256, n_ff=512)
    m = halfbyte.Model(p, n_threads=1)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    try:
        m.generate("Hello", max_tokens=4000)  # several seconds uninterrupted
        print("finished")
    except KeyboardInterrupt:
        print("interrupted after %.2f s" % (time.monotonic() - t0))
    print("still works:", len(m.generate("Hello", max_tokens=3)) >= 0)
    """
)


def test_ctrl_c_stops_generate(tmp_path):
    code = CHILD.format(here=HERE, model=str(tmp_path / "long.gguf"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "interrupted after" in r.stdout, r.stdout
    assert float(r.stdout.split("interrupted after ")[1].split()[0]) < 2.0
    assert "still works: True" in r.stdout


def test_threads_on_one_model_queue_up_and_close_waits(path):
    m = halfbyte.Model(path)
    want = m.generate("Hello", max_tokens=16)
    results, errors = [], []

    def work(stream):
        try:
            for _ in range(3):
                out = m.generate("Hello", max_tokens=16, stream=stream)
                results.append(out if isinstance(out, str) else "".join(out))
                m.tokenize("Hello world")
                m.config
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i % 2 == 1,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert errors == [] and results == [want] * 12

    # close() from another thread while a call runs: it waits for the call, then
    # later calls raise ValueError.
    done = []
    runner = threading.Thread(target=lambda: done.append(m.generate("Hello", max_tokens=64)), daemon=True)
    runner.start()
    m.close()
    runner.join(timeout=120)
    assert len(done) == 1 and isinstance(done[0], str)
    with pytest.raises(ValueError, match="closed"):
        m.generate("x")


def test_threads_on_different_models(path):
    models = [halfbyte.Model(path, n_threads=1) for _ in range(3)]
    want = models[0].generate("Once", max_tokens=12)
    out = [None] * 3
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, models[i].generate("Once", max_tokens=12)),
                                daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert out == [want] * 3
    for mdl in models:
        mdl.close()
