//! What the fuzz targets (`tests/fuzz`) run on one input, shared with the
//! regression test that replays their corpus and every crash input ever
//! found (`tests/integration/fuzz_corpus.rs`) on the stable toolchain.

use crate::codec::confluent::ValueDecoder;
use crate::codec::{StreamKind, avro, json};
use crate::config::{Config, Encoding};
use crate::engine::Engine;
use crate::event::Event;

fn kind(selector: u8) -> StreamKind {
    if selector & 1 == 0 {
        StreamKind::Predictions
    } else {
        StreamKind::Outcomes
    }
}

fn apply(ev: &Event) {
    let mut engine = Engine::new(Config::default());
    let _ = engine.apply(ev);
    engine.finish();
}

/// A Kafka message value: byte 0 picks the stream (bit 0) and the encoding
/// (bit 1: Confluent framing or plain Avro); a decoded event is applied,
/// and a plain Avro prediction must be read by the one-pass reader as
/// serde_avro_fast reads it.
pub fn confluent_avro(data: &[u8]) {
    let Some((&sel, value)) = data.split_first() else {
        return;
    };
    if sel & 2 != 0 && kind(sel) == StreamKind::Predictions {
        assert!(
            avro::readers_agree(value),
            "the one-pass Avro reader and serde_avro_fast read {value:?} differently"
        );
    }
    let mut cfg = Config::default();
    cfg.kafka.encoding = if sel & 2 == 0 {
        Encoding::Confluent
    } else {
        Encoding::Avro
    };
    let Ok(mut decoder) = ValueDecoder::new(kind(sel), &cfg.kafka) else {
        return;
    };
    if let Ok(ev) = decoder.decode(Some(value)) {
        apply(&ev);
    }
}

/// A JSON value: byte 0 picks the stream; a decoded event is applied, and
/// the one-pass reader must read it as serde_json does.
pub fn json(data: &[u8]) {
    let Some((&sel, value)) = data.split_first() else {
        return;
    };
    assert!(
        json::readers_agree(kind(sel), value),
        "the one-pass reader and serde_json read {:?} differently",
        String::from_utf8_lossy(value)
    );
    if let Ok(ev) = json::decode(kind(sel), value) {
        apply(&ev);
    }
}

/// A writer schema as a registry returns it and a datum written with it:
/// bytes 0..2 (big endian) are the schema's length, then the schema JSON,
/// then the datum; bit 0 of byte 0 picks the stream.
pub fn writer_schema(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let n = u16::from_be_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    if rest.len() < n {
        return;
    }
    let (schema, datum) = rest.split_at(n);
    let Ok(text) = std::str::from_utf8(schema) else {
        return;
    };
    // the allocation cap is set when the shipped schemas are first loaded
    let _ = avro::schemas();
    let Ok(writer) = apache_avro::Schema::parse_str(text) else {
        return;
    };
    if let Ok(ev) = avro::decode(kind(data[0]), &writer, datum) {
        apply(&ev);
    }
}

/// An Avro object container file (what `replay` reads): byte 0 picks the
/// stream (bit 0); every record read is applied, until the file ends or a
/// record ends it.
pub fn container(data: &[u8]) {
    let Some((&sel, file)) = data.split_first() else {
        return;
    };
    let _ = avro::schemas();
    let Ok(mut c) = crate::codec::container::Container::open(file, kind(sel)) else {
        return;
    };
    let mut engine = Engine::new(Config::default());
    while let Some(r) = c.next_record() {
        if let Ok(ev) = r {
            let _ = engine.apply(&ev);
        }
    }
    engine.finish();
}
