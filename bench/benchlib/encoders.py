"""The systems of bench/encoder_vs_peers.py: sentence embeddings (mean pooling over
the attention mask, L2 normalization, 256 tokens at most) of one HF BERT folder
(all-MiniLM-L6-v2) by halfbyte and its peers, and the conversions they need.

Each system has `setup()` (raises Skip when its package, artifact or model is
missing or fails), `embed_all(texts, batch)` (texts already sorted by length,
consecutive batches, rows in the order of texts) and `embed_one(text)`; every
call includes tokenization. The slow conversions (ONNX export, quantize_dynamic,
CTranslate2) run in a child process (`child()`), so
that their side effects (torch.onnx.export changes the in-memory model) stay out
of the benchmark, and write `<out>.tmp` renamed when complete.
"""

import os
import shutil
import subprocess
import sys
from typing import List

import numpy as np

from .common import Skip, log

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAX_LENGTH = 256  # sentence_bert_config.json's max_seq_length


def first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return f"{type(e).__name__}: {s[0][:200]}" if s else type(e).__name__


def need(module: str):
    """Imports a peer's module; Skip with a one-line reason if it is missing or broken."""
    try:
        return __import__(module)
    except Exception as e:  # ImportError, or a broken install raising anything
        raise Skip(f"python package {module} not available ({first_line(e)}); bash bench/install_encoder_peers.sh")


def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the attention mask, then L2 normalization: [b, t, d], [b, t] -> [b, d] float32."""
    m = mask.astype(np.float32)[:, :, None]
    e = (hidden.astype(np.float32) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return normalize(e)


def normalize(e: np.ndarray) -> np.ndarray:
    e = np.asarray(e, dtype=np.float32)
    return e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)


_TOKENIZERS = {}


def quiet_transformers(transformers) -> None:
    """No progress bars or advice from transformers, and no network (local folders only)."""
    try:
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except AttributeError:  # another version's layout: cosmetic only
        pass


def hf_tokenizer(folder: str):
    """The folder's fast HF tokenizer (transformers), shared by the peers."""
    if folder not in _TOKENIZERS:
        transformers = need("transformers")
        quiet_transformers(transformers)
        _TOKENIZERS[folder] = transformers.AutoTokenizer.from_pretrained(folder)
    return _TOKENIZERS[folder]


def token_counts(folder: str, texts: List[str]) -> List[int]:
    tok = hf_tokenizer(folder)
    return [len(ids) for ids in tok(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]]


class System:
    key = ""
    label = ""
    peer = True

    def __init__(self, folder: str, work_dir: str, threads: int, allow_convert: bool) -> None:
        self.folder, self.work_dir, self.threads, self.allow_convert = folder, work_dir, threads, allow_convert
        self.info = {}

    def setup(self) -> None:
        raise NotImplementedError

    def embed_all(self, texts: List[str], batch: int) -> np.ndarray:
        return np.concatenate([self.embed_batch(texts[i:i + batch]) for i in range(0, len(texts), batch)])

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed_batch([text])

    def embed_batch(self, texts: List[str]) -> np.ndarray:
        raise NotImplementedError

    def artifact(self, name: str, what: str, make_args: List[str], src: str) -> str:
        """Path of a converted artifact in the work folder, made (child process) if missing."""
        path = os.path.join(self.work_dir, f"{os.path.basename(os.path.normpath(self.folder))}-{name}")
        if os.path.exists(path):
            return path
        if not self.allow_convert:
            raise Skip(f"{os.path.basename(path)} not in {self.work_dir} and --quick skips the slow {what}; "
                       f"run once without --quick (or with --convert)")
        os.makedirs(self.work_dir, exist_ok=True)
        convert(what, make_args + [src, path])
        return path


def convert(what: str, args: List[str], timeout: float = 1800) -> None:
    log(f"  making {os.path.basename(args[-1])} ({what}) ...")
    # Not `python3 encoders.py`: benchlib/ on sys.path would shadow packages (transformers imports `kernels`).
    code = f"import sys; sys.path.insert(0, {BENCH_DIR!r}); from benchlib.encoders import child; child(sys.argv[1:])"
    cmd = [sys.executable, "-c", code] + args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Skip(f"{what} took more than {timeout:.0f} s")
    if p.returncode != 0:
        tail = [x for x in (p.stderr or p.stdout).strip().splitlines() if x.strip()][-1:] or ["no output"]
        raise Skip(f"{what} failed (exit {p.returncode}): {tail[0][:300]}")


# ---------------------------------------------------------------- halfbyte

class Halfbyte(System):
    peer = False

    def __init__(self, dtype: str, *a) -> None:
        super().__init__(*a)
        self.dtype = dtype
        self.key = f"halfbyte-{dtype}"
        self.label = f"halfbyte {dtype}"

    def setup(self) -> None:
        halfbyte = need("halfbyte")
        self.enc = halfbyte.Encoder(self.folder, dtype=self.dtype, n_threads=self.threads)
        self.info = {"precision": self.dtype, "isa": halfbyte.isa()}

    def embed_all(self, texts, batch):
        return self.enc.embed(texts, batch_size=batch)

    def embed_one(self, text):
        return self.enc.embed([text], batch_size=1)


# ---------------------------------------------------------------- torch

class Torch(System):
    key, label = "torch", "torch fp32"

    def setup(self) -> None:
        self.torch = torch = need("torch")
        transformers = need("transformers")
        quiet_transformers(transformers)
        torch.set_num_threads(self.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work already started
            pass
        self.tok = hf_tokenizer(self.folder)
        # A fresh model: the ONNX export (in a child process anyway) changes a model's later outputs.
        self.model = transformers.AutoModel.from_pretrained(self.folder, dtype=torch.float32).eval()
        self.info = {"precision": "fp32", "torch_threads": torch.get_num_threads()}

    def embed_batch(self, texts):
        torch = self.torch
        with torch.inference_mode():
            b = self.tok(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            h = self.model(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1)
            return torch.nn.functional.normalize(e, dim=1).numpy()


# ---------------------------------------------------------------- ONNX Runtime

def onnx_fp32(system: System) -> str:
    need("torch")
    need("onnx")
    return system.artifact("fp32.onnx", "ONNX export", ["export-onnx"], system.folder)


class OnnxRuntime(System):
    def __init__(self, int8: bool, *a) -> None:
        super().__init__(*a)
        self.int8 = int8
        self.key = "ort-int8" if int8 else "ort-fp32"
        self.label = "ONNX Runtime int8" if int8 else "ONNX Runtime fp32"

    def setup(self) -> None:
        ort = need("onnxruntime")
        path = onnx_fp32(self)
        if self.int8:
            path = self.artifact("int8.onnx", "quantize_dynamic", ["quantize-onnx"], path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.sess.get_inputs()}
        self.tok = hf_tokenizer(self.folder)
        self.info = {"precision": "int8 (dynamic)" if self.int8 else "fp32", "model": os.path.basename(path)}
        if self.int8:
            self.info["quantization"] = ("quantize_dynamic as Transformers.js's quantized models: QInt8 weights "
                                         "per tensor, no reduce_range, uint8 activations quantized at run time")

    def embed_batch(self, texts):
        b = self.tok(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        feed = {k: v.astype(np.int64) for k, v in b.items() if k in self.inputs}
        h = self.sess.run(None, feed)[0]
        return pool(h, b["attention_mask"])


# ---------------------------------------------------------------- OpenVINO

class OpenVino(System):
    key, label = "openvino", "OpenVINO"

    def setup(self) -> None:
        ov = need("openvino")
        path = onnx_fp32(self)
        core = ov.Core()
        self.compiled = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": self.threads})
        self.req = self.compiled.create_infer_request()
        self.inputs = {n for p in self.compiled.inputs for n in p.get_names()}
        self.out = self.compiled.output(0)
        self.tok = hf_tokenizer(self.folder)
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        prec = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        self.label = f"OpenVINO {prec}"
        self.info = {"precision": f"{prec} (OpenVINO's default CPU precision)", "INFERENCE_PRECISION_HINT": prec,
                     "model": os.path.basename(path)}

    def embed_batch(self, texts):
        b = self.tok(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        feed = {k: v.astype(np.int64) for k, v in b.items() if k in self.inputs}
        h = self.req.infer(feed)[self.out]
        return pool(np.asarray(h), b["attention_mask"])


# ---------------------------------------------------------------- CTranslate2

class CTranslate2(System):
    key, label = "ctranslate2", "CTranslate2 int8"

    def setup(self) -> None:
        ct2 = need("ctranslate2")
        need("transformers")
        path = self.artifact("ct2-int8", "CTranslate2 conversion", ["convert-ct2"], self.folder)
        self.enc = ct2.Encoder(path, device="cpu", compute_type="int8", intra_threads=self.threads, inter_threads=1)
        self.tok = hf_tokenizer(self.folder)
        self.info = {"precision": "int8", "model": os.path.basename(path)}

    def embed_batch(self, texts):
        ids = self.tok(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        h = np.array(self.enc.forward_batch(ids).last_hidden_state)
        mask = np.zeros(h.shape[:2], np.float32)
        for i, x in enumerate(ids):
            mask[i, :len(x)] = 1
        return pool(h, mask)


# ---------------------------------------------------------------- llama.cpp

class LlamaCpp(System):
    def __init__(self, dtype: str, *a) -> None:
        super().__init__(*a)
        self.dtype = dtype
        self.key = f"llama.cpp-{dtype}"
        self.label = f"llama.cpp {dtype}"

    def setup(self) -> None:
        llama_cpp = need("llama_cpp")
        halfbyte = need("halfbyte")
        path = os.path.join(self.work_dir, f"{os.path.basename(os.path.normpath(self.folder))}-{self.dtype}.gguf")
        if not os.path.exists(path):
            os.makedirs(self.work_dir, exist_ok=True)
            halfbyte.quantize_model(self.folder, path, type=self.dtype)
        self.llm = llama_cpp.Llama(model_path=path, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                                   n_threads=self.threads, n_threads_batch=self.threads, verbose=False)
        self.info = {"precision": self.dtype, "model": os.path.basename(path) + " (written by halfbyte)",
                     "mode": "one text per call"}

    def embed_one(self, text):
        e = np.asarray(self.llm.embed(text), dtype=np.float32)
        if e.ndim == 2:  # no pooling in the GGUF: per-token rows
            e = e.mean(0)
        return normalize(e)[None]

    def embed_all(self, texts, batch):
        return np.concatenate([self.embed_one(t) for t in texts])


SYSTEMS = ["halfbyte-q8_0", "halfbyte-f32", "torch", "ort-fp32", "ort-int8", "ctranslate2", "openvino",
           "llama.cpp-f32", "llama.cpp-q8_0"]
GROUPS = {"halfbyte": ["halfbyte-q8_0", "halfbyte-f32"], "ort": ["ort-fp32", "ort-int8"],
          "onnxruntime": ["ort-fp32", "ort-int8"], "llama.cpp": ["llama.cpp-f32", "llama.cpp-q8_0"]}


def make_system(key: str, folder: str, work_dir: str, threads: int, allow_convert: bool) -> System:
    a = (folder, work_dir, threads, allow_convert)
    if key.startswith("halfbyte-"):
        return Halfbyte(key.split("-", 1)[1], *a)
    if key.startswith("llama.cpp-"):
        return LlamaCpp(key.split("-", 1)[1], *a)
    if key.startswith("ort-"):
        return OnnxRuntime(key == "ort-int8", *a)
    return {"torch": Torch, "ctranslate2": CTranslate2, "openvino": OpenVino}[key](*a)


# ---------------------------------------------------------------- conversions (child process)

def export_onnx(folder: str, out: str) -> None:
    import torch
    import transformers
    model = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)

    class Wrap(torch.nn.Module):  # keyword arguments, last_hidden_state only
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    b = tok(["an example sentence", "and a second, longer example sentence"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    tmp = out + ".tmp"
    with torch.no_grad():
        torch.onnx.export(Wrap(model), tuple(b[n] for n in names), tmp, input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
    os.replace(tmp, out)


def quantize_onnx(src: str, out: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    tmp = out + ".tmp.onnx"
    quantize_dynamic(src, tmp, weight_type=QuantType.QInt8)
    os.replace(tmp, out)


def convert_ct2(folder: str, out: str) -> None:
    import ctranslate2
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    ctranslate2.converters.TransformersConverter(folder).convert(tmp, quantization="int8", force=True)
    os.replace(tmp, out)


def child(argv: List[str]) -> None:
    """The conversions' child process: <what> <input> <output>."""
    what, src, dst = argv
    {"export-onnx": export_onnx, "quantize-onnx": quantize_onnx, "convert-ct2": convert_ct2}[what](src, dst)
