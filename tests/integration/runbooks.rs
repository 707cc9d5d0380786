//! Every alert kind in `schemas/alert.avsc` has its runbook, and so do
//! incidents; every alert and incident links to it.

use std::path::Path;

/// The symbols of the enum field `field` in `schemas/<schema>`.
fn symbols(schema: &str, field: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schemas").join(schema)).unwrap())
            .unwrap();
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == field)
        .unwrap()["type"]["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_alert_kind_has_a_runbook() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kinds = symbols("alert.avsc", "kind");
    assert!(kinds.len() >= 5, "{kinds:?}");
    let mut missing = Vec::new();
    for name in kinds.iter().map(String::as_str).chain(["incident"]) {
        let p = root.join("docs/runbooks").join(format!("{name}.md"));
        match std::fs::read_to_string(&p) {
            // a runbook says what fired, how to triage and what to do
            Ok(text)
                if ["What fired", "Triage", "Act"]
                    .iter()
                    .all(|h| text.contains(h))
                    || (name == "incident" && text.contains("Triage")) => {}
            _ => missing.push(p.display().to_string()),
        }
    }
    assert!(
        missing.is_empty(),
        "runbooks missing or without what fired / triage / act: {missing:?}"
    );
}

/// Every action kind in `schemas/action.avsc` links to a runbook that exists
/// and says how to read the action and what to do.
#[test]
fn every_action_kind_has_a_runbook() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kinds = symbols("action.avsc", "action");
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for kind in &kinds {
        // the page the engine links (release decisions share one)
        let page = if kind == "retrain_requested" {
            "retrain"
        } else {
            "release"
        };
        let text = std::fs::read_to_string(root.join(format!("docs/runbooks/{page}.md")))
            .unwrap_or_else(|e| panic!("{kind}: docs/runbooks/{page}.md: {e}"));
        assert!(
            text.contains(kind.as_str()) && text.contains("## Read it"),
            "{page}.md does not explain {kind}"
        );
    }
}
