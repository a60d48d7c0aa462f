# Shared start of the prepare_*.sh scripts (sourced, not run). After `prepare_begin NAME OUT`:
# say() prefixes messages with NAME; the script has exited when OUT/SHA256SUMS already verifies;
# the tokenizer is fetched, $GFWA is built if missing, and $TMP is a scratch folder removed at exit.
prepare_begin() {
  PREP_NAME="$1"
  local out="$2"
  start=$(date +%s)
  if [ -f "$out/SHA256SUMS" ] && (cd "$out" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1); then
    say "$out is complete (SHA256SUMS verifies); nothing to do"
    exit 0
  fi
  rm -f "$out/SHA256SUMS"
  bash "$ROOT/scripts/data/fetch_tokenizer.sh"
  if [ ! -x "$GFWA" ]; then
    say "building $GFWA"
    bash "$ROOT/scripts/build.sh"
  fi
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  chmod 755 "$TMP"
}

say() { echo "$PREP_NAME: $*"; }
