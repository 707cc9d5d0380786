//! Avro: the schemas in `schemas/`, binary datum encoding and decoding, and
//! conversion between Avro values and the event types.
//!
//! Decoding goes through `apache_avro::types::Value` and converts by field
//! name, so a writer schema that differs from ours in field order, extra
//! fields or union branch order still decodes.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde::Serialize;

use crate::alert::Alert;
use crate::codec::StreamKind;
use crate::error::{Error, Result};
use crate::event::{BadEvent, BadReason, Event, Outcome, Prediction, Scalar, Value};

pub const PREDICTION_AVSC: &str = include_str!("../../schemas/prediction.avsc");
pub const OUTCOME_AVSC: &str = include_str!("../../schemas/outcome.avsc");
pub const ALERT_AVSC: &str = include_str!("../../schemas/alert.avsc");

/// Largest single allocation the Avro decoder may make (a length prefix that
/// asks for more is refused as malformed instead of exhausting memory).
pub const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

/// The three schemas of the contract, parsed once.
pub struct Schemas {
    pub prediction: Schema,
    pub outcome: Schema,
    pub alert: Schema,
}

static SCHEMAS: LazyLock<std::result::Result<Schemas, String>> = LazyLock::new(|| {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
    let parse = |name: &str, text: &str| Schema::parse_str(text).map_err(|e| format!("{name}: {e}"));
    Ok(Schemas {
        prediction: parse("prediction.avsc", PREDICTION_AVSC)?,
        outcome: parse("outcome.avsc", OUTCOME_AVSC)?,
        alert: parse("alert.avsc", ALERT_AVSC)?,
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

/// Any serde value as an Avro value resolved against `schema` (unions picked by type).
pub fn to_avro_value<T: Serialize>(schema: &Schema, value: &T) -> std::result::Result<Avro, String> {
    let v = apache_avro::to_value(value).map_err(|e| e.to_string())?;
    v.resolve(schema).map_err(|e| e.to_string())
}

/// Encodes any serde value as an Avro binary datum of `schema`.
pub fn encode<T: Serialize>(schema: &Schema, value: &T) -> std::result::Result<Vec<u8>, String> {
    let v = to_avro_value(schema, value)?;
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(v))
        .map_err(|e| e.to_string())
}

/// Encodes an alert as a binary datum of `schemas/alert.avsc`.
pub fn encode_alert(alert: &Alert) -> std::result::Result<Vec<u8>, String> {
    let s = schemas().map_err(|e| e.to_string())?;
    encode(&s.alert, alert)
}

/// Decodes an alert datum written with `schemas/alert.avsc`.
pub fn decode_alert(mut bytes: &[u8]) -> std::result::Result<Alert, String> {
    let s = schemas().map_err(|e| e.to_string())?;
    let v = read_datum(&s.alert, &mut bytes).map_err(|e| e.message)?;
    apache_avro::from_value::<Alert>(&v).map_err(|e| e.to_string())
}

fn read_datum(schema: &Schema, bytes: &mut &[u8]) -> std::result::Result<Avro, BadEvent> {
    apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .and_then(|r| r.read_value(bytes))
        .map_err(|e| BadEvent::new(BadReason::MalformedAvro, e.to_string()))
}

/// Decodes one plain Avro binary datum written with `writer` into an event.
pub fn decode(kind: StreamKind, writer: &Schema, bytes: &[u8]) -> std::result::Result<Event, BadEvent> {
    let mut rest = bytes;
    let v = read_datum(writer, &mut rest)?;
    if !rest.is_empty() {
        return Err(BadEvent::new(
            BadReason::MalformedAvro,
            format!("{} trailing bytes after the datum", rest.len()),
        ));
    }
    event_from_value(kind, v)
}

/// Converts a decoded Avro record into a validated event.
pub fn event_from_value(kind: StreamKind, v: Avro) -> std::result::Result<Event, BadEvent> {
    let ev = match kind {
        StreamKind::Predictions => Event::Prediction(prediction_from_value(v)?),
        StreamKind::Outcomes => Event::Outcome(outcome_from_value(v)?),
    };
    ev.validate()?;
    Ok(ev)
}

fn missing(name: &str) -> BadEvent {
    BadEvent::new(BadReason::MissingField, format!("missing field `{name}`"))
}

fn wrong(name: &str, v: &Avro) -> BadEvent {
    BadEvent::new(BadReason::WrongType, format!("field `{name}`: unexpected {}", kind_name(v)))
}

fn kind_name(v: &Avro) -> &'static str {
    match v {
        Avro::Null => "null",
        Avro::Boolean(_) => "boolean",
        Avro::Int(_) | Avro::Long(_) => "integer",
        Avro::Float(_) | Avro::Double(_) => "number",
        Avro::String(_) | Avro::Enum(_, _) => "string",
        Avro::Map(_) => "map",
        Avro::Array(_) => "array",
        Avro::Record(_) => "record",
        _ => "value",
    }
}

fn unwrap_union(v: Avro) -> Avro {
    match v {
        Avro::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

fn take_string(name: &str, v: Option<Avro>) -> std::result::Result<String, BadEvent> {
    match v.map(unwrap_union) {
        Some(Avro::String(s)) => Ok(s),
        Some(other) => Err(wrong(name, &other)),
        None => Err(missing(name)),
    }
}

fn take_opt_string(name: &str, v: Option<Avro>) -> std::result::Result<Option<String>, BadEvent> {
    match v.map(unwrap_union) {
        None | Some(Avro::Null) => Ok(None),
        Some(Avro::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(name, &other)),
    }
}

fn take_time(v: Option<Avro>) -> std::result::Result<i64, BadEvent> {
    match v.map(unwrap_union) {
        Some(Avro::Long(t) | Avro::TimestampMillis(t)) => Ok(t),
        Some(Avro::Int(t)) => Ok(t as i64),
        Some(Avro::TimestampMicros(t)) => Ok(t.div_euclid(1000)),
        Some(other) => Err(wrong("event_time", &other)),
        None => Err(missing("event_time")),
    }
}

fn number(v: &Avro) -> Option<f64> {
    match *v {
        Avro::Double(x) => Some(x),
        Avro::Float(x) => Some(x as f64),
        Avro::Int(x) => Some(x as f64),
        Avro::Long(x) => Some(x as f64),
        _ => None,
    }
}

fn take_scalar(name: &str, v: Option<Avro>) -> std::result::Result<Scalar, BadEvent> {
    match v.map(unwrap_union) {
        Some(Avro::String(s)) => Ok(Scalar::Text(s)),
        Some(Avro::Boolean(b)) => Ok(Scalar::Number(if b { 1.0 } else { 0.0 })),
        Some(other) => number(&other).map(Scalar::Number).ok_or_else(|| wrong(name, &other)),
        None => Err(missing(name)),
    }
}

fn fields(v: Avro) -> std::result::Result<Vec<(String, Avro)>, BadEvent> {
    match unwrap_union(v) {
        Avro::Record(f) => Ok(f),
        other => Err(wrong("<record>", &other)),
    }
}

/// Converts a decoded prediction record (any field order, extra fields ignored).
pub fn prediction_from_value(v: Avro) -> std::result::Result<Prediction, BadEvent> {
    let mut trace_id = None;
    let mut model_id = None;
    let mut model_version = None;
    let mut event_time = None;
    let mut features = None;
    let mut slices = None;
    let mut prediction = None;
    let mut score = None;
    for (k, val) in fields(v)? {
        match k.as_str() {
            "trace_id" => trace_id = Some(val),
            "model_id" => model_id = Some(val),
            "model_version" => model_version = Some(val),
            "event_time" => event_time = Some(val),
            "features" => features = Some(val),
            "slices" => slices = Some(val),
            "prediction" => prediction = Some(val),
            "score" => score = Some(val),
            _ => {}
        }
    }
    let features = match features.map(unwrap_union) {
        Some(Avro::Map(m)) => {
            let mut out: Vec<(String, Value)> = Vec::with_capacity(m.len());
            for (name, fv) in m {
                let fv = match unwrap_union(fv) {
                    Avro::Null => Value::Null,
                    Avro::Boolean(b) => Value::Bool(b),
                    Avro::String(s) => Value::Text(s),
                    other => match number(&other) {
                        Some(x) => Value::Number(x),
                        None => return Err(wrong(&format!("features.{name}"), &other)),
                    },
                };
                out.push((name, fv));
            }
            // Avro maps carry no order; sort so runs are reproducible.
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        Some(other) => return Err(wrong("features", &other)),
        None => return Err(missing("features")),
    };
    let slices = match slices.map(unwrap_union) {
        None | Some(Avro::Null) => Vec::new(),
        Some(Avro::Map(m)) => {
            let mut out = Vec::with_capacity(m.len());
            for (dim, sv) in m {
                match unwrap_union(sv) {
                    Avro::String(s) => out.push((dim, s)),
                    other => return Err(wrong(&format!("slices.{dim}"), &other)),
                }
            }
            out.sort();
            out
        }
        Some(other) => return Err(wrong("slices", &other)),
    };
    let score = match score.map(unwrap_union) {
        None | Some(Avro::Null) => None,
        Some(other) => Some(number(&other).ok_or_else(|| wrong("score", &other))?),
    };
    Ok(Prediction {
        trace_id: take_string("trace_id", trace_id)?,
        model_id: take_string("model_id", model_id)?,
        model_version: take_opt_string("model_version", model_version)?,
        event_time: take_time(event_time)?,
        features,
        slices,
        prediction: take_scalar("prediction", prediction)?,
        score,
    })
}

/// Converts a decoded outcome record.
pub fn outcome_from_value(v: Avro) -> std::result::Result<Outcome, BadEvent> {
    let mut trace_id = None;
    let mut model_id = None;
    let mut event_time = None;
    let mut label = None;
    for (k, val) in fields(v)? {
        match k.as_str() {
            "trace_id" => trace_id = Some(val),
            "model_id" => model_id = Some(val),
            "event_time" => event_time = Some(val),
            "label" => label = Some(val),
            _ => {}
        }
    }
    Ok(Outcome {
        trace_id: take_string("trace_id", trace_id)?,
        model_id: take_string("model_id", model_id)?,
        event_time: take_time(event_time)?,
        label: take_scalar("label", label)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::*;
    use std::collections::BTreeMap;

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
            slices: vec![("channel".into(), "web".into()), ("region".into(), "EU".into())],
            prediction: Scalar::Text("fraud".into()),
            score: Some(0.25),
        }
    }

    #[test]
    fn prediction_round_trips() {
        let s = schemas().unwrap();
        let p = prediction();
        let bytes = encode(&s.prediction, &p).unwrap();
        let Event::Prediction(back) = decode(StreamKind::Predictions, &s.prediction, &bytes).unwrap() else { panic!() };
        assert_eq!(back, p);
        let mut p2 = p.clone();
        p2.model_version = None;
        p2.score = None;
        p2.slices.clear();
        p2.prediction = Scalar::Number(3.5);
        let bytes = encode(&s.prediction, &p2).unwrap();
        let Event::Prediction(back) = decode(StreamKind::Predictions, &s.prediction, &bytes).unwrap() else { panic!() };
        assert_eq!(back, p2);
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
        assert_eq!(decode(StreamKind::Outcomes, &s.outcome, &bytes).unwrap(), Event::Outcome(o));
    }

    #[test]
    fn alert_round_trips() {
        let a = Alert {
            alert_id: "0123".into(),
            model_id: "m".into(),
            model_version: None,
            kind: AlertKind::DataDrift,
            feature: Some("amount".into()),
            slice: BTreeMap::from([("region".into(), "EU".into())]),
            test: "psi".into(),
            statistic: 0.31,
            p_value: Some(1e-12),
            threshold: 0.25,
            severity: Severity::Critical,
            state: AlertState::Escalated,
            window_start: 1,
            window_end: 2,
            reference_start: 0,
            reference_end: 1,
            sample_size: SampleSize { current: 10, reference: 20 },
            persistence: Persistence { breaches: 3, evaluations: 5 },
            evidence: Evidence {
                summary: "moved".into(),
                reference_mean: Some(1.0),
                current_mean: None,
                quantiles: vec![QuantilePair { q: 0.5, reference: 1.0, current: 2.0 }],
                top_moves: vec![Move { bin: "[1, 2)".into(), reference_share: 0.1, current_share: 0.3 }],
                tests: vec![TestResult { test: "ks".into(), statistic: 0.2, p_value: None }],
                related_alert_ids: vec!["x".into()],
                ..Evidence::default()
            },
            suspected_cause: Cause::FeatureChange,
            exemplar_trace_ids: vec!["t1".into()],
            emitted_at: 2,
        };
        let bytes = encode_alert(&a).unwrap();
        assert_eq!(decode_alert(&bytes).unwrap(), a);
    }

    #[test]
    fn malformed_datums_are_refused_not_panicked() {
        let s = schemas().unwrap();
        let bytes = encode(&s.prediction, &prediction()).unwrap();
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            let r = decode(StreamKind::Predictions, &s.prediction, &bytes[..cut]);
            assert_eq!(r.unwrap_err().reason, BadReason::MalformedAvro, "cut at {cut}");
        }
        // a map block count asking for ~2^62 entries
        let huge = [0x06, b'a', b'b', b'c', 0x02, b'm', 0x00, 0x02, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(decode(StreamKind::Predictions, &s.prediction, &huge).is_err());
        let mut p = prediction();
        p.features[0].1 = Value::Number(f64::NAN);
        let bytes = encode(&s.prediction, &p).unwrap();
        assert_eq!(decode(StreamKind::Predictions, &s.prediction, &bytes).unwrap_err().reason, BadReason::NonFinite);
    }
}
