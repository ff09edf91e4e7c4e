#!/usr/bin/env bash
# The SmolLM2 table of docs/QUALITY.md: halfbyte's and llama.cpp's quantizers from one
# F16 source, each file scored with `halfbyte perplexity --kl-base SOURCE`.
#   bash bench/quality_table.sh BUILD_DIR WORK_DIR [CHUNKS]
# TYPES (env) limits the types (default: q8_0 q4_1 q4_0 q4_k q4_k_m).
# Needs models/SmolLM2-135M-Instruct.Q4_1.gguf, llama-cpp-python, and the texts of
# examples/make_kjv_texts.sh (apt-get install bible-kjv bible-kjv-text).
set -euo pipefail
build="$1"; work="$2"; chunks="${3:-6}"
hb="$build/halfbyte"
mkdir -p "$work"
[ -f "$work/kjv-evaluation.txt" ] || bash "$(dirname "$0")/../examples/make_kjv_texts.sh" "$work"
src="$work/smollm2-f16.gguf"
# The source: the only SmolLM2 weights we have are its Q4_1 GGUF (token_embd q8_0),
# dequantized to F16 (exact: every q4_1/q8_0 value is representable... to fp16 rounding).
[ -f "$src" ] || "$hb" quantize models/SmolLM2-135M-Instruct.Q4_1.gguf "$src" --type f16 --quiet > /dev/null
types="${TYPES:-q8_0 q4_1 q4_0 q4_k q4_k_m}"
for t in $types; do
  [ -f "$work/hb-$t.gguf" ] || "$hb" quantize "$src" "$work/hb-$t.gguf" --type "$t" --quiet > /dev/null
done
python3 - "$src" "$work" $types <<'PY'
import ctypes, os, sys, llama_cpp
src, work = sys.argv[1], sys.argv[2]
ftypes = {"q8_0": ("q8_0", 7), "q4_1": ("q4_1", 3), "q4_0": ("q4_0", 2), "q4_k": ("q4_k_s", 14), "q4_k_m": ("q4_k_m", 15)}
for name, ftype in (ftypes[t] for t in sys.argv[3:]):
    out = os.path.join(work, f"lc-{name}.gguf")
    if os.path.exists(out):
        continue
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype, p.nthread = ftype, 2
    assert llama_cpp.llama_model_quantize(src.encode(), out.encode(), ctypes.byref(p)) == 0
PY
n_params=$(python3 -c "
import gguf, numpy as np, sys
r = gguf.GGUFReader(sys.argv[1]); print(sum(int(np.prod(t.shape)) for t in r.tensors))" "$src")
printf "| file | quantizer | size (MB) | bits/weight | PPL | KL vs source | top-1 agreement |\n|---|---|---:|---:|---:|---:|---:|\n"
files="$src"
for t in $types; do
  lc=$t; [ "$t" = q4_k ] && lc=q4_k_s
  files="$files $work/hb-$t.gguf $work/lc-$lc.gguf"
done
for f in $files; do
  out=$("$hb" perplexity -m "$f" -f "$work/kjv-evaluation.txt" --ctx 512 --chunks "$chunks" --kl-base "$src" 2>/dev/null)
  ppl=$(echo "$out" | sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\)/\1 ± \2/p')
  kl=$(echo "$out" | sed -n 's/^Mean KL(base || model) = \([0-9.]*\) +\/- \([0-9.]*\)/\1 ± \2/p')
  top=$(echo "$out" | sed -n 's/^Same top-1: \([0-9.]*\) +\/- \([0-9.]*\) %/\1 ± \2 %/p')
  size=$(stat -c %s "$f")
  who=halfbyte; case "$(basename "$f")" in lc-*) who=llama.cpp;; smollm2-f16*) who="source";; esac
  printf "| %s | %s | %.1f | %.2f | %s | %s | %s |\n" "$(basename "$f" .gguf)" "$who" \
    "$(echo "$size / 1000000" | bc -l)" "$(echo "$size * 8 / $n_params" | bc -l)" "$ppl" "$kl" "$top"
done
