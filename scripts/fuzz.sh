#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan and UBSan) and runs each for a while.
#
#   bash scripts/fuzz.sh [--seconds N] [--build DIR] [--corpus DIR] [TARGET...]
#
# TARGET: config shard checkpoint tokenizer id_exchange (default: all). Seeds: configs/*.json for
# config, small generated files for the others. --corpus keeps what the fuzzer learns across
# runs (a folder per target); without it a temporary folder is used. A crash leaves the input
# as crash-* in the current folder and exits 1. CI runs a few seconds each (ctest fuzz_smoke);
# docs/training.md has a longer run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=60 BUILD=$ROOT/build-fuzz CORPUS="" TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --corpus) CORPUS=$2; shift 2 ;;
    -*) echo "fuzz: unknown option '$1'" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(config shard checkpoint tokenizer id_exchange)
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (bash scripts/setup.sh installs it)" >&2; exit 2; }

mkdir -p "$BUILD"
if ! { cmake -S "$ROOT/fuzz" -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE= &&
       cmake --build "$BUILD" -j"$(nproc)" -- $(printf 'fuzz_%s ' "${TARGETS[@]}"); } >"$BUILD/fuzz_build.log" 2>&1; then
  echo "fuzz: building the targets failed:" >&2; grep -E 'error|undefined' "$BUILD/fuzz_build.log" | head -20 >&2; exit 2
fi

WORK=$(mktemp -d -t gfwa_fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SEEDS=$WORK/seeds
mkdir -p "$SEEDS"/{config,shard,checkpoint,tokenizer,id_exchange}
cp "$ROOT"/configs/*.json "$SEEDS/config/"
python3 - "$SEEDS" <<'PY'
import hashlib, json, struct, sys
seeds = sys.argv[1]
head = [20240520, 1, 5, 20, 0] + [0] * 251
open(seeds + "/shard/u16.bin", "wb").write(struct.pack("<256i", *head) + struct.pack("<5H", 1, 2, 50256, 4, 5))
head = [20240801, 7, 3, 9, 0] + [0] * 251
open(seeds + "/shard/u32.bin", "wb").write(struct.pack("<256i", *head) + struct.pack("<3I", 7, 8, 9))
state = {"step": 3, "tokens": 96, "updates": 3, "bad_streak": 0, "world": 1, "rank_parts": 0, "format": 1,
         "loader": {"epoch": 0, "cursor": 4}, "sample_rng": "1 2 3"}
open(seeds + "/checkpoint/state.json", "w").write(json.dumps(state))
open(seeds + "/tokenizer/text.txt", "wb").write("It is a truth <|endoftext|> caf\u00e9 \U0001F600 \xff".encode("utf-8", "surrogateescape") + b"\xff\xfe")
idf = b"GFWAIDF1" + struct.pack("<IQQ", 2, 99, 123) + struct.pack("<I", 3) + b"run" + struct.pack("<I", 4) + b"blob"
open(seeds + "/id_exchange/idfile.bin", "wb").write(idf)
open(seeds + "/id_exchange/hello.bin", "wb").write(b"GFWAIDT1" + struct.pack("<II", 1, 2))
PY
export GFWA_TOKENIZER_DIR=${GFWA_TOKENIZER_DIR:-$ROOT/data/tokenizer}
for t in "${TARGETS[@]}"; do
  corpus=${CORPUS:+$CORPUS/$t}
  corpus=${corpus:-$WORK/corpus/$t}
  mkdir -p "$corpus"
  log=$WORK/$t.log
  if ! "$BUILD/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
       -print_final_stats=1 "$corpus" "$SEEDS/$t" >"$log" 2>&1; then
    echo "fuzz: fuzz_$t FAILED:" >&2; tail -40 "$log" >&2; exit 1
  fi
  echo "fuzz: fuzz_$t $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in" \
       "${SECONDS_EACH}s, $(grep -o 'cov: [0-9]*' "$log" | tail -1) edges, $(find "$corpus" -type f | wc -l) corpus files"
done
