//! Kafka message values: the Confluent wire format (magic byte 0, 4-byte
//! big-endian schema id, Avro binary), plain Avro binary, or JSON, per config.
//!
//! Confluent writer schemas come from a Schema Registry when one is
//! configured (`GET {url}/schemas/ids/{id}`, cached per id; a lookup that
//! fails is retried at the next message with that id), else from `schemas/`,
//! where `kafka.local_schema_ids` may restrict the ids accepted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;

use crate::codec::avro::{DatumDecoder, schemas};
use crate::codec::{StreamKind, json};
use crate::config::{Encoding, KafkaConfig, redact_url};
use crate::event::{BadEvent, BadReason, Event};

/// Decodes message values of one topic.
pub struct ValueDecoder {
    kind: StreamKind,
    encoding: Encoding,
    registry: Option<String>,
    local_ids: Vec<u32>,
    /// Writer schemas fetched from the registry, by id (leaked once per id:
    /// a decoder borrows its schema for the life of the process).
    fetched: HashMap<u32, DatumDecoder>,
    /// The schemas fetched by this decoder and those made by [`ValueDecoder::sharing`]
    /// (workers'): each id is asked of the registry once.
    shared: Arc<Mutex<HashMap<u32, &'static Schema>>>,
    local: DatumDecoder,
    /// JSON: the shapes of the topic's prediction lines (`json::Shapes`).
    shapes: json::Shapes,
}

impl ValueDecoder {
    pub fn new(kind: StreamKind, cfg: &KafkaConfig) -> crate::error::Result<Self> {
        let s = schemas()?;
        let local = DatumDecoder::new(kind, s.for_stream(kind)).map_err(|message| {
            crate::error::Error::Schema {
                name: kind.as_str().into(),
                message,
            }
        })?;
        Ok(ValueDecoder {
            kind,
            encoding: cfg.encoding,
            registry: (!cfg.schema_registry_url.trim().is_empty())
                .then(|| cfg.schema_registry_url.trim_end_matches('/').to_string()),
            local_ids: cfg.local_schema_ids.clone(),
            fetched: HashMap::new(),
            shared: Arc::default(),
            local,
            shapes: json::Shapes::default(),
        })
    }

    /// A decoder like this one (for another thread) that shares its
    /// registry lookups.
    pub fn sharing(&self, cfg: &KafkaConfig) -> crate::error::Result<Self> {
        let mut d = ValueDecoder::new(self.kind, cfg)?;
        d.shared = self.shared.clone();
        Ok(d)
    }

    /// Decodes and validates one message value.
    pub fn decode(&mut self, value: Option<&[u8]>) -> Result<Event, BadEvent> {
        self.decode_reusing(value, None)
    }

    /// [`ValueDecoder::decode`], into `spare` (an event already applied)
    /// when it can: a prediction of the common JSON shape or of the shipped
    /// Avro schema then takes no allocation.
    pub fn decode_reusing(
        &mut self,
        value: Option<&[u8]>,
        spare: Option<Event>,
    ) -> Result<Event, BadEvent> {
        let Some(bytes) = value else {
            return Err(BadEvent::new(
                BadReason::MalformedAvro,
                "message has no value",
            ));
        };
        match self.encoding {
            Encoding::Json => json::decode_shaped(self.kind, bytes, spare, Some(&mut self.shapes)),
            Encoding::Avro => self.local.decode_reusing(bytes, spare),
            Encoding::Confluent => {
                let (id, payload) = split_frame(bytes)?;
                self.decoder_for(id)?.decode_reusing(payload, spare)
            }
        }
    }

    fn decoder_for(&mut self, id: u32) -> Result<&DatumDecoder, BadEvent> {
        let Some(url) = &self.registry else {
            if !self.local_ids.is_empty() && !self.local_ids.contains(&id) {
                return Err(BadEvent::new(
                    BadReason::UnknownSchema,
                    format!(
                        "schema id {id} is not one of kafka.local_schema_ids {:?}",
                        self.local_ids
                    ),
                ));
            }
            return Ok(&self.local);
        };
        if !self.fetched.contains_key(&id) {
            // held while fetching: another thread wanting the id waits for this answer
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let schema = match shared.get(&id) {
                Some(s) => *s,
                None => {
                    // a blocking HTTP call, once per schema id: keep it off the async worker's feet
                    let schema = crate::blocking(|| fetch_schema(url, id))?;
                    let schema: &'static Schema = Box::leak(Box::new(schema));
                    shared.insert(id, schema);
                    schema
                }
            };
            drop(shared);
            let d = DatumDecoder::new(self.kind, schema)
                .map_err(|e| BadEvent::new(BadReason::UnknownSchema, e))?;
            self.fetched.insert(id, d);
        }
        self.fetched
            .get(&id)
            .ok_or_else(|| BadEvent::new(BadReason::UnknownSchema, format!("schema id {id}")))
    }
}

/// Splits a Confluent-framed value into schema id and Avro payload.
pub fn split_frame(bytes: &[u8]) -> Result<(u32, &[u8]), BadEvent> {
    match bytes {
        [0, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [m, ..] if *m != 0 => Err(BadEvent::new(
            BadReason::BadMagicByte,
            format!("magic byte is {m}, not 0 (not Confluent wire format)"),
        )),
        _ => Err(BadEvent::new(
            BadReason::MalformedAvro,
            format!(
                "{} bytes: too short for the Confluent wire format",
                bytes.len()
            ),
        )),
    }
}

/// Frames an Avro payload in the Confluent wire format.
pub fn frame(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 5);
    v.push(0);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn fetch_schema(url: &str, id: u32) -> Result<Schema, BadEvent> {
    let bad = |m: String| BadEvent::new(BadReason::UnknownSchema, m);
    let endpoint = format!("{url}/schemas/ids/{id}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let text = agent
        .get(&endpoint)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| {
            bad(format!(
                "schema id {id} from {}: {e}",
                redact_url(&endpoint)
            ))
        })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad(format!("registry answer for id {id}: {e}")))?;
    let s = v["schema"]
        .as_str()
        .ok_or_else(|| bad(format!("registry answer for id {id} has no schema")))?;
    Schema::parse_str(s).map_err(|e| bad(format!("schema id {id}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::avro::encode;
    use crate::event::{Prediction, Scalar, Value};

    fn pred() -> Prediction {
        Prediction {
            trace_id: "t".into(),
            model_id: "m".into(),
            model_version: None,
            event_time: 1_767_225_600_000,
            features: vec![("x".into(), Value::Number(1.0))],
            slices: vec![],
            prediction: Scalar::Number(0.0),
            score: None,
            shadow: false,
            prepared: Default::default(),
        }
    }

    #[test]
    fn frames_round_trip_and_poison_is_classified() {
        let cfg = KafkaConfig {
            local_schema_ids: vec![7],
            ..KafkaConfig::default()
        };
        let mut d = ValueDecoder::new(StreamKind::Predictions, &cfg).unwrap();
        let payload = encode(&schemas().unwrap().prediction, &pred()).unwrap();
        assert_eq!(
            d.decode(Some(&frame(7, &payload))).unwrap(),
            Event::Prediction(Box::new(pred()))
        );
        let reason = |d: &mut ValueDecoder, b: &[u8]| d.decode(Some(b)).unwrap_err().reason;
        assert_eq!(reason(&mut d, &[1, 0, 0, 0, 7, 2]), BadReason::BadMagicByte);
        assert_eq!(
            reason(&mut d, &frame(8, &payload)),
            BadReason::UnknownSchema
        );
        assert_eq!(
            reason(&mut d, &frame(7, &payload[..payload.len() / 2])),
            BadReason::MalformedAvro
        );
        assert_eq!(reason(&mut d, &[0, 0]), BadReason::MalformedAvro);
        assert_eq!(d.decode(None).unwrap_err().reason, BadReason::MalformedAvro);
        let mut nan = pred();
        nan.features[0].1 = Value::Number(f64::NAN);
        let payload = encode(&schemas().unwrap().prediction, &nan).unwrap();
        assert_eq!(reason(&mut d, &frame(7, &payload)), BadReason::NonFinite);
    }
}
