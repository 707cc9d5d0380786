//! The alert event as Avro: a binary datum of `schemas/alert.avsc`, for the
//! alert topic (`kafka.alert_encoding = "avro"`) and its readers.

use apache_avro::reader::datum::GenericDatumReader;

use crate::alert::Alert;
use crate::codec::avro::{encode, schemas};

/// Encodes an alert as a binary datum of `schemas/alert.avsc`.
pub fn encode_alert(alert: &Alert) -> std::result::Result<Vec<u8>, String> {
    let s = schemas().map_err(|e| e.to_string())?;
    encode(&s.alert, alert)
}

/// Decodes an alert datum written with `schemas/alert.avsc`.
pub fn decode_alert(mut bytes: &[u8]) -> std::result::Result<Alert, String> {
    let s = schemas().map_err(|e| e.to_string())?;
    GenericDatumReader::builder(&s.alert)
        .build()
        .and_then(|r| r.read_deser::<Alert>(&mut bytes))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::alert::*;

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
            sample_size: SampleSize {
                current: 10,
                reference: 20,
            },
            persistence: Persistence {
                breaches: 3,
                evaluations: 5,
            },
            evidence: Evidence {
                summary: "moved".into(),
                reference_mean: Some(1.0),
                current_mean: None,
                quantiles: vec![QuantilePair {
                    q: 0.5,
                    reference: 1.0,
                    current: 2.0,
                }],
                top_moves: vec![Move {
                    bin: "[1, 2)".into(),
                    reference_share: 0.1,
                    current_share: 0.3,
                }],
                tests: vec![TestResult {
                    test: "ks".into(),
                    statistic: 0.2,
                    p_value: None,
                }],
                related_alert_ids: vec!["x".into()],
                ..Evidence::default()
            },
            suspected_cause: Cause::FeatureChange,
            exemplar_trace_ids: vec!["t1".into()],
            emitted_at: 2,
            incident_id: "inc-1".into(),
            owner: "fraud-ml".into(),
            runbook_url: "docs/runbooks/data_drift.md".into(),
            config_hash: "00ff".into(),
            engine_version: "0.1.0 (abc)".into(),
        };
        let bytes = encode_alert(&a).unwrap();
        assert_eq!(decode_alert(&bytes).unwrap(), a);
    }
}
