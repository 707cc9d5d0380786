#!/usr/bin/env bash
# A real Apache Kafka broker for the integration tests: single node, KRaft
# (broker and controller in one process), on 127.0.0.1, from the broker jars
# on Maven Central (fetched once with Maven into target/kafka/libs) and the
# machine's Java 17.
#
#   bash tests/kafka/kafka.sh up     # start; prints the bootstrap address
#   bash tests/kafka/kafka.sh down   # stop and delete its data
#   bash tests/kafka/kafka.sh topics --bootstrap-server … --list   # kafka-topics.sh
#
# Port: KAFKA_PORT (default 39092; the controller uses the next one, a
# SASL_PLAINTEXT listener with PLAIN the one after). Each
# port has its own data, logs and pid file (target/kafka/<port>/), so
# brokers on two ports never touch each other's state; the jars are shared.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$root/target/kafka"
port="${KAFKA_PORT:-39092}"
cport=$((port + 1))
# a second listener with SASL/PLAIN (user driftline, password
# quickstart-secret) for the quick start's SASL step
sport=$((port + 2))
state="$work/$port"
pidfile="$state/broker.pid"

fetch() {
  # the jars of this pom.xml (a changed pom fetches again)
  local stamp; stamp=".complete-$(sha256sum "$here/pom.xml" | cut -c1-12)"
  if [ -f "$work/libs/$stamp" ]; then return; fi
  rm -rf "$work/libs"
  mkdir -p "$work/libs"
  echo "kafka.sh: fetching broker jars with maven" >&2
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$work/libs" -DincludeScope=runtime >&2
  touch "$work/libs/$stamp"
}

up() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "127.0.0.1:$port"; return
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "kafka.sh: 127.0.0.1:$port is already in use by another process; set KAFKA_PORT" >&2; exit 1
  fi
  fetch
  rm -rf "$state/data" "$state/broker.log"
  mkdir -p "$state/data"
  cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_PLAINTEXT://127.0.0.1:$sport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_driftline="quickstart-secret";
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.segment.bytes=67108864
PROPS
  cat > "$state/log4j2.properties" <<PROPS
rootLogger.level=WARN
rootLogger.appenderRef.f.ref=f
appender.f.type=File
appender.f.name=f
appender.f.fileName=$state/broker.log
appender.f.layout.type=PatternLayout
appender.f.layout.pattern=[%d] %p %m (%c)%n
PROPS
  local cp="$work/libs/*"
  local jopts=(-Xms256m -Xmx768m -Dlog4j2.configurationFile="$state/log4j2.properties")
  java "${jopts[@]}" -cp "$cp" kafka.tools.StorageTool format --standalone \
    -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
    -c "$state/server.properties" >/dev/null
  nohup java "${jopts[@]}" -cp "$cp" kafka.Kafka "$state/server.properties" >"$state/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "127.0.0.1:$port"; return
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka.sh: broker exited; see $state/stdout.log" >&2; tail -20 "$state/stdout.log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker did not listen on $port within 60s" >&2; exit 1
}

down() {
  if [ -f "$pidfile" ]; then
    local pid; pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  rm -rf "$state/data"
}

# Kafka's kafka-topics.sh: the same class on the same jars
topics() {
  fetch
  exec java -Xms64m -Xmx256m -Dlog4j2.level=WARN -cp "$work/libs/*" org.apache.kafka.tools.TopicCommand "$@"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  topics) shift; topics "$@" ;;
  *) echo "usage: kafka.sh up|down|topics ARGS…" >&2; exit 2 ;;
esac
