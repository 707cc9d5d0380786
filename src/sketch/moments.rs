//! Sums that do not depend on the order of their terms: a double-double
//! accumulator (Knuth's TwoSum, and FMA for products) keeps ~106 bits, so
//! the same values added in any order round to the same `f64` (unless the
//! spread is below ~10^-10 of the mean, where even 106 bits cancel away; the
//! result is then still accurate, its last bits may differ). Partitions
//! interleave differently from run to run; a bucket's mean and variance must
//! not (Welford's update rounds differently for every order).

/// An unevaluated sum `hi + lo` with `|lo| <= ulp(hi) / 2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dd {
    hi: f64,
    lo: f64,
}

#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

#[inline]
fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

impl Dd {
    pub const ZERO: Dd = Dd { hi: 0.0, lo: 0.0 };

    #[inline]
    pub fn from_f64(x: f64) -> Dd {
        Dd { hi: x, lo: 0.0 }
    }

    #[inline]
    pub fn value(self) -> f64 {
        self.hi + self.lo
    }

    /// Adds one `f64`.
    #[inline]
    pub fn add_f64(&mut self, x: f64) {
        let (s, e) = two_sum(self.hi, x);
        let (hi, lo) = quick_two_sum(s, e + self.lo);
        *self = Dd { hi, lo };
    }

    /// Adds a double-double when both are ≥ 0: no cancellation, so the
    /// low parts can be summed without their own error term (~106 bits
    /// still).
    #[inline]
    pub fn add_nonnegative(&mut self, o: Dd) {
        let (s, e) = two_sum(self.hi, o.hi);
        let (hi, lo) = quick_two_sum(s, e + (self.lo + o.lo));
        *self = Dd { hi, lo };
    }

    /// The exact square of an `f64`.
    #[inline]
    pub fn square(x: f64) -> Dd {
        let p = x * x;
        Dd {
            hi: p,
            lo: x.mul_add(x, -p),
        }
    }

    /// Quotient by an `f64` (to ~106 bits).
    #[inline]
    pub fn div_f64(self, d: f64) -> Dd {
        let q1 = self.hi / d;
        // remainder self - q1 * d, exactly enough with FMA
        let p = q1 * d;
        let pe = q1.mul_add(d, -p);
        let (s, e) = two_sum(self.hi, -p);
        let r = s + (e - pe + self.lo);
        let q2 = r / d;
        let (hi, lo) = quick_two_sum(q1, q2);
        Dd { hi, lo }
    }
}

impl std::ops::Add for Dd {
    type Output = Dd;
    /// Sum of two double-doubles.
    #[inline]
    fn add(self, o: Dd) -> Dd {
        let (s, e) = two_sum(self.hi, o.hi);
        let (t, f) = two_sum(self.lo, o.lo);
        let (s, e) = quick_two_sum(s, e + t);
        let (hi, lo) = quick_two_sum(s, e + f);
        Dd { hi, lo }
    }
}

impl std::ops::Neg for Dd {
    type Output = Dd;
    #[inline]
    fn neg(self) -> Dd {
        Dd {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl std::ops::Mul for Dd {
    type Output = Dd;
    /// Product of two double-doubles (to ~106 bits).
    #[inline]
    fn mul(self, o: Dd) -> Dd {
        let p = self.hi * o.hi;
        let e = self.hi.mul_add(o.hi, -p);
        let e = e + (self.hi * o.lo + self.lo * o.hi);
        let (hi, lo) = quick_two_sum(p, e);
        Dd { hi, lo }
    }
}

/// Count, sum and sum of squares of numbers, independent of their order.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Moments {
    sum: Dd,
    sum_sq: Dd,
}

impl Moments {
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.sum.add_f64(x);
        self.sum_sq.add_nonnegative(Dd::square(x));
    }

    pub fn merge(&mut self, o: &Moments) {
        self.sum = self.sum + o.sum;
        self.sum_sq = self.sum_sq + o.sum_sq;
    }

    /// Mean of `n` values.
    pub fn mean(&self, n: u64) -> f64 {
        if n == 0 {
            0.0
        } else {
            self.sum.div_f64(n as f64).value()
        }
    }

    /// Sum of squared deviations from the mean of `n` values.
    pub fn m2(&self, n: u64) -> f64 {
        if n < 2 {
            return 0.0;
        }
        let c = (self.sum * self.sum).div_f64(n as f64);
        (self.sum_sq + -c).value().max(0.0)
    }

    /// From a mean and a sum of squared deviations of `n` values (a baseline file).
    pub fn from_mean_m2(n: u64, mean: f64, m2: f64) -> Moments {
        let sum = Dd::from_f64(mean) * Dd::from_f64(n as f64);
        let sum_sq = Dd::from_f64(m2) + sum * Dd::from_f64(mean);
        Moments { sum, sum_sq }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_order_gives_the_same_moments() {
        // values with a mean a thousand times their spread (amounts in cents
        // around 100,000, say)
        let xs = values(1e5, 100.0);
        let of = |v: &[f64]| {
            let mut m = Moments::default();
            v.iter().for_each(|&x| m.add(x));
            (m.mean(v.len() as u64), m.m2(v.len() as u64))
        };
        let forward = of(&xs);
        let mut rev = xs.clone();
        rev.reverse();
        let mut shuffled = xs.clone();
        shuffled.sort_by_key(|a| a.to_bits() % 97);
        assert_eq!(forward, of(&rev));
        assert_eq!(forward, of(&shuffled));
        // and the merge of halves in either order
        let (a, b) = xs.split_at(1234);
        let (mut ma, mut mb) = (Moments::default(), Moments::default());
        a.iter().for_each(|&x| ma.add(x));
        b.iter().for_each(|&x| mb.add(x));
        let mut ab = ma;
        ab.merge(&mb);
        let mut ba = mb;
        ba.merge(&ma);
        assert_eq!(ab.m2(5000), ba.m2(5000));
        assert_eq!(ab.m2(5000), forward.1);
    }

    proptest::proptest! {
        /// Squares summed with the shortcut round to what the full
        /// double-double sum gives, whatever their sizes.
        #[test]
        fn squares_sum_as_with_the_full_addition(
            xs in proptest::collection::vec(-1e12f64..1e12, 1..400),
            scale in -30i32..30,
        ) {
            let (mut quick, mut full) = (Dd::ZERO, Dd::ZERO);
            for x in &xs {
                let x = x * 2f64.powi(scale);
                quick.add_nonnegative(Dd::square(x));
                full = full + Dd::square(x);
            }
            proptest::prop_assert_eq!(quick.value(), full.value());
        }
    }

    fn values(at: f64, spread: f64) -> Vec<f64> {
        let mut x = 1u64;
        (0..5000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                at + ((x >> 11) as f64 / (1u64 << 53) as f64) * spread
            })
            .collect()
    }

    #[test]
    fn accurate_where_naive_sums_lose_everything() {
        // timestamps in ms with a spread of a second: sum of squares ~10^28,
        // squared deviations ~10^8
        let xs = values(1.767e12, 1000.0);
        let mut m = Moments::default();
        xs.iter().for_each(|&x| m.add(x));
        // the two-pass reference on the values less 1.767e12 (exact here)
        let shifted = xs.iter().map(|x| x - 1.767e12).sum::<f64>() / 5000.0;
        let mean = 1.767e12 + shifted;
        let m2: f64 = xs.iter().map(|x| (x - 1.767e12 - shifted).powi(2)).sum();
        let got = m.m2(5000);
        assert!((got - m2).abs() <= 1e-9 * m2, "{got} vs {m2}");
        assert!((m.mean(5000) - mean).abs() <= 1e-3);
    }

    #[test]
    fn a_baseline_mean_and_m2_round_trip() {
        let m = Moments::from_mean_m2(1000, 42.5, 12345.0);
        assert!((m.mean(1000) - 42.5).abs() < 1e-12);
        assert!((m.m2(1000) - 12345.0).abs() < 1e-6);
    }
}
