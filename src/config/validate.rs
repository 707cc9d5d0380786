//! Relations between keys that types alone cannot express, each refused
//! with the key's name and why.

use std::time::Duration;

use crate::error::{Error, Result};

use super::{CheckpointStore, Config, StartFrom, StatePer};

impl Config {
    /// Checks relations between keys that types alone cannot express.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: String| {
            Err(Error::ConfigKey {
                key: key.into(),
                message,
            })
        };
        if let Err(e) = super::owners::Owners::new(&self.owners) {
            return bad("owners.rules", e);
        }
        let r = &self.release;
        for (key, v, lo, hi) in [
            ("release.alpha", r.alpha, 0.0, 0.5),
            ("release.worse_by", r.worse_by, 0.0, 10.0),
            ("release.critical_worse_by", r.critical_worse_by, 0.0, 10.0),
            ("release.fairness_margin", r.fairness_margin, 0.0, 1e9),
        ] {
            if !(v > lo && v <= hi) {
                return bad(key, format!("{v} is outside ({lo}, {hi}]"));
            }
        }
        if r.critical_worse_by < r.worse_by {
            return bad(
                "release.critical_worse_by",
                format!(
                    "{} is below release.worse_by ({})",
                    r.critical_worse_by, r.worse_by
                ),
            );
        }
        if r.min_pairs < 2 {
            return bad(
                "release.min_pairs",
                "needs at least 2 pairs per version".into(),
            );
        }
        for c in &self.retrain.causes {
            match c.as_str() {
                "covariate_shift" | "concept_drift" | "label_shift" | "unknown" => {}
                "pipeline" | "feature_change" => {
                    return bad(
                        "retrain.causes",
                        format!(
                            "`{c}` never triggers retraining: the data is broken or changed meaning, and training on it bakes the bug in (its incidents go to the pipeline owner)"
                        ),
                    );
                }
                _ => return bad("retrain.causes", format!("`{c}` is not a cause")),
            }
        }
        if !matches!(self.retrain.min_severity.as_str(), "warning" | "critical") {
            return bad(
                "retrain.min_severity",
                format!("`{}`: warning or critical", self.retrain.min_severity),
            );
        }
        // every duration within the range that works: event-time arithmetic
        // stays far from overflow, and a zero where zero means "refuse
        // everything" is refused here instead
        const DAY: Duration = Duration::from_secs(86_400);
        const YEAR: Duration = Duration::from_secs(365 * 86_400);
        let ms = Duration::from_millis;
        let w = &self.window;
        for (key, d, min, max) in [
            ("window.bucket", w.bucket, ms(1000), DAY),
            ("window.current", w.current, ms(0), 30 * DAY),
            (
                "window.allowed_lateness",
                w.allowed_lateness,
                ms(0),
                30 * DAY,
            ),
            ("window.evaluate_every", w.evaluate_every, ms(0), 30 * DAY),
            ("reference.warmup", self.reference.warmup, ms(0), YEAR),
            (
                "input.max_future_skew",
                self.input.max_future_skew,
                ms(1000),
                YEAR,
            ),
            ("join.ttl", self.join.ttl, ms(0), YEAR),
            ("join.orphan_hold", self.join.orphan_hold, ms(0), YEAR),
            ("policy.cooldown", self.policy.cooldown, ms(0), YEAR),
            (
                "release.evaluate_every",
                self.release.evaluate_every,
                ms(60_000),
                30 * DAY,
            ),
            (
                "release.promote_after",
                self.release.promote_after,
                ms(0),
                YEAR,
            ),
            ("retrain.persisted", self.retrain.persisted, ms(0), YEAR),
            ("retrain.cooldown", self.retrain.cooldown, ms(0), YEAR),
            ("retrain.every", self.retrain.every, ms(0), YEAR),
            (
                "retrain.train_window",
                self.retrain.train_window,
                ms(60_000),
                10 * YEAR,
            ),
            ("kafka.max_skew", self.kafka.max_skew, ms(1000), YEAR),
            ("kafka.idle_timeout", self.kafka.idle_timeout, ms(100), DAY),
            (
                "kafka.shutdown_timeout",
                self.kafka.shutdown_timeout,
                ms(1000),
                DAY,
            ),
            (
                "http.unhealthy_after",
                self.http.unhealthy_after,
                ms(1000),
                DAY,
            ),
            ("checkpoint.interval", self.checkpoint.interval, ms(0), DAY),
            (
                "route.commit_interval",
                self.route.commit_interval,
                ms(0),
                DAY,
            ),
            ("otel.interval", self.otel.interval, ms(0), DAY),
        ] {
            if d.0 < min || d.0 > max {
                return bad(
                    key,
                    format!(
                        "must be in {}..={}, got {d}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
            }
        }
        if !(1..=10_000).contains(&self.input.time_consensus) {
            return bad(
                "input.time_consensus",
                format!("must be in 1..=10000, got {}", self.input.time_consensus),
            );
        }
        if self.input.max_line_bytes < 1024 || self.input.max_line_bytes > 1 << 30 {
            return bad(
                "input.max_line_bytes",
                format!(
                    "must be in 1024..=1073741824, got {}",
                    self.input.max_line_bytes
                ),
            );
        }
        let bucket = w.bucket.as_millis();
        for (key, d) in [
            ("window.current", w.current),
            ("window.allowed_lateness", w.allowed_lateness),
            ("window.evaluate_every", w.evaluate_every),
            ("reference.warmup", self.reference.warmup),
        ] {
            if d.as_millis() % bucket != 0 {
                return bad(
                    key,
                    format!(
                        "must be a multiple of window.bucket ({}), got {d}",
                        w.bucket
                    ),
                );
            }
        }
        if w.current.as_millis() < bucket || w.evaluate_every.as_millis() < bucket {
            return bad(
                "window.current",
                "window.current and window.evaluate_every must be at least one bucket".into(),
            );
        }
        if w.current.as_millis() / bucket > 10_000 {
            return bad(
                "window.current",
                "more than 10000 buckets per window; use a wider window.bucket".into(),
            );
        }
        if self.reference.warmup.as_millis() < bucket {
            return bad("reference.warmup", "must be at least one bucket".into());
        }
        let s = &self.series;
        if !(2..=1000).contains(&s.bins) {
            return bad(
                "series.bins",
                format!("must be in 2..=1000, got {}", s.bins),
            );
        }
        if s.ks_points < s.bins || s.ks_points > 1000 {
            return bad(
                "series.ks_points",
                format!("must be in series.bins..=1000, got {}", s.ks_points),
            );
        }
        // finer than 0.1 % the sketch's bins outnumber what a bucket holds
        // (and the DDSketch crate panics near 1e-9); coarser than 10 % the
        // reference's edges merge
        if !(0.001..=0.1).contains(&s.quantile_accuracy) {
            return bad(
                "series.quantile_accuracy",
                format!("must be in 0.001..=0.1, got {}", s.quantile_accuracy),
            );
        }
        for (key, v) in [
            ("series.max_slice_values", s.max_slice_values),
            ("series.max_categories", s.max_categories),
            ("series.max_features", s.max_features),
            ("series.max_models", s.max_models),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        let t = &self.tests;
        for (key, tier) in [
            ("tests.psi", t.psi),
            ("tests.ks", t.ks),
            ("tests.jensen_shannon", t.jensen_shannon),
            ("tests.wasserstein", t.wasserstein),
            ("tests.total_variation", t.total_variation),
            ("tests.null_rate", t.null_rate),
            ("tests.type_violation", t.type_violation),
            ("tests.new_category_share", t.new_category_share),
            ("tests.accuracy_drop", t.accuracy_drop),
            ("tests.auc_drop", t.auc_drop),
            ("tests.log_loss_rise", t.log_loss_rise),
            ("tests.brier_rise", t.brier_rise),
            ("tests.calibration_error_rise", t.calibration_error_rise),
            ("tests.mae_rise", t.mae_rise),
            ("tests.label_coverage_drop", t.label_coverage_drop),
        ] {
            if !(tier.warning > 0.0
                && tier.warning.is_finite()
                && tier.critical >= tier.warning
                && tier.critical.is_finite())
            {
                return bad(
                    key,
                    format!(
                        "need 0 < warning <= critical, got warning={} critical={}",
                        tier.warning, tier.critical
                    ),
                );
            }
        }
        if t.scale_jump_tolerance.is_nan() || t.scale_jump_tolerance <= 1.0 {
            return bad(
                "tests.scale_jump_tolerance",
                "must be greater than 1".into(),
            );
        }
        let p = &self.policy;
        if !(p.fdr_q > 0.0 && p.fdr_q < 1.0) {
            return bad(
                "policy.fdr_q",
                format!("must be in (0, 1), got {}", p.fdr_q),
            );
        }
        if p.persistence_n == 0
            || p.persistence_n > 64
            || p.persistence_k == 0
            || p.persistence_k > p.persistence_n
        {
            return bad(
                "policy.persistence_k",
                format!(
                    "need 1 <= persistence_k <= persistence_n <= 64, got k={} n={}",
                    p.persistence_k, p.persistence_n
                ),
            );
        }
        if p.resolve_after == 0 {
            return bad("policy.resolve_after", "must be at least 1".into());
        }
        if !(p.hysteresis > 0.0 && p.hysteresis <= 1.0) {
            return bad(
                "policy.hysteresis",
                format!("must be in (0, 1], got {}", p.hysteresis),
            );
        }
        if p.max_exemplars > 20 {
            return bad("policy.max_exemplars", "at most 20".into());
        }
        if !(t.page_hinkley.delta >= 0.0
            && t.page_hinkley.lambda > 0.0
            && t.page_hinkley.lambda.is_finite())
        {
            return bad(
                "tests.page_hinkley",
                "need delta >= 0 and lambda > 0".into(),
            );
        }
        let j = &self.join;
        if j.ttl.as_millis() < bucket {
            return bad("join.ttl", "must be at least one bucket".into());
        }
        if j.max_waiting == 0 || j.max_orphans == 0 {
            return bad(
                "join.max_waiting",
                "join.max_waiting and join.max_orphans must be at least 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&j.score_threshold) {
            return bad(
                "join.score_threshold",
                format!("must be in [0, 1], got {}", j.score_threshold),
            );
        }
        let k = &self.kafka;
        for (key, v) in [
            ("kafka.bootstrap_servers", &k.bootstrap_servers),
            ("kafka.group_id", &k.group_id),
            ("kafka.predictions_topic", &k.predictions_topic),
            ("kafka.alerts_topic", &k.alerts_topic),
        ] {
            if v.trim().is_empty() {
                return bad(key, "must not be empty".into());
            }
        }
        for reserved in ["enable.auto.offset.store", "group.id", "bootstrap.servers"] {
            if k.librdkafka.contains_key(reserved) {
                return bad(
                    &format!("kafka.librdkafka.\"{reserved}\""),
                    "is set by driftline itself (use the kafka.* keys)".into(),
                );
            }
        }
        if self.otel.protocol != "http/protobuf" {
            return bad(
                "otel.protocol",
                format!(
                    "only \"http/protobuf\" is built in, got {:?}",
                    self.otel.protocol
                ),
            );
        }
        let e = &self.otel.endpoint;
        if !(e.is_empty() || e.starts_with("http://") || e.starts_with("https://")) {
            return bad(
                "otel.endpoint",
                format!(
                    "must be an http:// or https:// URL, got {:?}",
                    self.otel.endpoint
                ),
            );
        }
        if k.routed && k.state_per != StatePer::Partition {
            return bad(
                "kafka.routed",
                "needs kafka.state_per = \"partition\" (each routed partition number is one task)"
                    .into(),
            );
        }
        if k.routed
            && (self.route.predictions_topic.is_empty()
                || self.route.predictions_topic == k.predictions_topic)
        {
            return bad(
                "route.predictions_topic",
                "must name the routed topic, not be empty or the input topic".into(),
            );
        }
        if k.start_from == StartFrom::Checkpoint {
            if self.checkpoint.store == CheckpointStore::Dir && self.checkpoint.dir.is_empty() {
                return bad(
                    "checkpoint.dir",
                    "must not be empty with kafka.start_from = \"checkpoint\"".into(),
                );
            }
            if self.checkpoint.store == CheckpointStore::Kafka && self.checkpoint.topic.is_empty() {
                return bad(
                    "checkpoint.topic",
                    "must not be empty with checkpoint.store = \"kafka\"".into(),
                );
            }
            if self.checkpoint.interval.0 < Duration::from_millis(100) {
                return bad(
                    "checkpoint.interval",
                    format!("must be at least 100ms, got {}", self.checkpoint.interval),
                );
            }
        }
        Ok(())
    }
}
