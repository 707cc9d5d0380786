//! Latency distributions the service reports, in HDR histograms
//! (`hdrhistogram`: integers over a wide range at fixed relative precision,
//! recorded without allocation): the time to process a poll's batch of one
//! topic, and an alert's latency from its window's end (event time) to its
//! publication (wall clock). Cumulative since start; `/api/status` and
//! `/metrics` read their quantiles.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant decimal digits kept (0.1 % relative error).
const DIGITS: u8 = 3;
/// The quantiles reported.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

pub struct Latency {
    /// Microseconds, 1 µs to 1 h.
    batch: Histogram<u64>,
    /// Milliseconds, 1 ms to 10 years (a backfill's alerts are old).
    alert: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            batch: Histogram::new_with_bounds(1, 3_600_000_000, DIGITS).expect("bounds are valid"),
            alert: Histogram::new_with_bounds(1, 10 * 365 * 86_400_000, DIGITS)
                .expect("bounds are valid"),
        }
    }
}

/// One distribution's summary, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub count: u64,
    /// (quantile, seconds), for each of [`QUANTILES`]; empty before the first value.
    pub seconds: Vec<(f64, f64)>,
}

/// What the snapshot carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyView {
    pub batch_processing: Quantiles,
    pub alert_latency: Quantiles,
}

impl Latency {
    /// One poll's batch of one topic took `d` to process.
    pub fn batch(&mut self, d: Duration) {
        self.batch.saturating_record((d.as_micros() as u64).max(1));
    }

    /// An alert was published `ms` after its window's end (clamped at 1 ms:
    /// an alert whose window ends in the future of the wall clock).
    pub fn alert(&mut self, ms: i64) {
        self.alert.saturating_record(ms.max(1) as u64);
    }

    pub fn view(&self) -> LatencyView {
        let q = |h: &Histogram<u64>, unit: f64| Quantiles {
            count: h.len(),
            seconds: if h.is_empty() {
                Vec::new()
            } else {
                QUANTILES
                    .iter()
                    .map(|&q| (q, h.value_at_quantile(q) as f64 * unit))
                    .collect()
            },
        };
        LatencyView {
            batch_processing: q(&self.batch, 1e-6),
            alert_latency: q(&self.alert, 1e-3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_the_precision_kept() {
        let mut l = Latency::default();
        assert_eq!(l.view(), LatencyView::default());
        for us in 1..=1000u64 {
            l.batch(Duration::from_micros(us * 100));
        }
        l.alert(-5);
        l.alert(90_000);
        let v = l.view();
        assert_eq!(v.batch_processing.count, 1000);
        let at = |q: &Quantiles, p: f64| q.seconds.iter().find(|x| x.0 == p).unwrap().1;
        // the median of 0.1 ms … 100 ms is 50 ms, the max 100 ms (0.1 %)
        assert!((at(&v.batch_processing, 0.5) - 0.05).abs() < 0.05 * 1e-3 + 1e-9);
        assert!((at(&v.batch_processing, 1.0) - 0.1).abs() < 0.1 * 1e-3 + 1e-9);
        assert_eq!(v.alert_latency.count, 2);
        assert_eq!(at(&v.alert_latency, 0.5), 0.001);
        assert!((at(&v.alert_latency, 1.0) - 90.0).abs() < 0.1);
    }
}
