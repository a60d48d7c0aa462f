#!/usr/bin/env bash
# Prepares the bigger corpus of docs/data.md in data/debian_mix/: about 120 MB of English text
# from Debian packages (kernel docs, GCIDE, Python and Perl docs, WordNet, FOLDOC, fortunes, the
# Jargon File, the Devil's Dictionary, Jane Austen, the King James Bible), about 40 M GPT-2 tokens:
# text/<source>.txt, then train_NNNNNN.bin / val_NNNNNN.bin (shards of 10 M tokens, so a subset
# fits the 64 MiB a call may carry to the GPU machine; val: 1% of documents by content hash).
# Downloads about 85 MB. Idempotent (data/debian_mix/SHA256SUMS); not run in CI. Works on a fresh
# machine as root (or with sudo). Each .deb is checked against apt's signed index (SOURCES lists
# the versions); the text is not pinned, as these packages get point releases.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/data/debian_mix"
GFWA="${GFWA:-$ROOT/build/gfwa}"
SEP="<|gfwa-document-break|>"
PKGS=(linux-doc-6.12 dict-gcide python3.11-doc perl-doc wordnet-base dict-foldoc fortunes fortunes-min
      jargon-text dict-devil r-cran-janeaustenr bible-kjv bible-kjv-text libreadline8)

source "$ROOT/scripts/data/prepare_lib.sh"
prepare_begin prepare_debian_mix "$OUT"
bash "$ROOT/scripts/data/apt_download.sh" "$TMP/deb" "${PKGS[@]}" | tee "$TMP/sources"
for deb in "$TMP"/deb/*.deb; do dpkg-deb -x "$deb" "$TMP/root"; done
mkdir -p "$OUT/text"
python3 "$ROOT/scripts/data/extract_debian_mix.py" "$TMP/root" "$OUT/text"
"$GFWA" tokenize --out "$OUT" --tokenizer "$ROOT/data/tokenizer" --doc-sep "$SEP" --val-fraction 0.01 \
  --shard-tokens 10000000 "$OUT/text/*.txt" | sed 's/^/prepare_debian_mix: /'
sed 's/^apt_download: //' "$TMP/sources" > "$OUT/SOURCES"
(cd "$OUT" && sha256sum SOURCES text/*.txt train_*.bin val_*.bin > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
say "wrote $OUT/{train,val}_*.bin and SHA256SUMS in $(( $(date +%s) - start )) s"
