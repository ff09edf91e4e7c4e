"""bench/server_load.py (the load generator behind docs/PERF.md's serving table)
against a real `halfbyte serve`: token counts match the server's usage, no
errors, greedy texts equal at 1 and 2 streams, and non-loopback URLs refused.
Correctness only; speed is measured by the benchmark, not here."""

import os
import sys

import pytest

from server_util import LLM_ID, REPO, SMOLLM2, Server, server_available

sys.path.insert(0, os.path.join(REPO, "bench"))
import server_load  # noqa: E402

pytestmark = pytest.mark.skipif(not server_available(), reason="halfbyte serve or the SmolLM2 model is missing")


def test_run_load_counts_and_texts():
    prompts = ["Name a colour.", "Say hello."]
    with Server("-m", SMOLLM2, "--parallel", "2", "-c", "256", "-t", "2") as s:
        one = server_load.run_load(s.url, LLM_ID, 1, 1, 8, prompts)
        two = server_load.run_load(s.url, LLM_ID, 2, 1, 8, prompts)
        completion = s.metric("halfbyte_completion_tokens_total")
    for r in (one, two):
        assert r["errors"] == 0, r["error_messages"]
        assert r["requests"] == r["concurrency"]
        assert 0 < r["completion_tokens"] <= 8 * r["requests"]
        assert r["aggregate_tps"] > 0 and r["ttft_p50_ms"] > 0
    assert one["completion_tokens"] + two["completion_tokens"] == completion
    texts = dict(tuple(t) for t in two["texts"])
    assert texts[one["texts"][0][0]] == one["texts"][0][1]


@pytest.mark.parametrize("url", ["http://10.0.0.1:8080", "https://127.0.0.1:8080", "http://example.com"])
def test_refuses_non_loopback(url):
    with pytest.raises(ValueError, match="refusing"):
        server_load.parse_local_url(url)
