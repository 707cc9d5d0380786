//! Avro: the schemas in `schemas/`, binary datum encoding, and decoding
//! straight into the event types with apache-avro's schema-aware serde
//! deserializer.

use std::sync::LazyLock;

use apache_avro::Schema;
use serde::Serialize;

use crate::codec::StreamKind;
use crate::error::{Error, Result};
use crate::event::{BadEvent, BadReason, Event, Outcome, Prediction};

mod plain;

pub const PREDICTION_AVSC: &str = include_str!("../../schemas/prediction.avsc");
pub const OUTCOME_AVSC: &str = include_str!("../../schemas/outcome.avsc");
pub const ALERT_AVSC: &str = include_str!("../../schemas/alert.avsc");
pub const INCIDENT_AVSC: &str = include_str!("../../schemas/incident.avsc");
pub const ACTION_AVSC: &str = include_str!("../../schemas/action.avsc");

/// Largest single allocation the Avro decoder may make (a length prefix that
/// asks for more is refused as malformed instead of exhausting memory).
pub const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

/// The schemas of the contract, parsed once.
pub struct Schemas {
    pub prediction: Schema,
    pub outcome: Schema,
    pub alert: Schema,
    pub incident: Schema,
    pub action: Schema,
}

/// The shipped prediction schema as apache-avro serializes it: a writer
/// schema serialized to the same text is the shipped one.
static SHIPPED_PREDICTION: LazyLock<Option<String>> = LazyLock::new(|| {
    let s = SCHEMAS.as_ref().ok()?;
    serde_json::to_string(&s.prediction).ok()
});

static SCHEMAS: LazyLock<std::result::Result<Schemas, String>> = LazyLock::new(|| {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
    let parse =
        |name: &str, text: &str| Schema::parse_str(text).map_err(|e| format!("{name}: {e}"));
    Ok(Schemas {
        prediction: parse("prediction.avsc", PREDICTION_AVSC)?,
        outcome: parse("outcome.avsc", OUTCOME_AVSC)?,
        alert: parse("alert.avsc", ALERT_AVSC)?,
        incident: parse("incident.avsc", INCIDENT_AVSC)?,
        action: parse("action.avsc", ACTION_AVSC)?,
    })
});

/// The embedded schemas; an error here is a build defect, reported once.
pub fn schemas() -> Result<&'static Schemas> {
    SCHEMAS.as_ref().map_err(|m| Error::Schema {
        name: "embedded".into(),
        message: m.clone(),
    })
}

impl Schemas {
    pub fn for_stream(&self, kind: StreamKind) -> &Schema {
        match kind {
            StreamKind::Predictions => &self.prediction,
            StreamKind::Outcomes => &self.outcome,
        }
    }
}

/// Encodes any serde value as an Avro binary datum of `schema`, serialized
/// straight into it (a map's entries keep their order).
pub fn encode<T: Serialize>(schema: &Schema, value: &T) -> std::result::Result<Vec<u8>, String> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_ser_to_vec(value))
        .map_err(|e| e.to_string())
}

/// Decodes plain Avro binary datums written with one writer schema,
/// straight into events: serde_avro_fast, a decoder specialised to the
/// writer schema once (no value tree, no per-field schema lookups, strings
/// read in place); apache-avro keeps the schemas and the writing, and
/// `codec::container` frames container files. Fields are matched by name,
/// so a writer schema with other field order or extra fields decodes too.
///
/// A prediction written with the shipped schema itself (the same schema as
/// apache-avro reads it: the same text written back out) is read by
/// `plain` in one pass, into the buffers of an
/// event already applied when the caller hands one back; anything it is
/// unsure of is left to serde_avro_fast, whose result or error is the
/// datum's.
pub struct DatumDecoder {
    kind: StreamKind,
    schema: serde_avro_fast::Schema,
    /// The writer schema is the shipped prediction schema: `plain` reads it.
    shipped: bool,
}

impl DatumDecoder {
    pub fn new(kind: StreamKind, writer: &Schema) -> std::result::Result<Self, String> {
        let text = serde_json::to_string(writer).map_err(|e| e.to_string())?;
        let schema = text
            .parse::<serde_avro_fast::Schema>()
            .map_err(|e| e.to_string())?;
        // the shipped schema, as apache-avro writes it back out: compared
        // as text, not by canonical form — apache-avro's panics on some
        // schemas it parses (a field with `"symbols": false`, found by the
        // fuzz target `container`), and a writer's schema is input
        let shipped =
            kind == StreamKind::Predictions && SHIPPED_PREDICTION.as_deref() == Some(text.as_str());
        Ok(DatumDecoder {
            kind,
            schema,
            shipped,
        })
    }

    /// Decodes and validates one datum; trailing bytes are an error.
    pub fn decode(&self, bytes: &[u8]) -> std::result::Result<Event, BadEvent> {
        self.decode_reusing(bytes, None)
    }

    /// [`DatumDecoder::decode`], into `spare` (an event already applied)
    /// when it can.
    pub fn decode_reusing(
        &self,
        bytes: &[u8],
        spare: Option<Event>,
    ) -> std::result::Result<Event, BadEvent> {
        let (ev, used, valid) = self.read_reusing(bytes, spare)?;
        if used < bytes.len() {
            return Err(BadEvent::new(
                BadReason::MalformedAvro,
                format!("{} trailing bytes after the datum", bytes.len() - used),
            ));
        }
        if !valid {
            ev.validate()?;
        }
        Ok(ev)
    }

    /// Decodes the datum at the start of `bytes`, and the number of bytes
    /// it took; into `spare` (an event already applied) when it can. True
    /// when the event was seen to pass every check of [`Event::validate`]
    /// as it was read; false: not validated (the caller does).
    pub fn read_reusing(
        &self,
        bytes: &[u8],
        spare: Option<Event>,
    ) -> std::result::Result<(Event, usize, bool), BadEvent> {
        if self.shipped {
            let mut p = match spare {
                Some(Event::Prediction(p)) => p,
                _ => Box::default(),
            };
            if let Some((used, valid)) = plain::read_prediction(bytes, &mut p) {
                return Ok((Event::Prediction(p), used, valid));
            }
        }
        self.read_general(bytes).map(|(ev, used)| (ev, used, false))
    }

    /// [`DatumDecoder::read_reusing`] by serde_avro_fast alone.
    fn read_general(&self, bytes: &[u8]) -> std::result::Result<(Event, usize), BadEvent> {
        use serde::Deserialize;
        use std::io::BufRead;
        let mut state = serde_avro_fast::de::DeserializerState::from_slice(bytes, &self.schema);
        let ev = match self.kind {
            StreamKind::Predictions => {
                Box::<Prediction>::deserialize(state.deserializer()).map(Event::Prediction)
            }
            StreamKind::Outcomes => Outcome::deserialize(state.deserializer()).map(Event::Outcome),
        }
        .map_err(|e| classify_message(e.to_string()))?;
        let rest = state.into_reader().fill_buf().map_or(0, <[u8]>::len);
        Ok((ev, bytes.len() - rest))
    }
}

/// Whether the one-pass reader and serde_avro_fast agree on a prediction
/// datum of the shipped schema: either the former leaves it, or both read
/// it to the same event, bit for bit, taking the same bytes — and one it
/// vouches for as read passes [`Prediction::validate`] (the fuzz target
/// `confluent_avro` holds this on every input it makes).
pub fn readers_agree(bytes: &[u8]) -> bool {
    let Ok(s) = schemas() else {
        return true;
    };
    let Ok(d) = DatumDecoder::new(StreamKind::Predictions, &s.prediction) else {
        return true;
    };
    let mut p = Prediction::default();
    plain::read_prediction(bytes, &mut p).is_none_or(|(used, valid)| {
        // one it vouches for passes every check
        (!valid || p.validate().is_ok())
            && d.read_general(bytes).is_ok_and(|(theirs, n)| {
                n == used
                    && format!("{:?}", Event::Prediction(Box::new(p))) == format!("{theirs:?}")
            })
    })
}

/// Decodes one datum written with `writer` (builds a decoder; keep a
/// [`DatumDecoder`] for many).
pub fn decode(
    kind: StreamKind,
    writer: &Schema,
    bytes: &[u8],
) -> std::result::Result<Event, BadEvent> {
    DatumDecoder::new(kind, writer)
        .map_err(|e| BadEvent::new(BadReason::MalformedAvro, e))?
        .decode(bytes)
}

/// The reason for an Avro decoding error, from its message.
fn classify_message(msg: String) -> BadEvent {
    let lower = msg.to_ascii_lowercase();
    let reason = if lower.contains("missing field") {
        BadReason::MissingField
    } else if lower.contains("invalid type")
        || lower.contains("expected") && lower.contains("found")
    {
        BadReason::WrongType
    } else {
        BadReason::MalformedAvro
    };
    BadEvent::new(reason, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Scalar, Value};

    /// The shipped schema is known however it was written (its name
    /// qualified or with a namespace, keys in any order, other spacing);
    /// another schema, or one apache-avro cannot put in canonical form,
    /// is not — and never panics.
    #[test]
    fn the_shipped_schema_is_known_however_written_and_hostile_ones_are_not() {
        let shipped = |text: &str| {
            let w = Schema::parse_str(text).unwrap();
            DatumDecoder::new(StreamKind::Predictions, &w)
                .unwrap()
                .shipped
        };
        assert!(shipped(PREDICTION_AVSC));
        let mut v: serde_json::Value = serde_json::from_str(PREDICTION_AVSC).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("namespace");
        o.insert("name".into(), "io.driftline.Prediction".into());
        assert!(
            shipped(&serde_json::to_string(&v).unwrap()),
            "qualified name"
        );
        assert!(
            shipped(&serde_json::to_string_pretty(&v).unwrap()),
            "spacing"
        );
        let mut other = v.clone();
        other["fields"][0]["name"] = "trace".into();
        assert!(!shipped(&serde_json::to_string(&other).unwrap()));
        // a field attribute apache-avro keeps but its canonical form
        // panics on (the fuzz target `container` found it)
        let mut hostile = v.clone();
        hostile["fields"][8]["symbols"] = false.into();
        assert!(!shipped(&serde_json::to_string(&hostile).unwrap()));
        let o = Schema::parse_str(OUTCOME_AVSC).unwrap();
        assert!(!DatumDecoder::new(StreamKind::Outcomes, &o).unwrap().shipped);
    }

    fn prediction() -> Prediction {
        Prediction {
            trace_id: "abc".into(),
            model_id: "m".into(),
            model_version: Some("v7".into()),
            event_time: 1_767_225_600_123,
            features: vec![
                ("amount".into(), Value::Number(12.5)),
                ("device".into(), Value::Text("ios".into())),
                ("tenure_days".into(), Value::Null),
                ("vip".into(), Value::Bool(false)),
            ],
            slices: vec![
                ("channel".into(), "web".into()),
                ("region".into(), "EU".into()),
            ],
            prediction: Scalar::Text("fraud".into()),
            score: Some(0.25),
            shadow: false,
            prepared: Default::default(),
        }
    }

    #[test]
    fn prediction_round_trips() {
        let s = schemas().unwrap();
        let p = prediction();
        let bytes = encode(&s.prediction, &p).unwrap();
        let Event::Prediction(mut back) =
            decode(StreamKind::Predictions, &s.prediction, &bytes).unwrap()
        else {
            panic!()
        };
        // Avro maps have no order
        back.features.sort_by(|a, b| a.0.cmp(&b.0));
        back.slices.sort();
        assert_eq!(*back, p);
        let mut p2 = p.clone();
        p2.model_version = None;
        p2.score = None;
        p2.slices.clear();
        p2.prediction = Scalar::Number(3.5);
        let bytes = encode(&s.prediction, &p2).unwrap();
        let Event::Prediction(mut back) =
            decode(StreamKind::Predictions, &s.prediction, &bytes).unwrap()
        else {
            panic!()
        };
        back.features.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(*back, p2);
    }

    #[test]
    fn outcome_round_trips() {
        let s = schemas().unwrap();
        let o = Outcome {
            trace_id: "abc".into(),
            model_id: "m".into(),
            event_time: 5,
            label: Scalar::Number(1.0),
        };
        let bytes = encode(&s.outcome, &o).unwrap();
        assert_eq!(
            decode(StreamKind::Outcomes, &s.outcome, &bytes).unwrap(),
            Event::Outcome(o)
        );
    }

    #[test]
    fn malformed_datums_are_refused_not_panicked() {
        let s = schemas().unwrap();
        let bytes = encode(&s.prediction, &prediction()).unwrap();
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            let r = decode(StreamKind::Predictions, &s.prediction, &bytes[..cut]);
            assert_eq!(
                r.unwrap_err().reason,
                BadReason::MalformedAvro,
                "cut at {cut}"
            );
        }
        // a map block count asking for ~2^62 entries
        let huge = [
            0x06, b'a', b'b', b'c', 0x02, b'm', 0x00, 0x02, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0x7f,
        ];
        assert!(decode(StreamKind::Predictions, &s.prediction, &huge).is_err());
        let mut p = prediction();
        p.features[0].1 = Value::Number(f64::NAN);
        let bytes = encode(&s.prediction, &p).unwrap();
        assert_eq!(
            decode(StreamKind::Predictions, &s.prediction, &bytes)
                .unwrap_err()
                .reason,
            BadReason::NonFinite
        );
    }
}
