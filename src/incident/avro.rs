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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::alert::{AlertKind, Cause, Severity};
    use crate::incident::{IncidentState, Root, Scope};

    #[test]
    fn incident_round_trips() {
        let ev = IncidentEvent {
            incident_id: "inc-0011223344556677".into(),
            seq: 2,
            state: IncidentState::Updated,
            model_id: "m".into(),
            model_version: Some("v7".into()),
            severity: Severity::Critical,
            root: Root {
                alert_id: "a1".into(),
                kind: AlertKind::DataDrift,
                feature: Some("amount".into()),
                slice: BTreeMap::from([("region".into(), "EU".into())]),
                test: "psi".into(),
                statistic: 0.3,
            },
            suspected_cause: Cause::CovariateShift,
            scope: Scope {
                features: vec!["amount".into(), "score".into()],
                slices: vec![BTreeMap::new()],
            },
            alert_ids: vec!["a1".into(), "a2".into()],
            opened_at: 1,
            updated_at: 2,
            summary: "m: `amount` moved".into(),
            owner: "fraud-ml".into(),
            runbook_url: "docs/runbooks/incident.md".into(),
            recommended_action: "retrain".into(),
            config_hash: "00ff".into(),
            engine_version: "0.1.0".into(),
            emitted_at: 3,
        };
        let bytes = encode_incident(&ev).unwrap();
        assert_eq!(decode_incident(&bytes).unwrap(), ev);
    }
}
