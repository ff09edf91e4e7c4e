#!/usr/bin/env bash
# Calibration and evaluation texts for `halfbyte imatrix` / `halfbyte perplexity`
# (docs/QUALITY.md): public-domain English prose from Debian's bible-kjv-text (the
# King James Version, 1611; read with the `bible` program of bible-kjv). The two
# are disjoint books: calibration = Genesis 1-20, evaluation = Gospel of Luke 1-12.
#   apt-get install bible-kjv bible-kjv-text && bash examples/make_kjv_texts.sh OUTDIR
set -euo pipefail
out="${1:-data}"
mkdir -p "$out"
command -v bible >/dev/null || { echo "needs the bible program: apt-get install bible-kjv bible-kjv-text" >&2; exit 1; }
# `bible` prints "Ge1:1 text" per verse: drop the reference, join verses per chapter
# into paragraphs.
extract() {
  bible -f "$1" | sed -E 's/^[0-9]?[A-Za-z]+([0-9]+):([0-9]+) /\1 \2 /' |
    awk '{ ch = $1; $1 = ""; $2 = ""; sub(/^  /, ""); if (ch != prev && NR > 1) printf "\n\n"; else if (NR > 1) printf " "; printf "%s", $0; prev = ch } END { printf "\n" }'
}
extract "Genesis 1:1-20:18" > "$out/kjv-calibration.txt"
extract "Luke 1:1-12:59" > "$out/kjv-evaluation.txt"
wc -w "$out/kjv-calibration.txt" "$out/kjv-evaluation.txt" >&2
