"""halfbyte's worker pool (src/core/thread_pool.cpp) as Python programs meet it:
a forked child (multiprocessing's default start method on Linux) computes with a
pool of its own; threads that use models at the same moment get the same results
as one at a time; a busy machine does not change results. Logits are compared to
the float reference numpy computes from the same file's weights elsewhere
(test_model.py); here each result is compared to the same call made alone."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import halfbyte
from gguf_models import write_random_llama


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("threads")
    return [write_random_llama(str(d / f"m{i}.gguf"), dtype="q4_0", vocab="gpt2", n_layer=2, n_ctx=256,
                               n_embd=256, n_ff=512, seed=i) for i in range(2)]


def test_forked_child_computes_like_its_parent(model_paths):
    with halfbyte.Model(model_paths[0], n_threads=2) as m:
        ids = m.tokenize("Hello world, " * 20)
        want = m.logits(ids)  # the parent's workers exist before the fork
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: same model object, 2 threads, then report
            try:
                got = m.logits(ids)
                os.write(w, b"ok" if np.array_equal(got, want) else b"different")
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            answer = f.read()
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert answer == b"ok"


def test_threads_using_models_at_once_match_each_alone(model_paths):
    models = [halfbyte.Model(p, n_threads=2) for p in model_paths]
    try:
        prompts = ["The sky is", "Once upon a time"]
        alone = [m.generate(p, max_tokens=24) for m, p in zip(models, prompts)]
        logits_alone = [m.logits(m.tokenize(p * 8)) for m, p in zip(models, prompts)]
        results = [[None, None] for _ in models]

        def work(i):
            for _ in range(3):
                results[i][0] = models[i].generate(prompts[i], max_tokens=24)
                results[i][1] = models[i].logits(models[i].tokenize(prompts[i] * 8))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(models))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(len(models)):
            assert results[i][0] == alone[i]
            np.testing.assert_array_equal(results[i][1], logits_alone[i])
    finally:
        for m in models:
            m.close()


def test_busy_machine_gives_the_same_results(model_paths):
    """Two busy-looping processes take the cores: the pool's callers then run tasks
    their workers have not claimed; the split of work must not change any result."""
    with halfbyte.Model(model_paths[1], n_threads=2) as m:
        ids = m.tokenize("A busy machine " * 12)
        want_logits = m.logits(ids)
        want_text = m.generate("A busy machine", max_tokens=32)
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        try:
            for _ in range(3):
                np.testing.assert_array_equal(m.logits(ids), want_logits)
                assert m.generate("A busy machine", max_tokens=32) == want_text
        finally:
            for p in busy:
                p.kill()
                p.wait()
