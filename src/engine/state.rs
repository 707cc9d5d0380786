//! What the engine holds, out: the checkpointed [`EngineState`] (everything
//! but what the config and the baselines give again on restore), and a
//! baseline export of everything summarised so far.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use crate::alert::Alert;
use crate::baseline::{Baseline, BaselineFile, ModelBaseline, series_baseline};
use crate::config::Config;
use crate::incident::Incidents;
use crate::quality::monitor::QualityMonitor;
use crate::registry::Model;
use crate::stats::Stats;
use crate::window::RefState;

use super::clock::Clock;
use super::watermark::Watermark;
use super::{Engine, Series};

/// A checkpoint's engine state, owned (read back by [`Engine::restore`]).
/// Serialized with postcard, which writes a struct as its fields in order:
/// [`StateRef`] writes the same layout from borrowed fields, and a change of
/// either is a change of the checkpoint format.
#[derive(serde::Deserialize)]
pub struct EngineState {
    models: Vec<Model>,
    model_ids: FxHashMap<Box<str>, u32>,
    series: Vec<Series>,
    applied: Vec<u64>,
    first_open: Option<i64>,
    closed_any: bool,
    time: Watermark,
    clock: Clock,
    stats: Stats,
    quality: QualityMonitor,
    out: Vec<Alert>,
    incidents: Incidents,
    release: crate::release::Release,
}

/// [`EngineState`], borrowed from a live engine to be written.
#[derive(serde::Serialize)]
struct StateRef<'a> {
    models: &'a [Model],
    model_ids: &'a FxHashMap<Box<str>, u32>,
    series: &'a [Series],
    applied: &'a [u64],
    first_open: Option<i64>,
    closed_any: bool,
    time: &'a Watermark,
    clock: &'a Clock,
    stats: &'a Stats,
    quality: &'a QualityMonitor,
    out: &'a [Alert],
    incidents: &'a Incidents,
    release: &'a crate::release::Release,
}

impl Engine {
    /// The engine's state, serialized for a checkpoint: everything but what
    /// the config and the baselines give (those are supplied again on
    /// [`Engine::restore`]). Taken between events, so no alert is pending.
    pub fn save_state(&self) -> Result<Vec<u8>, postcard::Error> {
        assert!(
            self.queued.is_empty(),
            "a checkpoint with writes waiting: Engine::flush first"
        );
        postcard::to_allocvec(&StateRef {
            models: &self.models,
            model_ids: &self.model_ids,
            series: &self.series,
            applied: &self.applied,
            first_open: self.first_open,
            closed_any: self.closed_any,
            time: &self.time,
            clock: &self.clock,
            stats: &self.stats,
            quality: &self.quality,
            out: &self.out,
            incidents: &self.incidents,
            release: &self.release,
        })
    }

    /// An engine with the state [`Engine::save_state`] wrote, under `cfg`
    /// (which must shape state as the one it was written under: the
    /// checkpoint's config fingerprint says so).
    pub fn restore(
        cfg: Config,
        baselines: HashMap<String, Baseline>,
        bytes: &[u8],
    ) -> Result<Engine, postcard::Error> {
        let st: EngineState = postcard::from_bytes(bytes)?;
        let mut e = Engine::with_baselines(cfg, baselines);
        e.models = st.models;
        e.model_baselines = e
            .models
            .iter()
            .map(|m| e.baselines.get(&m.id).cloned())
            .collect();
        e.model_ids = st.model_ids;
        e.series = st.series;
        e.applied = st.applied;
        // a series restored keeps its window again until it settles
        e.asleep = vec![false; e.series.len()];
        e.first_open = st.first_open;
        e.closed_any = st.closed_any;
        e.time = st.time;
        e.clock = st.clock;
        e.stats = st.stats;
        e.quality = st.quality;
        e.out = st.out;
        e.incidents = st.incidents;
        e.release = st.release;
        Ok(e)
    }

    /// Everything summarised so far, one baseline per model, for
    /// `driftline baseline` (run with a warm-up longer than the input, so
    /// every series is still accumulating).
    pub fn export_baseline(&mut self) -> BaselineFile {
        self.finish();
        let start = self.stats.min_time.unwrap_or(0);
        let end = self.stats.max_time.map_or(0, |t| t + 1);
        let mut models: Vec<ModelBaseline> = self
            .models
            .iter()
            .map(|m| ModelBaseline {
                model_id: m.id.clone(),
                start_ms: start,
                end_ms: end,
                series: Vec::new(),
            })
            .collect();
        for s in &self.series {
            let sketch = match s.windows.reference() {
                RefState::WarmingUp { acc, .. } => acc,
                RefState::Pinned(r) => &r.sketch,
            };
            let model = &self.models[s.model as usize];
            let feature = &model.features[s.feature as usize];
            let slice = model.slots[s.slot as usize].clone();
            models[s.model as usize]
                .series
                .push(series_baseline(feature, slice, sketch));
        }
        models.sort_by(|a, b| a.model_id.cmp(&b.model_id));
        BaselineFile {
            format: crate::baseline::FORMAT,
            models,
        }
    }
}
