#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, fetches the GPT-2 tokenizer and
# the embedded Jane Austen corpus, trains configs/quickstart.json (GPU if present, else CPU; a few
# minutes on 2 cores) and prints the final validation perplexity and a text sample.
# Run it again and it resumes (or, when finished, just prints the result again).
# Extra arguments go to `gfwa train`, e.g. --set train.max_steps=100.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT=runs/quickstart
say() { echo "quickstart: $*"; }
start=$(date +%s)

have_deps() {
  for c in cmake ninja g++ python3 npm; do command -v "$c" >/dev/null || return 1; done
  for h in cxxopts.hpp nlohmann/json.hpp spdlog/spdlog.h fmt/format.h gtest/gtest.h; do
    [ -f "/usr/include/$h" ] || return 1
  done
}
if have_deps; then say "build dependencies present"; else say "installing dependencies"; bash scripts/setup.sh; fi

say "building"
bash scripts/build.sh
bash scripts/data/prepare_austen.sh  # fetches the tokenizer too

say "training configs/quickstart.json into $OUT"
status=0
./build/gfwa train --config configs/quickstart.json --out "$OUT" --resume auto "$@" || status=$?
if [ "$status" -ne 0 ]; then
  say "training stopped with status $status (75: interrupted; run this script again to resume)"
  exit "$status"
fi

python3 - "$OUT/metrics.jsonl" <<'PY'
import json, sys
evals, samples = [], []
for line in open(sys.argv[1]):
    r = json.loads(line)
    (evals if r["type"] == "eval" else samples if r["type"] == "sample" else []).append(r)
e = evals[-1]
print(f"\nfinal validation (step {e['step']}): loss {e['val_loss']:.4f}, perplexity {e['val_ppl']:.2f}, "
      f"bits per byte {e['val_bpb']:.4f}")
if samples:
    print(f"sample (step {samples[-1]['step']}):\n{samples[-1]['text']}\n")
PY
say "done in $(( $(date +%s) - start )) s; logs, metrics and checkpoints in $OUT" \
    "(plots: python3 scripts/plot_metrics.py $OUT/metrics.jsonl)"
