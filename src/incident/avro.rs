//! The incident event as Avro: a binary datum of `schemas/incident.avsc`.

use apache_avro::reader::datum::GenericDatumReader;

use crate::codec::avro::{encode, schemas};
use crate::incident::IncidentEvent;

/// Encodes an incident event as a binary datum of `schemas/incident.avsc`.
pub fn encode_incident(ev: &IncidentEvent) -> Result<Vec<u8>, String> {
    let s = schemas().map_err(|e| e.to_string())?;
    encode(&s.incident, ev)
}

/// Decodes an incident datum written with `schemas/incident.avsc`.
pub fn decode_incident(mut bytes: &[u8]) -> Result<IncidentEvent, String> {
    let s = schemas().map_err(|e| e.to_string())?;
    GenericDatumReader::builder(&s.incident)
        .build()
        .and_then(|r| r.read_deser::<IncidentEvent>(&mut bytes))
        .map_err(|e| e.to_string())
}
