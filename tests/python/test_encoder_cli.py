"""`halfbyte embed` and `halfbyte classify` (the installed command) against
halfbyte.Encoder on the same texts: out.npy (numpy's format 1.0, float32 [n, dim])
equals Encoder.embed of the file's lines (empty lines kept, CRLF accepted); the
classify lines (tab-separated, or JSON with --json) equal Encoder.classify on a
DistilBERT classifier built as in test_encoder_heads.py; bad arguments fail with
messages that name the problem."""

import json
import os
import subprocess

import numpy as np
import pytest

import halfbyte
from encoder_texts import EDGE_CASES, prose
from test_cli import EXE, needs_cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from test_encoder_heads import MINILM, distilbert_head, small_bert  # noqa: E402

pytestmark = [
    needs_cli,
    pytest.mark.skipif(not os.path.exists(os.path.join(MINILM, "model.safetensors")),
                       reason="all-MiniLM-L6-v2 not fetched (examples/fetch_minilm.sh)"),
]

# One text per line: no line breaks inside a text; an empty text in the middle.
LINES = [t for t in EDGE_CASES if "\n" not in t and "\r" not in t] + prose(30)
assert "" in LINES


def run(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True, errors="replace", timeout=300)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_heads")
    return {"distilbert": distilbert_head(str(root / "distilbert"), 1, 10.0),
            "small3": small_bert(str(root / "small3"), 5, id2label={0: "a", 1: "b", 2: "c"})}


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("cli_texts") / "texts.txt"
    p.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return str(p)


def test_embed_f32_equals_encoder_embed(texts_file, tmp_path):
    out = str(tmp_path / "out.npy")
    r = run("embed", "-m", MINILM, "-f", texts_file, "-o", out, "--dtype", "f32")
    assert r.returncode == 0, r.stderr
    assert f"embed: {len(LINES)}/{len(LINES)} texts" in r.stderr  # the progress line
    assert f"wrote {out}: float32 [{len(LINES)}, 384], L2-normalized" in r.stdout
    with open(out, "rb") as f:
        assert np.lib.format.read_magic(f) == (1, 0)
    e = np.load(out)
    assert e.dtype == np.float32 and e.shape == (len(LINES), 384)
    ref = halfbyte.Encoder(MINILM, dtype="f32").embed(LINES)
    np.testing.assert_allclose(e, ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert os.listdir(tmp_path) == ["out.npy"]  # the temp file was renamed


def test_embed_q8_0_options_and_crlf(tmp_path):
    texts = ["first line", "", "third, after an empty line", "  spaced  "]
    p = tmp_path / "crlf.txt"
    p.write_bytes(("\r\n".join(texts) + "\r\n").encode())  # Windows line ends, final newline
    out = str(tmp_path / "q8.npy")
    r = run("embed", "-m", MINILM, "-f", str(p), "-o", out, "--batch-size", "3", "--no-normalize", "-t", "1",
            "--max-length", "16")
    assert r.returncode == 0, r.stderr
    assert "embed: 3/4 texts" in r.stderr and "embed: 4/4 texts" in r.stderr  # after each batch
    e = np.load(out)
    assert e.shape == (4, 384)
    ref = halfbyte.Encoder(MINILM, max_length=16).embed(texts, normalize=False)
    np.testing.assert_allclose(e, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert abs(np.linalg.norm(e[0]) - 1.0) > 1e-2  # not normalized
    # No final newline: the same texts.
    p.write_bytes("\r\n".join(texts).encode())
    assert run("embed", "-m", MINILM, "-f", str(p), "-o", out, "--no-normalize").returncode == 0
    assert np.load(out).shape == (4, 384)


def test_embed_empty_file(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_text("")
    out = str(tmp_path / "e.npy")
    r = run("embed", "-m", MINILM, "-f", str(p), "-o", out)
    assert r.returncode == 0, r.stderr
    assert np.load(out).shape == (0, 384)


def test_embed_replaces_an_existing_file_only_when_complete(texts_file, tmp_path):
    out = tmp_path / "out.npy"
    out.write_bytes(b"old")
    r = run("embed", "-m", MINILM + "-missing", "-f", texts_file, "-o", str(out))
    assert r.returncode == 1 and out.read_bytes() == b"old"
    r = run("embed", "-m", MINILM, "-f", texts_file, "-o", str(tmp_path / "no-such-dir" / "out.npy"))
    assert r.returncode == 1 and "cannot create" in r.stderr and "no-such-dir" in r.stderr
    assert os.listdir(tmp_path) == ["out.npy"]


@pytest.mark.parametrize("args, message", [
    ([], "-m MODEL is required"),
    (["-m", "M"], "-f TEXTS is required"),
    (["-m", "M", "-f", "T"], "-o OUT.npy is required"),
    (["--batch-size", "0"], "--batch-size expects an integer in [1, "),
    (["--bogus"], "unknown option '--bogus' (see halfbyte embed --help)"),
    (["-m", MINILM, "-f", "/nonexistent/texts.txt", "-o", "x.npy"], "/nonexistent/texts.txt: cannot open"),
    (["-o"], "-o needs a value"),
])
def test_embed_bad_arguments(args, message):
    r = run("embed", *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert r.stderr.startswith("halfbyte embed: error: ")


def test_embed_bad_model_and_dtype(texts_file, tmp_path):
    out = str(tmp_path / "x.npy")
    r = run("embed", "-m", str(tmp_path / "nothing"), "-f", texts_file, "-o", out)
    assert r.returncode == 1 and "nothing: cannot open" in r.stderr
    r = run("embed", "-m", MINILM, "-f", texts_file, "-o", out, "--dtype", "q9")
    assert r.returncode == 1 and "dtype 'q9'" in r.stderr


def test_help_and_usage():
    for cmd in ("embed", "classify"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: halfbyte {cmd} -m MODEL")
    usage = run("help").stdout
    assert "  embed " in usage and "  classify " in usage


def best(results):
    return [(r[0]["label"], r[0]["score"]) for r in results]


def test_classify_args_equal_encoder_classify(models):
    d = models["distilbert"]
    texts = ["I loved this film", "terrible, boring, far too long", "", "-5 stars"]
    r = run("classify", "-m", d, "--dtype", "f32", *texts[:3], "--", texts[3])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(texts)
    ref = halfbyte.Encoder(d, dtype="f32").classify(texts)
    for line, (label, score) in zip(lines, best(ref)):
        got_label, got_score = line.split("\t")
        assert got_label == label and got_label in ("NEGATIVE", "POSITIVE")
        assert abs(float(got_score) - score) <= 1e-6


def test_classify_file_json_top_k(models, tmp_path):
    d = models["distilbert"]
    texts = [t for t in LINES if len(t) < 300][:40]
    p = tmp_path / "t.txt"
    p.write_text("\n".join(texts) + "\n", encoding="utf-8")
    r = run("classify", "-m", d, "-f", str(p), "--json", "--top-k", "2", "--batch-size", "7")
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in r.stdout.splitlines()]
    ref = halfbyte.Encoder(d).classify(texts, top_k=2)  # q8_0 both
    assert len(got) == len(ref) == len(texts)
    for g, w in zip(got, ref):
        assert [x["label"] for x in g] == [x["label"] for x in w]
        np.testing.assert_allclose([x["score"] for x in g], [x["score"] for x in w], rtol=1e-6, atol=1e-7)
    # Plain output with top_k 2: LABEL<TAB>SCORE<TAB>LABEL<TAB>SCORE.
    r = run("classify", "-m", d, "-f", str(p), "-k", "2")
    fields = r.stdout.splitlines()[0].split("\t")
    assert len(fields) == 4 and {fields[0], fields[2]} == {"NEGATIVE", "POSITIVE"}


def test_classify_function_and_top_k_clamped(models):
    d = models["small3"]
    texts = ["a text", "another one"]
    r = run("classify", "-m", d, "--dtype", "f32", "--top-k", "5", "--function", "none", "--json", *texts)
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in r.stdout.splitlines()]
    assert [len(g) for g in got] == [3, 3]  # every label
    logits = halfbyte.Encoder(d, dtype="f32").logits(texts)
    for g, row in zip(got, logits):
        np.testing.assert_allclose([x["score"] for x in g], np.sort(row)[::-1], rtol=1e-6, atol=1e-6)
        assert sorted(x["label"] for x in g) == ["a", "b", "c"]


def test_classify_label_escaping_in_json(models, tmp_path):
    import shutil
    d = str(tmp_path / "quoted")
    shutil.copytree(models["small3"], d)
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    c["id2label"] = {"0": 'say "hi"', "1": "back\\slash", "2": "tab\there"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f)
    r = run("classify", "-m", d, "--json", "--top-k", "3", "x")
    assert r.returncode == 0, r.stderr
    assert sorted(x["label"] for x in json.loads(r.stdout)) == sorted(c["id2label"].values())


@pytest.mark.parametrize("args, message", [
    ([], "-m MODEL is required"),
    (["-m", "M"], "no texts: give them as arguments or in -f FILE"),
    (["-m", "M", "-f", "F", "text"], "not both"),
    (["--top-k", "0"], "--top-k expects an integer in [1, "),
    (["--function", "relu"], "--function expects softmax, sigmoid or none, got 'relu'"),
    (["-x"], "unknown option '-x' (see halfbyte classify --help)"),
])
def test_classify_bad_arguments(args, message):
    r = run("classify", *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert r.stderr.startswith("halfbyte classify: error: ")


def test_classify_without_a_head():
    r = run("classify", "-m", MINILM, "some text")
    assert r.returncode == 1
    assert "no sequence classification head" in r.stderr and "BertForSequenceClassification" in r.stderr
