//! The registry of what the engine has met: models, their features (and
//! outputs) and slice values, each given a small integer id once, with the
//! cardinality caps and the `__other__` bucket that keep a flood of new names
//! from turning into memory. The engine routes events through it; baselines,
//! the quality monitor and telemetry read its types.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::codec::same;
use crate::config::Config;
use crate::sketch::ValueKind;

/// Name of the overflow category and slice value once a cap is reached.
pub const OTHER: &str = "__other__";
/// Values that met a cardinality cap (per model): what a flood of new slice
/// values, categories or feature names turned into instead of memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overflow {
    /// Slice values past `series.max_slice_values`, counted in `__other__`.
    pub slice_values: u64,
    /// Slice values of dimensions past the 16 tracked per model: overall only.
    pub slice_dimensions: u64,
    /// Values of features past `series.max_features`: not tracked.
    pub features: u64,
    /// Categories past `series.max_categories`, counted in `__other__`.
    pub categories: u64,
}

impl Overflow {
    pub fn add(&mut self, o: &Overflow) {
        self.slice_values += o.slice_values;
        self.slice_dimensions += o.slice_dimensions;
        self.features += o.features;
        self.categories += o.categories;
    }
    pub fn total(&self) -> u64 {
        self.slice_values + self.slice_dimensions + self.features + self.categories
    }
}

/// Reserved feature ids of a model's outputs.
pub(crate) const PREDICTION: u32 = 0;
pub(crate) const SCORE: u32 = 1;
/// Slice dimensions tracked per model.
pub const MAX_SLICE_DIMENSIONS: usize = 16;
pub(crate) const NO_SERIES: u32 = u32::MAX;

/// What a feature is to its model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Input,
    Prediction,
    Score,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Feature {
    pub name: String,
    pub role: Role,
    pub kind: Option<ValueKind>,
    categories: FxHashMap<Box<str>, u32>,
    pub category_names: Vec<String>,
    /// The event generation of its model that last carried it, while the
    /// engine looks an event up itself (`Engine::plan`): what it means
    /// lasts one event, so a checkpoint holds 0 (the field is the format's;
    /// an event looked up beside the engine, `engine::resolve`, leaves it).
    #[serde(serialize_with = "as_zero")]
    pub(crate) seen_gen: u64,
}

fn as_zero<S: serde::Serializer>(_: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(0)
}

impl Feature {
    pub(crate) fn new(name: &str, role: Role) -> Self {
        Feature {
            name: name.to_string(),
            role,
            kind: None,
            categories: FxHashMap::default(),
            category_names: vec![OTHER.to_string()],
            seen_gen: 0,
        }
    }

    /// Category id of `s` if it has one (never the overflow's).
    #[inline]
    pub(crate) fn find_category(&self, s: &str) -> Option<u32> {
        self.categories.get(s).copied()
    }

    /// Category id of `s`; id 0 is the shared overflow past `cap` categories.
    pub fn category_id(&mut self, s: &str, cap: usize) -> u32 {
        if let Some(&id) = self.categories.get(s) {
            return id;
        }
        if self.categories.len() >= cap {
            return 0;
        }
        let id = self.category_names.len() as u32;
        self.categories.insert(s.into(), id);
        self.category_names.push(s.to_string());
        id
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Dim {
    values: FxHashMap<Box<str>, u32>,
    /// Slot of each value id; value id 0 is the overflow.
    slots: Vec<u32>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub id: String,
    pub version: Option<String>,
    pub features: Vec<Feature>,
    pub(crate) feature_ids: FxHashMap<Box<str>, u32>,
    dims: Vec<Dim>,
    dim_ids: FxHashMap<Box<str>, u32>,
    /// Slot 0 is the overall series; others are (dimension, value).
    pub slots: Vec<Option<(String, String)>>,
    /// Series id per feature and slot.
    series_of: SeriesIds,
    pub(crate) event_gen: u64,
    /// Values that met a cap: sent to `__other__` or not tracked.
    pub overflow: Overflow,
    /// Ids given (features, slots, series, categories) and kinds learned
    /// since it was made or restored: how much a copy of it made before
    /// lacks (`engine::resolve`).
    #[serde(skip)]
    pub(crate) changes: u64,
    /// Features added and kinds learned since it was made or restored:
    /// what decides which of its features an event that lacks them writes
    /// a null to. An event's ids looked up in a copy of the model with
    /// another layout are looked up again (`engine::resolve`).
    #[serde(skip)]
    pub(crate) layout: u64,
    /// The feature id the last event had at each place (up to
    /// [`ORDER_PLACES`]; `u32::MAX`: none): a model's events carry their
    /// features in the same order, so a name is compared with the one
    /// there before it is hashed.
    #[serde(skip)]
    order: Vec<u32>,
    /// The same for its slice dimensions: the dimension id the last event
    /// had at each place of its slices.
    #[serde(skip)]
    dim_order: Vec<u32>,
}

/// What a copy of a model knows of one of an event's names, without
/// registering it (`engine::resolve`, on the thread that decoded the event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known<T> {
    Id(T),
    /// Passed over, as the model itself would: an ignored feature, a slice
    /// dimension not tracked.
    Skip,
    /// New to the copy, or past a cap: the model itself must see it.
    Unknown,
}

/// Whether slice dimension `dim` is tracked (`series.slice_dimensions`,
/// empty: all).
fn tracked(cfg: &crate::config::SeriesConfig, dim: &str) -> bool {
    cfg.slice_dimensions.is_empty() || cfg.slice_dimensions.iter().any(|x| x == dim)
}

/// Whether feature `name` is passed over (`series.ignore_features`).
fn ignored(cfg: &crate::config::SeriesConfig, name: &str) -> bool {
    cfg.ignore_features.iter().any(|f| f == name)
}

/// Places of an event's features [`Model::feature_at`] remembers.
const ORDER_PLACES: usize = 256;

/// Series ids by slot, then feature (`slot × features + feature`): an
/// event's few slots are each a row of its features side by side, a cache
/// line or two, where rows per feature had taken a line for each feature
/// and slot (`Engine::series_id`, ~5 % of the engine's thread at 60
/// series). Written in a checkpoint as rows per feature, as it always was.
#[derive(Clone)]
pub(crate) struct SeriesIds {
    features: usize,
    ids: Vec<u32>,
}

impl SeriesIds {
    fn new(features: usize, slots: usize) -> SeriesIds {
        SeriesIds {
            features,
            ids: vec![NO_SERIES; features * slots],
        }
    }

    fn slots(&self) -> usize {
        self.ids.len().checked_div(self.features).unwrap_or(0)
    }

    #[inline]
    fn get(&self, f: u32, slot: u32) -> u32 {
        self.ids[slot as usize * self.features + f as usize]
    }

    fn set(&mut self, f: u32, slot: u32, sid: u32) {
        self.ids[slot as usize * self.features + f as usize] = sid;
    }

    /// Each slot's row a feature longer.
    fn add_feature(&mut self) {
        let (old, slots) = (self.features, self.slots());
        self.features += 1;
        let mut ids = vec![NO_SERIES; self.features * slots];
        for (row, from) in ids
            .chunks_mut(self.features)
            .zip(self.ids.chunks(old.max(1)))
        {
            row[..old].copy_from_slice(&from[..old]);
        }
        self.ids = ids;
    }

    fn add_slot(&mut self) {
        self.ids.resize(self.ids.len() + self.features, NO_SERIES);
    }
}

impl serde::Serialize for SeriesIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let slots = self.slots();
        s.collect_seq((0..self.features).map(|f| {
            (0..slots)
                .map(|slot| self.ids[slot * self.features + f])
                .collect::<Vec<u32>>()
        }))
    }
}

impl<'de> serde::Deserialize<'de> for SeriesIds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows = Vec::<Vec<u32>>::deserialize(d)?;
        let slots = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != slots) {
            return Err(serde::de::Error::custom(
                "series ids: every feature needs a series id (or none) for each slot",
            ));
        }
        let mut ids = SeriesIds::new(rows.len(), slots);
        for (f, row) in rows.iter().enumerate() {
            for (slot, &sid) in row.iter().enumerate() {
                ids.set(f as u32, slot as u32, sid);
            }
        }
        Ok(ids)
    }
}

impl Model {
    pub(crate) fn new(id: &str) -> Self {
        Model {
            id: id.to_string(),
            version: None,
            features: vec![
                Feature::new("prediction", Role::Prediction),
                Feature::new("score", Role::Score),
            ],
            feature_ids: FxHashMap::default(),
            dims: Vec::new(),
            dim_ids: FxHashMap::default(),
            slots: vec![None],
            series_of: SeriesIds::new(2, 1),
            event_gen: 0,
            overflow: Overflow::default(),
            changes: 0,
            layout: 0,
            order: Vec::new(),
            dim_order: Vec::new(),
        }
    }

    /// The series of feature `f` in slot `slot` ([`NO_SERIES`]: none yet).
    #[inline]
    pub(crate) fn series_at(&self, f: u32, slot: u32) -> u32 {
        self.series_of.get(f, slot)
    }

    /// The series of each feature in slot `slot` (by feature id), if the
    /// slot is the model's.
    #[inline]
    pub(crate) fn series_row(&self, slot: u32) -> Option<&[u32]> {
        let n = self.series_of.features;
        self.series_of
            .ids
            .get(slot as usize * n..(slot as usize + 1) * n)
    }

    /// Sets the series of feature `f` in slot `slot`.
    pub(crate) fn set_series(&mut self, f: u32, slot: u32, sid: u32) {
        self.series_of.set(f, slot, sid);
        self.changes += 1;
    }

    /// Feature `f` learned its kind (its first value, or its baseline).
    pub(crate) fn kind_learned(&mut self) {
        self.changes += 1;
        self.layout += 1;
    }

    /// [`Model::feature`] for the feature at place `i` of an event: the
    /// feature the last event had there, if the names are the same.
    #[inline]
    pub(crate) fn feature_at(&mut self, i: usize, name: &str, cfg: &Config) -> Option<u32> {
        if let Some(&id) = self.order.get(i)
            && let Some(f) = self.features.get(id as usize)
            && same(&f.name, name)
        {
            return Some(id);
        }
        let id = self.feature(name, cfg);
        if i < ORDER_PLACES {
            if self.order.len() <= i {
                self.order.resize(i + 1, u32::MAX);
            }
            self.order[i] = id.unwrap_or(u32::MAX);
        }
        id
    }

    /// [`Model::feature`] without registering anything or counting.
    #[inline]
    pub(crate) fn known_feature(
        &self,
        name: &str,
        cfg: &crate::config::SeriesConfig,
    ) -> Known<u32> {
        match self.feature_ids.get(name) {
            Some(&id) => Known::Id(id),
            None if ignored(cfg, name) => Known::Skip,
            None => Known::Unknown,
        }
    }

    /// The id of feature `name`, registered on first sight (None: ignored or past the cap).
    pub(crate) fn feature(&mut self, name: &str, cfg: &Config) -> Option<u32> {
        if let Some(&id) = self.feature_ids.get(name) {
            return Some(id);
        }
        if ignored(&cfg.series, name) {
            return None;
        }
        if self.features.len() - 2 >= cfg.series.max_features {
            self.overflow.features += 1;
            return None;
        }
        let id = self.features.len() as u32;
        self.features.push(Feature::new(name, Role::Input));
        self.feature_ids.insert(name.into(), id);
        self.series_of.add_feature();
        self.changes += 1;
        self.layout += 1;
        Some(id)
    }

    /// The slot of slice `dim=value`, registered on first sight (None: an
    /// untracked dimension; past the value cap: the dimension's `__other__`).
    pub(crate) fn slot(&mut self, dim: &str, value: &str, cfg: &Config) -> Option<u32> {
        self.slot_in(usize::MAX, dim, value, cfg)
            .map(|(slot, _)| slot)
    }

    /// [`Model::slot`] of an event's slice at place `i` (`usize::MAX`: not
    /// remembered), with whether the slot is one of the carrier's
    /// ([`Model::carrier_slots`]). The dimension is compared with the one
    /// the model's last event had there before it is hashed.
    #[inline]
    pub(crate) fn slot_in(
        &mut self,
        i: usize,
        dim: &str,
        value: &str,
        cfg: &Config,
    ) -> Option<(u32, bool)> {
        let known = self
            .dim_order
            .get(i)
            .copied()
            .filter(|&d| self.is_dim(d, dim));
        let d = match known.or_else(|| self.dim_ids.get(dim).copied()) {
            Some(d) => {
                if i < ORDER_PLACES && known.is_none() {
                    if self.dim_order.len() <= i {
                        self.dim_order.resize(i + 1, u32::MAX);
                    }
                    self.dim_order[i] = d;
                }
                d as usize
            }
            None => {
                if !tracked(&cfg.series, dim) {
                    return None;
                }
                if self.dims.len() >= MAX_SLICE_DIMENSIONS {
                    self.overflow.slice_dimensions += 1;
                    return None;
                }
                self.dim_ids.insert(dim.into(), self.dims.len() as u32);
                self.dims.push(Dim {
                    values: FxHashMap::default(),
                    slots: Vec::new(),
                });
                let overflow = self.new_slot(dim, OTHER);
                self.dims.last_mut()?.slots.push(overflow);
                self.dims.len() - 1
            }
        };
        let carrier = d == 0;
        if let Some(&v) = self.dims[d].values.get(value) {
            return Some((self.dims[d].slots[v as usize], carrier));
        }
        if self.dims[d].values.len() >= cfg.series.max_slice_values {
            self.overflow.slice_values += 1;
            return Some((self.dims[d].slots[0], carrier));
        }
        let slot = self.new_slot(dim, value);
        let dm = &mut self.dims[d];
        dm.values.insert(value.into(), dm.slots.len() as u32);
        dm.slots.push(slot);
        Some((slot, carrier))
    }

    /// [`Model::slot_in`] without registering anything or counting: the
    /// slot of `dim=value` and whether it is the carrier's, with the
    /// dimension's id (`dim_hint`: the one an event of the model had at
    /// this place, compared before the name is hashed). `Skip`: a dimension
    /// not tracked, which `slot_in` would pass over too; `Unknown`: a name
    /// or a value `slot_in` would register, or one past a cap it would count.
    pub(crate) fn known_slot(
        &self,
        dim_hint: u32,
        dim: &str,
        value: &str,
        cfg: &crate::config::SeriesConfig,
    ) -> (Known<(u32, bool)>, u32) {
        let d = if self.is_dim(dim_hint, dim) {
            dim_hint
        } else {
            match self.dim_ids.get(dim) {
                Some(&d) => d,
                None => {
                    let known = if tracked(cfg, dim) {
                        Known::Unknown
                    } else {
                        Known::Skip
                    };
                    return (known, u32::MAX);
                }
            }
        };
        let dm = &self.dims[d as usize];
        match dm.values.get(value) {
            Some(&v) => (Known::Id((dm.slots[v as usize], d == 0)), d),
            None => (Known::Unknown, d),
        }
    }

    /// Whether dimension `d` is named `dim` (a dimension's name is its
    /// `__other__` slot's).
    #[inline]
    fn is_dim(&self, d: u32, dim: &str) -> bool {
        self.dims
            .get(d as usize)
            .and_then(|dm| self.slots.get(*dm.slots.first()? as usize))
            .is_some_and(|s| s.as_ref().is_some_and(|(name, _)| same(name, dim)))
    }

    /// The slots of the carrier, the model's first slice dimension (its
    /// `__other__` and every value; none before it has one). Every event
    /// that names the dimension is in exactly one of them (a key is given
    /// once, `event::check_unique`), so the overall series' open bucket is
    /// the merge of theirs and of the events without it: only those are
    /// written to the overall series as they come, the rest are merged in
    /// when the bucket closes (`Engine::close_bucket`).
    pub(crate) fn carrier_slots(&self) -> &[u32] {
        self.dims.first().map_or(&[], |d| &d.slots)
    }

    fn new_slot(&mut self, dim: &str, value: &str) -> u32 {
        self.changes += 1;
        self.slots.push(Some((dim.to_string(), value.to_string())));
        self.series_of.add_slot();
        (self.slots.len() - 1) as u32
    }

    pub fn slice_map(&self, slot: u32) -> BTreeMap<String, String> {
        match &self.slots[slot as usize] {
            Some((d, v)) => BTreeMap::from([(d.clone(), v.clone())]),
            None => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Looking a feature up by its place in the event gives what looking
        /// it up by name gives — the same ids, the same overflow counts —
        /// whatever the events' orders, ignored names and cap.
        #[test]
        fn a_place_gives_what_the_name_gives(
            events in proptest::collection::vec(
                proptest::collection::vec(0usize..7, 0..6), 1..40),
        ) {
            let names = ["amount", "age", "skip_me", "device", "prediction", "country", "age2"];
            let mut cfg = Config::default();
            cfg.series.max_features = 4;
            cfg.series.ignore_features = vec!["skip_me".into()];
            let (mut by_place, mut by_name) = (Model::new("m"), Model::new("m"));
            for ev in &events {
                for (i, &n) in ev.iter().enumerate() {
                    prop_assert_eq!(by_place.feature_at(i, names[n], &cfg), by_name.feature(names[n], &cfg));
                }
            }
            prop_assert_eq!(by_place.overflow.features, by_name.overflow.features);
            prop_assert_eq!(by_place.features.len(), by_name.features.len());
        }

        /// The same for slices: a dimension found by its place gives the
        /// slot, carrier and overflow its name gives, whatever the order
        /// of the dimensions, untracked ones and the caps.
        #[test]
        fn a_slice_place_gives_what_the_name_gives(
            events in proptest::collection::vec(
                proptest::collection::vec((0usize..5, 0usize..4), 0..4), 1..40),
        ) {
            let dims = ["region", "channel", "untracked", "shop", "regio"];
            let mut cfg = Config::default();
            cfg.series.slice_dimensions = vec!["region".into(), "channel".into(), "shop".into(), "regio".into()];
            cfg.series.max_slice_values = 2;
            let (mut by_place, mut by_name) = (Model::new("m"), Model::new("m"));
            for ev in &events {
                for (i, &(d, v)) in ev.iter().enumerate() {
                    let value = format!("v{v}");
                    prop_assert_eq!(
                        by_place.slot_in(i, dims[d], &value, &cfg),
                        by_name.slot_in(usize::MAX, dims[d], &value, &cfg)
                    );
                }
            }
            prop_assert_eq!(by_place.overflow.slice_values, by_name.overflow.slice_values);
            prop_assert_eq!(&by_place.slots, &by_name.slots);
        }

        /// A series set is the one read back, and the one a checkpoint
        /// writes in its row per feature, whatever features and slots come
        /// between (each slot's row grows, rows are added) and after a
        /// checkpoint's round trip.
        #[test]
        fn a_series_set_is_the_one_read_back(
            ops in proptest::collection::vec((0u8..4, 0usize..6, 0usize..5), 1..80),
        ) {
            let mut cfg = Config::default();
            cfg.series.slice_dimensions = vec!["region".into()];
            let mut m = Model::new("m");
            let mut set: std::collections::HashMap<(u32, u32), u32> = Default::default();
            for (n, &(op, a, b)) in ops.iter().enumerate() {
                match op {
                    0 => {
                        m.feature(&format!("f{a}"), &cfg);
                    }
                    1 => {
                        m.slot("region", &format!("r{b}"), &cfg);
                    }
                    2 => {
                        let f = (a % m.features.len()) as u32;
                        let slot = (b % m.slots.len()) as u32;
                        m.set_series(f, slot, n as u32);
                        set.insert((f, slot), n as u32);
                    }
                    _ => {
                        let text = serde_json::to_string(&m).unwrap();
                        m = serde_json::from_str(&text).unwrap();
                    }
                }
                // and by feature, as a checkpoint writes them
                let rows: Vec<Vec<u32>> =
                    serde_json::from_value(serde_json::to_value(&m).unwrap()["series_of"].clone()).unwrap();
                prop_assert_eq!(rows.len(), m.features.len());
                for f in 0..m.features.len() as u32 {
                    for slot in 0..m.slots.len() as u32 {
                        let want = set.get(&(f, slot)).copied().unwrap_or(NO_SERIES);
                        prop_assert_eq!(m.series_at(f, slot), want);
                        prop_assert_eq!(rows[f as usize][slot as usize], want);
                    }
                }
            }
        }
    }
}
