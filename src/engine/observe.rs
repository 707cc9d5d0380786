//! The engine's part of the service's telemetry snapshot: its counters,
//! watermark and every series' state (read once a second, never per event).

use crate::alert::Severity;
use crate::event::BadReason;
use crate::registry::Role;
use crate::telemetry::{SeriesView, Snapshot, TASK_SHIFT};

use super::Engine;

impl Engine {
    /// Adds one engine's part to a snapshot (the service's tasks, one engine
    /// each): counters summed, the slowest watermark, every series' view with
    /// an id that names its task.
    pub fn view_into(&self, task: usize, s: &mut Snapshot) {
        assert!(
            self.queued.is_empty(),
            "a snapshot with writes waiting: Engine::flush first"
        );
        let e = self;
        if let Some(w) = e.watermark() {
            s.watermark = Some(s.watermark.map_or(w, |x: i64| x.min(w)));
        }
        s.predictions += e.stats.predictions;
        s.outcomes += e.stats.outcomes;
        s.late += e.stats.late;
        for r in BadReason::ALL.iter() {
            *s.bad.entry(r.as_str()).or_default() += e.stats.bad[r.index()];
        }
        s.join.add(&e.quality.join.stats);
        s.join_waiting += e.quality.join.waiting() as u64;
        s.overflow.add(&e.overflow());
        s.dormant_series += e.dormant_series();
        for (&(k, sev, st), &n) in &e.stats.alerts {
            match s
                .alerts
                .iter_mut()
                .find(|a| (a.0, a.1, a.2) == (k, sev, st))
            {
                Some(a) => a.3 += n,
                None => s.alerts.push((k, sev, st, n)),
            }
        }
        let models = e.models();
        let applied = e.applied();
        s.series.extend(e.series().iter().enumerate().map(|(i, x)| {
            let m = &models[x.model as usize];
            let f = &m.features[x.feature as usize];
            let sev = [&x.drift, &x.quality]
                .iter()
                .filter_map(|c| c.episode.as_ref().map(|ep| ep.severity))
                .max();
            SeriesView {
                id: ((task as u32) << TASK_SHIFT) | i as u32,
                model: m.id.clone(),
                feature: f.name.clone(),
                role: role(f.role),
                slice: m.slots[x.slot as usize]
                    .as_ref()
                    .map(|(d, v)| format!("{d}={v}"))
                    .unwrap_or_default(),
                applied: applied[i],
                status: match sev {
                    Some(Severity::Critical) => "critical",
                    Some(Severity::Warning) => "warning",
                    None => "ok",
                },
                last: x.history.back().map(|p| p.view(&e.config().tests)),
            }
        }));
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Input => "input",
        Role::Prediction => "prediction",
        Role::Score => "score",
    }
}
