#!/usr/bin/env bash
# The SmolLM2 table of docs/QUALITY.md: halfbyte's and llama.cpp's quantizers from one
# F16 source, each with and without an importance matrix (collected on the calibration
# text), halfbyte's also with GPTQ (the same imatrix file, with covariances), each file
# scored with `halfbyte perplexity --kl-base SOURCE` on the disjoint evaluation text.
#   [LLAMA_CPP_BIN=DIR] bash bench/quality_table.sh BUILD_DIR WORK_DIR [CHUNKS]
# TYPES (env) limits the types (default: q8_0 q4_1 q4_0 q4_k q4_k_s q4_k_m; q4_k has no
#   llama.cpp counterpart: its Q4_K_S is q4_k_s).
# LLAMA_CPP_BIN: folder with llama.cpp's llama-imatrix and llama-quantize; without it the
#   llama.cpp files are made with llama_cpp.llama_model_quantize (no imatrix rows).
# LCIMAT_TYPES (env, default none): also halfbyte's quantizer with llama.cpp's imatrix
#   (hb-T-lcimat rows: same statistics, different quantizer); needs LLAMA_CPP_BIN.
# Needs models/SmolLM2-135M-Instruct.Q4_1.gguf, llama-cpp-python, and the texts of
# examples/make_kjv_texts.sh (apt-get install bible-kjv bible-kjv-text).
set -euo pipefail
build="$1"; work="$2"; chunks="${3:-6}"
hb="$build/halfbyte"
lcbin="${LLAMA_CPP_BIN:-}"
mkdir -p "$work"
[ -f "$work/kjv-evaluation.txt" ] || bash "$(dirname "$0")/../examples/make_kjv_texts.sh" "$work"
src="$work/smollm2-f16.gguf"
# The source: the only SmolLM2 weights we have are its Q4_1 GGUF (token_embd q8_0),
# dequantized to F16 (exact: every q4_1/q8_0 value is representable... to fp16 rounding).
[ -f "$src" ] || "$hb" quantize models/SmolLM2-135M-Instruct.Q4_1.gguf "$src" --type f16 --quiet > /dev/null
types="${TYPES:-q8_0 q4_1 q4_0 q4_k q4_k_s q4_k_m}"
lcimat_types="${LCIMAT_TYPES:-}"
has_lc() { [ "$1" != q4_k ]; }

# halfbyte: importance matrix with covariances on the calibration text (ctx 512), then
# each type without it, with its importances only (--no-gptq) and with GPTQ.
[ -f "$work/hb-imatrix.gguf" ] || "$hb" imatrix -m "$src" -f "$work/kjv-calibration.txt" \
  -o "$work/hb-imatrix.gguf" --ctx 512 --covariance >&2
for t in $types; do
  [ -f "$work/hb-$t.gguf" ] || "$hb" quantize "$src" "$work/hb-$t.gguf" --type "$t" --quiet > /dev/null
  [ -f "$work/hb-$t-imat.gguf" ] || "$hb" quantize "$src" "$work/hb-$t-imat.gguf" --type "$t" \
    --imatrix "$work/hb-imatrix.gguf" --no-gptq --quiet > /dev/null
  [ -f "$work/hb-$t-gptq.gguf" ] || "$hb" quantize "$src" "$work/hb-$t-gptq.gguf" --type "$t" \
    --imatrix "$work/hb-imatrix.gguf" --quiet > /dev/null
done

# llama.cpp: its own tools if LLAMA_CPP_BIN is given (with its own imatrix), else the
# quantizer of llama-cpp-python (without imatrix).
lc_imat=0
if [ -n "$lcbin" ] && [ -x "$lcbin/llama-imatrix" ] && [ -x "$lcbin/llama-quantize" ]; then
  lc_imat=1
  [ -f "$work/lc-imatrix.gguf" ] || "$lcbin/llama-imatrix" -m "$src" -f "$work/kjv-calibration.txt" \
    -o "$work/lc-imatrix.gguf" -c 512 --no-ppl > "$work/lc-imatrix.log" 2>&1
  for t in $types; do
    has_lc "$t" || continue
    lt="$t"; LT=$(echo "$lt" | tr a-z A-Z)
    [ -f "$work/lc-$lt.gguf" ] || "$lcbin/llama-quantize" "$src" "$work/lc-$lt.gguf" "$LT" > /dev/null 2>&1
    [ -f "$work/lc-$lt-imat.gguf" ] || "$lcbin/llama-quantize" --imatrix "$work/lc-imatrix.gguf" \
      "$src" "$work/lc-$lt-imat.gguf" "$LT" > /dev/null 2>&1
  done
  for t in $lcimat_types; do
    [ -f "$work/hb-$t-lcimat.gguf" ] || "$hb" quantize "$src" "$work/hb-$t-lcimat.gguf" --type "$t" \
      --imatrix "$work/lc-imatrix.gguf" --quiet > /dev/null 2>/dev/null
  done
else
  echo "note: LLAMA_CPP_BIN (llama-imatrix, llama-quantize) not given: llama.cpp files via" \
       "llama-cpp-python, without the llama.cpp imatrix rows" >&2
  python3 - "$src" "$work" $types <<'PY'
import ctypes, os, sys, llama_cpp
src, work = sys.argv[1], sys.argv[2]
ftypes = {"q8_0": ("q8_0", 7), "q4_1": ("q4_1", 3), "q4_0": ("q4_0", 2), "q4_k_s": ("q4_k_s", 14), "q4_k_m": ("q4_k_m", 15)}
for name, ftype in (ftypes[t] for t in sys.argv[3:] if t in ftypes):
    out = os.path.join(work, f"lc-{name}.gguf")
    if os.path.exists(out):
        continue
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype, p.nthread = ftype, 2
    assert llama_cpp.llama_model_quantize(src.encode(), out.encode(), ctypes.byref(p)) == 0
PY
fi

n_params=$(python3 -c "
import gguf, numpy as np, sys
r = gguf.GGUFReader(sys.argv[1]); print(sum(int(np.prod(t.shape)) for t in r.tensors))" "$src")
printf "| file | quantizer | imatrix | size (MB) | bits/weight | PPL | KL vs source | top-1 agreement |\n|---|---|---|---:|---:|---:|---:|---:|\n"
files="$src"
for t in $types; do
  files="$files $work/hb-$t.gguf $work/hb-$t-imat.gguf $work/hb-$t-gptq.gguf"
  if has_lc "$t"; then
    files="$files $work/lc-$t.gguf"
    [ "$lc_imat" = 1 ] && files="$files $work/lc-$t-imat.gguf"
  fi
  if [ "$lc_imat" = 1 ] && [[ " $lcimat_types " == *" $t "* ]]; then files="$files $work/hb-$t-lcimat.gguf"; fi
done
for f in $files; do
  out=$("$hb" perplexity -m "$f" -f "$work/kjv-evaluation.txt" --ctx 512 --chunks "$chunks" --kl-base "$src" 2>/dev/null)
  ppl=$(echo "$out" | sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\)/\1 ± \2/p')
  kl=$(echo "$out" | sed -n 's/^Mean KL(base || model) = \([0-9.]*\) +\/- \([0-9.]*\)/\1 ± \2/p')
  top=$(echo "$out" | sed -n 's/^Same top-1: \([0-9.]*\) +\/- \([0-9.]*\) %.*/\1 ± \2 %/p')
  size=$(stat -c %s "$f")
  name=$(basename "$f" .gguf)
  who=halfbyte; case "$name" in lc-*) who=llama.cpp;; smollm2-f16*) who="source";; esac
  imat="-"; case "$name" in *-lcimat) imat="llama.cpp's";; *-gptq) imat="halfbyte's + GPTQ";;
    *-imat) [ "$who" = halfbyte ] && imat="halfbyte's" || imat="llama.cpp's";; esac
  printf "| %s | %s | %s | %.1f | %.2f | %s | %s | %s |\n" "$name" "$who" "$imat" \
    "$(echo "$size / 1000000" | bc -l)" "$(echo "$size * 8 / $n_params" | bc -l)" "$ppl" "$kl" "$top"
done
