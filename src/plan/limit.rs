//! A limit on planned stages, so a typo in an axis (2,000 seeds instead of
//! 20) is answered in milliseconds instead of minutes and gigabytes. Two
//! checks, both exit 2:
//!
//! - [`check_cells`], before any cell exists: an experiment's cells are at
//!   most the product of its axes' lengths plus its `include`s, and every
//!   cell plans at least one stage, so a product above the limit cannot
//!   fit. The message names the axes that multiply.
//! - [`StageBudget`], while the DAG is built: planning stops as soon as the
//!   DAG holds more stages than the limit.
//!
//! Memory and time of planning are thus bounded by the limit: the
//! `--max-stages N` of `sweep run/plan/validate/why/report`, else the
//! environment's [`MAX_STAGES_VAR`] (for scripts and CI), else
//! [`DEFAULT_MAX_STAGES`] ([`max_stages`]).
use crate::manifest::Manifest;
use crate::manifest::diagnostic::{Diagnostic, Diagnostics, Loc};

/// Planned stages allowed by default (the shipped manifests plan ~4,500).
pub const DEFAULT_MAX_STAGES: usize = 100_000;

/// The environment variable that sets another limit when no flag does.
pub const MAX_STAGES_VAR: &str = "SWEEP_MAX_STAGES";

/// How a refusal tells the user to raise the limit.
const RAISE: &str = "raise the limit with --max-stages N (or SWEEP_MAX_STAGES=N)";

/// The limit in force: the `--max-stages` flag if given, else
/// `SWEEP_MAX_STAGES` if set, else the default.
pub fn max_stages(flag: Option<usize>) -> Result<usize, Diagnostics> {
    if let Some(limit) = flag {
        return Ok(limit);
    }
    match std::env::var(MAX_STAGES_VAR) {
        Err(_) => Ok(DEFAULT_MAX_STAGES),
        Ok(text) => text.trim().parse::<usize>().map_err(|e| {
            let mut d = Diagnostics::default();
            d.push(Diagnostic {
                loc: None,
                path: None,
                message: format!(
                    "{MAX_STAGES_VAR}={text:?} is not a stage count ({e}); give a whole number such as {DEFAULT_MAX_STAGES}, or use --max-stages N"
                ),
            });
            d
        }),
    }
}

/// Refuses every experiment whose axes multiply to more cells than `limit`.
pub fn check_cells(manifests: &[Manifest], limit: usize) -> Result<(), Diagnostics> {
    let mut errors = Diagnostics::default();
    for m in manifests {
        let Some(header) = &m.experiment else {
            continue;
        };
        // (axis, its length, where it is written), longest first.
        let mut axes: Vec<(&str, usize, &Loc)> = m
            .axes
            .iter()
            .map(|(name, e)| {
                let len = e.value.as_array().map_or(1, |a| a.len().max(1));
                (name.as_str(), len, &e.loc)
            })
            .collect();
        axes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let product = axes
            .iter()
            .fold(1usize, |p, (_, len, _)| p.saturating_mul(*len))
            .saturating_add(m.include.len());
        if product <= limit {
            continue;
        }
        let factors: Vec<String> = axes
            .iter()
            .filter(|(_, len, _)| *len > 1)
            .map(|(name, len, _)| format!("{name} {len}"))
            .collect();
        let includes = if m.include.is_empty() {
            String::new()
        } else {
            format!(" + {} include(s)", m.include.len())
        };
        let loc = axes.first().map_or(&header.loc, |(_, _, loc)| loc);
        errors.push(Diagnostic::at(
            loc,
            format!(
                "experiment `{}` would plan more than {limit} stages: its axes multiply to {product} cells ({}{includes}), and each cell plans at least one stage; shrink an axis, or {RAISE}",
                header.name,
                factors.join(" × ")
            ),
        ));
    }
    errors.into_result()
}

/// Counts stages while the DAG is built and stops planning above the limit.
pub struct StageBudget {
    pub limit: usize,
}

impl StageBudget {
    /// `Err` once `planned` stages exceed the limit, naming the experiment
    /// being planned and its axes.
    pub fn check(
        &self,
        planned: usize,
        experiment: &crate::manifest::resolve::Experiment,
        cells_done: usize,
    ) -> Result<(), Diagnostics> {
        if planned <= self.limit {
            return Ok(());
        }
        let mut d = Diagnostics::default();
        d.push(Diagnostic::file(
            &experiment.file,
            format!(
                "planning stopped: {planned} stages after {cells_done} of the {} cells of experiment `{}` (sweep axes: {}), above the limit of {}; shrink an axis, or {RAISE}",
                experiment.cells.len(),
                experiment.name,
                experiment.axes.join(", "),
                self.limit
            ),
        ));
        Err(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(body: &str) -> Manifest {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        std::fs::write(&path, body).unwrap();
        crate::manifest::load(&path, &mut Vec::new()).unwrap()
    }

    #[test]
    fn an_axis_product_above_the_limit_names_the_axes_and_the_product() {
        let m = manifest(
            "[experiment]\nname = \"big\"\n[axes]\ndataset = [\"a\", \"b\", \"c\", \"d\", \"e\"]\nseed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nobjective = [\"dpo\"]\n",
        );
        assert!(check_cells(std::slice::from_ref(&m), 50).is_ok());
        let err = check_cells(&[m], 49).unwrap_err().to_string();
        assert!(err.contains("big.toml:5:"), "at the longest axis: {err}");
        assert!(err.contains("50 cells (seed 10 × dataset 5)"), "{err}");
        assert!(err.contains("more than 49 stages"), "{err}");
    }

    #[test]
    fn a_huge_product_saturates_instead_of_overflowing() {
        let values: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let list = values.join(", ");
        let m = manifest(&format!(
            "[experiment]\nname = \"huge\"\n[axes]\nseed = [{list}]\n\"align.beta\" = [{list}]\n\"sft.epochs\" = [{list}]\n\"weak.epochs\" = [{list}]\n\"align.epochs\" = [{list}]\n\"generate.samples\" = [{list}]\n"
        ));
        let err = check_cells(&[m], DEFAULT_MAX_STAGES)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{} cells", usize::MAX)), "{err}");
    }
}
