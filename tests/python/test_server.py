"""`halfbyte serve` through the official `openai` client: chat, streaming,
completions, embeddings and classification, errors, the API key and shutdown.
References: halfbyte's own single-stream generate and Encoder (the server must
give what the library gives), and llama.cpp's Jinja rendering of the model's
chat template (the prompt must have the tokens llama.cpp makes of it)."""

import base64
import json
import signal
import threading
import time

import numpy as np
import pytest

import halfbyte
from server_util import LLM_ID, MINILM, SMOLLM2, Server, server_available

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.skipif(not server_available(), reason="halfbyte serve or the SmolLM2 model is missing")

EMBED_ID = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def server():
    with Server("-m", SMOLLM2, "--embed-model", MINILM, "--parallel", "4", "-c", "1024", "-t", "2") as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model():
    return halfbyte.Model(SMOLLM2)


def chat(client, content, **kw):
    kw.setdefault("max_tokens", 24)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model=LLM_ID, messages=[{"role": "user", "content": content}], **kw)


def test_models(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [LLM_ID, EMBED_ID]


def test_chat_greedy_equals_generate(client, model):
    r = chat(client, "What is the capital of France?")
    want = model.generate("What is the capital of France?", max_tokens=24, chat=True)
    assert r.choices[0].message.content == want
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.completion_tokens <= 24 and r.usage.prompt_tokens > 0
    assert r.object == "chat.completion" and r.model == LLM_ID


def test_chat_prompt_is_the_templates_rendering(client):
    """The prompt's token count equals llama.cpp's rendering of the GGUF's Jinja
    template (with and without a system message, with earlier turns)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    ref = llama_cpp.Llama(model_path=SMOLLM2, n_ctx=512, verbose=False)
    convs = [[{"role": "user", "content": "Hi"}],
             [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "Hello!"}],
             [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
              {"role": "user", "content": "And 3+3?"}]]
    for msgs in convs:
        ours = client.chat.completions.create(model=LLM_ID, messages=msgs, max_tokens=1, temperature=0)
        theirs = ref.create_chat_completion(messages=msgs, max_tokens=1, temperature=0)
        assert ours.usage.prompt_tokens == theirs["usage"]["prompt_tokens"], msgs


def test_stream_equals_non_stream(client):
    full = chat(client, "Name three fruits.").choices[0].message.content
    chunks = list(chat(client, "Name three fruits.", stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["length"], ["stop"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_completions(client, model):
    r = client.completions.create(model=LLM_ID, prompt="The quick brown fox", max_tokens=16, temperature=0)
    assert r.choices[0].text == model.generate("The quick brown fox", max_tokens=16)
    s = client.completions.create(model=LLM_ID, prompt="The quick brown fox", max_tokens=16, temperature=0,
                                  stream=True)
    assert "".join(c.choices[0].text for c in s) == r.choices[0].text


def test_stop_strings_and_seeded_sampling(client):
    full = chat(client, "Count from one to ten in words.").choices[0].message.content
    assert len(full) > 10
    stop = full[len(full) // 2:len(full) // 2 + 3]
    r = chat(client, "Count from one to ten in words.", stop=[stop])
    assert r.choices[0].message.content == full[:full.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    a = chat(client, "Tell me a story.", temperature=0.9, seed=7).choices[0].message.content
    b = chat(client, "Tell me a story.", temperature=0.9, seed=7).choices[0].message.content
    assert a == b


def test_embeddings_equal_encoder(client):
    texts = ["The cat sat on the mat.", "Ein Hund bellt.", "東京は日本の首都です。", "", "short"]
    enc = halfbyte.Encoder(MINILM, dtype="q8_0")
    want = enc.embed(texts)
    # Without encoding_format the openai client asks for base64 and decodes it
    # itself; asked for explicitly, base64 comes back as the string.
    for fmt in (openai.NOT_GIVEN, "base64", "float"):
        r = client.embeddings.create(model=EMBED_ID, input=texts, encoding_format=fmt)
        data = sorted(r.data, key=lambda d: d.index)
        if fmt == "base64":
            got = np.stack([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in data])
        else:
            got = np.array([d.embedding for d in data], dtype=np.float32)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert cos.min() >= 0.99999, (fmt, cos)
    assert r.usage.prompt_tokens > 0
    one = client.embeddings.create(model=EMBED_ID, input="The cat sat on the mat.", encoding_format="float")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384


def test_classify_needs_a_head(server):
    status, _, body = server.request("POST", "/v1/classify", {"model": EMBED_ID, "input": "x"})
    assert status == 400 and b"no classification head" in body


@pytest.mark.parametrize("kw, param", [
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 10**9}, "max_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"n": 2}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": 5}, "stop"),
    ({"presence_penalty": 1.0}, "presence_penalty"),
    ({"logprobs": True}, "logprobs"),
    ({"stream": "yes"}, "stream"),
])
def test_bad_parameters_are_400(client, kw, param):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "Hi", **{"max_tokens": 4, **kw})
    assert e.value.body["param"] == param
    assert e.value.body["type"] == "invalid_request_error"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model=LLM_ID, input="x")


def test_bad_messages(client, server):
    for msgs, param in [([], "messages"), ([{"role": "robot", "content": "x"}], "messages[0].role"),
                        ([{"role": "user"}], "messages[0].content"),
                        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                         "messages[0].content")]:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model=LLM_ID, messages=msgs, max_tokens=2)
        assert e.value.body["param"] == param
    # Text parts are joined.
    r = client.chat.completions.create(model=LLM_ID, max_tokens=4, temperature=0, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]}])
    assert r.choices[0].message.content == chat(client, "What is the capital of France?", max_tokens=4).choices[0].message.content


def test_prompt_longer_than_the_context_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "word " * 2000, max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded"


def test_health_metrics_openapi(server, client):
    chat(client, "Hi", max_tokens=3)
    assert server.request("GET", "/health")[0] == 200
    status, headers, body = server.request("GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'halfbyte_requests_total{route="/v1/chat/completions",status="200"}' in text
    assert server.metric("halfbyte_completion_tokens_total") > 0
    assert server.metric("halfbyte_slots") == 4
    assert "halfbyte_time_to_first_token_seconds_bucket" in text
    status, _, body = server.request("GET", "/openapi.json")
    doc = json.loads(body)
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health",
            "/metrics"} <= set(doc["paths"])
    assert "/v1/classify" not in doc["paths"]  # MiniLM has no classification head
    assert doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]["model"]["enum"][0] == LLM_ID


def test_api_key():
    with Server("-m", SMOLLM2, "--parallel", "1", "-c", "256", "-t", "2", "--api-key", "s3cret") as s:
        assert s.request("GET", "/health")[0] == 200  # open: for load balancers
        status, headers, body = s.request("GET", "/v1/models")
        assert status == 401 and b"authentication_error" in body
        bad = openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0)
        assert good.models.list().data[0].id == LLM_ID
        assert s.request("GET", "/metrics")[0] == 401


def test_sigterm_lets_a_running_stream_finish():
    s = Server("-m", SMOLLM2, "--parallel", "2", "-c", "512", "-t", "2")
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=120)
        got = []

        def run():
            stream = chat(client, "Write a long story about a dragon.", max_tokens=64, stream=True)
            got.append([c for c in stream])

        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGTERM)
        t.join(120)
        assert got and got[0][-1].choices[0].finish_reason in ("length", "stop")
        assert s.proc.wait(60) == 0
        assert "stopped" in s.output()
    finally:
        s.stop()


def test_refuses_a_busy_port_and_bad_options():
    import socket
    import subprocess
    from server_util import EXE
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        p = subprocess.run([EXE, "serve", "-m", SMOLLM2, "--port", str(port), "-c", "128"], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode != 0 and "cannot listen" in p.stderr
    p = subprocess.run([EXE, "serve"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "model is required" in p.stderr
    p = subprocess.run([EXE, "serve", "-m", "/nonexistent.gguf"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "nonexistent" in p.stderr


def test_classify_equals_encoder_classify(tmp_path):
    """/v1/classify on a DistilBERT sentiment-shaped classifier (MiniLM's encoder
    under a seeded head, as tests/python/test_encoder_heads.py makes it) gives
    what Encoder.classify gives."""
    pytest.importorskip("transformers")
    from test_encoder_heads import distilbert_head
    folder = distilbert_head(str(tmp_path / "sst2"), seed=3, head_scale=30.0)
    texts = ["I loved this film.", "Terrible service, never again.", "It was fine."]
    enc = halfbyte.Encoder(folder, dtype="q8_0")
    with Server("-m", SMOLLM2, "--embed-model", folder, "--embed-alias", "sst2", "--parallel", "1", "-c", "128",
                "-t", "2") as s:
        for top_k, want in [(None, enc.classify(texts, top_k=None)), (1, enc.classify(texts, top_k=1))]:
            status, _, body = s.request("POST", "/v1/classify", {"model": "sst2", "input": texts, "top_k": top_k})
            assert status == 200, body
            got = json.loads(body)["data"]
            assert [[d["label"] for d in row] for row in got] == [[d["label"] for d in row] for row in want]
            np.testing.assert_allclose([[d["score"] for d in row] for row in got],
                                       [[d["score"] for d in row] for row in want], rtol=1e-5, atol=1e-6)
        status, _, body = s.request("POST", "/v1/classify", {"model": "sst2", "input": "Great!"})
        row = json.loads(body)["data"][0]
        assert len(row) == 1 and row[0]["label"] in ("NEGATIVE", "POSITIVE")
