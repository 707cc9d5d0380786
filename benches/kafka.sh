#!/usr/bin/env bash
# Events/s consumed and applied by `driftline run` from a real broker: 1M
# Confluent-framed prediction events on 3 partitions (benches/kafka_bench.py).
# Starts the broker of tests/kafka/kafka.sh when none runs on KAFKA_PORT and
# stops it again. Usage: bash benches/kafka.sh [events]
# (OTEL=1: also with OTLP export; ROUTE=1: also routed, driftline route + a routed run)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
py=target/venv/bin/python
if [ ! -x $py ]; then python3 -m venv target/venv; fi
$py -c 'import numpy, confluent_kafka, fastavro' 2>/dev/null \
  || $py -m pip install --quiet --disable-pip-version-check numpy confluent-kafka fastavro
if [ ! -f target/bench/1m/stationary/predictions.jsonl ]; then
  $py tests/scenarios/generate.py target/bench/1m --only stationary --rate 11.5741 --hours 24 >/dev/null
fi
port="${KAFKA_PORT:-39092}"
if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  trap 'bash tests/kafka/kafka.sh down' EXIT
  bash tests/kafka/kafka.sh up >/dev/null
fi
$py benches/kafka_bench.py --bootstrap "127.0.0.1:$port" --events "${1:-1000000}" ${OTEL:+--otel} ${ROUTE:+--route}
