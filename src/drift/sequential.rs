//! Sequential change detection on a stream of per-pair errors: the
//! Page–Hinkley test for an increase of the mean (the concept-drift channel).

/// Page–Hinkley test for an increase of the mean of a stream.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PageHinkley {
    delta: f64,
    n: u64,
    mean: f64,
    cum: f64,
    min: f64,
}

impl PageHinkley {
    pub fn new(delta: f64) -> Self {
        PageHinkley {
            delta,
            n: 0,
            mean: 0.0,
            cum: 0.0,
            min: 0.0,
        }
    }
    /// Adds one value; true when it set a new minimum of the cumulative
    /// deviation (a rise, if one comes, is made of the values after it).
    pub fn update(&mut self, x: f64) -> bool {
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        self.cum += x - self.mean - self.delta;
        let lower = self.cum < self.min;
        if lower {
            self.min = self.cum;
        }
        lower
    }
    /// The test statistic: how far the cumulative deviation rose above its minimum.
    pub fn statistic(&self) -> f64 {
        self.cum - self.min
    }
    pub fn reset(&mut self) {
        *self = PageHinkley::new(self.delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_hinkley_rises_on_a_shift_and_stays_low_without() {
        let mut ph = PageHinkley::new(0.005);
        let mut x = 0u64;
        let mut noise = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..20_000 {
            ph.update(0.16 + 0.1 * (noise() - 0.5));
        }
        assert!(ph.statistic() < 5.0, "{}", ph.statistic());
        for _ in 0..2_000 {
            ph.update(0.22 + 0.1 * (noise() - 0.5));
        }
        assert!(ph.statistic() > 50.0, "{}", ph.statistic());
    }
}
