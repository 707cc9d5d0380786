#!/usr/bin/env python3
"""How an inference service sends driftline its events (Python).

One prediction event per request and, once the truth is known, one outcome
event, both in the Confluent wire format (magic byte 0, the schema id, then
Avro with the shipped schemas/prediction.avsc and schemas/outcome.avsc),
keyed by the trace id, with the request's W3C `traceparent` header so the
monitor's traces link to the request's. The part to copy is `Emitter`;
`main` simulates a short stream to show it working: a fraud model scoring
`--events` requests over the last hour of event time, whose `amount` triples
half-way through.

    pip install confluent-kafka fastavro
    python3 emit.py --bootstrap localhost:9092 [--schema-registry URL]
        [--schemas ../../../schemas] [--events 600]
        [--predictions-topic predictions] [--outcomes-topic outcomes]

With `--schema-registry` the shipped schemas are registered under the
subjects `<topic>-value` (as Confluent serializers do) and the ids the
registry gives are written; without one, ids 1 and 2 (the service then
decodes with its own copy of the schemas, `kafka.local_schema_ids`).
"""
import argparse, io, json, math, os, random, struct, time, urllib.request

import fastavro
from confluent_kafka import Producer

HERE = os.path.dirname(os.path.abspath(__file__))


def register(registry, subject, schema_text):
    """The id the Schema Registry gives `schema_text` under `subject` (registered if new)."""
    req = urllib.request.Request(f"{registry.rstrip('/')}/subjects/{subject}/versions", method="POST",
                                 data=json.dumps({"schema": schema_text}).encode(),
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["id"]


class Emitter:
    def __init__(self, bootstrap, schemas_dir, predictions_topic, outcomes_topic, registry=None):
        text = {n: open(os.path.join(schemas_dir, n + ".avsc")).read() for n in ("prediction", "outcome")}
        self.prediction_schema = fastavro.parse_schema(json.loads(text["prediction"]))
        self.outcome_schema = fastavro.parse_schema(json.loads(text["outcome"]))
        if registry:
            self.prediction_id = register(registry, predictions_topic + "-value", text["prediction"])
            self.outcome_id = register(registry, outcomes_topic + "-value", text["outcome"])
        else:
            self.prediction_id, self.outcome_id = 1, 2
        self.predictions_topic, self.outcomes_topic = predictions_topic, outcomes_topic
        # idempotent: a retried send is never written twice
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})

    @staticmethod
    def _confluent(schema_id, schema, record):
        buf = io.BytesIO()
        buf.write(b"\x00" + struct.pack(">I", schema_id))
        fastavro.schemaless_writer(buf, schema, record)
        return buf.getvalue()

    def _send(self, topic, trace_id, span_id, value):
        traceparent = f"00-{trace_id}-{span_id}-01"
        while True:
            try:
                self.producer.produce(topic, key=trace_id, value=value, headers=[("traceparent", traceparent)])
                break
            except BufferError:  # the local queue is full: let it drain
                self.producer.poll(0.1)
        self.producer.poll(0)

    def prediction(self, trace_id, span_id, model_id, model_version, event_time_ms, features, slices,
                   prediction, score):
        """features: name -> float, str, bool or None (missing); slices: dimension -> value."""
        self._send(self.predictions_topic, trace_id, span_id, self._confluent(self.prediction_id, self.prediction_schema, {
            "trace_id": trace_id, "model_id": model_id, "model_version": model_version,
            "event_time": event_time_ms, "features": features, "slices": slices,
            "prediction": float(prediction), "score": score, "shadow": False}))

    def outcome(self, trace_id, span_id, model_id, event_time_ms, label):
        self._send(self.outcomes_topic, trace_id, span_id, self._confluent(self.outcome_id, self.outcome_schema, {
            "trace_id": trace_id, "model_id": model_id, "event_time": event_time_ms, "label": float(label)}))

    def close(self):
        undelivered = self.producer.flush(30)
        if undelivered:
            raise RuntimeError(f"{undelivered} events not delivered")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="localhost:9092")
    ap.add_argument("--schemas", default=os.path.join(HERE, "..", "..", "..", "schemas"))
    ap.add_argument("--schema-registry", default=None, help="e.g. http://localhost:8081")
    ap.add_argument("--predictions-topic", default="predictions")
    ap.add_argument("--outcomes-topic", default="outcomes")
    ap.add_argument("--events", type=int, default=600)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    em = Emitter(a.bootstrap, a.schemas, a.predictions_topic, a.outcomes_topic, a.schema_registry)
    # event time: the requests of the last hour, evenly spread
    step = 3_600_000 // a.events
    start = int(time.time() * 1000) - a.events * step
    outcomes = []
    for i in range(a.events):
        trace_id, span_id = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}"
        amount = math.exp(rng.gauss(3.3, 0.6)) * (3.0 if i >= a.events // 2 else 1.0)
        device = rng.choice(["android", "ios", "web"])
        tenure = None if rng.random() < 0.02 else round(rng.expovariate(1 / 400), 2)
        region = rng.choices(["EU", "US", "APAC"], [0.5, 0.35, 0.15])[0]
        score = 1 / (1 + math.exp(-(-2.0 + 0.02 * amount + (0.4 if device == "web" else 0.0))))
        t = start + i * step
        em.prediction(trace_id, span_id, "checkout-fraud", "v7", t,
                      {"amount": round(amount, 4), "tenure_days": tenure, "device": device},
                      {"region": region}, 1 if score >= 0.5 else 0, round(score, 6))
        # the truth comes later (here: 30 s of event time), in a span of its own
        outcomes.append((t + 30_000, trace_id, f"{rng.getrandbits(64):016x}", int(rng.random() < score)))
    for t, trace_id, span_id, label in outcomes:
        em.outcome(trace_id, span_id, "checkout-fraud", t, label)
    em.close()
    print(f"sent {a.events} predictions and {len(outcomes)} outcomes")


if __name__ == "__main__":
    main()
