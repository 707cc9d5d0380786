#!/usr/bin/env bash
# Short fuzz runs of every target (default 60 s each) with cargo-fuzz on the
# nightly toolchain; the seed corpus is tests/fuzz/corpus/<target>, the
# growing corpus target/fuzz-corpus/<target>. A target that finds a crash
# fails (the others still run): its input is in tests/fuzz/artifacts/<target>/
# — fix it and keep the input in tests/fuzz/regressions/<target>/
# (tests/integration/fuzz_corpus.rs replays it).
#   bash tests/fuzz/run.sh [seconds per target]
#   bash tests/fuzz/run.sh build     (only build the targets: the test command
#                                     builds them beside the broker suites)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
export CARGO_TARGET_DIR="$PWD/target/fuzz-build"
cargo +nightly fuzz build --fuzz-dir tests/fuzz -O
if [ "$secs" = build ]; then
  exit 0
fi
passed=0
failed=0
for t in confluent_avro json writer_schema container; do
  mkdir -p "target/fuzz-corpus/$t"
  echo "fuzz: $t for ${secs}s"
  cargo +nightly fuzz run --fuzz-dir tests/fuzz -O "$t" "target/fuzz-corpus/$t" "tests/fuzz/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)" || true
  # any one kind of failing input fails the target (an `ls` of all three
  # globs failed unless every kind was there, and passed a crash)
  if compgen -G "tests/fuzz/artifacts/$t/crash-*" >/dev/null ||
     compgen -G "tests/fuzz/artifacts/$t/oom-*" >/dev/null ||
     compgen -G "tests/fuzz/artifacts/$t/timeout-*" >/dev/null; then
    echo "fuzz: $t found a failing input (tests/fuzz/artifacts/$t)"
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
