//! Mean and 95% confidence interval of a handful of seeds, inside the
//! metric's range.
//!
//! Two intervals, chosen by whether the metric is bounded ([`Interval`]):
//! - **Student t** for an unbounded metric (a mean gold reward):
//!   `mean ± t_{0.975, n-1} · s / √n`, `s` the sample standard deviation
//!   (n − 1 in the denominator), right for the 3–5 seeds a sweep affords.
//! - **Logit-scale Student t** for a metric bounded to `[lo, hi]` (GRA, an
//!   accuracy, a rate): each seed's value is mapped to `(v − lo) / (hi − lo)`,
//!   clamped to `[ε, 1 − ε]` so that a seed at the bound stays finite, and
//!   through `logit(p) = ln(p / (1 − p))`; the t interval of those logits is
//!   mapped back with the logistic function. The ends therefore lie inside
//!   `[lo, hi]` by construction, and shrink toward a bound the way a
//!   proportion's uncertainty does. A plain t interval over 3 seeds reaches
//!   below 0% (the bug this replaces).
//!
//! Why not a bootstrap over seeds and test prompts: the cells a report gets
//! hold each seed's metric, not its per-prompt outcomes, and a percentile
//! bootstrap over 3 seeds has only 10 distinct resample means, so its 95%
//! interval is little more than [min, max].
//!
//! One seed has no interval (`ci95 = None`).
use statrs::distribution::{ContinuousCDF, StudentsT};

/// How far inside `[0, 1]` a bounded value is clamped before its logit:
/// a GRA of exactly 0% or 100% (every prompt won) would otherwise map to ±∞.
pub const LOGIT_CLAMP: f64 = 1e-3;

/// Which interval a summary carries.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Interval {
    /// `mean ± t · s / √n`.
    StudentT,
    /// The t interval of the logits of `(v − lo) / (hi − lo)`, mapped back.
    LogitT { lo: f64, hi: f64 },
}

impl Interval {
    /// The logit interval for a metric with known bounds, Student t otherwise.
    pub fn for_range(range: Option<(f64, f64)>) -> Interval {
        match range {
            Some((lo, hi)) => Interval::LogitT { lo, hi },
            None => Interval::StudentT,
        }
    }

    /// One sentence for `report.md`: which interval the whiskers show.
    pub fn describe(&self, over: &str) -> String {
        match self {
            Interval::StudentT => format!(
                "95% CI: Student t over `{over}` (n − 1 degrees of freedom), mean ± t · s / √n"
            ),
            Interval::LogitT { lo, hi } => format!(
                "95% CI: Student t over `{over}` on the logit scale of the metric's range \
                 [{lo}, {hi}] (values clamped {LOGIT_CLAMP} inside it), mapped back, so \
                 it never leaves the range and is asymmetric near a bound"
            ),
        }
    }
}

/// Mean, 95% CI and sample count of one group of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    /// `(low, high)` ends of the 95% CI; `None` when n = 1: one run has no
    /// spread to estimate.
    pub ci95: Option<(f64, f64)>,
    pub n: usize,
}

impl Summary {
    /// Summarises `values` with the given interval; `None` for an empty
    /// slice. Callers reject NaN/inf before this, where they can name the cell.
    pub fn of(values: &[f64], interval: Interval) -> Option<Summary> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let ci95 = (n > 1).then(|| match interval {
            Interval::StudentT => {
                let half = t_half_width(values);
                (mean - half, mean + half)
            }
            Interval::LogitT { lo, hi } => logit_interval(values, mean, lo, hi),
        });
        Some(Summary { mean, ci95, n })
    }
}

/// `t_{0.975, n-1} · s / √n` of `values` (n ≥ 2).
fn t_half_width(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    student_t_975(values.len() - 1) * (var / n).sqrt()
}

/// The logit-scale t interval of `values` bounded to `[lo, hi]` (n ≥ 2).
///
/// The interval is centred on the mean logit, which is not quite the mean of
/// the values; where the clamp at a bound moves it past `mean` (every seed
/// at 100%), the interval is widened to include `mean`, the number the table
/// prints beside it.
fn logit_interval(values: &[f64], mean: f64, lo: f64, hi: f64) -> (f64, f64) {
    let width = hi - lo;
    let logit = |v: f64| {
        let p = ((v - lo) / width).clamp(LOGIT_CLAMP, 1.0 - LOGIT_CLAMP);
        (p / (1.0 - p)).ln()
    };
    let logistic = |x: f64| lo + width / (1.0 + (-x).exp());
    let logits: Vec<f64> = values.iter().map(|&v| logit(v)).collect();
    let centre = logits.iter().sum::<f64>() / logits.len() as f64;
    let half = t_half_width(&logits);
    (
        logistic(centre - half).min(mean),
        logistic(centre + half).max(mean),
    )
}

/// t_{0.975, dof}: the two-sided 95% quantile of Student's t (statrs).
pub fn student_t_975(dof: usize) -> f64 {
    assert!(dof > 0, "Student t needs at least one degree of freedom");
    StudentsT::new(0.0, 1.0, dof as f64)
        .expect("a positive number of degrees of freedom")
        .inverse_cdf(0.975)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hand_computed_t_interval() {
        // mean 2, s = 1, n = 3 → half-width 4.303 / √3
        let s = Summary::of(&[1.0, 2.0, 3.0], Interval::StudentT).unwrap();
        assert!((s.mean - 2.0).abs() < 1e-12);
        let (lo, hi) = s.ci95.unwrap();
        let half = 4.302_653 / 3f64.sqrt();
        assert!((lo - (2.0 - half)).abs() < 1e-5 && (hi - (2.0 + half)).abs() < 1e-5);
        assert_eq!(s.n, 3);
    }

    #[test]
    fn one_value_has_no_interval_and_none_has_no_summary() {
        let s = Summary::of(&[0.7], Interval::StudentT).unwrap();
        assert_eq!(s.ci95, None);
        assert!(Summary::of(&[], Interval::StudentT).is_none());
    }

    #[test]
    fn t_quantiles_match_published_tables() {
        // t_{0.975, dof} from any table: 1 → 12.706, 2 → 4.303, 4 → 2.776,
        // 30 → 2.042, 120 → 1.980
        for (dof, want) in [
            (1, 12.706),
            (2, 4.303),
            (4, 2.776),
            (30, 2.042),
            (120, 1.980),
        ] {
            assert!((student_t_975(dof) - want).abs() < 1e-3, "dof {dof}");
        }
    }

    #[test]
    fn logit_interval_worked_by_hand() {
        // GRA % of 3 seeds: 40, 50, 60 → p = 0.4, 0.5, 0.6; logits −l, 0, +l
        // with l = ln(1.5) = 0.405465; mean logit 0, s = l, so the half-width
        // is 4.302653 · l / √3 = 1.007229 and the ends are
        // 100 / (1 + e^{±1.007229}) = 26.75 and 73.25.
        let s = Summary::of(&[40.0, 50.0, 60.0], Interval::for_range(Some((0.0, 100.0)))).unwrap();
        let (lo, hi) = s.ci95.unwrap();
        assert!((lo - 26.753).abs() < 1e-2, "{lo}");
        assert!((hi - 73.247).abs() < 1e-2, "{hi}");
    }

    #[test]
    fn bounded_interval_stays_in_range_where_t_does_not() {
        // the case: three seeds near 0% spread widely
        let values = [2.0, 20.0, 5.0];
        let t = Summary::of(&values, Interval::StudentT).unwrap();
        assert!(t.ci95.unwrap().0 < 0.0, "the t interval leaves [0, 100]");
        let logit = Summary::of(&values, Interval::for_range(Some((0.0, 100.0)))).unwrap();
        let (lo, hi) = logit.ci95.unwrap();
        assert!(0.0 < lo && lo < logit.mean && logit.mean < hi && hi < 100.0);
        // every seed at a bound: finite, in range, and holding the mean
        for v in [0.0, 100.0] {
            let s = Summary::of(&[v, v, v], Interval::for_range(Some((0.0, 100.0)))).unwrap();
            let (lo, hi) = s.ci95.unwrap();
            assert!(lo.is_finite() && (0.0..=100.0).contains(&lo) && hi <= 100.0);
            assert!(lo <= v && v <= hi, "{v}: [{lo}, {hi}]");
        }
    }
}
