//! The action event as Avro: a binary datum of `schemas/action.avsc`.

use apache_avro::reader::datum::GenericDatumReader;

use crate::codec::avro::{encode, schemas};

use super::Action;

/// Encodes an action as a binary datum of `schemas/action.avsc`.
pub fn encode_action(a: &Action) -> Result<Vec<u8>, String> {
    let s = schemas().map_err(|e| e.to_string())?;
    encode(&s.action, a)
}

/// Decodes an action datum written with `schemas/action.avsc`.
pub fn decode_action(mut bytes: &[u8]) -> Result<Action, String> {
    let s = schemas().map_err(|e| e.to_string())?;
    GenericDatumReader::builder(&s.action)
        .build()
        .and_then(|r| r.read_deser::<Action>(&mut bytes))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::release::{ActionKind, Evidence};

    #[test]
    fn actions_round_trip() {
        for (kind, evidence) in [
            (
                ActionKind::RollbackRecommended,
                Evidence {
                    statistic: "brier".into(),
                    candidate: Some(0.23),
                    production: Some(0.19),
                    relative: Some(0.21),
                    threshold: Some(0.05),
                    p_value: Some(1e-6),
                    p_adjusted: Some(4e-6),
                    alpha: Some(0.001),
                    candidate_pairs: Some(900),
                    production_pairs: Some(2700),
                    candidate_auc: Some(0.55),
                    production_auc: None,
                    summary: "roll back".into(),
                    ..Evidence::default()
                },
            ),
            (
                ActionKind::RetrainRequested,
                Evidence {
                    statistic: "incident".into(),
                    train_from: Some(1),
                    train_to: Some(2),
                    train_slices: vec![BTreeMap::from([("region".into(), "EU".into())])],
                    summary: "retrain".into(),
                    ..Evidence::default()
                },
            ),
        ] {
            let a = Action {
                action_id: "act-0011223344556677".into(),
                action: kind,
                model_id: "m".into(),
                model_version: Some("v8".into()),
                baseline_version: None,
                mode: "canary".into(),
                slice: BTreeMap::from([("region".into(), "APAC".into())]),
                rule: "release.worse_by".into(),
                evidence,
                incident_id: None,
                supersedes: Some("act-1".into()),
                decided_at: 5,
                owner: "o".into(),
                runbook_url: "docs/runbooks/release.md".into(),
                config_hash: "00ff".into(),
                engine_version: "0.1.0".into(),
                emitted_at: 6,
            };
            assert_eq!(decode_action(&encode_action(&a).unwrap()).unwrap(), a);
        }
    }
}
