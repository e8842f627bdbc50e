//! What a metric's values can be: the range they live in (for intervals that
//! stay inside it) and the neutral value a figure marks with a dashed line
//! (GRA 50%: aligned and reference models equally good).
//!
//! Known metrics are listed here by name; a manifest can set or override both
//! for its table's main value (`[report] range = [0, 1]`, `neutral = 0.5`).
//! Values are in the metric's own unit, before the table's `scale`.

/// Range and neutral value of one metric, in its own unit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetricInfo {
    /// `(low, high)` bounds every value lies in; `None` when unbounded.
    pub range: Option<(f64, f64)>,
    /// The value meaning "no better than the reference / chance".
    pub neutral: Option<f64>,
}

/// A share of comparisons won, with 0.5 the coin flip.
const WIN_SHARE: MetricInfo = MetricInfo {
    range: Some((0.0, 1.0)),
    neutral: Some(0.5),
};

/// A share with no neutral value (how often two responses tie).
const SHARE: MetricInfo = MetricInfo {
    range: Some((0.0, 1.0)),
    neutral: None,
};

impl MetricInfo {
    /// The metrics the pipeline produces whose range is known:
    /// - `gra*` (`gra`, `gra_shared`, `gra_sft_vs_base`): a share of test
    ///   prompts won against a reference, ties counting ½ → [0, 1], neutral ½;
    /// - `weak_accuracy`, `agreement_*`, `win_rate*`: a share of binary
    ///   preferences matched → [0, 1], chance ½;
    /// - `tie_rate*`: a share of ties → [0, 1], no neutral value.
    ///
    /// Anything else (`gold_mean`, `train_seconds`) is unbounded.
    pub fn known(metric: &str) -> MetricInfo {
        if metric.starts_with("tie_rate") {
            SHARE
        } else if metric.starts_with("gra")
            || metric.starts_with("win_rate")
            || metric.starts_with("agreement")
            || metric == "weak_accuracy"
        {
            WIN_SHARE
        } else {
            MetricInfo::default()
        }
    }

    /// The same in a table's unit: both bounds and the neutral value times
    /// `scale` (a negative scale swaps the bounds).
    pub fn scaled(&self, scale: f64) -> MetricInfo {
        MetricInfo {
            range: self.range.map(|(lo, hi)| {
                let (a, b) = (lo * scale, hi * scale);
                (a.min(b), a.max(b))
            }),
            neutral: self.neutral.map(|v| v * scale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_bounded_rewards_are_not() {
        for m in ["gra", "gra_shared", "gra_sft_vs_base", "weak_accuracy"] {
            assert_eq!(MetricInfo::known(m), WIN_SHARE, "{m}");
        }
        assert_eq!(MetricInfo::known("tie_rate_shared").neutral, None);
        assert_eq!(MetricInfo::known("gold_mean"), MetricInfo::default());
        let pct = MetricInfo::known("gra").scaled(100.0);
        assert_eq!(pct.range, Some((0.0, 100.0)));
        assert_eq!(pct.neutral, Some(50.0));
    }
}
