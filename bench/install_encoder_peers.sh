#!/usr/bin/env bash
# Installs the optional peers of bench/encoder_vs_peers.py (issue #12's encoder
# benchmark), all prebuilt wheels from PyPI, and prints what it got:
#   onnxruntime + onnx   ONNX Runtime fp32 and int8 (quantize_dynamic) on an ONNX export
#   ctranslate2          CTranslate2 int8 (its Python converter: no optimum needed)
#   openvino             OpenVINO on the same ONNX file
# llama.cpp (llama-cpp-python, built from source) comes from `bash .ci/peers`; its
# GGUF is made with the convert_hf_to_gguf.py that ships in the llama-cpp-python
# sdist (the benchmark downloads the sdist with `pip download` when it needs it).
# torch + transformers (the reference) come from .ci/setup.
# Not part of CI's default setup: the benchmark skips any peer that is missing.
#   bash bench/install_encoder_peers.sh
set -uo pipefail
PY="${PYTHON:-python3}"
pkgs=(onnxruntime onnx ctranslate2 openvino)
missing=()
for p in "${pkgs[@]}"; do
  "$PY" -c "import $p" 2>/dev/null || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  # One at a time, so that one failing does not keep the others out.
  for p in "${missing[@]}"; do
    "$PY" -m pip install -q --disable-pip-version-check "$p" ||
      echo "install_encoder_peers: could not install $p; the benchmark will skip it" >&2
  done
fi
"$PY" - <<'EOF'
import importlib, sys
print(f"Python {sys.version.split()[0]}")
for name in ("onnxruntime", "onnx", "ctranslate2", "openvino", "llama_cpp", "torch", "transformers", "gguf"):
    try:
        m = importlib.import_module(name)
        v = getattr(m, "__version__", None)
        if v is None and name == "openvino":
            v = m.get_version()
        print(f"{name:13s} {v}")
    except Exception as e:  # missing or broken: say which
        print(f"{name:13s} missing ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
EOF
