//! Mean and 95% confidence interval of a handful of seeds.
//!
//! The CI half-width is `t_{0.975, n-1} · s / √n` with `s` the sample standard
//! deviation (n − 1 in the denominator): the Student t interval, right for the
//! 3–5 seeds a sweep affords. One seed has no interval (`ci95 = None`).

/// Mean, 95% CI half-width and sample count of one group of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    /// `None` when n = 1: one run has no spread to estimate.
    pub ci95: Option<f64>,
    pub n: usize,
}

impl Summary {
    /// Summarises `values`; `None` for an empty slice. Callers reject NaN/inf
    /// before this, where they can name the cell.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let ci95 = (n > 1).then(|| {
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            student_t_975(n - 1) * (var / n as f64).sqrt()
        });
        Some(Summary { mean, ci95, n })
    }

    /// `[mean − ci, mean + ci]`, or `None` without a CI.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.ci95.map(|ci| (self.mean - ci, self.mean + ci))
    }
}

/// t_{0.975, dof}: the two-sided 95% quantile of Student's t.
/// Exact table to 30 degrees of freedom; beyond, the Cornish–Fisher expansion
/// around the normal quantile (error < 1e-4 there).
pub fn student_t_975(dof: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    assert!(dof > 0, "Student t needs at least one degree of freedom");
    if dof <= TABLE.len() {
        return TABLE[dof - 1];
    }
    let z: f64 = 1.959_963_985;
    let v = dof as f64;
    z + (z.powi(3) + z) / (4.0 * v)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * v.powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hand_computed_t_interval() {
        // mean 2, s = 1, n = 3 → ci = 4.303 / √3
        let s = Summary::of(&[1.0, 2.0, 3.0]).unwrap();
        assert!((s.mean - 2.0).abs() < 1e-12);
        assert!((s.ci95.unwrap() - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(s.n, 3);
    }

    #[test]
    fn one_value_has_no_interval_and_none_has_no_summary() {
        let s = Summary::of(&[0.7]).unwrap();
        assert_eq!(s.ci95, None);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn t_quantile_joins_table_and_expansion_smoothly() {
        assert!((student_t_975(30) - 2.042).abs() < 1e-9);
        // published: t_{0.975,40} = 2.021, t_{0.975,120} = 1.980
        assert!((student_t_975(40) - 2.021).abs() < 1e-3);
        assert!((student_t_975(120) - 1.980).abs() < 1e-3);
    }
}
