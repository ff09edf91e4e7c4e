"""halfbyte.quantize_model / `halfbyte quantize`: whole models to quantized GGUF files.

References, none of them halfbyte: the `gguf` package reads the files and decodes
every block (gguf.quants.dequantize) and is the round-to-nearest quantizer for the
32-blocks; llama.cpp (llama-cpp-python) loads the files, runs them, and is the
quantizer the k-quants are compared with (llama_model_quantize on the same input).
"""

import ctypes
import os
import subprocess

import numpy as np
import pytest

import halfbyte
from gguf_models import VOCABS, write_dequantized_copy, write_random_llama
from llama_cpp_ref import assert_greedy_agrees

gguf = pytest.importorskip("gguf")
T = gguf.GGMLQuantizationType
pytestmark = pytest.mark.skipif(not os.path.exists(VOCABS["spm"]), reason="tests/data/tokenizer-tests not found")

GGUF_TYPE = {"f32": T.F32, "f16": T.F16, "q8_0": T.Q8_0, "q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0,
             "q4_k": T.Q4_K, "q6_k": T.Q6_K}
N_LAYER = 8


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """A random f32 Llama whose rows are multiples of 256 (no fallbacks)."""
    return write_random_llama(str(tmp_path_factory.mktemp("qm") / "src.gguf"), dtype="f32", n_layer=N_LAYER,
                              n_embd=256, n_head=4, n_head_kv=2, n_ff=512, seed=3)


@pytest.fixture(scope="module")
def src_odd(tmp_path_factory):
    """Rows of 160 and 320: k-quants cannot take them (fallback to q5_0 / q8_0)."""
    return write_random_llama(str(tmp_path_factory.mktemp("qm") / "odd.gguf"), dtype="f32", n_layer=2,
                              n_embd=160, n_head=5, n_head_kv=1, n_ff=320, seed=4)


def tensors(path):
    """name -> (ggml type, float64 values decoded by the gguf package, numpy shape)."""
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        v = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        out[t.name] = (t.tensor_type, v.reshape(v.shape[0], -1) if v.ndim > 1 else v)
    return out


def rel_rms(x, y):
    return float(np.sqrt(((x - y) ** 2).sum() / (x**2).sum()))


def expected_mix(name):
    """The q4_k_m rule as documented (README of the type), written out here."""
    if name in ("token_embd.weight", "output.weight"):
        return T.Q6_K
    if name.startswith("blk.") and name.endswith((".attn_v.weight", ".ffn_down.weight")):
        i = int(name.split(".")[1])
        n = N_LAYER
        if i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2:
            return T.Q6_K
    return T.Q4_K


def expected_mix_s(name):
    """llama.cpp's Q4_K_S rule (src/llama-quant.cpp), written out here."""
    if name == "output.weight":
        return T.Q6_K
    if name.startswith("blk."):
        i = int(name.split(".")[1])
        if (name.endswith(".attn_v.weight") and i < 4) or (name.endswith(".ffn_down.weight") and i < N_LAYER // 8):
            return T.Q5_K
    return T.Q4_K


# ---- every tensor decoded by the gguf package, error vs references ---------------------


@pytest.mark.parametrize("qtype", ["f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0"])
def test_block_types_beat_round_to_nearest_row_by_row(src, tmp_path, qtype):
    out = str(tmp_path / f"{qtype}.gguf")
    table = halfbyte.quantize_model(src, out, type=qtype, pure=True)
    ref, got = tensors(src), tensors(out)
    assert [t["name"] for t in table] == list(ref)
    for row in table:
        name = row["name"]
        x = ref[name][1]
        gtype, y = got[name]
        if x.ndim == 1:  # norms stay f32, exactly
            assert gtype == T.F32 and np.array_equal(x, y)
            continue
        assert gtype == GGUF_TYPE[qtype], name
        assert row["type"].lower() == qtype and row["shape"] == tuple(x.shape)
        assert row["bytes"] == gguf.quants.quant_shape_to_byte_shape(x.shape, gtype)[-1] * x.shape[0]
        # The reported error is the one the gguf package's decoding gives.
        assert row["rel_rms_error"] == pytest.approx(rel_rms(x, y), rel=1e-4, abs=1e-9)
        if qtype == "f32":
            assert np.array_equal(x, y)
        elif qtype == "f16":
            assert np.array_equal(x.astype(np.float16).astype(np.float64), y)
        else:
            # The gguf package's quantizer is ggml's round-to-nearest; the search keeps
            # RTN as a candidate per block, so no row may come out worse.
            r = gguf.quants.dequantize(gguf.quants.quantize(x.astype(np.float32), gtype), gtype).astype(np.float64)
            e_ours = ((x - y) ** 2).sum(axis=1)
            e_rtn = ((x - r) ** 2).sum(axis=1)
            assert (e_ours <= e_rtn * (1 + 1e-6) + 1e-12).all(), name
            assert e_ours.sum() < 0.97 * e_rtn.sum(), name  # and clearly better overall


def llama_cpp_quantize(src, dst, ftype, pure):
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.pure = pure
    p.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    assert rc == 0, f"llama.cpp quantize failed ({rc})"
    return dst


@pytest.mark.parametrize("qtype", ["q4_k", "q6_k", "q4_k_m", "q4_k_s"])
def test_k_quants_decode_in_gguf_and_beat_llama_cpp(src, tmp_path, qtype):
    import llama_cpp

    out = str(tmp_path / f"{qtype}.gguf")
    mix = qtype in ("q4_k_m", "q4_k_s")
    table = halfbyte.quantize_model(src, out, type=qtype, pure=not mix)
    ftype = {"q4_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_S, "q6_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
             "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "q4_k_s": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_S}[qtype]
    lc = llama_cpp_quantize(src, str(tmp_path / f"lc-{qtype}.gguf"), ftype, pure=not mix)
    ref, got, theirs = tensors(src), tensors(out), tensors(lc)
    ours_total = theirs_total = 0.0
    for row in table:
        name = row["name"]
        x = ref[name][1]
        gtype, y = got[name]
        if x.ndim == 1:
            assert gtype == T.F32 and np.array_equal(x, y)
            continue
        want = {"q4_k_m": expected_mix, "q4_k_s": expected_mix_s}.get(qtype, lambda _: GGUF_TYPE[qtype])(name)
        assert gtype == want, name
        assert row["rel_rms_error"] == pytest.approx(rel_rms(x, y), rel=1e-4)
        # Against llama.cpp's quantizer, tensor by tensor where it chose the same type
        # (q4_k_s is its Q4_K_S: every type the same).
        ltype, z = theirs[name]
        assert ltype == gtype or qtype != "q4_k_s", name
        if ltype == gtype:
            e_ours, e_theirs = rel_rms(x, y), rel_rms(x, z)
            print(f"{name:28s} {gtype.name:5s} halfbyte {e_ours:.5f} llama.cpp {e_theirs:.5f}")
            assert e_ours <= e_theirs * 1.0001, name
            ours_total += ((x - y) ** 2).sum()
            theirs_total += ((x - z) ** 2).sum()
    assert theirs_total > 0 and ours_total < 0.97 * theirs_total


def test_the_output_head_stays_at_6_bits_unless_pure(src, src_odd, tmp_path):
    # llama.cpp's rule: output.weight (or a tied token_embd) at q6_K under the 4-5 bit
    # types; q8_0 where rows are not whole super-blocks.
    for path, head, head_type in ((src, "output.weight", T.Q6_K), (src_odd, "output.weight", T.Q8_0)):
        for qtype in ("q4_0", "q4_1", "q5_0", "q4_k"):
            got = tensors(halfbyte.quantize_model(path, str(tmp_path / "h.gguf"), type=qtype) and str(tmp_path / "h.gguf"))
            assert got[head][0] == head_type, (path, qtype)
            assert got["token_embd.weight"][0] != head_type or qtype == "q4_k", (path, qtype)
        got = tensors(halfbyte.quantize_model(path, str(tmp_path / "p.gguf"), type="q4_0", pure=True) and str(tmp_path / "p.gguf"))
        assert got[head][0] == T.Q4_0
    tied = write_random_llama(str(tmp_path / "tied.gguf"), dtype="f32", n_layer=1, n_embd=256, n_ff=512, tied=True)
    got = tensors(halfbyte.quantize_model(tied, str(tmp_path / "t.gguf"), type="q4_0") and str(tmp_path / "t.gguf"))
    assert got["token_embd.weight"][0] == T.Q6_K and got["blk.0.attn_q.weight"][0] == T.Q4_0


def test_rows_that_are_not_whole_super_blocks_fall_back(src_odd, tmp_path):
    got = {}
    ref = tensors(src_odd)
    for qtype in ("q4_k", "q6_k", "q4_k_m", "q4_k_s"):
        out = str(tmp_path / f"{qtype}.gguf")
        for row in halfbyte.quantize_model(src_odd, out, type=qtype, pure=True):
            got[qtype, row["name"]] = row["type"]
        for name, (gtype, y) in tensors(out).items():
            if name.endswith("norm.weight"):
                continue
            assert gtype == (T.Q5_0 if qtype == "q4_k" else T.Q8_0 if qtype == "q6_k" else gtype), name
            if gtype == T.Q5_1:  # never worse than ggml's round-to-nearest, row by row
                x = ref[name][1]
                r = gguf.quants.dequantize(gguf.quants.quantize(x.astype(np.float32), gtype), gtype)
                assert (((x - y) ** 2).sum(1) <= ((x - r) ** 2).sum(1) * (1 + 1e-6) + 1e-12).all(), name
    # The mixes: 6-bit choices fall back to q8_0, 5-bit k-quants to q5_1, 4-bit ones to
    # q5_0 (rows of 160 or 320).
    assert got["q4_k_m", "token_embd.weight"] == "q8_0"
    assert got["q4_k_m", "blk.0.attn_q.weight"] == "q5_0"
    assert got["q4_k_s", "blk.1.attn_v.weight"] == "q5_1"
    assert got["q4_k_s", "output.weight"] == "q8_0"


# ---- llama.cpp runs the files ---------------------------------------------------------


def llama_cpp_logits(path, ids):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_batch=256, logits_all=True, n_threads=2, verbose=False)
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)], dtype=np.float64)
    llm.close()
    return out


TEXT = "The quick brown fox jumps over the lazy dog. Once upon a time, there was a little robot."


@pytest.mark.parametrize("qtype", ["q4_0", "q4_k_m"])
def test_llama_cpp_reads_the_blocks_as_the_gguf_package_decodes_them(src, tmp_path, qtype):
    # llama.cpp on our quantized file vs llama.cpp on an f32 copy of what the gguf
    # package decodes from it: the same weights, so only float rounding differs
    # (llama.cpp's quantized matmuls also round activations to 8 bits).
    out = str(tmp_path / f"{qtype}.gguf")
    halfbyte.quantize_model(src, out, type=qtype)
    exact = write_dequantized_copy(out, str(tmp_path / f"{qtype}-f32.gguf"))
    with halfbyte.Model(out, n_ctx=256) as m:
        ids = m.tokenize(TEXT)
        ours = m.logits(ids).astype(np.float64)
    a, b = llama_cpp_logits(out, ids), llama_cpp_logits(exact, ids)
    scale = np.abs(b).max(axis=1, keepdims=True)

    def agree(u, v, bound):
        # Within `bound` (relative to the largest logit) everywhere, and the same top
        # token wherever v's leader is ahead by more than twice the bound (random
        # weights make near-ties, which rounding may flip).
        err = (np.abs(u - v) / scale).max()
        top2 = np.sort(v, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) / scale[:, 0] > 2 * bound
        print(f"{qtype}: max {err:.3f}, top-1 {(u.argmax(1) == v.argmax(1)).mean():.2f}, {clear.sum()} clear")
        assert err < bound  # a misread block would be off by O(1)
        assert (u.argmax(1) == v.argmax(1))[clear].all()

    agree(a, b, 0.06)  # measured 0.021 (q4_0), 0.034 (q4_k_m): int8 activations in llama.cpp
    agree(ours, a, 0.08)  # measured 0.025, 0.045: halfbyte runs k-quants as q8_0


SMOLLM2 = os.environ.get("HALFBYTE_SMOLLM2", os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                            "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.mark.skipif(not os.path.exists(SMOLLM2), reason="SmolLM2 not fetched (examples/fetch_smollm2.sh)")
def test_smollm2_q4_0_written_by_halfbyte_greedy_matches_llama_cpp(tmp_path):
    import llama_cpp

    out = str(tmp_path / "smollm2-q4_0.gguf")
    with pytest.warns(UserWarning, match="dequantized before quantizing again"):
        halfbyte.quantize_model(SMOLLM2, out, type="q4_0")
    llm = llama_cpp.Llama(model_path=out, n_ctx=256, n_threads=2, verbose=False)
    with halfbyte.Model(out, n_ctx=256) as m:
        # As with the original file (test_model.py), free-running texts split where
        # two candidates are within the int8-activation noise of each other ("Water
        # boils at": "so" vs "which" after 9 tokens on a Xeon, "To make a cup of tea,
        # first" after 6 on a Zen 3), so the check is teacher-forced.
        for prompt in ("Q: What is 2 + 2?\nA:", "To make a cup of tea, first", "The three primary colors are",
                       "def fibonacci(n):"):
            text = m.generate(prompt, max_tokens=32)
            ref = llm(prompt, max_tokens=32, temperature=0.0, top_k=1)["choices"][0]["text"]
            print(f"{prompt!r}\n  halfbyte : {text!r}\n  llama.cpp: {ref!r}")
            llm.reset()
            # Free-running texts may split at a near-tie, where depends on the CPU
            # (llama_cpp_ref.py): teacher-forced on llama.cpp's greedy tokens.
            assert_greedy_agrees(m, llm, prompt)
    llm.close()


# ---- inputs that are already quantized --------------------------------------------------


def test_quantized_input_is_copied_when_the_type_is_the_same_and_warned_about_otherwise(tmp_path):
    src = write_random_llama(str(tmp_path / "q4.gguf"), dtype="q4_0", n_layer=1, seed=5)
    same = str(tmp_path / "same.gguf")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        table = halfbyte.quantize_model(src, same, type="q4_0", pure=True)
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(same)
    for ta, tb in zip(a.tensors, b.tensors):
        assert ta.name == tb.name and ta.tensor_type == tb.tensor_type
        assert np.array_equal(np.asarray(ta.data), np.asarray(tb.data))
    assert all(r["rel_rms_error"] == 0.0 for r in table)
    with pytest.warns(UserWarning, match=r"tensors are stored quantized already .*\(q4_0\)"):
        halfbyte.quantize_model(src, str(tmp_path / "q8.gguf"), type="q8_0")


# ---- hostile inputs and cancelling ------------------------------------------------------


def test_bad_requests_fail_clearly_and_write_nothing(src, tmp_path):
    with pytest.raises(ValueError, match="unknown type 'q3_x'.*q4_k_m"):
        halfbyte.quantize_model(src, str(tmp_path / "o.gguf"), type="q3_x")
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        halfbyte.quantize_model(str(tmp_path / "missing.gguf"), str(tmp_path / "o.gguf"))
    with pytest.raises(FileNotFoundError, match="folder .*nope' does not exist"):
        halfbyte.quantize_model(src, str(tmp_path / "nope" / "o.gguf"))
    with pytest.raises(ValueError, match="garbage.gguf: GGUF version"):
        bad = tmp_path / "garbage.gguf"
        bad.write_bytes(b"GGUF" + bytes(range(60)))
        halfbyte.quantize_model(str(bad), str(tmp_path / "o.gguf"))
    with pytest.raises(TypeError):
        halfbyte.quantize_model(src, str(tmp_path / "o.gguf"), type=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="imatrix|GGUF"):
        halfbyte.quantize_model(src, str(tmp_path / "o.gguf"), imatrix=src)  # a model is not an imatrix
    assert sorted(os.listdir(tmp_path)) == ["garbage.gguf"]


def test_progress_reports_and_cancels(src, tmp_path):
    seen = []
    halfbyte.quantize_model(src, str(tmp_path / "a.gguf"), type="q8_0", progress=lambda f: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) > 20
    with pytest.raises(RuntimeError, match="cancelled"):
        halfbyte.quantize_model(src, str(tmp_path / "b.gguf"), type="q4_0", progress=lambda f: f < 0.3)
    assert sorted(os.listdir(tmp_path)) == ["a.gguf"]


def test_cli_quantize_prints_the_table(src, tmp_path):
    from test_cli import EXE

    if EXE is None:
        pytest.skip("the halfbyte command is not installed")
    out = str(tmp_path / "m.gguf")
    r = subprocess.run([EXE, "quantize", src, out, "--type", "q4_k_m"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["tensor", "from", "type", "shape", "bytes", "rel.rms"]
    rows = {l.split()[0]: l.split() for l in lines[1:-1]}
    assert rows["token_embd.weight"][1:3] == ["f32", "q6_K"]
    assert rows["blk.1.attn_v.weight"][2] == "q4_K" and rows["blk.0.attn_v.weight"][2] == "q6_K"
    assert "bits/weight" in lines[-1]
    assert "[" in r.stderr and "100%" in r.stderr  # the per-tensor progress
    for args, msg in (
        (["quantize", src, out], "--type T is required"),
        (["quantize", src, out, "--type", "q9"], "unknown type 'q9'"),
        (["quantize", src, str(tmp_path / "x" / "y.gguf"), "--type", "q4_0"], "does not exist"),
        (["quantize", str(tmp_path / "none.gguf"), out, "--type", "q4_0"], "none.gguf"),
    ):
        r = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and msg in r.stderr, (args, r.stderr)
