#!/usr/bin/env bash
# The timing-sensitive Kafka tests (crashes, rebalances, routed stages, event
# time per partition), ROUNDS times while the machine is busy: a second
# release build of the crate runs in a loop in a scratch target dir the whole
# time. Not part of CI (it takes about ten minutes a round); run it before
# calling a change to the service's partition handling robust.
#
#   bash tests/kafka/under_load.sh [ROUNDS] [PORT]
#   UNDER_LOAD_TESTS="members" bash tests/kafka/under_load.sh 5   # only these (--only substrings)
#
# Starts its own broker on PORT (default 39411), tests a copy of
# target/release/driftline with a copy of the tests, config and schemas it
# was built with (edits to the tree while it runs change neither), stops the
# broker and the load on exit, and ends with "under load: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-1}
port=${2:-39411}
tests=${UNDER_LOAD_TESTS:-routed absurd sigkill crashes members state_per large_poison}

scratch=$(mktemp -d -t dl-load-XXXXXX)
load_pid=
cleanup() {
  [ -n "$load_pid" ] && kill -- -"$load_pid" 2>/dev/null
  KAFKA_PORT=$port bash tests/kafka/kafka.sh down >/dev/null 2>&1
  rm -rf "$scratch"
}
trap cleanup EXIT

cargo build --release --locked -q || exit 1
cp target/release/driftline "$scratch/driftline"
mkdir -p "$scratch/tree/target"
cp -r config schemas examples tests "$scratch/tree/"
ln -s "$PWD/target/venv" "$PWD/target/scenarios" "$scratch/tree/target/"
bootstrap=$(KAFKA_PORT=$port bash tests/kafka/kafka.sh up) || { echo "the broker did not start"; exit 1; }

# the load: rebuild the crate from scratch-ish (its own fingerprints removed) until killed
set -m
(
  while true; do
    rm -rf "$scratch/target/release/.fingerprint/driftline-"*
    CARGO_TARGET_DIR="$scratch/target" cargo build --release -q >/dev/null 2>&1
  done
) &
load_pid=$!
set +m

passed=0
failed=0
for i in $(seq 1 "$rounds"); do
  for t in $tests; do
    out=$(DRIFTLINE_BIN="$scratch/driftline" timeout 900 target/venv/bin/python "$scratch/tree/tests/kafka/test_service.py" \
      --bootstrap "$bootstrap" --only "$t" 2>&1)
    echo "$out" | grep -E "^kafka test"
    if echo "$out" | grep -qE "^kafka: [1-9][0-9]* passed, 0 failed$"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "$out" | tail -40
      # the failed run's logs, out of the scratch dir (removed on exit)
      kept=$(echo "$out" | sed -n 's/.*are kept in //p')
      [ -n "$kept" ] && mv "$kept" "target/under-load-failed-$(date +%H%M%S)" && echo "logs: target/under-load-failed-$(date +%H%M%S)"
    fi
  done
  echo "round $i of $rounds done $(date +%T): $passed passed, $failed failed so far"
done
echo "under load: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
