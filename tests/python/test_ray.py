"""halfbyte.ray (corpus-scale embedding on Ray), against single-process halfbyte.

Cluster tests run ray_scenarios.py inside a network namespace made here with only
`lo` up (`ip netns`, needs root), so that every Ray node is 127.0.0.1 (asserted)
and no other address can be reached; a two-node ray.cluster_utils.Cluster, 1 CPU a
node. Checked: 20,000 texts come back exactly once, each embedding within cosine
0.99999 of Encoder.embed's; classify_dataset == Encoder.classify; the model through
the object store; a node whose copy of the model differs is named before the job
starts; a node removed or an actor's worker SIGKILLed mid-job: every row exactly
once; `halfbyte embed --ray ADDRESS` with its driver SIGKILLed after two shards: the
re-run keeps those shards untouched and writes the rest. Without a cluster: the
model hash, input reading, shard writing and resuming rules.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import halfbyte
from encoder_texts import prose

pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
import halfbyte.ray as hray  # noqa: E402
from halfbyte.ray import _shards  # noqa: E402
from halfbyte.text import chunk_text  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MINILM = os.path.abspath(os.environ.get("HALFBYTE_MINILM", os.path.join(HERE, "..", "..", "models",
                                                                        "all-MiniLM-L6-v2")))
needs_minilm = pytest.mark.skipif(not os.path.exists(os.path.join(MINILM, "model.safetensors")),
                                  reason="all-MiniLM-L6-v2 not fetched (examples/fetch_minilm.sh)")
COS = 0.99999


def cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def encoder():
    return halfbyte.Encoder(MINILM)


# --- cluster scenarios ------------------------------------------------------------------------

def _netns_unavailable():
    if os.geteuid() != 0:
        return "needs root for `ip netns` (the Ray cluster runs in a namespace with only lo up)"
    if shutil.which("ip") is None:
        return "needs `ip` (Debian's iproute2)"
    return None


@pytest.fixture(scope="module")
def netns():
    why = _netns_unavailable()
    if why:
        pytest.skip(f"skipped: Ray cluster tests {why}")
    name = f"hbray{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        links = subprocess.run(["ip", "-n", name, "-o", "link", "show", "up"], capture_output=True, text=True,
                               check=True).stdout
        assert [ln.split(":")[1].strip() for ln in links.splitlines()] == ["lo"], links
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "delete", name])


def scenario(netns, name, work, *args, timeout=900):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]),
               RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, os.path.join(HERE, "ray_scenarios.py"),
                           name, str(work), MINILM, *args], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"scenario {name} failed ({proc.returncode}):\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def assert_loopback(addresses):
    assert addresses["listed"] == ["127.0.0.1", "127.0.0.1"], addresses
    assert addresses["in_tasks"] == ["127.0.0.1", "127.0.0.1"], addresses
    assert addresses["gcs"].startswith("127.0.0.1:"), addresses


def assert_exactly_once(ids, emb, ref):
    assert len(ids) == len(ref), f"{len(ids)} rows back for {len(ref)}"
    assert np.array_equal(np.sort(ids), np.arange(len(ref))), "rows missing or repeated"
    got = emb[np.argsort(ids)]
    c = cosines(got, ref)
    assert c.min() >= COS, f"row {int(c.argmin())}: cosine {c.min()}"


def small_classifier(folder):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(11)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=160, max_position_embeddings=512,
                                  id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    transformers.BertForSequenceClassification(cfg).save_pretrained(folder)
    for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(MINILM, f), os.path.join(folder, f))
    return folder


@needs_minilm
def test_20k_texts_two_nodes_classify_and_object_store(netns, tmp_path, encoder):
    clf = small_classifier(str(tmp_path / "clf"))
    facts = scenario(netns, "embed", tmp_path, clf)
    assert_loopback(facts["addresses"])
    n = int(os.environ.get("HALFBYTE_RAY_ROWS", "20000"))
    texts = prose(n)
    got = np.load(tmp_path / "embed.npz")
    assert_exactly_once(got["ids"], got["emb"], encoder.embed(texts))

    small = prose(300, seed=7)
    want = halfbyte.Encoder(clf).classify(small, top_k=None)
    rows = sorted(json.load(open(tmp_path / "classify.json")), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(len(small)))
    labels = ["neg", "neu", "pos"]
    for r, w in zip(rows, want):
        assert r["label"] == w[0]["label"]
        assert r["score"] == pytest.approx(w[0]["score"], abs=1e-6)
        by_label = {d["label"]: d["score"] for d in w}
        assert r["scores"] == pytest.approx([by_label[lb] for lb in labels], abs=1e-6)

    got = np.load(tmp_path / "object_store.npz")
    assert_exactly_once(got["ids"], got["emb"], encoder.embed(small))
    assert facts["cache"] == [hray.model_sha256(MINILM)]


@needs_minilm
def test_node_with_another_model_is_named(netns, tmp_path, encoder):
    facts = scenario(netns, "mismatch", tmp_path)
    assert_loopback(facts["addresses"])
    err = facts["error"]
    assert err is not None, "a node with a different model file was not noticed"
    assert facts["worker_node_id"][:12] in err and "127.0.0.1" in err, err
    assert facts["head_node_id"][:12] not in err, err  # the head's copy is the driver's
    assert "SHA-256" in err and hray.model_sha256(MINILM) in err, err
    got = np.load(tmp_path / "object_store.npz")
    assert_exactly_once(got["ids"], got["emb"], encoder.embed(prose(200, seed=3)))
    sha = hray.model_sha256(MINILM)
    assert facts["caches"] == [[sha], [sha]], "each node keeps the driver's model in its own cache"


@needs_minilm
def test_node_removed_mid_job(netns, tmp_path, encoder):
    facts = scenario(netns, "remove_node", tmp_path)
    assert facts["removed_at"] is not None and facts["removed_at"] < 5000, facts
    assert facts["alive_after"] == 1
    got = np.load(tmp_path / "rows.npz")
    assert_exactly_once(got["ids"], got["emb"], encoder.embed(prose(5000, seed=5)))


@needs_minilm
def test_worker_sigkilled_mid_job(netns, tmp_path, encoder):
    facts = scenario(netns, "kill_worker", tmp_path)
    assert facts["killed"] and facts["killed"]["pid"], f"no actor process found to kill: {facts}"
    got = np.load(tmp_path / "rows.npz")
    assert_exactly_once(got["ids"], got["emb"], encoder.embed(prose(5000, seed=6)))


def _cli_command():
    exe = shutil.which("halfbyte")
    if exe:  # the C++ tool forwards `embed --ray` to this Python's halfbyte.ray
        return [exe]
    return [sys.executable, "-m", "halfbyte.ray"]


def read_shards(out):
    t = pq.read_table(out)  # the manifest starts with "_": Parquet readers skip it
    ids = t.column("id").to_numpy()
    emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False))
    return t, ids, emb


@needs_minilm
def test_cli_resumes_after_the_driver_is_killed(netns, tmp_path, encoder, monkeypatch):
    texts = prose(3000, seed=9)
    with open(tmp_path / "in.jsonl", "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t, "other": 1}) + "\n")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    files = {"b.txt": "\n\n".join(prose(12, seed=1)), "a.md": " ".join(prose(30, seed=2)),
             "sub/c.txt": "short note", ".hidden.txt": "never read", "skip.csv": "x,y"}
    for rel, text in files.items():
        (docs / rel).write_text(text)
    monkeypatch.setenv("HALFBYTE_PYTHON", sys.executable)
    facts = scenario(netns, "cli", tmp_path, json.dumps(_cli_command()))
    assert facts["first_rc"] == -9
    assert len(facts["kept"]) >= 2
    assert facts["kept_untouched"], "the re-run rewrote shards the killed run had completed"
    assert facts["second_rc"] == 0, facts["second_err"]
    assert f"skipped {len(facts['kept'])} complete shards" in facts["second_out"], facts["second_out"]

    t, ids, emb = read_shards(tmp_path / "out")
    assert_exactly_once(ids, emb, encoder.embed(texts))
    order = np.argsort(ids)
    want = [hashlib.sha256(texts[i].encode()).hexdigest() for i in ids[order]]
    assert [t.column("text_sha256")[int(i)].as_py() for i in order] == want
    assert sorted(os.listdir(tmp_path / "out")) == ["_halfbyte_manifest.json"] + [f"part-{k:05d}.parquet"
                                                                                   for k in range(10)]

    assert facts["folder_rc"] == 0, facts["folder_err"]
    t, ids, emb = read_shards(tmp_path / "docs_out")
    chunks = [(rel, i, c) for rel in ("a.md", "b.txt", "sub/c.txt")
              for i, c in enumerate(chunk_text(files[rel], 40, 8))]
    assert ids.tolist() == list(range(len(chunks)))
    assert t.column("path").to_pylist() == [c[0] for c in chunks]
    assert t.column("chunk").to_pylist() == [c[1] for c in chunks]
    assert cosines(emb, encoder.embed([c[2] for c in chunks])).min() >= COS


# --- without a cluster ---------------------------------------------------------------------------

def test_model_sha256_file_and_folder(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + bytes(range(256)) * 9000)
    assert hray.model_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    d = tmp_path / "hf"
    (d / "1_Pooling").mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    lines = "".join(f"{rel}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n" for rel, data in
                    [("1_Pooling/config.json", b'{"pooling_mode_mean_tokens": true}'), ("config.json", b"{}")])
    want = hashlib.sha256(lines.encode()).hexdigest()
    assert hray.model_sha256(d) == want
    (d / ".cache").mkdir()
    (d / ".cache" / "x").write_text("ignored")
    assert hray.model_sha256(d) == want, "hidden files are not part of the model"
    (d / "config.json").write_text("{ }")
    assert hray.model_sha256(d) != want
    with pytest.raises(FileNotFoundError, match="no such model"):
        hray.model_sha256(tmp_path / "missing")


def test_source_reads_parquet_jsonl_and_text_in_order(tmp_path):
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"text": ["b0", "b1"], "n": [1, 2]}), tmp_path / "pq" / "b.parquet")
    pq.write_table(pa.table({"text": ["a0"], "n": [0]}), tmp_path / "pq" / "a.parquet")
    src = _shards.Source.open(tmp_path / "pq")
    assert (src.kind, src.count()) == ("parquet", 3)
    assert [t for b in src.batches() for t in b["text"]] == ["a0", "b0", "b1"]

    (tmp_path / "in.jsonl").write_text('{"body": "x"}\n\n{"body": "y"}\n')
    src = _shards.Source.open(tmp_path / "in.jsonl", column="body")
    assert (src.kind, src.count(), [t for b in src.batches() for t in b["text"]]) == ("jsonl", 2, ["x", "y"])
    (tmp_path / "bad.jsonl").write_text('{"text": "x"}\n{"text": 3}\n')
    with pytest.raises(_shards.ShardError, match=r"bad.jsonl:2: expected an object with a string 'text'"):
        _shards.Source.open(tmp_path / "bad.jsonl").count()
    (tmp_path / "worse.jsonl").write_text('{"text": "x"}\nnot json\n')
    with pytest.raises(_shards.ShardError, match=r"worse.jsonl:2: not JSON"):
        _shards.Source.open(tmp_path / "worse.jsonl").count()
    with pytest.raises(_shards.ShardError, match="no column 'body'"):
        list(_shards.Source.open(tmp_path / "pq", column="body").batches())
    with pytest.raises(_shards.ShardError, match="column 'n' is int64, expected strings"):
        list(_shards.Source.open(tmp_path / "pq", column="n").batches())
    (tmp_path / "nulls").mkdir()
    pq.write_table(pa.table({"text": ["x", None]}), tmp_path / "nulls" / "a.parquet")
    with pytest.raises(_shards.ShardError, match="column 'text' has nulls"):
        list(_shards.Source.open(tmp_path / "nulls").batches())
    with pytest.raises(_shards.ShardError, match="holds no text files"):
        _shards.Source.open(tmp_path / "pq", kind="text")
    with pytest.raises(FileNotFoundError):
        _shards.Source.open(tmp_path / "nope")

    before = _shards.Source.open(tmp_path / "pq").fingerprint()
    pq.write_table(pa.table({"text": ["c0"]}), tmp_path / "pq" / "c.parquet")
    assert _shards.Source.open(tmp_path / "pq").fingerprint() != before


def manifest(rows, shard_rows, **kw):
    fields = dict(format=_shards.FORMAT, input="/in", input_kind="jsonl", input_fingerprint="f", column="text",
                  model="/m", model_sha256="s", dtype="q8_0", normalize=None, max_words=150, overlap=30,
                  rows=rows, shard_rows=shard_rows)
    return _shards.Manifest(**dict(fields, **kw))


def test_shard_writer_writes_each_shard_once_when_complete(tmp_path):
    m = manifest(7, 3)
    w = _shards.ShardWriter(tmp_path, m, {})

    def batch(ids):
        ids = np.array(ids)
        return {"id": ids, "text_sha256": np.array([f"h{i}" for i in ids], dtype=object),
                "embedding": np.stack([np.full(4, i, np.float32) for i in ids])}

    assert w.add(batch([4, 0, 1])) == 3 and w.written == []
    assert w.add(batch([1, 2])) == 1 and w.written == [0]  # row 1 twice: dropped, counted
    assert w.duplicates == 1
    assert w.add(batch([6, 3, 5])) == 3 and sorted(w.written) == [0, 1, 2] and not w.open
    t = pq.read_table(_shards.shard_path(tmp_path, 1))
    assert t.column("id").to_pylist() == [3, 4, 5]
    assert t.column("text_sha256").to_pylist() == ["h3", "h4", "h5"]
    assert t.schema.field("embedding").type == pa.list_(pa.float32(), 4)
    assert np.stack(t.column("embedding").to_numpy(zero_copy_only=False))[:, 0].tolist() == [3, 4, 5]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")], "temporary files left behind"


def test_open_outdir_resumes_and_refuses_another_job(tmp_path):
    m = manifest(7, 3)
    assert _shards.open_outdir(tmp_path, m) == [0, 1, 2]
    pq.write_table(pa.table({"id": [0, 1, 2]}), _shards.shard_path(tmp_path, 0))
    pq.write_table(pa.table({"id": [3]}), _shards.shard_path(tmp_path, 1))  # short: redone
    (tmp_path / ".part-00002.parquet.tmp123").write_bytes(b"half")
    assert _shards.open_outdir(tmp_path, m) == [1, 2]
    assert not (tmp_path / ".part-00002.parquet.tmp123").exists()
    assert not _shards.shard_path(tmp_path, 1).exists()
    with pytest.raises(_shards.ShardError, match=r"another job \(model_sha256: 'other' now, 's' before\)"):
        _shards.open_outdir(tmp_path, manifest(7, 3, model_sha256="other"))
    with pytest.raises(_shards.ShardError, match="shard_rows"):
        _shards.open_outdir(tmp_path, manifest(7, 4))


def test_cli_arguments(tmp_path):
    from halfbyte.ray.cli import main

    assert main(["classify"]) == 2
    with pytest.raises(SystemExit, match="--shard-rows must be >= 1"):
        main(["embed", "-m", "x", "-i", "y", "-o", "z", "--shard-rows", "0"])
    assert main(["embed", "-m", "x", "-i", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 1


def test_cpp_tool_forwards_embed_ray(tmp_path):
    exe = shutil.which("halfbyte")
    if exe is None:
        pytest.skip("the halfbyte command is not installed")
    env = dict(os.environ, HALFBYTE_PYTHON=sys.executable)
    r = subprocess.run([exe, "embed", "--ray", "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "usage: halfbyte embed --ray" in r.stdout and "--shard-rows" in r.stdout
    env["HALFBYTE_PYTHON"] = str(tmp_path / "no-python")
    r = subprocess.run([exe, "embed", "--ray", "-m", "x"], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "HALFBYTE_PYTHON" in r.stderr and "no-python" in r.stderr


@needs_minilm
def test_udfs_in_process(encoder):
    from halfbyte.ray._model import ModelSpec
    from halfbyte.ray._udf import ClassifyUDF, EmbedUDF

    spec = ModelSpec(MINILM, hray.model_sha256(MINILM))
    udf = EmbedUDF(spec, "q8_0", 2, "body", None, 64, None, "vec", hash_column="h", drop_text=True)
    texts = prose(40, seed=8)
    out = udf({"body": np.array(texts, dtype=object), "id": np.arange(40)})
    assert "body" not in out and out["id"].tolist() == list(range(40))
    assert out["h"][3] == hashlib.sha256(texts[3].encode()).hexdigest()
    assert cosines(out["vec"], encoder.embed(texts)).min() >= COS
    with pytest.raises(KeyError, match="no column 'body'"):
        udf({"text": np.array(["x"], dtype=object)})
    with pytest.raises(TypeError, match="column 'body' holds a NoneType"):
        udf({"body": np.array(["x", None], dtype=object)})
    with pytest.raises(ValueError, match="has no classification head"):
        ClassifyUDF(spec, "q8_0", 1, "text", None, 64, None, False)
    with pytest.raises(hray.ModelMismatchError, match="has SHA-256 .*, the driver's has 0000"):
        EmbedUDF(ModelSpec(MINILM, "0000"), "q8_0", 1, "text", None, 64, None, "e")


def test_object_store_copy_is_cached_once_and_repaired(tmp_path, monkeypatch):
    from halfbyte.ray import _model

    monkeypatch.setenv("HALFBYTE_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "m"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "sub" / "w.bin").write_bytes(b"\x01\x02" * 1000)
    sha = hray.model_sha256(src)
    packed = _model._pack(src)
    path = _model._materialize(packed, sha, "model")
    assert hray.model_sha256(path) == sha and path == tmp_path / "cache" / "ray-models" / sha
    (path / "sub" / "w.bin").write_bytes(b"damaged")
    assert hray.model_sha256(_model._materialize(packed, sha, "model")) == sha
    f = tmp_path / "one.gguf"
    f.write_bytes(b"GGUF-ish")
    p = _model._materialize(_model._pack(f), hray.model_sha256(f), "one.gguf")
    assert p.name == "one.gguf" and p.read_bytes() == b"GGUF-ish"
    assert not [x for x in (tmp_path / "cache" / "ray-models").iterdir() if x.name.startswith(".")]
    with pytest.raises(ValueError, match="model_source must be one of shared, object_store"):
        _model.make_spec(src, "nfs")
