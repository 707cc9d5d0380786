#!/usr/bin/env bash
# The test command (README, .ci/run): release build, the scenario acceptance
# check, the service against a real Kafka broker (started here, stopped on
# exit, also on failure), then every unit, integration and doc test, the
# memory bounds and short fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked

# Python for reference streams and for clients no one here wrote, in a venv of our own
if [ ! -x target/venv/bin/python ]; then
  python3 -m venv target/venv
fi
target/venv/bin/python -c 'import numpy, confluent_kafka, fastavro, prometheus_client, opentelemetry.proto' 2>/dev/null \
  || target/venv/bin/python -m pip install --quiet --disable-pip-version-check numpy confluent-kafka fastavro prometheus-client opentelemetry-proto
# Debian's Chromium for the dashboard test
export CHROMIUM="$(bash tests/browser/chromium.sh)"
target/venv/bin/python tests/scenarios/check.py --check
# memory under a cardinality attack (peak RSS against the documented bounds)
target/venv/bin/python tests/memory/test_memory.py

# a real Apache Kafka broker (KRaft, jars from Maven Central)
trap 'bash tests/kafka/kafka.sh down' EXIT
bootstrap=$(bash tests/kafka/kafka.sh up)
target/venv/bin/python tests/kafka/test_service.py --bootstrap "$bootstrap"
bash tests/kafka/kafka.sh down
trap - EXIT

cargo test --release --locked

# short fuzz runs of the decoders (nightly + cargo-fuzz; 30 s per target here,
# FUZZ_SECONDS=600 for a longer hunt)
bash tests/fuzz/run.sh "${FUZZ_SECONDS:-30}"
