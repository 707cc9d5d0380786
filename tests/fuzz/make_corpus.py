#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (tests/fuzz/corpus/<target>/): valid
messages of every kind, and the shapes of known apache-avro reproducers —
a huge block count, an oversized string or fixed, a recursive schema with a
deep datum, deeply nested JSON. Needs fastavro. Run once; the files are kept
in git."""
import io, json, os, struct
import fastavro

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCHEMAS = {n: json.load(open(os.path.join(ROOT, "schemas", n + ".avsc"))) for n in ("prediction", "outcome")}
PARSED = {n: fastavro.parse_schema(s) for n, s in SCHEMAS.items()}

PRED = {"trace_id": "t1", "model_id": "m", "model_version": "v1", "event_time": 1767225600000,
        "features": {"amount": 12.5, "device": "ios", "n": None, "flag": True},
        "slices": {"region": "EU"}, "prediction": 1.0, "score": 0.7}
OUT = {"trace_id": "t1", "model_id": "m", "event_time": 1767225900000, "label": 1.0}


def avro(kind, rec):
    b = io.BytesIO()
    fastavro.schemaless_writer(b, PARSED[kind], rec)
    return b.getvalue()


def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def avro_str(s):
    return zigzag(len(s)) + s


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)


frame = lambda payload, sid=1: b"\x00" + struct.pack(">I", sid) + payload
pred, out = avro("prediction", PRED), avro("outcome", OUT)
write("confluent_avro", "prediction-confluent", b"\x00" + frame(pred))
write("confluent_avro", "outcome-confluent", b"\x01" + frame(out))
write("confluent_avro", "prediction-avro", b"\x02" + pred)
write("confluent_avro", "outcome-avro", b"\x03" + out)
write("confluent_avro", "bad-magic", b"\x00\x01" + frame(pred)[1:])
write("confluent_avro", "truncated", b"\x00" + frame(pred)[:-5])
# the features map with a block count of 2^60 entries
head = avro_str(b"t1") + avro_str(b"m") + b"\x00" + zigzag(1767225600000)
write("confluent_avro", "huge-map-count", b"\x02" + head + zigzag(1 << 60) + avro_str(b"x") + b"\x00")
# a negative block count (count, then the block's byte size) that is huge
write("confluent_avro", "huge-negative-block", b"\x02" + head + zigzag(-(1 << 60)) + zigzag(1 << 62))
# a trace id 2^40 bytes long
write("confluent_avro", "huge-string", b"\x02" + zigzag(1 << 40) + b"abc")

write("json", "prediction", b"\x00" + json.dumps(PRED).encode())
write("json", "outcome", b"\x01" + json.dumps(OUT).encode())
write("json", "rfc3339", b"\x00" + json.dumps(dict(PRED, event_time="2026-01-01T00:00:00Z")).encode())
write("json", "deep-nesting", b"\x00" + b'{"trace_id":"t","model_id":"m","event_time":1,"features":{"a":' + b"[" * 20000 + b"]" * 20000 + b"}}")
write("json", "huge-number", b"\x00" + json.dumps(dict(PRED, features={"a": 1.5})).encode().replace(b"1.5", b"1e999"))
write("json", "nan-score", b"\x00" + json.dumps(PRED).encode().replace(b"0.7", b"NaN"))


def schema_input(schema, datum):
    text = json.dumps(schema).encode()
    return struct.pack(">H", len(text)) + text + datum


write("writer_schema", "prediction", schema_input(SCHEMAS["prediction"], pred))
recursive = {"type": "record", "name": "node", "fields": [{"name": "next", "type": ["null", "node"]}]}
write("writer_schema", "recursive-deep", schema_input(recursive, b"\x02" * 100000 + b"\x00"))
write("writer_schema", "fixed-huge", schema_input({"type": "fixed", "name": "f", "size": 2147483647}, b"abc"))
write("writer_schema", "array-huge-count", schema_input({"type": "array", "items": "long"}, zigzag(1 << 60) + b"\x02"))
nested = {"type": "array", "items": "long"}
for _ in range(200):
    nested = {"type": "array", "items": nested}
write("writer_schema", "nested-200", schema_input(nested, b"\x00"))


def container(kind, recs, codec):
    b = io.BytesIO()
    fastavro.writer(b, PARSED[kind], recs, codec=codec, sync_interval=200)
    return b.getvalue()


# Avro container files (byte 0 picks the stream), as replay reads them
preds = [dict(PRED, trace_id=f"t{i}", event_time=1767225600000 + 1000 * i) for i in range(8)]
write("container", "predictions-null", b"\x00" + container("prediction", preds, "null"))
write("container", "predictions-deflate", b"\x00" + container("prediction", preds, "deflate"))
write("container", "outcomes-deflate", b"\x01" + container("outcome", [OUT, OUT], "deflate"))
write("container", "truncated", b"\x00" + container("prediction", preds, "deflate")[:-30])
good = container("prediction", preds[:1], "null")
sync = good[-16:]
header = good[: good.index(sync) + 16]
# a block that claims 2^60 records, and one of 2^62 bytes
write("container", "huge-count", b"\x00" + header + zigzag(1 << 60) + zigzag(4) + b"abcd" + sync)
write("container", "huge-block", b"\x00" + header + zigzag(1) + zigzag(1 << 62) + b"abcd")
# a deflate block that inflates to 32 MiB of zeros
import zlib
bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
raw = bomb.compress(b"\x00" * (32 << 20)) + bomb.flush()
dgood = container("prediction", preds[:1], "deflate")
dsync = dgood[-16:]
dheader = dgood[: dgood.index(dsync) + 16]
write("container", "deflate-bomb", b"\x00" + dheader + zigzag(1) + zigzag(len(raw)) + raw + dsync)
print("corpus written")
