//! Every test the monitor runs, by name: one typed list, so the engine, the
//! quality monitor and the config agree on names and tiers without matching
//! strings. The names are those alerts and the API carry (`Alert.test`).

use std::fmt;

use crate::config::{TestsConfig, Tier};

/// One test of the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Test {
    // input and prediction drift
    Psi,
    Ks,
    JensenShannon,
    Wasserstein,
    TotalVariation,
    /// Gates significance for categories; its statistic grows with n, so it has no tier.
    ChiSquare,
    // data quality
    NullRate,
    TypeViolation,
    NewCategoryShare,
    // model quality, once outcomes join
    AccuracyDrop,
    AucDrop,
    LogLossRise,
    BrierRise,
    CalibrationErrorRise,
    MaeRise,
    LabelCoverageDrop,
    /// Sequential change detection on the per-pair error stream (concept drift).
    PageHinkley,
    /// No tiered test ran (an evaluation without a leading test).
    None,
}

impl Test {
    /// The name alerts, the API and the config use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Test::Psi => "psi",
            Test::Ks => "ks",
            Test::JensenShannon => "jensen_shannon",
            Test::Wasserstein => "wasserstein",
            Test::TotalVariation => "total_variation",
            Test::ChiSquare => "chi_square",
            Test::NullRate => "null_rate",
            Test::TypeViolation => "type_violation",
            Test::NewCategoryShare => "new_category_share",
            Test::AccuracyDrop => "accuracy_drop",
            Test::AucDrop => "auc_drop",
            Test::LogLossRise => "log_loss_rise",
            Test::BrierRise => "brier_rise",
            Test::CalibrationErrorRise => "calibration_error_rise",
            Test::MaeRise => "mae_rise",
            Test::LabelCoverageDrop => "label_coverage_drop",
            Test::PageHinkley => "page_hinkley",
            Test::None => "none",
        }
    }

    /// The test's warning and critical tiers under `[tests]` (infinite for
    /// tests that set no tier: chi-square, none).
    pub fn tier(self, t: &TestsConfig) -> Tier {
        match self {
            Test::Psi => t.psi,
            Test::Ks => t.ks,
            Test::JensenShannon => t.jensen_shannon,
            Test::Wasserstein => t.wasserstein,
            Test::TotalVariation => t.total_variation,
            Test::NullRate => t.null_rate,
            Test::TypeViolation => t.type_violation,
            Test::NewCategoryShare => t.new_category_share,
            Test::AccuracyDrop => t.accuracy_drop,
            Test::AucDrop => t.auc_drop,
            Test::LogLossRise => t.log_loss_rise,
            Test::BrierRise => t.brier_rise,
            Test::CalibrationErrorRise => t.calibration_error_rise,
            Test::MaeRise => t.mae_rise,
            Test::LabelCoverageDrop => t.label_coverage_drop,
            Test::PageHinkley => Tier::new(t.page_hinkley.lambda, t.page_hinkley.lambda),
            Test::ChiSquare | Test::None => Tier::new(f64::INFINITY, f64::INFINITY),
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One evaluated test: its statistic against its tiers, and its p-value
/// where it has one (the FDR gate takes a channel's smallest).
#[derive(Clone, Debug)]
pub struct Scored {
    pub test: Test,
    pub statistic: f64,
    pub tier: Tier,
    pub p_value: Option<f64>,
}

impl Scored {
    /// A test scored against its own tiers from `[tests]`.
    pub fn new(test: Test, statistic: f64, p_value: Option<f64>, t: &TestsConfig) -> Self {
        Scored {
            test,
            statistic,
            tier: test.tier(t),
            p_value,
        }
    }
}
