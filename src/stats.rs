//! Counters of a run, printed as the summary at the end of `replay`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::alert::{AlertKind, AlertState, Severity};
use crate::event::BadReason;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub predictions: u64,
    /// Predictions of candidate versions (canary, shadow): compared with
    /// production's, never counted in its series.
    pub candidate_predictions: u64,
    pub outcomes: u64,
    pub late: u64,
    pub bad: [u64; BadReason::ALL.len()],
    /// Event-time jumps accepted (see `engine::clock`).
    pub time_jumps: u64,
    pub series: u64,
    /// Of them, dormant (`engine::Series::settled`), filled in when a run
    /// ends (not kept in a checkpoint: a restored series is awake).
    #[serde(skip)]
    pub dormant_series: Option<u64>,
    pub buckets_closed: u64,
    /// Channels evaluated (drift and quality, one each per series and
    /// watermark); a settled series (below `min_samples`, nothing pending:
    /// `engine::Series::settled`) is not evaluated and not counted.
    pub evaluations: u64,
    pub alerts: BTreeMap<(AlertKind, Severity, AlertState), u64>,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// The join's counters, filled in when a run ends.
    pub join: Option<crate::join::JoinStats>,
    /// Values that met a cardinality cap, filled in when a run ends.
    pub overflow: Option<crate::registry::Overflow>,
}

impl Stats {
    #[inline]
    pub fn see_time(&mut self, t: i64) {
        self.min_time = Some(self.min_time.map_or(t, |m| m.min(t)));
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
    }

    pub fn count_bad(&mut self, r: BadReason) {
        self.bad[r.index()] += 1;
    }

    pub fn bad_total(&self) -> u64 {
        self.bad.iter().sum()
    }

    pub fn count_alert(&mut self, kind: AlertKind, severity: Severity, state: AlertState) {
        *self.alerts.entry((kind, severity, state)).or_default() += 1;
    }

    /// Events read, good or bad.
    pub fn events_read(&self) -> u64 {
        self.predictions + self.candidate_predictions + self.outcomes + self.late + self.bad_total()
    }

    /// Adds another engine's counters (the service's tasks, one engine each).
    pub fn add(&mut self, o: &Stats) {
        self.predictions += o.predictions;
        self.candidate_predictions += o.candidate_predictions;
        self.outcomes += o.outcomes;
        self.late += o.late;
        self.time_jumps += o.time_jumps;
        for (a, b) in self.bad.iter_mut().zip(&o.bad) {
            *a += b;
        }
        self.series += o.series;
        if let Some(n) = o.dormant_series {
            *self.dormant_series.get_or_insert(0) += n;
        }
        self.buckets_closed += o.buckets_closed;
        self.evaluations += o.evaluations;
        for (k, n) in &o.alerts {
            *self.alerts.entry(*k).or_default() += n;
        }
        self.min_time = self.min_time.into_iter().chain(o.min_time).min();
        self.max_time = self.max_time.into_iter().chain(o.max_time).max();
        if let Some(j) = &o.join {
            self.join.get_or_insert_default().add(j);
        }
        if let Some(v) = &o.overflow {
            self.overflow.get_or_insert_default().add(v);
        }
    }

    /// The human summary, several lines.
    pub fn summary(&self, seconds: f64) -> String {
        let mut s = String::new();
        let read = self.events_read();
        let rate = if seconds > 0.0 {
            read as f64 / seconds
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "events read: {read} ({} predictions, {} outcomes applied) in {seconds:.2}s, {:.0} events/s",
            self.predictions, self.outcomes, rate
        );
        let bad: Vec<String> = BadReason::ALL
            .iter()
            .filter(|r| self.bad[r.index()] > 0)
            .map(|r| format!("{r} {}", self.bad[r.index()]))
            .collect();
        let _ = writeln!(
            s,
            "bad events: {}{}",
            self.bad_total(),
            if bad.is_empty() {
                String::new()
            } else {
                format!(" ({})", bad.join(", "))
            }
        );
        if self.candidate_predictions > 0 {
            let _ = writeln!(
                s,
                "candidate predictions: {} (canary and shadow versions: compared with production, not counted as it)",
                self.candidate_predictions
            );
        }
        let _ = writeln!(s, "late events: {}", self.late);
        if self.time_jumps > 0 {
            let _ = writeln!(s, "event-time jumps accepted: {}", self.time_jumps);
        }
        if let Some(j) = &self.join {
            let _ = writeln!(
                s,
                "outcome join: {} joined, {} predictions expired unlabelled, {} evicted at the cap, {} outcomes unmatched, {} duplicates",
                j.joined, j.expired, j.evicted, j.unmatched, j.duplicates
            );
        }
        let _ = write!(s, "series tracked: {}", self.series);
        match self.dormant_series.filter(|&n| n > 0) {
            Some(n) => {
                let _ = writeln!(
                    s,
                    " ({n} dormant: their reference is below policy.min_reference_samples, so they can never alert; no current window kept)"
                );
            }
            None => s.push('\n'),
        }
        if let Some(o) = self.overflow.filter(|o| o.total() > 0) {
            let _ = writeln!(
                s,
                "capped: {} slice values counted as __other__, {} categories counted as __other__, {} values of features past max_features and {} of slice dimensions past 16 not tracked",
                o.slice_values, o.categories, o.features, o.slice_dimensions
            );
        }
        if self.alerts.is_empty() {
            let _ = writeln!(s, "alerts: none");
        } else {
            let total: u64 = self.alerts.values().sum();
            let _ = writeln!(s, "alerts: {total}");
            for ((k, sev, st), n) in &self.alerts {
                let _ = writeln!(
                    s,
                    "  {:<17} {:<9} {:<10} {n}",
                    k.as_str(),
                    sev.as_str(),
                    st.as_str()
                );
            }
        }
        s
    }
}

/// Counters of a service run (logged at shutdown, shown by the HTTP side).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ServiceStats {
    pub messages: u64,
    pub dead_lettered: u64,
    pub dlq_failures: u64,
    /// Dead letters too large for the producer or the topic: delivered with
    /// their value cut or left out.
    pub dlq_cut: u64,
    /// Dead letters not even their headers could be delivered for (counted, logged, passed).
    pub dlq_undeliverable: u64,
    pub alerts_published: u64,
    pub incidents_published: u64,
    pub actions_published: u64,
    pub alert_delivery_retries: u64,
    /// Messages delivered again at or below an offset already applied: skipped.
    pub redelivered: u64,
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// Size and write time of the last checkpoint.
    pub checkpoint_bytes: u64,
    pub checkpoint_ms: f64,
    /// Models seen in more than one task (`state_per = "partition"` with
    /// topics not keyed by model): their windows are split.
    pub split_models: u64,
    /// `kafka.routed`: the routers' idle markers read.
    pub idle_markers: u64,
    /// Partitions sought to their state's start again (its first message lay past it).
    pub reseeks: u64,
    /// Control events applied, and refused (not a control event: dead-lettered).
    pub control_applied: u64,
    pub control_refused: u64,
    /// Messages read ahead and decoded on the workers (`run --workers`).
    pub decoded_on_workers: u64,
    /// Messages applied with their task on a worker of its own
    /// (`kafka.state_per = "partition"`, `run --workers` 2 or more).
    pub applied_on_task_workers: u64,
}
