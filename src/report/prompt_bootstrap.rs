//! The claims' second paired test: a bootstrap over test prompts within each
//! seed ([`crate::eval::bootstrap`]). The per-seed Student t test of
//! [`super::compare::paired_difference`] asks whether the difference holds
//! from seed to seed; this one asks how much of it the choice of test
//! prompts alone could make. It reads the metric stage's per-prompt
//! outcomes, which are GRA's against the cell's own SFT model, so it is
//! given only for tables of `gra`.
use std::collections::BTreeMap;

use super::CellResult;
use super::compare::ClaimCheck;
use crate::eval::bootstrap::{BOOTSTRAP_RESAMPLES, BootstrapInterval, paired_prompt_bootstrap};
use crate::eval::gra::PromptOutcomes;

/// The metric whose per-prompt outcomes the metric stage keeps.
const BOOTSTRAPPED_VALUE: &str = "gra";

/// `over` value (seed) → the outcomes of the cell at `labels`.
fn outcomes_at<'a>(
    cells: &'a [CellResult],
    labels: &BTreeMap<String, String>,
    over: &str,
) -> BTreeMap<&'a str, &'a PromptOutcomes> {
    cells
        .iter()
        .filter(|c| labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
        .filter_map(|c| Some((c.labels.get(over)?.as_str(), c.prompt_outcomes.as_deref()?)))
        .collect()
}

/// `check`'s difference better − worse (mean over the seeds both sides ran)
/// and its bootstrap 95% interval over test prompts, on the table's scale.
/// `None` when the table's value is not GRA, when no seed has both sides'
/// outcomes, or when the sides count ties by different rules.
pub fn claim_bootstrap(
    check: &ClaimCheck,
    cells: &[CellResult],
    value: &str,
    over: &str,
    scale: f64,
) -> anyhow::Result<Option<BootstrapInterval>> {
    if value != BOOTSTRAPPED_VALUE {
        return Ok(None);
    }
    let better = outcomes_at(cells, &check.better_at, over);
    let worse = outcomes_at(cells, &check.worse_at, over);
    let paired: Vec<(&PromptOutcomes, &PromptOutcomes)> = better
        .iter()
        .filter_map(|(seed, b)| Some((*b, *worse.get(seed)?)))
        .collect();
    let Some(&(first, _)) = paired.first() else {
        return Ok(None);
    };
    if paired
        .iter()
        .any(|(b, w)| b.ties != first.ties || w.ties != first.ties)
    {
        return Ok(None);
    }
    let seeds: Vec<_> = paired
        .iter()
        .map(|(b, w)| (b.prompts.as_slice(), w.prompts.as_slice()))
        .collect();
    let b = paired_prompt_bootstrap(&seeds, first.ties, BOOTSTRAP_RESAMPLES)?;
    Ok(Some(BootstrapInterval {
        difference: b.difference * scale,
        low: b.low * scale,
        high: b.high * scale,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::eval::gra::PromptOutcome;
    use crate::report::compare::{Claim, check_claims};
    use crate::report::grid::Grid;
    use crate::report::spec::TableSpec;
    use crate::spec::TieRule;

    /// 100 prompts, one comparison each, won on `wins`.
    fn outcomes(wins: std::ops::Range<usize>, ties: TieRule) -> Arc<PromptOutcomes> {
        let prompts = (0..100)
            .map(|i| PromptOutcome {
                wins: u32::from(wins.contains(&i)),
                ties: 0,
                comparisons: 1,
            })
            .collect();
        Arc::new(PromptOutcomes { ties, prompts })
    }

    /// cw wins prompts 0..60 and human 0..40 in each of 3 seeds (GRA 60
    /// vs 40): the bootstrap gives 20 points, about ± 8; a cell without
    /// outcomes leaves its seed out; a table of another value gets none.
    #[test]
    fn claims_get_the_prompt_bootstrap_of_their_two_cells() {
        let mut cells = Vec::new();
        for seed in 0..3 {
            for (annotation, wins) in [("cw", 0..60), ("human", 0..40)] {
                let labels = [("dataset", "tldr"), ("annotation", annotation)]
                    .into_iter()
                    .chain([("seed", ["0", "1", "2"][seed])])
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                cells.push(CellResult {
                    labels,
                    metrics: [("gra".to_string(), wins.len() as f64 / 100.0)].into(),
                    prompt_outcomes: Some(outcomes(wins, TieRule::Loss)),
                });
            }
        }
        let spec = TableSpec {
            scale: 100.0,
            ..TableSpec::new(&["dataset"], &["annotation"], "gra")
        };
        let grid = Grid::build(&spec, &cells).unwrap();
        let claim = Claim::parse("cw > human").unwrap();
        let check = &check_claims(&grid, &[claim], None)[0];
        let b = claim_bootstrap(check, &cells, "gra", "seed", 100.0)
            .unwrap()
            .unwrap();
        assert!((b.difference - 20.0).abs() < 1e-9, "{b:?}");
        assert!(
            b.low > 10.0 && b.low < 20.0 && b.high > 20.0 && b.high < 30.0,
            "{b:?}"
        );

        assert_eq!(
            claim_bootstrap(check, &cells, "gold_mean", "seed", 1.0).unwrap(),
            None
        );
        for cell in &mut cells {
            cell.prompt_outcomes = None;
        }
        assert_eq!(
            claim_bootstrap(check, &cells, "gra", "seed", 100.0).unwrap(),
            None
        );
    }
}
