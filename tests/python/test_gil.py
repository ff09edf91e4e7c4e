"""The GIL is released while halfbyte computes: a Python thread keeps running during
each long call. (With the GIL held it would run only around the call, for about
one switch interval, 5 ms.)"""

import os
import sys
import threading
import time

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS, write_random_llama


def spin_rate_during(fn):
    """(Python-thread iterations per second during fn(), iterations per second alone, seconds fn took)."""
    stop = threading.Event()
    count = [0]

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin, daemon=True)
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    t.start()
    try:
        c0, t0 = count[0], time.perf_counter()
        time.sleep(0.1)
        alone = (count[0] - c0) / (time.perf_counter() - t0)
        c0, t0 = count[0], time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        during = (count[0] - c0) / dt
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    return during, alone, dt


def check(fn, min_seconds=0.15):
    during, alone, dt = spin_rate_during(fn)
    assert dt >= min_seconds, f"the call took {dt:.3f} s, too short to tell"
    # Released: the thread runs for most of the call (shared cores: allow a lot of
    # slack). Held: it runs ~1-5 ms out of >= 150 ms, i.e. < 4% of its rate.
    assert during > 0.15 * alone, f"{during:.0f}/s during vs {alone:.0f}/s alone over {dt:.2f} s"


def test_quantize_and_matmul_release_the_gil():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((1024, 2048)).astype(np.float32)

    def many_quantizes():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.2:  # one call may be short (the scale search is fast now)
            halfbyte.quantize(w, "q4_1")

    check(many_quantizes)
    qt = halfbyte.quantize(w, "q4_0", method="rtn")
    x = rng.standard_normal((256, 2048)).astype(np.float32)
    halfbyte.matmul(x, qt)  # packs once

    def many_matmuls():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.2:  # each call is short: the sum is measured
            halfbyte.matmul(x, qt, n_threads=1)

    check(many_matmuls)


@pytest.mark.skipif(not os.path.exists(VOCABS["gpt2"]), reason="tests/data/tokenizer-tests not found")
def test_model_calls_and_gguf_io_release_the_gil(tmp_path):
    path = write_random_llama(str(tmp_path / "g.gguf"), dtype="f32", vocab="gpt2", n_layer=2, n_ctx=1024,
                              n_embd=256, n_ff=512)
    check(lambda: halfbyte.Model(path, quantize="q4_1", n_threads=1).close(), min_seconds=0.05)
    with halfbyte.Model(path, n_threads=1) as m:
        check(lambda: m.generate("Hello", max_tokens=200))
        ids = m.tokenize("Hello world " * 150)
        check(lambda: m.logits(ids), min_seconds=0.05)
    big = {f"t{i}": np.ones((1024, 1024), np.float32) for i in range(16)}  # 64 MiB
    out = str(tmp_path / "big.gguf")
    check(lambda: halfbyte.save_gguf(out, {}, big), min_seconds=0.02)
