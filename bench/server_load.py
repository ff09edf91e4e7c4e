"""Bounded streaming load on an OpenAI-compatible server running on this machine.

Measures, for a given number of concurrent client streams, how fast a server
decodes: `concurrency` client threads each send `requests_per_client` streamed
chat completions back to back (POST /v1/chat/completions, greedy, stream=true
with stream_options.include_usage) and read the server-sent events. Per request
it records the time to the first content token (TTFT), completion tokens (the
final usage chunk's, else the number of content chunks), total time and text.

    aggregate tokens/s   all completion tokens / wall time of the whole run
    per-stream tokens/s  median over requests of (tokens - 1) / (last content
                         chunk - first content chunk): one stream's decode rate
    TTFT p50/p99         in ms, from sending the request to the first content

Only 127.0.0.1/localhost URLs are accepted; the run is bounded (concurrency x
requests, each request at most `timeout` seconds). Stdlib only.

    python3 bench/server_load.py --url http://127.0.0.1:8080 --model NAME \
        --concurrency 1,4,8 --max-tokens 64 --requests 2

bench/server_vs_peers.py uses run_load() to compare halfbyte serve with
llama.cpp's llama-server and llama-cpp-python's server.
"""

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

# Short, varied chat prompts (the same list for every system).
DEFAULT_PROMPTS = [
    "Write a short poem about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List three uses of a paperclip.",
    "What is the capital of France? Answer briefly.",
    "Give me a recipe idea for a quick breakfast.",
    "Describe a cat to someone who has never seen one.",
    "Write one sentence of advice for a new programmer.",
    "Tell a short story about a robot who learns to paint.",
]

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def parse_local_url(base_url):
    """(host, port, path prefix) of an http URL on this machine; ValueError otherwise."""
    u = urllib.parse.urlsplit(base_url)
    if u.scheme != "http" or u.hostname not in LOCAL_HOSTS:
        raise ValueError(f"refusing {base_url!r}: only http://127.0.0.1 or http://localhost servers are load-tested")
    return u.hostname, u.port or 80, u.path.rstrip("/")


def _percentile(values, q):
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    v = sorted(values)
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def stream_chat(host, port, prefix, model, prompt, max_tokens, timeout):
    """One streamed chat completion; a dict with its timings, tokens and text (or error)."""
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    })
    rec = {"prompt": prompt, "text": "", "tokens": 0, "ttft": None, "total": None, "decode_tps": None, "error": None}
    pieces, chunks, usage_tokens = [], 0, None
    t_first = t_last = None
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", prefix + "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {resp.read(300).decode('utf-8', 'replace')}")
        while True:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"request took over {timeout} s")
            line = resp.readline()
            if not line:
                break  # server closed the stream
            line = line.strip()
            if not line.startswith(b"data:"):
                continue  # blank separators, comments, event:/id: fields
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            ev = json.loads(data)
            if "error" in ev:
                raise RuntimeError(f"error event: {json.dumps(ev['error'])[:300]}")
            choices = ev.get("choices") or []
            content = (choices[0].get("delta") or {}).get("content") if choices else None
            if content:
                now = time.perf_counter()
                if t_first is None:
                    t_first = now
                t_last = now
                chunks += 1
                pieces.append(content)
            usage = ev.get("usage")
            if usage and usage.get("completion_tokens") is not None:
                usage_tokens = int(usage["completion_tokens"])
        t_end = time.perf_counter()
        if t_first is None:
            raise RuntimeError(f"stream ended without content ({usage_tokens} completion tokens in its usage)")
    except Exception as e:  # counted as an error; the load goes on
        rec["error"] = f"{type(e).__name__}: {e}"
        return rec
    finally:
        conn.close()
    rec["text"] = "".join(pieces)
    rec["tokens"] = usage_tokens if usage_tokens is not None else chunks
    rec["ttft"] = t_first - t0
    rec["total"] = t_end - t0
    if rec["tokens"] > 1 and t_last > t_first:
        rec["decode_tps"] = (rec["tokens"] - 1) / (t_last - t_first)
    return rec


def run_load(base_url, model, concurrency, requests_per_client, max_tokens, prompts, timeout=120):
    """Runs the load; returns aggregate and per-request results (see the module doc).

    Client i's j-th request uses prompts[(i * requests_per_client + j) % len(prompts)],
    so a run of concurrency x requests_per_client requests goes over the list in order.
    """
    host, port, prefix = parse_local_url(base_url)
    if concurrency < 1 or requests_per_client < 1 or not prompts:
        raise ValueError("concurrency and requests_per_client must be >= 1, prompts non-empty")
    results = [None] * (concurrency * requests_per_client)

    def client(i):
        for j in range(requests_per_client):
            k = i * requests_per_client + j
            results[k] = stream_chat(host, port, prefix, model, prompts[k % len(prompts)], max_tokens, timeout)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    ok = [r for r in results if r["error"] is None]
    ttfts = [r["ttft"] * 1000 for r in ok]
    rates = [r["decode_tps"] for r in ok if r["decode_tps"] is not None]
    tokens = sum(r["tokens"] for r in ok)
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_messages": [r["error"] for r in results if r["error"] is not None][:5],
        "wall_s": wall,
        "completion_tokens": tokens,
        "aggregate_tps": tokens / wall if wall > 0 else 0.0,
        "per_stream_tps": statistics.median(rates) if rates else None,
        "ttft_p50_ms": _percentile(ttfts, 50) if ttfts else None,
        "ttft_p99_ms": _percentile(ttfts, 99) if ttfts else None,
        "texts": [[r["prompt"], None if r["error"] else r["text"]] for r in results],  # None: failed
        "per_request": [{k: r[k] for k in ("prompt", "tokens", "ttft", "total", "decode_tps", "error")}
                        for r in results],
    }


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080 (this machine only)")
    ap.add_argument("--model", required=True, help="the model id the server expects")
    ap.add_argument("--concurrency", default="1,4,8", help="comma-separated stream counts")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--requests", type=int, default=2, help="requests per client stream")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per request")
    a = ap.parse_args()
    try:
        parse_local_url(a.url)
    except ValueError as e:
        ap.error(str(e))
    print("| streams | requests | errors | aggregate tok/s | per-stream tok/s | TTFT p50 ms | TTFT p99 ms | wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in (int(x) for x in a.concurrency.split(",")):
        r = run_load(a.url, a.model, c, a.requests, a.max_tokens, DEFAULT_PROMPTS, a.timeout)
        print(f"| {c} | {r['requests']} | {r['errors']} | {fmt(r['aggregate_tps'])} | {fmt(r['per_stream_tps'])} | "
              f"{fmt(r['ttft_p50_ms'])} | {fmt(r['ttft_p99_ms'])} | {fmt(r['wall_s'], 2)} |", flush=True)
        for m in r["error_messages"]:
            print(f"  error: {m}")


if __name__ == "__main__":
    main()
