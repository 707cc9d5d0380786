#!/usr/bin/env python3
"""Throughput of `driftline run` against the real broker: N prediction
events (the 1M `stationary` stream of benches/e2e.sh, 8 features, 2 slice
dimensions) in Confluent wire format on a topic of 3 partitions, keyed by
trace id, consumed and applied by one service instance from the start
(`--until-end`: it stops once every partition is read to its end).

    python3 benches/kafka_bench.py --bootstrap 127.0.0.1:39092 [--events N]

Reports the service's own rate (first to last message, from its shutdown
line) and the wall time including start-up and the group join. Run through
benches/kafka.sh, which starts and stops the broker.
"""
import argparse, atexit, io, json, os, shutil, struct, subprocess, sys, tempfile, time, uuid

import fastavro
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("DRIFTLINE_BIN") or os.path.join(ROOT, "target", "release", "driftline")
STREAM = os.path.join(ROOT, "target", "bench", "1m", "stationary", "predictions.jsonl")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--stream", default=STREAM,
                    help="the predictions (JSON Lines) to produce; default the 1M stream of benches/e2e.sh")
    ap.add_argument("--route", action="store_true",
                    help="also route the topic by model (driftline route) and run a routed service on it")
    ap.add_argument("--otel", action="store_true",
                    help="also run with OTLP export (1 s interval) to a local sink and compare")
    ap.add_argument("--state-per", choices=["member", "partition"], default="member",
                    help="kafka.state_per of the measured runs: one engine for the member's "
                         "partitions, or one per partition number")
    ap.add_argument("--workers", default="1,2",
                    help="comma-separated `run --workers` values, each run in turn on the same topic")
    args = ap.parse_args()

    schema = fastavro.parse_schema(json.load(open(os.path.join(ROOT, "schemas", "prediction.avsc"))))
    suffix = uuid.uuid4().hex[:8]
    topic = f"bench-predictions-{suffix}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
        f.result()

    t = time.time()
    p = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 50, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 500000, "compression.type": "none"})
    n = 0
    buf = io.BytesIO()
    with open(args.stream) as f:
        for line in f:
            if n >= args.events:
                break
            ev = json.loads(line)
            ev.setdefault("model_version", None)
            ev.setdefault("slices", {})
            ev.setdefault("score", None)
            ev["prediction"] = float(ev["prediction"])
            ev["features"] = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                              for k, v in ev["features"].items()}
            buf.seek(0)
            buf.truncate()
            fastavro.schemaless_writer(buf, schema, ev)
            value = b"\x00" + struct.pack(">I", 1) + buf.getvalue()
            while True:
                try:
                    p.produce(topic, value, key=ev["trace_id"].encode())
                    break
                except BufferError:
                    p.poll(0.1)
            n += 1
            if n % 10000 == 0:
                p.poll(0)
    p.flush()
    print(f"produced {n} events to {topic} ({args.partitions} partitions) in {time.time() - t:.1f} s", flush=True)

    for workers in [int(w) for w in args.workers.split(",")]:
        for otel in ([False, True, False, True] if args.otel else [False]):
            run(args, suffix, topic, n, otel, workers)
    if args.route:
        route(args, suffix, topic, n)


def kafka_section(args, group, topic, suffix):
    """The [kafka] section of a bench config: predictions only, read from the start."""
    return f"""[kafka]
bootstrap_servers = "{args.bootstrap}"
group_id = "{group}"
predictions_topic = "{topic}"
outcomes_topic = ""
alerts_topic = "bench-alerts-{suffix}"
dlq_topic = "bench-dlq-{suffix}"
encoding = "confluent"
local_schema_ids = [1]
start_from = "earliest"
idle_timeout = "1s"
"""


def stopped_line(log, message):
    for line in open(log):
        if message in line:
            return json.loads(line)["fields"]
    return None


def route(args, suffix, topic, n):
    """The two stages: `driftline route --until-end` re-keys the topic by
    model into a routed topic (transactions), then one routed service reads it."""
    tmp = tempfile.mkdtemp(prefix="dl-bench-route-")
    atexit.register(shutil.rmtree, tmp, True)
    routed = f"bench-routed-{suffix}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(routed, args.partitions, 1)]).values():
        f.result()
    cfg = os.path.join(tmp, "route.toml")
    with open(cfg, "w") as f:
        f.write(kafka_section(args, f"bench-route-{suffix}", topic, suffix) + f"""state_per = "partition"
routed = true
[route]
predictions_topic = "{routed}"
""")
    for cmd in ("route", "run"):
        log = os.path.join(tmp, f"{cmd}.log")
        t = time.time()
        with open(log, "w") as lf:
            rc = subprocess.call([BIN, cmd, "--config", cfg, "--log-format", "json", "--until-end"],
                                 stdout=subprocess.DEVNULL, stderr=lf)
        wall = time.time() - t
        st = stopped_line(log, "router stopped" if cmd == "route" else "driftline service stopped")
        if rc != 0 or st is None:
            sys.exit(f"{cmd} failed (rc {rc}); log:\n" + open(log).read()[-4000:])
        count = st["routed"] if cmd == "route" else st["messages"]
        rate = st["events_per_s"] if cmd == "route" else st["messages_per_s"]
        print(f"{cmd:>5} (routed): {count} events: {rate:.0f} events/s (first to last, {st['busy_s']:.2f} s); "
              f"wall {wall:.1f} s" + (f"; late {st['late']}, alerts {st['alerts']}" if cmd == "run" else
                                      f"; {st['transactions']} transactions"), flush=True)
        if cmd == "route" and count < n:
            sys.exit(f"only {count} of {n} events routed")


def otlp_sink():
    """Accepts OTLP/HTTP posts (answers 200, keeps the byte count)."""
    import http.server, threading

    class H(http.server.BaseHTTPRequestHandler):
        received = 0

        def do_POST(self):
            H.received += len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, H


def run(args, suffix, topic, n, otel, workers):
    tmp = tempfile.mkdtemp(prefix="dl-bench-")
    atexit.register(shutil.rmtree, tmp, True)
    cfg = os.path.join(tmp, "bench.toml")
    sink = otlp_sink() if otel else None
    with open(cfg, "w") as f:
        f.write(kafka_section(args, f"bench-{suffix}-{uuid.uuid4().hex[:6]}", topic, suffix))
        f.write(f'state_per = "{args.state_per}"\n')
        if sink:
            f.write(f"""[otel]
endpoint = "http://127.0.0.1:{sink[0].server_address[1]}"
interval = "1s"
""")
    log = os.path.join(tmp, "service.log")
    t = time.time()
    with open(log, "w") as lf:
        rc = subprocess.call([BIN, "run", "--config", cfg, "--log-format", "json", "--until-end",
                              "--workers", str(workers)],
                             stdout=subprocess.DEVNULL, stderr=lf)
    wall = time.time() - t
    stopped = stopped_line(log, "driftline service stopped")
    if rc != 0 or stopped is None:
        sys.exit(f"service failed (rc {rc}); log:\n" + open(log).read()[-4000:])
    msgs = stopped["messages"]
    if sink:
        sink[0].shutdown()
    print(f"workers {workers}, state per {args.state_per}, {'otlp on ' if otel else 'otlp off'}: consumed and applied {msgs} events: {stopped['messages_per_s']:.0f} events/s "
          f"(first to last message, {stopped['busy_s']:.2f} s); wall {wall:.1f} s incl. start-up, "
          f"group join and {1}s idle detection; late {stopped['late']}, alerts {stopped['alerts']}; "
          f"decoded on the workers {stopped.get('decoded_on_workers', 0)}, "
          f"applied on task workers {stopped.get('applied_on_task_workers', 0)}")
    if msgs < n:
        sys.exit(f"only {msgs} of {n} events consumed")


if __name__ == "__main__":
    main()
