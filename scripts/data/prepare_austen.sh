#!/usr/bin/env bash
# Prepares the embedded default corpus in data/austen/: Jane Austen's six novels from Debian's
# r-cran-janeaustenr, as text (data/austen/text/*.txt) and GPT-2 token shards: train on five
# novels (train_000000.bin), validate on Persuasion (val_000000.bin).
# Idempotent: when data/austen/SHA256SUMS verifies, nothing is done. Works on a fresh machine as
# root (or with sudo): runs apt-get update only when the package is unknown, fetches the
# tokenizer (scripts/data/fetch_tokenizer.sh), builds build/gfwa when it is missing.
# Checks: the .deb against the SHA256 of apt's signed index; the extracted text against the
# sha256 sums pinned below for package version 1.0.0-1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/data/austen"
GFWA="${GFWA:-$ROOT/build/gfwa}"
PKG=r-cran-janeaustenr
PINNED_VERSION=1.0.0-1
PINNED_TEXT="7c67b5985c6d0de1efaeb5d342d52cb82c38083c40e2295129e30e87ee690ebe  text/emma.txt
98bc90519cdf4ef663ad7de2734bb529435ef24f7abbde6bb1a50898871dafe9  text/mansfieldpark.txt
51f91bbe0517db8e65cff009b097ce0a1836124c4e0532ac19e6c0cad982abed  text/northangerabbey.txt
8061549557aebd2fd6e353d18d9197cb707029112bd52d4d8b174583a925848a  text/persuasion.txt
dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d  text/prideprejudice.txt
105e1651fe93bed7130078578efd31e0c557d68667ba672ddc876f735b30fe09  text/sensesensibility.txt"
TRAIN=(emma mansfieldpark northangerabbey prideprejudice sensesensibility)
VAL=persuasion

source "$ROOT/scripts/data/prepare_lib.sh"
prepare_begin prepare_austen "$OUT"
bash "$ROOT/scripts/data/apt_download.sh" "$TMP/deb" "$PKG"
DEB="$(ls "$TMP"/deb/*.deb)"
VERSION="$(dpkg-deb -f "$DEB" Version)"
dpkg-deb -x "$DEB" "$TMP/root"
mkdir -p "$OUT/text"
python3 "$ROOT/scripts/data/extract_austen.py" "$TMP/root/usr/lib/R/site-library/janeaustenr/data/Rdata" "$OUT/text"
if [ "$VERSION" = "$PINNED_VERSION" ]; then
  if ! (cd "$OUT" && sha256sum --quiet -c - <<<"$PINNED_TEXT"); then
    echo "prepare_austen: extracted text differs from the sums pinned for $PKG $PINNED_VERSION" >&2
    exit 1
  fi
  say "text matches the pinned sha256 sums"
else
  say "note: $PKG $VERSION is not the pinned $PINNED_VERSION; the text is unpinned (the .deb was verified)"
fi

INPUTS=()
for n in "${TRAIN[@]}"; do INPUTS+=("$OUT/text/$n.txt"); done
"$GFWA" tokenize --out "$OUT" --tokenizer "$ROOT/data/tokenizer" --val "$OUT/text/$VAL.txt" "${INPUTS[@]}" \
  | sed 's/^/prepare_austen: /'
(cd "$OUT" && sha256sum text/*.txt train_*.bin val_*.bin > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
say "wrote $OUT/{train,val}_*.bin and SHA256SUMS in $(( $(date +%s) - start )) s"
