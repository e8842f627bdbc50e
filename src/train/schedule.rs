//! Learning-rate schedule: linear warmup, then cosine decay to zero.
//!
//! The same curve as transformers' `get_cosine_schedule_with_warmup` (which
//! TRL uses for the paper's runs), so a step index means the same thing here
//! as there: step 0 is the first optimiser step.

/// lr(step) = peak · step / warmup while step < warmup, then
/// peak · ½ (1 + cos(π · progress)) with progress = (step − warmup) / (total − warmup).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl CosineSchedule {
    /// Learning rate of optimiser step `step` (0-based). At `step = warmup`
    /// it is the peak, half-way through the decay it is peak / 2, and at
    /// `step = total_steps` it reaches 0.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        self.peak_lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_at_warmup_end_midpoint_and_end() {
        let s = CosineSchedule {
            peak_lr: 2e-3,
            warmup_steps: 10,
            total_steps: 110,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!(
            (s.lr(5) - 1e-3).abs() < 1e-15,
            "half-way through warmup: {}",
            s.lr(5)
        );
        assert!((s.lr(10) - 2e-3).abs() < 1e-15, "warmup end: {}", s.lr(10));
        assert!(
            (s.lr(60) - 1e-3).abs() < 1e-15,
            "decay midpoint: {}",
            s.lr(60)
        );
        // A quarter into the decay: ½(1 + cos(π/4)) of the peak.
        let quarter = 2e-3 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos());
        assert!((s.lr(35) - quarter).abs() < 1e-15, "quarter: {}", s.lr(35));
        assert!(s.lr(110).abs() < 1e-15, "end: {}", s.lr(110));
        assert!(
            s.lr(109) > 0.0 && s.lr(109) < s.lr(108),
            "decreasing to the end"
        );
    }

    #[test]
    fn no_warmup_starts_at_the_peak() {
        let s = CosineSchedule {
            peak_lr: 1.0,
            warmup_steps: 0,
            total_steps: 4,
        };
        assert_eq!(s.lr(0), 1.0);
        assert!((s.lr(2) - 0.5).abs() < 1e-15);
    }
}
