#!/usr/bin/env python3
"""Reads driftline's incident topic and routes each incident to its owner.

Incident events (schemas/incident.avsc, Avro, or JSON with
`kafka.alert_encoding = "json"`) are deduplicated on (incident_id, seq) —
the service re-emits after a crash — and sent by owner and severity:

    python3 examples/incident_subscriber.py --bootstrap 127.0.0.1:9092 \
        --topic driftline-incidents \
        --route fraud-ml=https://hooks.example/fraud --route '*=-' \
        --min-severity critical

`--route OWNER=URL` posts the event as JSON to URL; `-` prints it to stdout;
`*` is every owner without a route of its own. Events below
`--min-severity` are printed, never posted (only what should page is sent).
Needs `confluent-kafka` and `fastavro` (pip install confluent-kafka fastavro).
"""
import argparse, io, json, os, sys, time, urllib.request

import fastavro
from confluent_kafka import Consumer

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schemas", "incident.avsc")
RANK = {"warning": 1, "critical": 2}


def decode(value, schema):
    if value[:1] == b"{":
        return json.loads(value)
    ev = fastavro.schemaless_reader(io.BytesIO(value), schema)
    for k in ("opened_at", "updated_at", "emitted_at"):
        if hasattr(ev.get(k), "timestamp"):
            ev[k] = int(ev[k].timestamp() * 1000)
    return ev


def send(url, ev):
    if url == "-":
        print(f"[{ev['severity']}] {ev['state']} {ev['incident_id']} #{ev['seq']} → {ev['owner']}: {ev['summary']}\n"
              f"    do: {ev['recommended_action']}  (runbook {ev['runbook_url']})", flush=True)
        return
    req = urllib.request.Request(url, data=json.dumps(ev).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="driftline-incidents")
    ap.add_argument("--group", default="driftline-incident-subscriber")
    ap.add_argument("--route", action="append", default=[], help="OWNER=URL (or - for stdout); * for the rest")
    ap.add_argument("--min-severity", choices=list(RANK), default="warning")
    ap.add_argument("--exit-when-idle", type=float, default=None, help="stop after this many seconds without a message")
    a = ap.parse_args()
    routes = dict(r.split("=", 1) for r in a.route) or {"*": "-"}
    schema = fastavro.parse_schema(json.load(open(SCHEMA)))
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group, "auto.offset.reset": "earliest"})
    c.subscribe([a.topic])
    seen, last = set(), time.time()
    try:
        while a.exit_when_idle is None or time.time() - last < a.exit_when_idle:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            last = time.time()
            ev = decode(m.value(), schema)
            key = (ev["incident_id"], ev["seq"])
            if key in seen:
                continue  # a re-emission
            seen.add(key)
            url = routes.get(ev["owner"], routes.get("*", "-"))
            if RANK[ev["severity"]] < RANK[a.min_severity]:
                url = "-"
            send(url, ev)
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
