#!/usr/bin/env python3
"""End-to-end tests of `driftline run` against the real Kafka broker of
tests/kafka/kafka.sh, with clients no one here wrote: Python's
confluent-kafka produces the events (fastavro encodes them: Confluent
framing, plain Avro, JSON) and reads the alert topic back (fastavro with
schemas/alert.avsc).

    python3 tests/kafka/test_service.py --bootstrap 127.0.0.1:39092 [--only NAME]

Needs confluent-kafka and fastavro, a release build, and the scenario streams
of tests/scenarios/check.py (target/scenarios). Prints one line per test and
"kafka: N passed, N failed" at the end; exits 1 on a failure.
"""
import argparse, atexit, io, json, os, re, shutil, signal, struct, subprocess, sys, tempfile, time, traceback, uuid

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("DRIFTLINE_BIN") or os.path.join(ROOT, "target", "release", "driftline")
SCHEMAS = {n: fastavro.parse_schema(json.load(open(os.path.join(ROOT, "schemas", n + ".avsc"))))
           for n in ("prediction", "outcome", "alert", "incident", "action")}
SCENARIO = os.path.join(ROOT, "target", "scenarios", "abrupt_amount")
SCHEMA_ID = 1

# every process a test starts is tracked, and killed at the end if a failing
# test left it running (the broker stops right after these tests)
_PROCS = []


class _TrackedPopen(subprocess.Popen):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        _PROCS.append(self)


subprocess.Popen = _TrackedPopen


def stop_all(procs):
    """SIGTERM to every process still running, then wait (kill after 60 s)."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()


def kill_leftovers():
    for p in _PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()


def avro_bytes(schema, record):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


def confluent(schema, record, schema_id=SCHEMA_ID):
    return b"\x00" + struct.pack(">I", schema_id) + avro_bytes(schema, record)


def encode(encoding, kind, ev):
    schema = SCHEMAS[kind]
    if encoding == "json":
        return json.dumps(ev, separators=(",", ":")).encode()
    if kind == "prediction":
        ev = dict(ev)
        ev.setdefault("model_version", None)
        ev.setdefault("slices", {})
        ev.setdefault("score", None)
        ev.setdefault("shadow", False)
        ev["prediction"] = float(ev["prediction"]) if not isinstance(ev["prediction"], str) else ev["prediction"]
        ev["features"] = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                          for k, v in ev["features"].items()}
    else:
        ev = dict(ev)
        ev["label"] = float(ev["label"]) if not isinstance(ev["label"], str) else ev["label"]
    return confluent(schema, ev) if encoding == "confluent" else avro_bytes(schema, ev)


class Env:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.tmp = tempfile.mkdtemp(prefix="dl-kafka-")
        # removed at exit, unless a test failed: its logs are kept for a look
        self.keep = False
        atexit.register(lambda: self.keep or shutil.rmtree(self.tmp, True))

    def topics(self, partitions, config=None, control=False, actions=False):
        tag = uuid.uuid4().hex[:8]
        names = {k: f"{k}-{tag}" for k in ("predictions", "outcomes", "alerts", "dlq", "incidents")
                 + (("control",) if control else ()) + (("actions",) if actions else ())}
        config = config or {}
        fs = self.admin.create_topics([NewTopic(names[k], partitions.get(k, 1), 1, config=config.get(k, {})) for k in names])
        for f in fs.values():
            f.result(30)
        return names

    def produce(self, topic, values, key=lambda i: None, headers=lambda i: None, partition=-1, big=False):
        """Produces `values` (to `partition`, or by key when -1) and waits for every acknowledgement."""
        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 20,
                      "queue.buffering.max.messages": 500000, **({"message.max.bytes": 8_000_000} if big else {})})
        for i, v in enumerate(values):
            while True:
                try:
                    p.produce(topic, value=v, key=key(i), headers=headers(i), partition=partition)
                    break
                except BufferError:
                    p.poll(0.1)
            if i % 10000 == 0:
                p.poll(0)
        assert p.flush(60) == 0, "undelivered messages"

    def end_offset(self, topic, partition):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "ends-" + uuid.uuid4().hex})
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        c.close()
        return hi

    def config(self, names, encoding, group, start_from="earliest", extra="", tag=""):
        path = os.path.join(self.tmp, f"{group}{tag}.toml")
        with open(path, "w") as f:
            f.write(f"""[kafka]
bootstrap_servers = "{self.bootstrap}"
group_id = "{group}"
predictions_topic = "{names['predictions']}"
outcomes_topic = "{names['outcomes']}"
alerts_topic = "{names['alerts']}"
incidents_topic = "{names.get('incidents', '')}"
dlq_topic = "{names['dlq']}"
{f'control_topic = "{names["control"]}"' if "control" in names else ""}
{f'actions_topic = "{names["actions"]}"' if "actions" in names else ""}
encoding = "{encoding}"
alert_encoding = "avro"
local_schema_ids = [{SCHEMA_ID}]
start_from = "{start_from}"
idle_timeout = "2s"
{extra}
""")
        return path

    def start(self, config, log, workers=None):
        return subprocess.Popen([BIN, "run", "--config", config, "--log-format", "json"]
                                + (["--workers", str(workers)] if workers else []),
                                stdout=subprocess.DEVNULL, stderr=open(log, "w"))

    def read_all(self, topic, settle=4.0, want=None, timeout=120.0, raw=False, ids=None, schema="alert"):
        """Reads a topic from the start until `want` messages are seen (or,
        with `ids`, alerts with every one of those ids; then waits `settle`
        more seconds for extras) or nothing new for `settle`."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "reader-" + uuid.uuid4().hex,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        out, last, t0 = [], time.time(), time.time()
        while time.time() - t0 < timeout:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m if raw else fastavro.schemaless_reader(io.BytesIO(m.value()), SCHEMAS[schema]))
                last = time.time()
                continue
            enough = want is None or len(out) >= want
            if ids is not None:
                enough = ids <= {a["alert_id"] for a in out}
            if enough and time.time() - last > settle:
                break
        c.close()
        return out


_EVENTS = None
_REPLAY_DIR = tempfile.mkdtemp(prefix="dl-replay-")
atexit.register(shutil.rmtree, _REPLAY_DIR, True)


def scenario_events():
    global _EVENTS
    if _EVENTS is None:
        _EVENTS = ([json.loads(l) for l in open(os.path.join(SCENARIO, "predictions.jsonl"))],
                   [json.loads(l) for l in open(os.path.join(SCENARIO, "outcomes.jsonl"))])
    return _EVENTS


def replay_alerts():
    """replay's alerts, less those of its end-of-input flush: a service does
    not know the stream ended, so it evaluates the last buckets only once the
    watermark (newest event time less the 2 min allowed lateness) passes them."""
    # made afresh by this run's binary (a file left by another build would be stale)
    path = os.path.join(_REPLAY_DIR, "alerts.replay.jsonl")
    if not os.path.exists(path):
        subprocess.run([BIN, "replay", "--config", os.path.join(ROOT, "config", "driftline.toml"),
                        "--predictions", os.path.join(SCENARIO, "predictions.jsonl"),
                        "--outcomes", os.path.join(SCENARIO, "outcomes.jsonl"), "--output", path,
                        "--incidents", os.path.join(_REPLAY_DIR, "incidents.replay.jsonl")],
                       check=True, stderr=subprocess.DEVNULL)
    preds, outs = scenario_events()
    newest = max(max(e["event_time"] for e in preds), max(e["event_time"] for e in outs))
    last_closed_end = (newest - 120_000) // 60_000 * 60_000
    # (by emitted_at, the event time of the evaluation: a quality alert's
    # window is where its predictions were, hours before it is evaluated)
    return [a for a in (json.loads(l) for l in open(path)) if a["emitted_at"] <= last_closed_end]


def replay_incidents():
    """replay's incident events, less those of its end-of-input flush."""
    replay_alerts()
    preds, outs = scenario_events()
    newest = max(max(e["event_time"] for e in preds), max(e["event_time"] for e in outs))
    last_closed_end = (newest - 120_000) // 60_000 * 60_000
    path = os.path.join(_REPLAY_DIR, "incidents.replay.jsonl")
    return [e for e in (json.loads(l) for l in open(path)) if e["emitted_at"] <= last_closed_end]


def strip(a):
    """The alert as replay writes it: fastavro turns timestamp-millis into datetimes."""
    import datetime
    a = {k: (int(v.timestamp() * 1000) if isinstance(v, datetime.datetime) else v) for k, v in a.items()}
    a.pop("emitted_at")
    return a


def same_content(got, want):
    """Every input alert published (first emission or re-emission) equals
    the uninterrupted run's alert of the same id, state and window in every
    field but emitted_at."""
    key = lambda a: (a["alert_id"], a["state"], a["window_end"])
    ref = {key(strip(a)): strip(a) for a in want}
    for a in got:
        a = strip(a)
        if a["alert_id"] not in input_ids([a]) or key(a) not in ref:
            continue
        w = ref[key(a)]
        diff = {k: (a.get(k), w.get(k)) for k in w if a.get(k) != w.get(k)}
        assert not diff, f"re-emitted alert {a['alert_id']} differs: {json.dumps(diff)[:800]}"


def same_alerts(got, want):
    """Equal but for emitted_at, in order."""
    g, w = [strip(a) for a in got], [strip(a) for a in want]
    if g != w:
        for i, (x, y) in enumerate(zip(g, w)):
            if x != y:
                diff = {k: (x.get(k), y.get(k)) for k in y if x.get(k) != y.get(k)}
                raise AssertionError(f"alert {i} differs: {json.dumps(diff)[:800]}")
        raise AssertionError(f"{len(g)} alerts published, replay has {len(w)}")


POISON = None


def poison(encoding):
    """Bad messages of every kind, each with the error class it must get."""
    p = {"trace_id": "p", "model_id": "checkout-fraud", "event_time": 1767225600000,
         "features": {"amount": float("nan")}, "slices": {}, "prediction": 0.0, "score": None, "model_version": None}
    good = encode("confluent", "prediction", dict(p, features={"amount": 1.0}))
    if encoding == "json":
        return [(b"{not json", "malformed_json"),
                (b'{"trace_id":"p","model_id":"m","event_time":1}', "missing_field"),
                (json.dumps(dict(p, features={"amount": "NaN-as-text"}, trace_id="")).encode(), "empty_trace_id")]
    out = [(avro_bytes(SCHEMAS["prediction"], p) if encoding == "avro" else confluent(SCHEMAS["prediction"], p), "non_finite")]
    if encoding == "confluent":
        out += [(b"\x01" + good[1:], "bad_magic_byte"),
                (b"\x00" + struct.pack(">I", 99) + good[5:], "unknown_schema"),
                (good[: len(good) // 2], "malformed_avro"),
                (b"\x00\x00\x00\x00\x01" + b"\x06abc", "malformed_avro")]
    else:
        out += [(b"\x06abc", "malformed_avro")]
    return out


def run_pipeline(env, encoding, with_poison=True, workers=None):
    preds, outs = scenario_events()
    names = env.topics({})
    bad = poison(encoding) if with_poison else []
    values = [encode(encoding, "prediction", e) for e in preds]
    # poison at the start and in the middle; the next good message must still be processed
    mid = len(values) // 2
    values = [b for b, _ in bad] + values[:mid] + [b for b, _ in bad] + values[mid:]
    env.produce(names["predictions"], values)
    env.produce(names["outcomes"], [encode(encoding, "outcome", e) for e in outs])
    cfg = env.config(names, encoding, "g-" + names["alerts"])
    log = os.path.join(env.tmp, f"{encoding}.log")
    proc = env.start(cfg, log, workers)
    want = replay_alerts()
    try:
        got = env.read_all(names["alerts"], want=len(want))
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    assert rc == 0, f"exit code {rc}; log {log}"
    same_alerts(got, want)
    # the same incident events as replay's, every field but emitted_at
    want_inc = replay_incidents()
    got_inc = env.read_all(names["incidents"], want=len(want_inc), settle=1.0, schema="incident")
    assert len(want_inc) >= 1
    same_alerts(got_inc, want_inc)
    if bad:
        dlq = env.read_all(names["dlq"], raw=True, want=2 * len(bad), settle=1.0)
        assert len(dlq) == 2 * len(bad), f"{len(dlq)} dead letters, want {2 * len(bad)}"
        for m, (value, cls) in zip(dlq, bad + bad):
            h = {k: v.decode() for k, v in (m.headers() or [])}
            assert m.value() == value, "dead letter is not the message unchanged"
            assert h["dlq.error.class"] == cls, (h, cls)
            assert h["dlq.source.topic"] == names["predictions"] and h["dlq.source.partition"] == "0"
            assert h["dlq.error.message"]
        offsets = sorted(int({k: v.decode() for k, v in m.headers()}["dlq.source.offset"]) for m in dlq)
        assert offsets == list(range(len(bad))) + list(range(len(bad) + mid, 2 * len(bad) + mid)), offsets
    return names, want, service_fields(log)


def test_confluent_alerts_equal_replay_and_poison_goes_to_dlq(env):
    # three decoding threads on two cores: batches split three ways, the
    # same alerts, incidents and dead letters as replay's
    *_, fields = run_pipeline(env, "confluent", workers=3)
    assert fields["decoded_on_workers"] > 0, fields


def test_plain_avro(env):
    # one thread: no reading ahead
    *_, fields = run_pipeline(env, "avro", workers=1)
    assert fields["decoded_on_workers"] == 0, fields


def test_json_with_garbage(env):
    run_pipeline(env, "json")


INPUT_KINDS = ("data_drift", "prediction_drift", "data_quality")


def input_ids(alerts):
    """Ids of input alerts (not those on the label): exact across restarts.
    Quality alerts count joined pairs at bucket closes; after a pause in the
    stream, which partition wakes first can move a close relative to the
    outcomes read, so their episodes may start a minute apart (other ids)."""
    return {a["alert_id"] for a in alerts if a["kind"] in INPUT_KINDS and a["feature"] != "label"}


def service_totals(log):
    """messages and late counts from a service's shutdown line."""
    try:
        f = service_fields(log)
    except AssertionError:
        return None, None
    return f["messages"], f["late"]


def produce_keyed(env, names, preds, outs, lo, hi, traceparent=False):
    """The events whose time falls in [lo, hi) of the stream's time span, on
    both topics, keyed by trace id over three partitions (each partition
    stays in event-time order). Cutting both topics at one event time keeps
    them in step, as live topics are."""
    t0 = preds[0]["event_time"]
    span = preds[-1]["event_time"] + 1 - t0
    a, b = t0 + lo * span, (t0 + hi * span) if hi < 1.0 else float("inf")
    p = [e for e in preds if a <= e["event_time"] < b]
    o = [e for e in outs if a <= e["event_time"] < b]
    headers = (lambda i: [("traceparent", f"00-{p[i]['trace_id']}-00f067aa0ba902b7-01".encode())]) if traceparent else (lambda i: None)
    env.produce(names["predictions"], [encode("confluent", "prediction", e) for e in p], key=lambda i: p[i]["trace_id"].encode(),
                headers=headers)
    env.produce(names["outcomes"], [encode("confluent", "outcome", e) for e in o], key=lambda i: o[i]["trace_id"].encode())


def committed(env, group, topic):
    c = Consumer({"bootstrap.servers": env.bootstrap, "group.id": group, "enable.auto.commit": False})
    offs = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    c.close()
    return [o.offset for o in offs]


def test_sigkill_mid_stream_and_restart_publishes_every_alert(env):
    preds, outs = scenario_events()
    names = env.topics({"predictions": 3, "outcomes": 3})
    want = input_ids(replay_alerts())
    cfg = env.config(names, "confluent", "g-" + names["alerts"])
    # the drift starts half way: the first kill comes while the stream is still arriving
    produce_keyed(env, names, preds, outs, 0.0, 0.6)
    proc = env.start(cfg, os.path.join(env.tmp, "kill0.log"))
    first = env.read_all(names["alerts"], want=3, settle=0.0, timeout=60)
    assert len(first) >= 3, "no alerts before the first kill"
    proc.kill()
    proc.wait()
    produce_keyed(env, names, preds, outs, 0.6, 0.8)
    proc = env.start(cfg, os.path.join(env.tmp, "kill1.log"))
    time.sleep(1.5)
    proc.kill()
    proc.wait()
    # at-least-once: nothing is committed that a restart would need (windows rebuild from the start)
    assert all(o < 0 for o in committed(env, "g-" + names["alerts"], names["predictions"])), "offsets committed"
    produce_keyed(env, names, preds, outs, 0.8, 1.0)
    proc = env.start(cfg, os.path.join(env.tmp, "kill-final.log"))
    try:
        # the last run re-reads everything: it publishes every alert again
        got = env.read_all(names["alerts"], settle=3.0, ids=want, timeout=90)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    missing = input_ids(replay_alerts()) - input_ids(got)
    assert not missing, f"{len(missing)} input alerts of the uninterrupted run never published"
    kinds = {a["kind"] for a in got}
    assert {"performance", "concept_drift"} <= kinds, kinds
    # re-emitted or not, an input alert is the uninterrupted run's in every
    # field but emitted_at (exemplars by hash, moments in any order the same)
    same_content(got, replay_alerts())
    # Alerts the uninterrupted run does not have can appear: a restarted member
    # that joins while the killed one's session is still open works on part of
    # the partitions until the group rebalances (then it rebuilds from all).


def test_absurd_timestamps_are_refused_per_partition(env):
    """One event dated 2099 first on partition 0, one in epoch seconds first
    on partition 1, one 23 h ahead mid-stream on partition 2: each is refused
    as time_outlier (dead-lettered with its partition and offset) and the
    service alerts as the clean stream does."""
    preds, outs = scenario_events()
    names = env.topics({"predictions": 3, "outcomes": 3})
    want = input_ids(replay_alerts())
    enc = lambda e: encode("confluent", "prediction", e)
    t0 = preds[0]["event_time"]
    env.produce(names["predictions"], [enc(dict(preds[0], trace_id="future", event_time=4_070_908_800_000))], partition=0)
    env.produce(names["predictions"], [enc(dict(preds[0], trace_id="seconds", event_time=t0 // 1000))], partition=1)
    produce_keyed(env, names, preds, outs, 0.0, 0.5)
    mid = preds[len(preds) // 2]["event_time"]
    env.produce(names["predictions"], [enc(dict(preds[0], trace_id="ahead", event_time=mid + 23 * 3_600_000))], partition=2)
    produce_keyed(env, names, preds, outs, 0.5, 1.0)
    cfg = env.config(names, "confluent", "g-" + names["alerts"])
    log = os.path.join(env.tmp, "hostile-time.log")
    proc = env.start(cfg, log)
    try:
        got = env.read_all(names["alerts"], settle=3.0, ids=want, timeout=120)
        dlq = env.read_all(names["dlq"], raw=True, want=3, settle=2.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    missing = want - input_ids(got)
    extra = input_ids(got) - want
    assert not missing and not extra, f"{len(missing)} input alerts missing, {len(extra)} extra; log {log}"
    assert {"performance", "concept_drift"} <= {a["kind"] for a in got}
    heads = sorted(({k: v.decode() for k, v in m.headers()} for m in dlq), key=lambda h: h["dlq.source.partition"])
    assert [h["dlq.error.class"] for h in heads] == ["time_outlier"] * 3, heads
    assert [h["dlq.source.partition"] for h in heads] == ["0", "1", "2"], heads
    assert heads[0]["dlq.source.offset"] == "0" and heads[1]["dlq.source.offset"] == "0", heads
    traces = sorted(json.loads(m.value())["trace_id"] if {k: v for k, v in m.headers()}.get("dlq.payload.encoding") == b"json"
                    else fastavro.schemaless_reader(io.BytesIO(m.value()[5:]), SCHEMAS["prediction"])["trace_id"] for m in dlq)
    assert traces == ["ahead", "future", "seconds"], traces


def service_fields(log):
    """The fields of a service's shutdown line."""
    for line in open(log):
        if "driftline service stopped" in line:
            return json.loads(line)["fields"]
    raise AssertionError(f"no shutdown line in {log}")


BIG = 5_000_000


def test_an_oversized_dead_letter_never_wedges_the_service(env):
    """A 5 MB value (the input topic allows it) is past the service
    producer's 1 MB and the dead-letter topic's 20 kB: it is dead-lettered
    without its value (header dlq.value.original_bytes), counted, and the
    service reads on; /healthz stays 200; SIGTERM exits within 10 s."""
    preds, outs = scenario_events()
    names = env.topics({}, config={"predictions": {"max.message.bytes": "8000000"},
                                   "dlq": {"max.message.bytes": "20000"}})
    env.produce(names["predictions"], [b"\x00" + os.urandom(BIG - 1)], headers=lambda i: [("origin-app", b"checkout")], big=True)
    env.produce(names["predictions"], [encode("confluent", "prediction", e) for e in preds])
    env.produce(names["outcomes"], [encode("confluent", "outcome", e) for e in outs])
    port = free_port()
    cfg = env.config(names, "confluent", "g-" + names["alerts"], extra=f'[http]\nlisten = "127.0.0.1:{port}"\n')
    log = os.path.join(env.tmp, "oversized.log")
    proc = env.start(cfg, log)
    want = input_ids(replay_alerts())
    try:
        got = env.read_all(names["alerts"], settle=3.0, ids=want, timeout=120)
        code, _ = http_get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200, code
        dlq = env.read_all(names["dlq"], raw=True, want=1, settle=1.0)
    finally:
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        took = time.time() - t0
    assert rc == 0 and took < 10, f"exit {rc} after {took:.1f}s; log {log}"
    assert not want - input_ids(got), f"{len(want - input_ids(got))} input alerts missing; log {log}"
    assert len(dlq) == 1, len(dlq)
    h = {k: v.decode() for k, v in dlq[0].headers()}
    assert h["dlq.value.original_bytes"] == str(BIG), h
    assert h["dlq.source.offset"] == "0" and h["dlq.error.class"] in ("unknown_schema", "malformed_avro"), h
    assert h["origin-app"] == "checkout", "the message's own headers are kept"
    assert not dlq[0].value(), "a value the topic cannot take is left out"
    f = service_fields(log)
    assert f["dead_letters_cut"] == 1 and f["dead_letters_undeliverable"] == 0, f


def test_a_large_poison_at_a_partition_head_holds_flow_control(env):
    """One 5 MB poison first on predictions partition 2: the other
    partitions wait for it (a partition that has delivered nothing holds
    flow control), so outcomes never run ahead of their predictions: no
    orphan is evicted and the alerts are the uninterrupted run's."""
    preds, outs = scenario_events()
    names = env.topics({"predictions": 3, "outcomes": 3}, config={"predictions": {"max.message.bytes": "8000000"}})
    env.produce(names["predictions"], [b"\x00" + os.urandom(BIG - 1)], partition=2, big=True)
    produce_keyed(env, names, preds, outs, 0.0, 1.0)
    cfg = env.config(names, "confluent", "g-" + names["alerts"])
    log = os.path.join(env.tmp, "big-head.log")
    proc = env.start(cfg, log)
    want = replay_alerts()
    try:
        got = env.read_all(names["alerts"], settle=4.0, ids={a["alert_id"] for a in want}, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    f = service_fields(log)
    assert f["orphans_evicted"] == 0, f
    got_ids, want_ids = {a["alert_id"] for a in got}, {a["alert_id"] for a in want}
    assert got_ids == want_ids, f"{len(want_ids - got_ids)} of replay's alerts missing, {len(got_ids - want_ids)} extra; log {log}"


def test_a_missing_input_topic_is_named_and_not_ready(env):
    """An input topic the cluster does not have: a warning naming it every
    10 s while it is missing, and /readyz 503 saying which."""
    names = env.topics({})
    names = dict(names, outcomes="missing-" + names["outcomes"])
    port = free_port()
    cfg = env.config(names, "confluent", "g-" + names["alerts"], extra=f'[http]\nlisten = "127.0.0.1:{port}"\n')
    log = os.path.join(env.tmp, "missing-topic.log")
    proc = env.start(cfg, log)
    try:
        deadline, body, warned = time.time() + 60, "", 0
        while time.time() < deadline:
            code, body = http_get(f"http://127.0.0.1:{port}/readyz")
            warned = sum(names["outcomes"] in l and "does not exist" in l for l in open(log))
            if code == 503 and names["outcomes"] in body and warned >= 2:
                break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert names["outcomes"] in body, body
    assert warned >= 2, f"{warned} warnings naming the topic; log {log}"


def test_incident_subscriber_dedupes_and_routes_by_owner(env):
    """examples/incident_subscriber.py against the incident topic of a real
    run (owners routed by a feature glob): each (incident_id, seq) reaches
    its owner's webhook once, though the topic holds every event twice (a
    re-emission), and events below --min-severity are printed, not posted."""
    import http.server, threading
    preds, outs = scenario_events()
    names = env.topics({})
    env.produce(names["predictions"], [encode("confluent", "prediction", e) for e in preds])
    env.produce(names["outcomes"], [encode("confluent", "outcome", e) for e in outs])
    cfg = env.config(names, "confluent", "g-" + names["alerts"], extra="""
[owners]
default = "ml-platform"
[[owners.rules]]
feature = "amou*"
owner = "payments-data"
""")
    log = os.path.join(env.tmp, "subscriber-run.log")
    proc = env.start(cfg, log)
    try:
        want = replay_incidents()
        got = env.read_all(names["incidents"], want=len(want), settle=1.0, schema="incident")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert got and all(e["owner"] == "payments-data" for e in got), {e["owner"] for e in got}
    # every event once more: what a consumer sees after a crash and restart
    raw = env.read_all(names["incidents"], raw=True, want=len(got), settle=1.0)
    env.produce(names["incidents"], [m.value() for m in raw])
    posted = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "incident_subscriber.py"),
                              "--bootstrap", env.bootstrap, "--topic", names["incidents"], "--group", "sub-" + names["incidents"],
                              "--route", f"payments-data={url}/payments", "--route", f"*={url}/other",
                              "--min-severity", "critical", "--exit-when-idle", "5"],
                             capture_output=True, text=True, timeout=120)
    finally:
        srv.shutdown()
    assert out.returncode == 0, out.stderr[-2000:]
    critical = [e for e in got if e["severity"] == "critical"]
    keys = [(e["incident_id"], e["seq"]) for _, e in posted]
    assert sorted(keys) == sorted((e["incident_id"], e["seq"]) for e in critical), (keys, len(critical))
    assert all(path == "/payments" for path, _ in posted)
    assert out.stdout.count("[warning]") == len(got) - len(critical), out.stdout[-2000:]


def replay_feedback(control_lines):
    """replay --control over the scenario: its feedback counts, as
    {(verdict, test, feature, cause): n}."""
    path = os.path.join(_REPLAY_DIR, "control.jsonl")
    with open(path, "w") as f:
        f.write("".join(l + "\n" for l in control_lines))
    out = subprocess.run([BIN, "replay", "--config", os.path.join(ROOT, "config", "driftline.toml"),
                          "--predictions", os.path.join(SCENARIO, "predictions.jsonl"),
                          "--outcomes", os.path.join(SCENARIO, "outcomes.jsonl"), "--output", os.devnull,
                          "--control", path], capture_output=True, text=True, check=True)
    counts = {}
    for m in re.finditer(r"feedback: (\d+) (confirmed|false_positive) on (\S+) (\S+) \((\w+)\)", out.stderr):
        n, verdict, test, feature, cause = m.groups()
        counts[(verdict, test, None if feature == "(model)" else feature, cause)] = int(n)
    return counts


def test_incident_feedback_on_the_control_topic_is_counted_and_survives_a_restart(env):
    """Verdicts on the control topic (one replaced by a later one, one for an
    incident no one has, one value that is not a control event): /api/feedback
    and /metrics count them per verdict and root as `replay --control` does
    with the same events; the bad value is dead-lettered; after a restart on
    its checkpoint, reading an empty control topic, the counts are still there."""
    preds, outs = scenario_events()
    names = env.topics({}, control=True)
    env.produce(names["predictions"], [encode("confluent", "prediction", e) for e in preds])
    env.produce(names["outcomes"], [encode("confluent", "outcome", e) for e in outs])
    incidents = replay_incidents()
    ids = list(dict.fromkeys(e["incident_id"] for e in incidents))
    assert ids, incidents
    lines = [json.dumps(c) for c in (
        {"type": "incident_feedback", "incident_id": ids[0], "verdict": "false_positive", "by": "bob"},
        {"type": "incident_feedback", "incident_id": "inc-no-such", "verdict": "false_positive"},
        {"type": "incident_feedback", "incident_id": ids[0], "verdict": "confirmed", "by": "bob", "note": "on second look"},
    )]
    want = replay_feedback(lines)
    assert list(want.values()) == [1] and list(want)[0][0] == "confirmed", want
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def config(control, tag):
        return env.config(dict(names, control=control), "confluent", "g-fb-" + names["alerts"], start_from="checkpoint",
                          tag=tag, extra=f"""
[checkpoint]
dir = "{os.path.join(env.tmp, 'ckpt-fb-' + names['alerts'])}"
interval = "1s"
[http]
listen = "127.0.0.1:{port}"
""")

    def feedback(deadline_s):
        deadline, got = time.time() + deadline_s, None
        while time.time() < deadline:
            code, body = http_get(base + "/api/feedback")
            if code == 200:
                got = {(f["verdict"], f["test"], f["feature"], f["cause"]): f["count"] for f in json.loads(body)}
                if got == want:
                    break
            time.sleep(0.5)
        return got

    proc = env.start(config(names["control"], ""), os.path.join(env.tmp, "feedback-a.log"))
    try:
        env.read_all(names["incidents"], want=len(incidents), settle=1.0, schema="incident")
        env.produce(names["control"], [l.encode() for l in lines] + [b"{not a control event"])
        got = feedback(60)
        assert got == want, (got, want)
        code, metrics = http_get(base + "/metrics")
        rows = [l for l in metrics.splitlines() if l.startswith("driftline_incident_feedback{")]
        assert len(rows) == 1 and 'verdict="confirmed"' in rows[0] and rows[0].endswith(" 1"), rows
        assert 'driftline_control_events_total{result="refused"} 1' in metrics, metrics[-3000:]
        assert 'driftline_control_events_total{result="applied"} 3' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    dead = env.read_all(names["dlq"], raw=True, want=1, settle=1.0)
    assert [m.value() for m in dead] == [b"{not a control event"], dead
    h = dict(dead[0].headers())
    assert h["dlq.source.topic"] == names["control"].encode() and h["dlq.error.class"] == b"malformed_json", h
    # the counts come back from the checkpoint, not from re-reading the verdicts
    empty = names["control"] + "-empty"
    for f in env.admin.create_topics([NewTopic(empty, 1, 1)]).values():
        f.result(30)
    proc = env.start(config(empty, "-b"), os.path.join(env.tmp, "feedback-b.log"))
    try:
        got = feedback(60)
        assert got == want, (got, want)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_release_decisions_are_published_as_replay_makes_them(env):
    """canary_bad (a v8 canary on a quarter of the traffic, worse in APAC)
    over three partitions: the service publishes the action events replay
    writes (every field but emitted_at), readable with fastavro; and none of
    the canary's events reach production's alerts."""
    scen = os.path.join(ROOT, "target", "scenarios", "canary_bad")
    preds = [json.loads(l) for l in open(os.path.join(scen, "predictions.jsonl"))]
    outs = [json.loads(l) for l in open(os.path.join(scen, "outcomes.jsonl"))]
    path = os.path.join(_REPLAY_DIR, "canary.actions.jsonl")
    subprocess.run([BIN, "replay", "--config", os.path.join(ROOT, "config", "driftline.toml"),
                    "--predictions", os.path.join(scen, "predictions.jsonl"), "--outcomes", os.path.join(scen, "outcomes.jsonl"),
                    "--output", os.path.join(_REPLAY_DIR, "canary.alerts.jsonl"), "--actions", path],
                   check=True, stderr=subprocess.DEVNULL)
    want = [json.loads(l) for l in open(path)]
    assert [(a["action"], a["model_version"], a["slice"]) for a in want] == [("rollback_recommended", "v8", {"region": "APAC"})], want
    replay_alerts_n = sum(1 for _ in open(os.path.join(_REPLAY_DIR, "canary.alerts.jsonl")))
    names = env.topics({"predictions": 3, "outcomes": 3}, actions=True)
    produce_keyed(env, names, preds, outs, 0.0, 1.0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = env.config(names, "confluent", "g-" + names["alerts"], extra=f'[http]\nlisten = "127.0.0.1:{port}"\n')
    proc = env.start(cfg, os.path.join(env.tmp, "release.log"))
    try:
        got = env.read_all(names["actions"], want=len(want), settle=3.0, schema="action", timeout=300)
        alerts = env.read_all(names["alerts"], settle=1.0, timeout=30)
        # the version panel: v7 against v8 per slice, APAC worse, the decision beside it
        code, body = http_get(base + "/api/versions")
        versions = json.loads(body)
        assert code == 200 and versions[0]["production"] == "v7" and versions[0]["candidates"][0]["version"] == "v8", body[:500]
        apac = [r for r in versions[0]["candidates"][0]["slices"] if r["slice"] == {"region": "APAC"}]
        assert apac and apac[0]["worse"] and apac[0]["loss"][1] > apac[0]["loss"][0], apac
        chromium = os.environ.get("CHROMIUM") or subprocess.run(
            ["bash", os.path.join(ROOT, "tests", "browser", "chromium.sh")], capture_output=True, text=True, check=True).stdout.strip()
        flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--virtual-time-budget=10000", "--window-size=1280,1100"]
        dom = subprocess.run(flags + ["--dump-dom", base + "/"], capture_output=True, text=True, timeout=120).stdout
        assert re.search(r'<tr class="worse" data-slice="region=APAC">', dom), dom[:3000]
        assert "rollback_recommended" in dom and 'data-version="v8"' in dom
        out_dir = os.path.join(ROOT, "target", "test-output")
        os.makedirs(out_dir, exist_ok=True)
        shot = os.path.join(out_dir, "versions.png")
        if os.path.exists(shot):
            os.remove(shot)
        subprocess.run(flags + [f"--screenshot={shot}", base + "/"], capture_output=True, timeout=120)
        assert os.path.getsize(shot) > 20_000, "no screenshot"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert [strip(a) for a in got] == [{k: v for k, v in a.items() if k != "emitted_at"} for a in want], (got, want)
    assert replay_alerts_n == 0 and alerts == [], alerts


def test_second_instance_takes_over(env):
    preds, outs = scenario_events()
    names = env.topics({"predictions": 3, "outcomes": 3})
    want = input_ids(replay_alerts())
    cfg = env.config(names, "confluent", "g-" + names["alerts"])
    # B is the same member but for its HTTP side, which tells when it has read everything
    port = free_port()
    cfg_b = env.config(names, "confluent", "g-" + names["alerts"], extra=f'[http]\nlisten = "127.0.0.1:{port}"\n', tag="-b")
    produce_keyed(env, names, preds, outs, 0.0, 0.6)
    a = env.start(cfg, os.path.join(env.tmp, "a.log"))
    time.sleep(2)
    b = env.start(cfg_b, os.path.join(env.tmp, "b.log"))
    time.sleep(3)
    a.send_signal(signal.SIGTERM)
    assert a.wait(60) == 0
    produce_keyed(env, names, preds, outs, 0.6, 1.0)
    try:
        # until B's windows (rebuilt at the takeover) hold every event
        deadline, status = time.time() + 120, {}
        while time.time() < deadline:
            code, body = http_get(f"http://127.0.0.1:{port}/api/status")
            status = json.loads(body) if code == 200 else {}
            if status.get("predictions", 0) + status.get("outcomes", 0) + status.get("late", 0) >= len(preds) + len(outs):
                break
            time.sleep(0.5)
        got = env.read_all(names["alerts"], settle=3.0, ids=want, timeout=90)
    finally:
        b.send_signal(signal.SIGTERM)
        assert b.wait(60) == 0
    log = open(os.path.join(env.tmp, "b.log")).read()
    assert "partitions assigned" in log and "partitions revoked" in log or log.count("partitions assigned") >= 2, "no rebalance seen"
    # no event skipped: after the takeover B read every event once more, and
    # none of them behind its watermark (a taken-over partition holds the
    # watermark until it has no backlog), so B publishes every input alert
    # of the uninterrupted run.
    messages, late = service_totals(os.path.join(env.tmp, "b.log"))
    assert messages is not None and messages >= len(preds) + len(outs), (messages, len(preds) + len(outs))
    assert late == 0, f"{late} events late in B after the takeover"
    missing = want - input_ids(got)
    assert not missing, f"{len(missing)} of {len(want)} input alerts of the uninterrupted run never published"
    assert "data_drift" in {a["kind"] for a in got}


def checkpoint_counts(cfg):
    """Per-series counts of the group's checkpoints (`driftline checkpoints`),
    summed over its files: {(model, feature, slice or None): applied}."""
    out = subprocess.run([BIN, "checkpoints", "--config", cfg], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    counts = {}
    for line in out.stdout.splitlines():
        for s in json.loads(line)["series"]:
            key = (s["model"], s["feature"], tuple(s["slice"]) if s["slice"] else None)
            counts[key] = counts.get(key, 0) + s["applied"]
    return counts


def recount(preds):
    """The overall series' counts, recounted from the input."""
    counts = {}
    for e in preds:
        for f in e["features"]:
            key = (e["model_id"], f, None)
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_crashes_with_checkpoints_count_once_and_alert_the_same(env):
    """SIGKILLed at random moments (and once by the fault hook right after a
    checkpoint is written, before its offsets are committed), restarted each
    time from its checkpoint: after the last run drains the topics every
    series' count equals the uninterrupted run's and a recount of the input,
    and the distinct alert ids are the uninterrupted run's."""
    import random
    rnd = random.Random(7)
    preds, outs = scenario_events()
    names = env.topics({"predictions": 3, "outcomes": 3})
    produce_keyed(env, names, preds, outs, 0.0, 1.0)

    def cfg_for(tag, names):
        return env.config(names, "confluent", f"g-{tag}-" + names["alerts"], start_from="checkpoint", extra=f"""
[checkpoint]
dir = "{os.path.join(env.tmp, 'ckpt-' + tag)}"
interval = "300ms"
[kafka.librdkafka]
"group.instance.id" = "{tag}-member"
""")

    def drain(cfg, log):
        proc = subprocess.Popen([BIN, "run", "--config", cfg, "--log-format", "json", "--until-end"],
                                stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        assert proc.wait(180) == 0, open(log).read()[-2000:]

    # the uninterrupted run
    cfg_u = cfg_for("whole", names)
    drain(cfg_u, os.path.join(env.tmp, "whole.log"))
    want = env.read_all(names["alerts"], settle=2.0)
    want_ids = {a["alert_id"] for a in want}
    assert len(want_ids) >= 10 and {"data_drift", "performance"} <= {a["kind"] for a in want}
    counts_u = checkpoint_counts(cfg_u)

    # the crashing run, on alert topics of its own
    crash = dict(names)
    crash.update({k: v for k, v in env.topics({}).items() if k in ("alerts", "dlq")})
    cfg_c = cfg_for("crash", crash)
    kills = 0
    for i in range(6):
        log = os.path.join(env.tmp, f"crash{i}.log")
        extra_env = dict(os.environ)
        if i == 1:
            extra_env["DRIFTLINE_FAULT_ABORT_AFTER_CHECKPOINT"] = "3"
        proc = subprocess.Popen([BIN, "run", "--config", cfg_c, "--log-format", "json"],
                                stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=extra_env)
        # the random kill moments are drawn whatever happens, so every run
        # of the test kills at the same offsets of its wall clock; the
        # fault-hook run is waited for (it aborts by itself after its third
        # checkpoint: a machine under load may take longer than any fixed
        # moment to get there)
        moment = rnd.uniform(2.0, 5.0)
        try:
            proc.wait(120.0 if i == 1 else moment)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.wait()
        kills += proc.returncode != 0
    assert kills >= 5, f"only {kills} runs were killed"
    assert "fault injection" in open(os.path.join(env.tmp, "crash1.log")).read(), "the fault hook did not fire"
    restored = sum("checkpoint restored" in open(os.path.join(env.tmp, f"crash{i}.log")).read() for i in range(6))
    assert restored >= 3, f"only {restored} restarts restored a checkpoint"
    drain(cfg_c, os.path.join(env.tmp, "crash-final.log"))
    got = env.read_all(crash["alerts"], settle=2.0)
    got_ids = {a["alert_id"] for a in got}
    counts_c = checkpoint_counts(cfg_c)

    assert counts_c == counts_u, {k: (counts_c.get(k), counts_u.get(k)) for k in set(counts_c) | set(counts_u)
                                  if counts_c.get(k) != counts_u.get(k)}
    for k, n in recount(preds).items():
        assert counts_c.get(k) == n, (k, counts_c.get(k), n)
    assert got_ids == want_ids, f"missing {len(want_ids - got_ids)}, extra {len(got_ids - want_ids)}"
    # the size of a checkpoint at the end of the stream, and its write time (docs/operations.md)
    stopped = [json.loads(l) for l in open(os.path.join(env.tmp, "whole.log")) if "checkpoint_bytes" in l][-1]
    f = stopped.get("fields", stopped)
    print(f"    crash: {kills} kills, {restored} restores, {len(got)} alerts published for "
          f"{len(got_ids)} distinct ids (uninterrupted: {len(want)}); the uninterrupted run's last "
          f"checkpoint: {int(f['checkpoint_bytes']) / 1e6:.1f} MB, written in {float(f['checkpoint_ms']):.0f} ms", flush=True)


def test_a_rebuild_whose_seek_is_overridden_reads_from_the_start(env):
    """The race behind the members test's lost counts, forced: the group has
    committed offsets half-way into every partition, the service has no
    checkpoint (it rebuilds from offset 0), and the fault hook skips the
    seek on assignment — as when librdkafka's fetch of the committed offset
    lands after it. The first message then lies past the state's start: the
    service must seek to the start again and count every event."""
    preds, outs = scenario_events()
    names = env.topics({"predictions": 3, "outcomes": 3})
    produce_keyed(env, names, preds, outs, 0.0, 1.0)
    group = "g-reseek-" + names["alerts"]
    cfg = env.config(names, "confluent", group, start_from="checkpoint", extra=f"""
[checkpoint]
dir = "{os.path.join(env.tmp, 'ckpt-reseek')}"
interval = "1s"
""")
    # the group's committed offsets, half-way (a commit without membership)
    c = Consumer({"bootstrap.servers": env.bootstrap, "group.id": group, "enable.auto.commit": False})
    half = []
    for t in (names["predictions"], names["outcomes"]):
        for p in range(3):
            lo, hi = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
            assert hi - lo > 100, (t, p, lo, hi)
            half.append(TopicPartition(t, p, (lo + hi) // 2))
    c.commit(offsets=half, asynchronous=False)
    c.close()
    log = os.path.join(env.tmp, "reseek.log")
    extra_env = dict(os.environ, DRIFTLINE_FAULT_SKIP_REBUILD_SEEK="1")
    proc = subprocess.Popen([BIN, "run", "--config", cfg, "--log-format", "json", "--until-end"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=extra_env)
    assert proc.wait(300) == 0, open(log).read()[-2000:]
    text = open(log).read()
    assert "fault injection: the seek to the start of rebuilt partitions is skipped" in text
    reseeks = text.count("seeking to the start again")
    assert reseeks >= 6, f"{reseeks} re-seeks for 6 partitions started half-way"
    counts = checkpoint_counts(cfg)
    for k, n in recount(preds).items():
        assert counts.get(k) == n, (k, counts.get(k), n)
    print(f"    reseek: {reseeks} re-seeks, every series counted in full", flush=True)


REBALANCE_MODELS = [("fraud-a", "abrupt_amount"), ("fraud-b", "null_spike"), ("fraud-c", "concept_flip")]


def produce_models(env, names, bad=()):
    """REBALANCE_MODELS' events, each model on its own partition of both
    topics (keyed by model, co-partitioned), the `bad` values at the head
    and in the middle of each predictions partition; returns the overall
    series' recounts."""
    recounts = {}
    for part, (model, scenario) in enumerate(REBALANCE_MODELS):
        d = os.path.join(ROOT, "target", "scenarios", scenario)
        preds = [json.loads(l) for l in open(os.path.join(d, "predictions.jsonl"))]
        outs = [json.loads(l) for l in open(os.path.join(d, "outcomes.jsonl"))]
        for e in preds + outs:
            e["model_id"] = model
            e["trace_id"] = model + "-" + e["trace_id"]
        recounts.update(recount(preds))
        values = [encode("confluent", "prediction", e) for e in preds]
        mid = len(values) // 2
        values = list(bad) + values[:mid] + list(bad) + values[mid:]
        env.produce(names["predictions"], values, key=lambda i: model.encode(), partition=part)
        env.produce(names["outcomes"], [encode("confluent", "outcome", e) for e in outs],
                    key=lambda i: model.encode(), partition=part)
    return recounts


def test_members_joining_and_leaving_count_once_and_alert_the_same(env, state_per="member", store="dir"):
    """Three models, each on its own partition of both topics (keyed by
    model, co-partitioned). An uninterrupted single member, then a group
    whose members join, leave (SIGTERM) and crash (SIGKILL) while consuming:
    every checkpoint that reached the end of a model's partitions holds that
    model's exact recount and the uninterrupted run's counts, and the
    distinct alert ids are the uninterrupted run's."""
    names = env.topics({"predictions": 3, "outcomes": 3})
    logs = []
    recounts = produce_models(env, names)
    ends = {(t, p): env.end_offset(names[t], p) for t in ("predictions", "outcomes") for p in range(3)}

    def cfg_for(tag, names):
        # the kafka store's members share nothing on disk: a directory here
        # could not be created, so a checkpoint written there would fail
        where = (f'store = "kafka"\ntopic = "ckpt-{names["alerts"]}"\ndir = "/proc/driftline-no-dir"'
                 if store == "kafka" else f'dir = "{os.path.join(env.tmp, "ckpt-" + tag)}"')
        return env.config(names, "confluent", f"g-{tag}-" + names["alerts"], start_from="checkpoint", extra=f"""
state_per = "{state_per}"
[checkpoint]
{where}
interval = "500ms"
""", tag=state_per)

    def complete_counts(cfg):
        """{model: counts} from every checkpoint that covers a model's two
        partitions up to their ends; each model's must all agree."""
        out = subprocess.run([BIN, "checkpoints", "--config", cfg], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        per_model = {}
        for line in out.stdout.splitlines():
            c = json.loads(line)
            offs = {(o["topic"].split("-")[0], o["partition"]): o["next_offset"] for o in c["offsets"]}
            for part, (model, _) in enumerate(REBALANCE_MODELS):
                if all(offs.get((t, part)) == ends[(t, part)] for t in ("predictions", "outcomes")):
                    counts = {(s["model"], s["feature"], tuple(s["slice"]) if s["slice"] else None): s["applied"]
                              for s in c["series"] if s["model"] == model}
                    per_model.setdefault(model, []).append(counts)
        for model, all_counts in per_model.items():
            assert all(c == all_counts[0] for c in all_counts), f"complete checkpoints of {model} disagree"
        return {m: c[0] for m, c in per_model.items()}

    # the uninterrupted run: one member
    cfg_u = cfg_for("one", names)
    proc = subprocess.Popen([BIN, "run", "--config", cfg_u, "--log-format", "json", "--until-end"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(env.tmp, "one.log"), "w"))
    assert proc.wait(300) == 0
    want = env.read_all(names["alerts"], settle=2.0)
    want_ids = {a["alert_id"] for a in want}
    counts_u = complete_counts(cfg_u)
    assert set(counts_u) == {m for m, _ in REBALANCE_MODELS}
    assert {a["model_id"] for a in want} == {m for m, _ in REBALANCE_MODELS}, "every model must alert"

    # members joining, leaving and crashing
    group = dict(names)
    group.update({k: v for k, v in env.topics({}).items() if k in ("alerts", "dlq")})
    cfg_g = cfg_for("group", group)
    members = {}

    def start(name):
        logs.append(os.path.join(env.tmp, f"member-{state_per}-{name}-{len(members)}.log"))
        members[name] = subprocess.Popen([BIN, "run", "--config", cfg_g, "--log-format", "json"],
                                         stdout=subprocess.DEVNULL, stderr=open(logs[-1], "w"))

    try:
        start("a"); time.sleep(3)
        start("b"); time.sleep(3)
        start("c"); time.sleep(3)
        members["b"].send_signal(signal.SIGTERM); assert members["b"].wait(60) == 0; time.sleep(2)
        members["c"].kill(); members["c"].wait()
        start("d"); time.sleep(3)
        start("e")
        # until the group's checkpoints cover every partition to its end
        group_id = "g-group-" + group["alerts"]
        deadline = time.time() + 300
        while time.time() < deadline:
            done = all(committed(env, group_id, names[t])[p] == ends[(t, p)] for t in ("predictions", "outcomes") for p in range(3))
            if done:
                break
            time.sleep(1)
        assert done, f"the group never caught up: {[committed(env, group_id, names[t]) for t in ('predictions', 'outcomes')]} of {ends}"
        time.sleep(2)
    finally:
        # every member stopped, also when the test fails
        stop_all(members.values())
    got = env.read_all(group["alerts"], settle=2.0)
    got_ids = {a["alert_id"] for a in got}
    extra = [(a["model_id"], a["kind"], a["feature"], a["slice"], a["state"], a["severity"], a["window_end"])
             for a in got if a["alert_id"] not in want_ids]
    counts_g = complete_counts(cfg_g)
    assert set(counts_g) == set(counts_u)
    for model in counts_u:
        assert counts_g[model] == counts_u[model], model
        for k, n in recounts.items():
            if k[0] == model:
                assert counts_g[model].get(k) == n, (k, counts_g[model].get(k), n)
    assert got_ids == want_ids, f"missing {len(want_ids - got_ids)}, extra {extra}; uninterrupted: {sorted((a['model_id'], a['kind'], a['feature'], a['state'], a['window_end']) for a in want if a['feature'] == (extra[0][2] if extra else None))}"
    text = [open(l).read() for l in logs]
    fresh = sum(t.count("no checkpoint for these partitions") for t in text)
    restores = sum(t.count("checkpoint restored") for t in text)
    assert not any("more than one partition" in t for t in text), "a model reported split across tasks"
    assert not any("checkpoint failed" in t for t in text), "a checkpoint write failed"
    if state_per == "partition":
        # state follows single partitions: each partition number's task is
        # built from the start once (by the first member), and restored from
        # its checkpoint on every later move
        assert fresh == 3, f"{fresh} tasks read from the start"
        assert restores >= 3, f"only {restores} restores"
    print(f"    rebalance ({state_per}, {store}): {len(members)} member processes, {len(got_ids)} distinct alert ids as the single "
          f"member; {fresh} tasks read from the start, {restores} restored", flush=True)


def test_state_per_partition_follows_partitions_between_members(env):
    """The rebalance test with one task per partition number and the
    checkpoints in a compacted topic (members share no disk)."""
    test_members_joining_and_leaving_count_once_and_alert_the_same(env, state_per="partition", store="kafka")


def test_tasks_on_their_own_workers_alert_as_one_by_one(env):
    """state_per = "partition" with two workers: a batch's tasks (one per
    partition number) apply on threads of their own. Three models on three
    co-partitioned partitions, with poison messages at each partition's
    head and middle: the alerts (per model, in order), the dead letters
    (their source partitions and offsets) and every series' exact count are
    the one-worker run's, and the counts equal the recount."""
    names = env.topics({"predictions": 3, "outcomes": 3})
    bad = poison("confluent")
    recounts = produce_models(env, names, [b for b, _ in bad])
    runs = {}
    for workers in (1, 2):
        own = dict(names)
        own.update({k: v for k, v in env.topics({}).items() if k in ("alerts", "dlq", "incidents")})
        ckpt = os.path.join(env.tmp, f"ckpt-w{workers}-" + names["alerts"])
        cfg = env.config(own, "confluent", f"g-w{workers}-" + own["alerts"], start_from="checkpoint", tag=f"w{workers}", extra=f"""
state_per = "partition"
[checkpoint]
dir = "{ckpt}"
interval = "1h"
""")
        log = os.path.join(env.tmp, f"tasks-w{workers}.log")
        rc = subprocess.call([BIN, "run", "--config", cfg, "--log-format", "json", "--until-end", "--workers", str(workers)],
                             stdout=subprocess.DEVNULL, stderr=open(log, "w"), timeout=300)
        assert rc == 0, f"exit code {rc}; log {log}"
        fields = service_fields(log)
        alerts = env.read_all(own["alerts"], settle=2.0)
        dlq = env.read_all(own["dlq"], raw=True, want=2 * len(bad) * 3, settle=1.0)
        letters = sorted((h["dlq.source.partition"], int(h["dlq.source.offset"]), h["dlq.error.class"])
                         for h in ({k: v.decode() for k, v in (m.headers() or [])} for m in dlq))
        runs[workers] = (fields, alerts, letters, checkpoint_counts(cfg))
    (f1, a1, l1, c1), (f2, a2, l2, c2) = runs[1], runs[2]
    assert f1["applied_on_task_workers"] == 0, f1
    assert f2["applied_on_task_workers"] > 0, f2
    assert f1["tasks"] == f2["tasks"] == 3, (f1["tasks"], f2["tasks"])
    assert {a["model_id"] for a in a1} == {m for m, _ in REBALANCE_MODELS}, "every model must alert"
    # one task's alerts keep their order; the tasks' interleave with the batches
    for model, _ in REBALANCE_MODELS:
        same_alerts([a for a in a2 if a["model_id"] == model], [a for a in a1 if a["model_id"] == model])
    assert len(l1) == 2 * len(bad) * 3, l1
    assert l2 == l1, (l2, l1)
    assert c2 == c1, "series counts differ between one worker and two"
    for k, n in recounts.items():
        assert c2.get(k) == n, (k, c2.get(k), n)
    return (f"{len(a1)} alerts, {len(l1)} dead letters, {len(c1)} series the same; "
            f"{f2['applied_on_task_workers']} of {f2['messages']} messages applied on task workers")


def test_routed_two_stages_alert_as_one_member(env):
    """Two models' events keyed by trace id over three partitions (the
    layout state_per = "partition" cannot read directly), and a poison
    message. Two routers (`driftline route`, one SIGKILLed mid-stream and
    restarted) re-key them by model into routed topics, exactly once (the
    models land on routed partitions 0 and 1); two `run` members with
    kafka.routed and state_per = "partition" (one SIGTERMed mid-stream, a
    third joining) evaluate them. Every series' count equals the recount,
    no event is late, the poison is dead-lettered by the router, and the
    distinct alert ids equal a single member's on the original topics."""
    preds, outs = [], []
    # crc32(model) % 3 (librdkafka's consistent partitioner): fraud-a → 0, fraud-b → 1
    for model, scenario in (("fraud-a", "abrupt_amount"), ("fraud-b", "null_spike")):
        d = os.path.join(ROOT, "target", "scenarios", scenario)
        for name, out in (("predictions.jsonl", preds), ("outcomes.jsonl", outs)):
            for l in open(os.path.join(d, name)):
                e = json.loads(l)
                e["model_id"] = model
                e["trace_id"] = model + "-" + e["trace_id"]
                out.append(e)
    preds.sort(key=lambda e: e["event_time"])
    outs.sort(key=lambda e: e["event_time"])
    names = env.topics({"predictions": 3, "outcomes": 3})
    env.produce(names["predictions"], [b"\x01 not a confluent frame"], partition=0)
    produce_keyed(env, names, preds, outs, 0.0, 1.0)
    routed = {k: v for k, v in env.topics({"predictions": 3, "outcomes": 3}).items() if k in ("predictions", "outcomes")}
    ends = {(t, p): env.end_offset(names[t], p) for t in ("predictions", "outcomes") for p in range(3)}

    # the single member on the original topics
    cfg_one = env.config(names, "confluent", "g-one-" + names["alerts"], start_from="checkpoint", extra=f"""
[checkpoint]
dir = "{os.path.join(env.tmp, 'ckpt-routed-one')}"
""", tag="routed-one")
    proc = subprocess.Popen([BIN, "run", "--config", cfg_one, "--log-format", "json", "--until-end"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(env.tmp, "routed-one.log"), "w"))
    assert proc.wait(300) == 0
    want = env.read_all(names["alerts"], settle=2.0)
    want_ids = {a["alert_id"] for a in want}
    assert len(want_ids) >= 10 and {a["model_id"] for a in want} == {"fraud-a", "fraud-b"}

    out = dict(names)
    out.update({k: v for k, v in env.topics({}).items() if k in ("alerts", "dlq")})
    group = "g-two-" + out["alerts"]
    cfg = env.config(out, "confluent", group, start_from="checkpoint", extra=f"""
state_per = "partition"
routed = true
[checkpoint]
store = "kafka"
topic = "ckpt-{out['alerts']}"
interval = "1s"
[route]
predictions_topic = "{routed['predictions']}"
outcomes_topic = "{routed['outcomes']}"
commit_interval = "100ms"
""", tag="routed")
    logs, procs = [], []

    def start(cmd, name, extra_env=None):
        logs.append(os.path.join(env.tmp, f"routed-{name}-{len(logs)}.log"))
        procs.append(subprocess.Popen([BIN, cmd, "--config", cfg, "--log-format", "json"], stdout=subprocess.DEVNULL,
                                      stderr=open(logs[-1], "w"), env=dict(os.environ, **(extra_env or {}))))
        return procs[-1]

    try:
        r1 = start("route", "r1", {"DRIFTLINE__ROUTE__TRANSACTIONAL_ID": "router-1"})
        r2 = start("route", "r2", {"DRIFTLINE__ROUTE__TRANSACTIONAL_ID": "router-2"})
        m1 = start("run", "m1")
        m2 = start("run", "m2")
        time.sleep(4)
        r1.kill(); r1.wait()
        start("route", "r1again", {"DRIFTLINE__ROUTE__TRANSACTIONAL_ID": "router-1"})
        time.sleep(3)
        m2.send_signal(signal.SIGTERM); assert m2.wait(60) == 0
        start("run", "m3")
        deadline = time.time() + 300
        while time.time() < deadline:
            if all(committed(env, group + "-route", names[t])[p] == ends[(t, p)] for t in ("predictions", "outcomes") for p in range(3)):
                break
            time.sleep(1)
        else:
            raise AssertionError("the routers never caught up")
        rends = {(t, p): env.end_offset(routed[t], p) for t in ("predictions", "outcomes") for p in range(3)}
        while time.time() < deadline:
            # (a routed partition no model hashes to stays empty: nothing to commit)
            if all(rends[(t, p)] == 0 or committed(env, group, routed[t])[p] >= rends[(t, p)]
                   for t in ("predictions", "outcomes") for p in range(3)):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the members never caught up: {[committed(env, group, routed[t]) for t in ('predictions', 'outcomes')]} of {rends}")
        time.sleep(2)
    finally:
        stop_all(procs)
    got = env.read_all(out["alerts"], settle=2.0)
    got_ids = {a["alert_id"] for a in got}
    text = [open(l).read() for l in logs]
    late = sum(t.count("late event") for t in text)
    aborted = sum(t.count("transaction not committed") for t in text)
    counts = checkpoint_counts(cfg)
    for k, n in recount(preds).items():
        assert counts.get(k) == n, (k, counts.get(k), n)
    assert late == 0, f"{late} late events in the members"
    assert got_ids == want_ids, f"missing {len(want_ids - got_ids)}, extra {len(got_ids - want_ids)}"
    dlq = env.read_all(out["dlq"], raw=True, want=1, settle=1.0)
    hd = dict(dlq[0].headers()) if dlq else {}
    assert len(dlq) == 1 and hd["dlq.source.partition"] == b"0" and hd["dlq.error.class"] == b"bad_magic_byte", hd
    # (partition 2 holds only the routers' idle markers)
    rends_used = [p for (t, p), n in rends.items() if n > 1000 and t == "predictions"]
    assert sorted(rends_used) == [0, 1], rends
    print(f"    routed: 3 routers (one killed), 3 members (one stopped); counts = recount, {len(got_ids)} alert ids "
          f"as one member, {aborted} transactions aborted", flush=True)


# README, "Memory bounds": a consumer far behind holds at most librdkafka's
# prefetch (queued.max.messages.kbytes = 64 MiB) besides its state
LAG_BOUND_MIB = 64 + 64


def test_a_million_messages_behind_stays_bounded(env):
    """1M messages already in the topic when the service starts (3
    partitions, predictions only): peak RSS stays under the documented bound."""
    names = env.topics({"predictions": 3})
    n = 1_000_000
    values = []
    for i in range(n):
        values.append(confluent(SCHEMAS["prediction"], {
            "trace_id": f"t{i}", "model_id": "m", "model_version": None, "event_time": 1_767_225_600_000 + i * 80,
            "features": {"amount": float(i % 997), "age": float(i % 83), "device": ("ios", "android", "web")[i % 3]},
            "slices": {"region": ("EU", "US", "APAC")[i % 3]}, "prediction": float(i % 2), "score": 0.5}))
    env.produce(names["predictions"], values, key=lambda i: str(i).encode())
    del values
    cfg = env.config(dict(names, outcomes=""), "confluent", "g-" + names["alerts"])
    out = subprocess.run(["/usr/bin/time", "-f", "peak_rss_kb=%M", BIN, "run", "--config", cfg,
                          "--log-format", "json", "--until-end"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rss = int(re.search(r"peak_rss_kb=(\d+)", out.stderr).group(1)) / 1024
    stopped = [json.loads(l)["fields"] for l in out.stderr.splitlines() if "driftline service stopped" in l][0]
    assert stopped["messages"] == n, stopped
    print(f"    1M messages behind: peak RSS {rss:.1f} MiB (bound {LAG_BOUND_MIB}), "
          f"{stopped['messages_per_s']:.0f} messages/s", flush=True)
    assert rss < LAG_BOUND_MIB, f"peak RSS {rss:.1f} MiB over {LAG_BOUND_MIB}"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    import urllib.request, urllib.error
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def test_metrics_are_prometheus_and_the_dashboard_shows_the_drift(env):
    """The service's /metrics, scraped and parsed by the Python
    prometheus_client OpenMetrics parser, and its dashboard loaded by Debian's
    Chromium (headless): the drifted feature is critical, a chart has points;
    a screenshot is saved under target/test-output/."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    chromium = os.environ.get("CHROMIUM") or subprocess.run(
        ["bash", os.path.join(ROOT, "tests", "browser", "chromium.sh")], capture_output=True, text=True, check=True).stdout.strip()
    preds, outs = scenario_events()
    names = env.topics({"predictions": 3, "outcomes": 3})
    produce_keyed(env, names, preds, outs, 0.0, 1.0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    group = "g-" + names["alerts"]
    cfg = env.config(names, "confluent", group, start_from="checkpoint", extra=f"""
[checkpoint]
dir = "{os.path.join(env.tmp, 'ckpt-http')}"
interval = "1s"
[http]
listen = "127.0.0.1:{port}"
""")
    proc = env.start(cfg, os.path.join(env.tmp, "http.log"))
    try:
        deadline = time.time() + 30
        while time.time() < deadline and http_get(base + "/readyz")[0] != 200:
            time.sleep(0.5)
        assert http_get(base + "/healthz") == (200, "ok\n")
        assert http_get(base + "/readyz")[0] == 200
        # until the stream is read and amount's overall series is critical
        deadline, amount = time.time() + 120, None
        while time.time() < deadline:
            code, body = http_get(base + "/api/series")
            series = json.loads(body) if code == 200 else []
            amount = next((x for x in series if x["feature"] == "amount" and x["slice"] == ""), None)
            status = json.loads(http_get(base + "/api/status")[1] or "{}")
            if amount and amount["status"] == "critical" and status.get("predictions", 0) >= len(preds):
                break
            time.sleep(1)
        assert amount and amount["status"] == "critical", amount
        time.sleep(1.5)

        code, text = http_get(base + "/metrics")
        assert code == 200
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        consumed = fams["messaging_client_consumed_messages"]
        assert consumed.type == "counter"
        by_topic = {s.labels["messaging_destination_name"]: s.value for s in consumed.samples if s.name.endswith("_total")}
        assert by_topic[names["predictions"]] >= len(preds) and by_topic[names["outcomes"]] >= len(outs), by_topic
        assert all(s.labels["messaging_system"] == "kafka" and s.labels["messaging_consumer_group_name"] == group
                   for s in consumed.samples)
        assert fams["driftline_consumer_lag_messages"].unit == "messages"
        lag = fams["driftline_consumer_lag_messages"].samples
        assert {s.labels["messaging_destination_partition_id"] for s in lag} == {"0", "1", "2"}
        assert fams["driftline_checkpoint_duration_seconds"].unit == "seconds"
        assert fams["driftline_checkpoint_size_bytes"].samples[0].value > 0
        stat = [s for s in fams["driftline_drift_statistic"].samples if s.labels["feature"] == "amount" and s.labels["slice"] == ""]
        assert stat and stat[0].value > 0, stat
        sev = [s for s in fams["driftline_series_severity"].samples if s.labels["feature"] == "amount" and s.labels["slice"] == ""]
        assert sev[0].value == 2
        alerts = {(s.labels["kind"], s.labels["severity"], s.labels["state"]): s.value for s in fams["driftline_alerts"].samples
                  if s.name.endswith("_total")}
        assert alerts.get(("data_drift", "critical", "escalated"), 0) >= 1, alerts
        assert all("trace" not in k for f in fams.values() for s in f.samples for k in s.labels)
        # latency distributions (HDR histograms): every published alert is in
        # alert_latency, quantiles ordered; batches were timed
        status = json.loads(http_get(base + "/api/status")[1])
        lat = status["latency"]
        assert lat["alert_latency"]["count"] == status["alerts_published"] > 0, (lat, status["alerts_published"])
        assert lat["batch_processing"]["count"] > 0, lat
        for name in ("driftline_alert_latency_seconds", "driftline_batch_processing_seconds"):
            q = {s.labels["quantile"]: s.value for s in fams[name].samples}
            assert set(q) == {"0.5", "0.9", "0.99", "1"} and q["0.5"] <= q["0.99"] <= q["1"], (name, q)
        # the stream's events are from 2026-01: its alerts reach the topic months after their windows end
        assert {s.labels["quantile"]: s.value for s in fams["driftline_alert_latency_seconds"].samples}["0.5"] > 86400
        code, cfg_text = http_get(base + "/api/config")
        assert code == 200 and "[kafka]" in cfg_text
        code, inc_text = http_get(base + "/api/incidents")
        open_inc = json.loads(inc_text)
        assert code == 200 and any(i["root"]["feature"] == "amount" for i in open_inc), inc_text[:500]

        out_dir = os.path.join(ROOT, "target", "test-output")
        os.makedirs(out_dir, exist_ok=True)
        shot = os.path.join(out_dir, "dashboard.png")
        flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--virtual-time-budget=10000", "--window-size=1280,1600"]
        dom = subprocess.run(flags + ["--dump-dom", base + "/"], capture_output=True, text=True, timeout=120).stdout
        cell = re.search(r'<td class="cell (\w+)[^"]*" data-id="\d+" data-feature="amount" data-slice="" ', dom)
        assert cell and cell.group(1) == "critical", dom[:3000]
        points = re.search(r'<svg id="chart"[^>]*data-points="(\d+)"', dom)
        assert points and int(points.group(1)) > 10, re.findall(r'<svg id="chart"[^>]*>', dom)
        assert 'class="alert critical"' in dom
        # the open incidents come first: the one rooted in amount, with its owner and runbook
        assert re.search(r'class="alert incident critical" data-incident="inc-[0-9a-f]{16}"', dom), dom[:3000]
        assert dom.index('id="incidents"') < dom.index('id="models"') and "runbook" in dom
        if os.path.exists(shot):
            os.remove(shot)
        subprocess.run(flags + [f"--screenshot={shot}", base + "/"], capture_output=True, timeout=120)
        assert os.path.getsize(shot) > 20_000, "no screenshot"
        print(f"    dashboard: amount critical, chart with {points.group(1)} points; screenshot {shot}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) receiver built from the opentelemetry-proto
    messages: keeps every metric and span the service exports."""

    def __init__(self):
        import http.server, threading
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
        self.metrics, self.spans = [], []
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                assert self.headers.get("Content-Type") == "application/x-protobuf", self.headers.get("Content-Type")
                if self.path == "/v1/metrics":
                    req = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                    for rm in req.resource_metrics:
                        for sm in rm.scope_metrics:
                            recv.metrics.extend((rm.resource, sm.scope, m) for m in sm.metrics)
                    reply = metrics_service_pb2.ExportMetricsServiceResponse()
                elif self.path == "/v1/traces":
                    req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                    for rs in req.resource_spans:
                        for ss in rs.scope_spans:
                            recv.spans.extend(ss.spans)
                    reply = trace_service_pb2.ExportTraceServiceResponse()
                else:
                    self.send_response(404); self.end_headers(); return
                out = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def attrs(kvs):
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = v.string_value if v.HasField("string_value") else v.int_value if v.HasField("int_value") else v.double_value
    return out


def test_otlp_metrics_and_traces_reach_a_real_receiver(env):
    """[otel] export to an OTLP/HTTP receiver built from opentelemetry-proto:
    metric names, units and attributes (messaging semconv), and spans named
    process/evaluate/send, the process span linked to the producer's trace
    (W3C traceparent header)."""
    recv = OtlpReceiver()
    preds, outs = scenario_events()
    names = env.topics({"predictions": 3, "outcomes": 3})
    # every prediction carries its producer's trace context (its trace id is a W3C one)
    produce_keyed(env, names, preds, outs, 0.0, 1.0, traceparent=True)
    trace_ids = {e["trace_id"] for e in preds}
    group = "g-" + names["alerts"]
    cfg = env.config(names, "confluent", group, extra=f"""
[otel]
endpoint = "http://127.0.0.1:{recv.port}"
interval = "1s"
service_name = "driftline-test"
""")
    proc = env.start(cfg, os.path.join(env.tmp, "otel.log"))
    try:
        env.read_all(names["alerts"], want=20, settle=3.0, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        recv.stop()
    by_name = {}
    for res, scope, m in recv.metrics:
        by_name.setdefault(m.name, []).append((res, scope, m))
    assert attrs(recv.metrics[0][0].attributes)["service.name"] == "driftline-test"
    assert recv.metrics[0][1].name == "driftline"
    consumed = by_name["messaging.client.consumed.messages"][-1][2]
    assert consumed.unit == "{message}" and consumed.sum.is_monotonic
    pts = {attrs(d.attributes)["messaging.destination.name"]: (attrs(d.attributes), d.as_int) for d in consumed.sum.data_points}
    a, n = pts[names["predictions"]]
    assert a["messaging.system"] == "kafka" and a["messaging.consumer.group.name"] == group and n >= len(preds), (a, n)
    proc_dur = by_name["messaging.process.duration"][-1][2]
    assert proc_dur.unit == "s" and proc_dur.HasField("histogram") and proc_dur.histogram.data_points[0].count > 0
    lag = by_name["driftline.consumer.lag"][-1][2]
    assert {attrs(d.attributes)["messaging.destination.partition.id"] for d in lag.gauge.data_points} == {"0", "1", "2"}
    stat = by_name["driftline.drift.statistic"][-1][2]
    amount = [d for d in stat.gauge.data_points if attrs(d.attributes)["feature"] == "amount" and attrs(d.attributes)["slice"] == ""]
    assert amount and amount[0].as_double > 0
    alerts = by_name["driftline.alerts"][-1][2]
    assert any(attrs(d.attributes)["kind"] == "data_drift" for d in alerts.sum.data_points)
    for name in ("messaging.client.sent.messages", "driftline.events", "driftline.join.coverage", "driftline.events.bad"):
        assert name in by_name, name
    assert all("trace" not in k for _, _, m in recv.metrics for kind in ("sum", "gauge")
               if m.HasField(kind) for d in getattr(m, kind).data_points for k in attrs(d.attributes))

    span_names = {sp.name for sp in recv.spans}
    assert "poll" in span_names and f"process {names['predictions']}" in span_names and "evaluate" in span_names \
        and f"send {names['alerts']}" in span_names, span_names
    linked = [sp for sp in recv.spans if sp.links]
    assert linked and all(sp.name == f"process {names['predictions']}" for sp in linked), "no span linked to a producer's trace"
    assert all(l.trace_id.hex() in trace_ids and len(sp.links) <= 8 for sp in linked for l in sp.links)
    send = [sp for sp in recv.spans if sp.name == f"send {names['alerts']}"]
    assert attrs(send[0].attributes)["driftline.alert_id"]
    print(f"    otlp: {len(by_name)} metrics, {len(recv.spans)} spans ({len(linked)} linked to the producer)", flush=True)


def test_schema_registry_resolves_writer_schemas(env):
    """The registry client against a stand-in speaking the Schema Registry's
    `GET /schemas/ids/{id}` (no registry server installs from the registries
    here). The writer schema of id 5 differs from ours (fields reordered, an
    extra field): decoding goes by name. Id 6 is unknown: dead-lettered."""
    import http.server, threading
    writer = json.load(open(os.path.join(ROOT, "schemas", "prediction.avsc")))
    writer["fields"] = list(reversed(writer["fields"])) + [{"name": "extra", "type": "string", "default": ""}]
    bodies = {"/schemas/ids/5": json.dumps({"schema": json.dumps(writer)}),
              "/schemas/ids/7": json.dumps({"schema": open(os.path.join(ROOT, "schemas", "outcome.avsc")).read()})}
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            body = bodies.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write((body or '{"error_code":40403,"message":"Schema not found"}').encode())

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        preds, outs = scenario_events()
        names = env.topics({})
        ws = fastavro.parse_schema(writer)
        def pv(e):
            r = dict(e, extra="x", model_version=e.get("model_version"), score=e.get("score"), prediction=float(e["prediction"]),
                     features={k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in e["features"].items()})
            return b"\x00" + struct.pack(">I", 5) + avro_bytes(ws, r)
        bad = b"\x00" + struct.pack(">I", 6) + avro_bytes(ws, dict(preds[0], extra="x", prediction=0.0, score=None, features={}))
        env.produce(names["predictions"], [bad] + [pv(e) for e in preds])
        env.produce(names["outcomes"], [b"\x00" + struct.pack(">I", 7) + avro_bytes(SCHEMAS["outcome"], dict(o, label=float(o["label"]))) for o in outs])
        cfg_path = os.path.join(env.tmp, "registry.toml")
        text = open(env.config(names, "confluent", "g-" + names["alerts"])).read()
        text = text.replace("local_schema_ids = [1]\n", f'schema_registry_url = "http://127.0.0.1:{srv.server_port}"\n')
        open(cfg_path, "w").write(text)
        proc = env.start(cfg_path, os.path.join(env.tmp, "registry.log"))
        want = replay_alerts()
        try:
            got = env.read_all(names["alerts"], want=len(want))
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        same_alerts(got, want)
        dlq = env.read_all(names["dlq"], raw=True, want=1, settle=1.0)
        assert [{k: v.decode() for k, v in m.headers()}["dlq.error.class"] for m in dlq] == ["unknown_schema"]
        assert sorted(set(seen)) == ["/schemas/ids/5", "/schemas/ids/6", "/schemas/ids/7"], seen
        assert seen.count("/schemas/ids/5") == 1, "schemas are cached per id"
    finally:
        srv.shutdown()


TESTS = [test_schema_registry_resolves_writer_schemas, test_a_rebuild_whose_seek_is_overridden_reads_from_the_start, test_confluent_alerts_equal_replay_and_poison_goes_to_dlq, test_plain_avro, test_json_with_garbage,
         test_sigkill_mid_stream_and_restart_publishes_every_alert, test_absurd_timestamps_are_refused_per_partition,
         test_an_oversized_dead_letter_never_wedges_the_service, test_a_large_poison_at_a_partition_head_holds_flow_control,
         test_a_missing_input_topic_is_named_and_not_ready, test_incident_subscriber_dedupes_and_routes_by_owner,
         test_incident_feedback_on_the_control_topic_is_counted_and_survives_a_restart,
         test_release_decisions_are_published_as_replay_makes_them, test_second_instance_takes_over,
         test_crashes_with_checkpoints_count_once_and_alert_the_same,
         test_members_joining_and_leaving_count_once_and_alert_the_same,
         test_state_per_partition_follows_partitions_between_members,
         test_tasks_on_their_own_workers_alert_as_one_by_one,
         test_routed_two_stages_alert_as_one_member,
         test_a_million_messages_behind_stays_bounded,
         test_metrics_are_prometheus_and_the_dashboard_shows_the_drift,
         test_otlp_metrics_and_traces_reach_a_real_receiver]


def run_suite(label, tests, env, only=None):
    """Runs `tests` (each given `env`), one line each ("<label> test NAME ...
    ok (Ns)", with what a test returns as a string), then "<label>: N
    passed, N failed"; kills what a failed test left running; exits 1 on a
    failure. Shared by the suites that drive the broker."""
    passed = failed = 0
    for t in tests:
        if only and only not in t.__name__:
            continue
        t0 = time.time()
        try:
            said = t(env)
            passed += 1
            extra = f" [{said}]" if isinstance(said, str) else ""
            print(f"{label} test {t.__name__} ... ok ({time.time() - t0:.1f}s){extra}", flush=True)
        except Exception:
            failed += 1
            kill_leftovers()
            print(f"{label} test {t.__name__} ... FAILED ({time.time() - t0:.1f}s)\n{traceback.format_exc()}", flush=True)
    left = sum(p.poll() is None for p in _PROCS)
    kill_leftovers()
    if failed:
        env.keep = True
        print(f"{label}: the failed tests' files and logs are kept in {env.tmp}")
    print(f"{label}: {passed} passed, {failed} failed" + (f" ({left} processes left running were killed)" if left else ""))
    sys.exit(1 if failed or left else 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:39092")
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    run_suite("kafka", TESTS, Env(a.bootstrap), a.only)


if __name__ == "__main__":
    main()
