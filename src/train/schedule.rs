//! Learning-rate schedule: linear warmup, then a decay (cosine by default).
//!
//! The same curves as transformers' `get_{cosine,linear,constant}_schedule_with_warmup`
//! (TRL uses the cosine one for the paper's runs), so a step index means the
//! same thing here as there: step 0 is the first optimiser step.
pub use crate::spec::LrDecay;

/// lr(step) = peak · step / warmup while step < warmup, then peak · f(progress)
/// with progress = (step − warmup) / (total − warmup) and f = ½ (1 + cos(π·p))
/// (cosine), 1 − p (linear) or 1 (constant).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub decay: LrDecay,
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl Schedule {
    /// Learning rate of optimiser step `step` (0-based). At `step = warmup`
    /// it is the peak; half-way through the decay it is peak / 2 (cosine and
    /// linear), and at `step = total_steps` 0 (constant: still the peak).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let share = match self.decay {
            LrDecay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            LrDecay::Linear => 1.0 - progress,
            LrDecay::Constant => 1.0,
        };
        self.peak_lr * share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_at_warmup_end_midpoint_and_end() {
        let s = Schedule {
            decay: LrDecay::Cosine,
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
        let s = Schedule {
            decay: LrDecay::Cosine,
            peak_lr: 1.0,
            warmup_steps: 0,
            total_steps: 4,
        };
        assert_eq!(s.lr(0), 1.0);
        assert!((s.lr(2) - 0.5).abs() < 1e-15);
    }

    /// Linear: 2e-3 · (1 − p) after 10 warmup steps of 110, so ½ at step 60,
    /// ¾ at step 35, 0 at the end; constant stays at the peak.
    #[test]
    fn linear_and_constant_decays_by_hand() {
        let at = |decay, step| {
            Schedule {
                decay,
                peak_lr: 2e-3,
                warmup_steps: 10,
                total_steps: 110,
            }
            .lr(step)
        };
        let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        close(at(LrDecay::Linear, 5), 1e-3);
        close(at(LrDecay::Linear, 10), 2e-3);
        close(at(LrDecay::Linear, 35), 1.5e-3);
        close(at(LrDecay::Linear, 60), 1e-3);
        close(at(LrDecay::Linear, 110), 0.0);
        close(at(LrDecay::Constant, 5), 1e-3);
        close(at(LrDecay::Constant, 60), 2e-3);
        close(at(LrDecay::Constant, 110), 2e-3);
    }
}
