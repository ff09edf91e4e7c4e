"""examples/python/rag.py, the private offline RAG example, against the installed package.

- chunk_text: paragraphs merged up to max_words, long paragraphs cut between words,
  overlap words repeated, no chunks from blank text.
- index_folder on six short notes on distinct topics (one in a subfolder; hidden files
  and folders and other suffixes skipped): retrieve() puts each topic's note first for a
  paraphrased question; the stored float32 embeddings match transformers + torch
  (mean pooling, L2 normalization) to cosine >= 0.999.
- Re-indexing: unchanged files are not embedded again, a changed one is, a deleted one
  leaves the index, other chunk sizes re-embed everything, bad sizes leave the index as it was.
- Errors (missing or empty index, missing folder): RagError, and from main() exit 1 with
  one line on stderr.
- The command line end to end, once with an answer from SmolLM2-135M-Instruct.

One Encoder is shared by every test that can take one.
"""

import importlib.util
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import halfbyte
from hf_models import torch_embeddings

REPO = Path(__file__).resolve().parents[2]
RAG_PY = REPO / "examples" / "python" / "rag.py"
MINILM = REPO / "models" / "all-MiniLM-L6-v2"
SMOLLM2 = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DIM = 384  # all-MiniLM-L6-v2

if not (MINILM / "model.safetensors").is_file():
    pytest.skip("all-MiniLM-L6-v2 not fetched (examples/fetch_minilm.sh; .ci/setup does it)", allow_module_level=True)
needs_smollm2 = pytest.mark.skipif(not SMOLLM2.is_file(), reason=f"{SMOLLM2} not present")

_spec = importlib.util.spec_from_file_location("halfbyte_example_rag", RAG_PY)
assert _spec is not None and _spec.loader is not None
rag = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rag  # before exec_module: the dataclasses look their module up
_spec.loader.exec_module(rag)

DOCS = {
    "sourdough.md": (
        "# Sourdough starter\n\n"
        "Feed the sourdough starter twice a day: discard half of it, then add equal weights of flour and "
        "lukewarm water and stir well. A healthy starter doubles within six hours and smells pleasantly sour.\n\n"
        "If you bake only on weekends, keep the starter in the fridge and feed it once a week."),
    "sub/bicycle.md": (
        "Fixing a flat bicycle tyre\n\n"
        "Lever the tyre off the rim, pull out the inner tube and pump it up to find the puncture by listening "
        "for the hiss. Roughen the rubber around the hole, apply glue, wait a minute and press the patch on.\n\n"
        "Check the inside of the tyre for glass or thorns before refitting the tube."),
    "taxes.txt": (
        "Income tax return deadlines\n\n"
        "The annual income tax return must be filed by the thirtieth of April. Self-employed people who use "
        "an accountant get an extension until the end of the year. Late filing costs a penalty surcharge "
        "on the tax owed, and interest is charged on late payments."),
    "houseplants.md": (
        "Watering houseplants\n\n"
        "Water a houseplant when the top two centimetres of potting soil feel dry. Succulents and cacti need "
        "water only every two or three weeks; ferns like their soil always a little moist. Overwatering rots "
        "the roots, so pots need drainage holes."),
    "sub/deeper/chess.txt": (
        "Chess openings\n\n"
        "The Sicilian Defence answers the king's pawn opening with the c-pawn. White usually plays the knight "
        "to f3 and then opens the centre with d4, trading pawns. Black gets counterplay on the queenside."),
    "network.md": (
        "Home Wi-Fi troubleshooting\n\n"
        "If the wireless internet connection keeps dropping, restart the router, move it away from the "
        "microwave and choose a less crowded channel. Update the router firmware and use the 5 GHz band "
        "for devices near it."),
}
SKIPPED = {  # never indexed: hidden, or not .txt/.md
    ".hidden.md": "Feed the sourdough starter with secret flour. Hidden file.",
    ".private/secrets.txt": "Feed the sourdough starter with secret flour. Hidden folder.",
    "sub/.cache/old.md": "Hidden folder inside a subfolder.",
    "notes.rst": "Feed the sourdough starter. Not a .txt or .md file.",
}
QUESTIONS = {
    "How often should I feed my sourdough starter?": "sourdough.md",
    "How do I patch a punctured inner tube on my bike?": "sub/bicycle.md",
    "When is the deadline for filing my income tax return?": "taxes.txt",
    "How often do I need to water my cactus and ferns?": "houseplants.md",
    "What should Black do against 1.e4 in the Sicilian?": "sub/deeper/chess.txt",
    "My wireless connection keeps dropping, what can I do?": "network.md",
}


def write_docs(folder, docs):
    for rel, text in docs.items():
        p = Path(folder) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return Path(folder)


def db_files(db):
    """{path: [(seq, text, embedding), ...]} read from the SQLite file directly."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT f.path, c.seq, c.text, c.embedding FROM chunks c JOIN files f ON f.id = c.file_id"
                           " ORDER BY f.path, c.seq").fetchall()
        files = [r[0] for r in con.execute("SELECT path FROM files")]
    finally:
        con.close()
    out = {f: [] for f in files}
    for path, seq, text, emb in rows:
        out[path].append((seq, text, np.frombuffer(emb, np.float32)))
    return out


@pytest.fixture(scope="module")
def encoder():
    enc = halfbyte.Encoder(str(MINILM), dtype="q8_0")
    yield enc
    enc.close()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, encoder):
    """The six notes (and the skipped files) indexed once: (docs folder, db, IndexStats)."""
    root = tmp_path_factory.mktemp("rag")
    docs = write_docs(root / "docs", {**DOCS, **SKIPPED})
    db = root / "index.sqlite"
    stats = rag.index_folder(docs, db, encoder=encoder)
    return docs, db, stats


# chunk_text

def words(n, prefix="w"):
    return [f"{prefix}{i}" for i in range(n)]


def test_chunk_merges_paragraphs_up_to_max_words():
    text = "a b c\n\nd e\n\n\n  f g h i\n\nj"
    assert rag.chunk_text(text, max_words=6, overlap=0) == ["a b c\n\nd e", "f g h i\n\nj"]
    assert rag.chunk_text(text, max_words=100, overlap=0) == ["a b c\n\nd e\n\nf g h i\n\nj"]
    assert rag.chunk_text("one  two\tthree\nfour", max_words=10, overlap=2) == ["one two three four"]


def test_chunk_cuts_long_paragraph_between_words():
    w = words(25)
    chunks = rag.chunk_text(" ".join(w), max_words=10, overlap=0)
    assert chunks == [" ".join(w[0:10]), " ".join(w[10:20]), " ".join(w[20:25])]


def test_chunk_overlap_repeats_last_words():
    w = words(25)
    chunks = rag.chunk_text(" ".join(w), max_words=10, overlap=3)
    assert chunks == [" ".join(w[0:7]), " ".join(w[4:14]), " ".join(w[11:21]), " ".join(w[18:25])]
    # across a paragraph break: the next chunk starts with the previous one's last words, break kept
    a, b = words(6, "a"), words(6, "b")
    chunks = rag.chunk_text(" ".join(a) + "\n\n" + " ".join(b), max_words=10, overlap=2)
    assert chunks == [" ".join(a), "a4 a5\n\n" + " ".join(b)]


def test_chunk_properties_on_prose():
    rng = np.random.default_rng(0)
    paras = [" ".join(f"t{i}_{j}" for j in range(int(rng.integers(1, 60)))) for i in range(40)]
    text = "\n\n".join(paras)
    all_words = text.split()
    for max_words, overlap in [(150, 30), (20, 5), (7, 0), (1, 0)]:
        chunks = rag.chunk_text(text, max_words, overlap)
        cw = [c.split() for c in chunks]
        assert all(1 <= len(c) <= max_words for c in cw)
        rebuilt = cw[0] + [x for prev, c in zip(cw, cw[1:]) for x in c[min(overlap, len(prev)):]]
        assert rebuilt == all_words  # every word once (no word cut or lost), in order, besides the overlap
        for prev, c in zip(cw, cw[1:]):
            k = min(overlap, len(prev))
            assert c[:k] == prev[len(prev) - k:]


def test_chunk_empty_and_bad_sizes():
    assert rag.chunk_text("") == []
    assert rag.chunk_text("  \n\n \t \n\n\n  ") == []
    for max_words, overlap in [(0, 0), (10, 10), (10, -1)]:
        with pytest.raises(ValueError):
            rag.chunk_text("a b c", max_words, overlap)


# index and retrieve

def test_index_skips_hidden_and_other_files(indexed):
    docs, db, stats = indexed
    assert sorted(stats.embedded) == sorted(DOCS)
    assert stats.unchanged == [] and stats.removed == []
    stored = db_files(db)
    assert sorted(stored) == sorted(DOCS)
    assert stats.chunks == sum(len(c) for c in stored.values()) >= len(DOCS)
    for rel, chunks in stored.items():
        assert [c[0] for c in chunks] == list(range(len(chunks)))
        assert [c[1] for c in chunks] == rag.chunk_text(DOCS[rel])
        assert all(c[2].shape == (DIM,) for c in chunks)


def test_retrieve_finds_each_topic(indexed, encoder):
    _, db, _ = indexed
    for question, rel in QUESTIONS.items():
        hits = rag.retrieve(question, db, top_k=3, encoder=encoder)
        assert len(hits) == 3
        assert hits[0].path == rel, (question, [(h.path, h.score) for h in hits])
        assert hits[0].score > hits[1].score
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert hits[0].text in rag.chunk_text(DOCS[rel])
    hits = rag.retrieve("sourdough starter", db, top_k=100, encoder=encoder)
    assert len(hits) == sum(len(rag.chunk_text(t)) for t in DOCS.values())


def test_retrieve_loads_the_index_model(indexed):
    """Without an encoder, the question is embedded with the model and dtype stored in the index."""
    _, db, _ = indexed
    hits = rag.retrieve("When must I file my taxes?", db, top_k=1)
    assert [h.path for h in hits] == ["taxes.txt"]


def test_stored_embeddings_match_transformers(indexed):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    _, db, _ = indexed
    stored = db_files(db)
    picks = [stored["sourdough.md"][0], stored["sub/bicycle.md"][-1]]
    texts = [p[1] for p in picks]
    ref = torch_embeddings(MINILM, texts, 256).astype(np.float64)
    for (_, text, emb), r in zip(picks, ref):
        e = emb.astype(np.float64)
        cos = float(e @ r / np.linalg.norm(e) / np.linalg.norm(r))
        assert cos >= 0.999, (text[:60], cos)
    # and the two differ (not one vector stored twice)
    assert float(picks[0][2] @ picks[1][2]) < 0.9


# re-indexing

def test_reindex_is_incremental(tmp_path, encoder):
    docs = write_docs(tmp_path / "docs", {k: DOCS[k] for k in ("sourdough.md", "taxes.txt", "sub/bicycle.md")})
    db = tmp_path / "i.sqlite"
    st = rag.index_folder(docs, db, encoder=encoder)
    assert sorted(st.embedded) == ["sourdough.md", "sub/bicycle.md", "taxes.txt"]
    first = db_files(db)

    st = rag.index_folder(docs, db, encoder=encoder)  # nothing changed
    assert st.embedded == [] and st.chunks == 0 and st.removed == []
    assert sorted(st.unchanged) == ["sourdough.md", "sub/bicycle.md", "taxes.txt"]

    p = docs / "taxes.txt"  # touched, same content: not embedded, the new mtime is stored
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5_000_000_000))
    st = rag.index_folder(docs, db, encoder=encoder)
    assert st.embedded == [] and len(st.unchanged) == 3
    con = sqlite3.connect(db)
    assert con.execute("SELECT mtime_ns FROM files WHERE path = 'taxes.txt'").fetchone()[0] == p.stat().st_mtime_ns
    con.close()

    new_text = "Chess endgames\n\nIn a king and rook endgame, cut the enemy king off along a rank or file."
    p.write_text(new_text)  # changed: only it is embedded again
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10_000_000_000))
    st = rag.index_folder(docs, db, encoder=encoder)
    assert st.embedded == ["taxes.txt"] and st.chunks == 1
    assert sorted(st.unchanged) == ["sourdough.md", "sub/bicycle.md"]
    after = db_files(db)
    assert [c[1] for c in after["taxes.txt"]] == [new_text]
    for rel in ("sourdough.md", "sub/bicycle.md"):
        assert [(s, t, e.tobytes()) for s, t, e in after[rel]] == [(s, t, e.tobytes()) for s, t, e in first[rel]]
    hit = rag.retrieve("rook endgame technique", db, top_k=1, encoder=encoder)[0]
    assert (hit.path, hit.text) == ("taxes.txt", new_text)

    (docs / "sub" / "bicycle.md").unlink()  # deleted: its file and chunks leave the index
    st = rag.index_folder(docs, db, encoder=encoder)
    assert st.removed == ["sub/bicycle.md"] and st.embedded == []
    assert sorted(db_files(db)) == ["sourdough.md", "taxes.txt"]
    con = sqlite3.connect(db)
    n_chunks = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    orphans = con.execute("SELECT COUNT(*) FROM chunks WHERE file_id NOT IN (SELECT id FROM files)").fetchone()[0]
    con.close()
    assert n_chunks == len(after["sourdough.md"]) + len(after["taxes.txt"]) and orphans == 0

    st = rag.index_folder(docs, db, max_words=20, overlap=5, encoder=encoder)  # other chunk sizes: all again
    assert sorted(st.embedded) == ["sourdough.md", "taxes.txt"] and st.unchanged == []
    small = db_files(db)
    assert [c[1] for c in small["sourdough.md"]] == rag.chunk_text(DOCS["sourdough.md"], 20, 5)
    assert len(small["sourdough.md"]) > len(after["sourdough.md"])
    assert st.chunks == sum(len(c) for c in small.values())

    st = rag.index_folder(docs, db, max_words=20, overlap=5, encoder=encoder)
    assert st.embedded == [] and len(st.unchanged) == 2
    st = rag.index_folder(docs, db, max_words=20, overlap=5, dtype="f32", encoder=encoder)  # other dtype: all again
    assert sorted(st.embedded) == ["sourdough.md", "taxes.txt"]


def test_bad_chunk_sizes_keep_the_index(tmp_path, encoder, capsys):
    docs = write_docs(tmp_path / "docs", {"sourdough.md": DOCS["sourdough.md"]})
    db = tmp_path / "i.sqlite"
    rag.index_folder(docs, db, encoder=encoder)
    before = db_files(db)
    with pytest.raises(ValueError):
        rag.index_folder(docs, db, max_words=20, overlap=30, encoder=encoder)  # overlap >= max_words
    assert db_files(db).keys() == before.keys()
    assert rag.index_folder(docs, db, encoder=encoder).unchanged == ["sourdough.md"]
    assert rag.main(["index", str(docs), "--db", str(db), "--max-words", "20"]) == 1  # default overlap 30
    err = capsys.readouterr().err
    assert "rag.py: error:" in err and "overlap" in err and "Traceback" not in err
    assert rag.index_folder(docs, db, encoder=encoder).unchanged == ["sourdough.md"]


# errors

def test_missing_and_empty_index(tmp_path, encoder, capsys):
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(rag.RagError, match="no index"):
        rag.retrieve("anything", missing, encoder=encoder)
    assert not missing.exists()
    assert rag.main(["ask", "anything", "--db", str(missing), "--no-answer"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("rag.py: error: no index at") and "Traceback" not in err
    assert not missing.exists()

    empty_docs = tmp_path / "empty"
    (empty_docs / "sub").mkdir(parents=True)
    (empty_docs / "sub" / "image.png").write_bytes(b"\x89PNG")
    db = tmp_path / "empty.sqlite"
    st = rag.index_folder(empty_docs, db, encoder=encoder)
    assert (st.embedded, st.unchanged, st.removed, st.chunks) == ([], [], [], 0)
    with pytest.raises(rag.RagError, match="empty"):
        rag.retrieve("anything", db, encoder=encoder)
    assert rag.main(["ask", "anything", "--db", str(db), "--no-answer"]) == 1
    err = capsys.readouterr().err
    assert "rag.py: error:" in err and "empty" in err and "Traceback" not in err

    with pytest.raises(rag.RagError, match="top-k"):
        rag.retrieve("anything", db, top_k=0, encoder=encoder)

    not_db = tmp_path / "notes.sqlite"
    not_db.write_text("this is not a database\n" * 100)
    with pytest.raises(rag.RagError, match="not a usable SQLite database"):
        rag.retrieve("anything", not_db, encoder=encoder)


def test_index_missing_folder(tmp_path, capsys):
    db = tmp_path / "x.sqlite"
    with pytest.raises(rag.RagError, match="is not a folder"):
        rag.index_folder(tmp_path / "no_such_dir", db)
    assert rag.main(["index", str(tmp_path / "no_such_dir"), "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"rag.py: error: {tmp_path / 'no_such_dir'} is not a folder"
    assert not db.exists()


def test_build_prompt_holds_chunks_then_question():
    hits = [rag.Hit("a.md", 0, "Alpha text.", 0.9), rag.Hit("sub/b.txt", 2, "Beta text.", 0.5)]
    prompt = rag.build_prompt("What is alpha?", hits)
    assert prompt.index("Alpha text.") < prompt.index("Beta text.") < prompt.index("What is alpha?")
    assert "a.md" in prompt and "sub/b.txt" in prompt


# the command line

def run_rag(*args, timeout=120):
    return subprocess.run([sys.executable, str(RAG_PY), *map(str, args)], capture_output=True, text=True,
                          errors="replace", timeout=timeout, cwd="/tmp")


def test_cli_index_and_ask(tmp_path):
    docs = write_docs(tmp_path / "docs", {**DOCS, **SKIPPED})
    db = tmp_path / "cli.sqlite"
    r = run_rag("index", docs, "--db", db)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"embedded {len(DOCS)} new or changed files" in r.stdout and "0 unchanged, 0 removed" in r.stdout

    r = run_rag("ask", "How do I fix a puncture in my bike tyre?", "--db", db, "--no-answer", "--top-k", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("[1] ") and lines[0].split()[2] == "sub/bicycle.md", r.stdout
    assert any(ln.startswith("[2] ") for ln in lines) and not any(ln.startswith("[3] ") for ln in lines)
    assert "Answer" not in r.stdout


@needs_smollm2
def test_cli_ask_with_answer(indexed):
    _, db, _ = indexed
    r = run_rag("ask", "How often should I feed my sourdough starter?", "--db", db, "--max-tokens", "12",
                "--top-k", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("[1] ") and "sourdough.md" in r.stdout.splitlines()[0]
    chunks_part, _, answer = r.stdout.partition("\nAnswer: ")
    assert "[2] " in chunks_part
    assert len(answer.strip()) >= 3 and any(c.isalpha() for c in answer), r.stdout
    assert "Traceback" not in r.stderr
