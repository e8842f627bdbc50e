//! The paper's orderings (e.g. CW > WS, CW > Human), checked entry by entry:
//! for each table row and each group of the outer column labels (the
//! objective), does the claim hold in our means, do the 95% CIs separate the
//! two, and does it hold in the paper's own numbers? [`tally`] sums the
//! entries up per claim, for `report.md`'s header and `results/index.md`.
//!
//! Two tests answer "do they separate?". Whether the two 95% CIs overlap
//! ([`Separation::of`]) is what a figure shows. But the Human, WS and CW
//! cells of one seed share the split, the weak model and the test prompts,
//! so the question "CW > Human?" is about the per-seed difference: the
//! paired test ([`paired_difference`]: mean of better − worse over the
//! seeds both ran, Student t 95% CI) can separate two entries whose CIs
//! overlap when the difference is consistent from seed to seed.
use std::collections::BTreeMap;

use anyhow::bail;

use super::grid::{Grid, Samples};
use super::paper::PaperTable;
use super::stats::{Interval, Summary};

/// `better > worse` on the last column label (e.g. annotation `cw > ws`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    pub better: String,
    pub worse: String,
}

impl Claim {
    /// Parses `"cw > ws"`.
    pub fn parse(text: &str) -> anyhow::Result<Claim> {
        let parts: Vec<&str> = text.split('>').map(str::trim).collect();
        match parts.as_slice() {
            [better, worse] if !better.is_empty() && !worse.is_empty() => Ok(Claim {
                better: better.to_string(),
                worse: worse.to_string(),
            }),
            _ => bail!("report claim `{text}` is not of the form \"a > b\" (e.g. \"cw > ws\")"),
        }
    }
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} > {}", self.better, self.worse)
    }
}

/// Whether two 95% intervals separate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separation {
    /// The better one's interval lies wholly above the worse one's.
    Separated,
    /// The worse one's interval lies wholly above: the claim is contradicted.
    Reversed,
    /// The intervals overlap: the run cannot tell the two apart.
    Overlap,
    /// At least one side ran a single seed, so it has no interval.
    NoInterval,
}

impl Separation {
    pub fn of(better: &Summary, worse: &Summary) -> Separation {
        match (better.ci95, worse.ci95) {
            (Some((b_lo, b_hi)), Some((w_lo, w_hi))) => {
                if b_lo > w_hi {
                    Separation::Separated
                } else if w_lo > b_hi {
                    Separation::Reversed
                } else {
                    Separation::Overlap
                }
            }
            _ => Separation::NoInterval,
        }
    }

    /// Of a paired difference better − worse: separated when its 95% CI
    /// lies wholly above 0, reversed when wholly below.
    pub fn of_difference(difference: Option<&Summary>) -> Separation {
        match difference.and_then(|d| d.ci95) {
            Some((lo, _)) if lo > 0.0 => Separation::Separated,
            Some((_, hi)) if hi < 0.0 => Separation::Reversed,
            Some(_) => Separation::Overlap,
            None => Separation::NoInterval,
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Separation::Separated => "yes",
            Separation::Reversed => "reversed",
            Separation::Overlap => "no (CIs overlap)",
            Separation::NoInterval => "n/a (one seed)",
        }
    }
}

/// One claim at one table row and column group.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimCheck {
    pub claim: Claim,
    /// Row label values (`["opt", "tldr"]`).
    pub row: Vec<String>,
    /// Column label values but the last (`["dpo"]`).
    pub group: Vec<String>,
    /// Every label of the better side's entry (row and column keys →
    /// values): how a figure finds its bar, and a per-seed test its cells.
    pub better_at: BTreeMap<String, String>,
    /// The same for the worse side.
    pub worse_at: BTreeMap<String, String>,
    pub ours_better: Summary,
    pub ours_worse: Summary,
    /// Our means order the two as claimed.
    pub holds: bool,
    /// Whether the two entries' 95% CIs separate.
    pub separation: Separation,
    /// better − worse per seed, over the seeds both ran ([`paired_difference`]).
    pub paired: Option<Summary>,
    /// Whether the paired difference's 95% CI excludes 0.
    pub paired_separation: Separation,
    /// The paper's two numbers, where it has this entry.
    pub paper: Option<(f64, f64)>,
}

impl ClaimCheck {
    /// Whether the claim holds in the paper's own numbers (None: no entry).
    pub fn paper_holds(&self) -> Option<bool> {
        self.paper.map(|(b, w)| b > w)
    }
}

/// One claim summed over every entry it was checked at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimTally {
    pub claim: Claim,
    /// Entries where both sides exist.
    pub entries: usize,
    /// Entries where our means order the two as claimed.
    pub holds: usize,
    /// Entries where the CIs separate as claimed.
    pub separated: usize,
    /// Entries where the CIs separate the other way.
    pub reversed: usize,
    /// Entries where the paired difference's CI lies above 0.
    pub paired_separated: usize,
    /// Entries where it lies below 0.
    pub paired_reversed: usize,
    /// Entries the paper publishes both numbers of.
    pub paper_entries: usize,
    /// Of those, entries where the paper's numbers order the two as claimed.
    pub paper_holds: usize,
}

impl ClaimTally {
    /// `holds in 5 of 6` / `holds everywhere (6)` / `fails everywhere (6)`.
    pub fn verdict(&self) -> String {
        if self.holds == self.entries {
            format!("holds everywhere ({})", self.entries)
        } else if self.holds == 0 {
            format!("fails everywhere ({})", self.entries)
        } else {
            format!("holds in {} of {}", self.holds, self.entries)
        }
    }
}

/// Sums `checks` up per claim, in the order the claims first appear.
pub fn tally(checks: &[ClaimCheck]) -> Vec<ClaimTally> {
    let mut tallies: Vec<ClaimTally> = Vec::new();
    for c in checks {
        let i = match tallies.iter().position(|t| t.claim == c.claim) {
            Some(i) => i,
            None => {
                tallies.push(ClaimTally {
                    claim: c.claim.clone(),
                    entries: 0,
                    holds: 0,
                    separated: 0,
                    reversed: 0,
                    paired_separated: 0,
                    paired_reversed: 0,
                    paper_entries: 0,
                    paper_holds: 0,
                });
                tallies.len() - 1
            }
        };
        let t = &mut tallies[i];
        t.entries += 1;
        t.holds += usize::from(c.holds);
        t.separated += usize::from(c.separation == Separation::Separated);
        t.reversed += usize::from(c.separation == Separation::Reversed);
        t.paired_separated += usize::from(c.paired_separation == Separation::Separated);
        t.paired_reversed += usize::from(c.paired_separation == Separation::Reversed);
        t.paper_entries += usize::from(c.paper.is_some());
        t.paper_holds += usize::from(c.paper_holds() == Some(true));
    }
    tallies
}

/// better − worse per `over` value (seed) that both ran, its mean and
/// Student t 95% CI (a paired t test); `None` when they share no seed.
/// The values are on the table's scale, so the difference is in its unit
/// (points of GRA for `scale = 100`).
pub fn paired_difference(better: &Samples, worse: &Samples) -> Option<Summary> {
    let differences: Vec<f64> = better
        .iter()
        .filter_map(|(seed, b)| Some(b - worse.get(seed)?))
        .collect();
    Summary::of(&differences, Interval::StudentT)
}

/// Checks every claim at every row × column group of `grid` where both sides
/// exist. `paper` supplies the published numbers for the same labels.
pub fn check_claims(grid: &Grid, claims: &[Claim], paper: Option<&PaperTable>) -> Vec<ClaimCheck> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for column in &grid.columns {
        let group = column[..column.len() - 1].to_vec();
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let with_last = |group: &[String], last: &str| {
        let mut c = group.to_vec();
        c.push(last.to_string());
        c
    };
    let mut checks = Vec::new();
    for row in &grid.rows {
        for group in &groups {
            for claim in claims {
                let better_col = with_last(group, &claim.better);
                let worse_col = with_last(group, &claim.worse);
                let (Some(b), Some(w)) = (grid.get(row, &better_col), grid.get(row, &worse_col))
                else {
                    continue;
                };
                let labels_at = |column: &[String]| -> BTreeMap<String, String> {
                    grid.row_keys
                        .iter()
                        .chain(&grid.column_keys)
                        .cloned()
                        .zip(row.iter().chain(column).cloned())
                        .collect()
                };
                let (better_at, worse_at) = (labels_at(&better_col), labels_at(&worse_col));
                let paper_at = |labels| paper.and_then(|p| p.lookup(labels));
                let paper_pair = paper_at(&better_at).zip(paper_at(&worse_at));
                let paired = grid
                    .samples_at(row, &better_col)
                    .zip(grid.samples_at(row, &worse_col))
                    .and_then(|(b, w)| paired_difference(b, w));
                checks.push(ClaimCheck {
                    claim: claim.clone(),
                    row: row.clone(),
                    group: group.clone(),
                    better_at,
                    worse_at,
                    ours_better: b,
                    ours_worse: w,
                    holds: b.mean > w.mean,
                    separation: Separation::of(&b, &w),
                    paired,
                    paired_separation: Separation::of_difference(paired.as_ref()),
                    paper: paper_pair,
                });
            }
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CellResult;
    use crate::report::spec::TableSpec;

    /// Cells for one dataset × one objective with the given GRA per annotation and seed.
    fn cells(values: &[(&str, [f64; 3])]) -> Vec<CellResult> {
        let mut out = Vec::new();
        for (annotation, seeds) in values {
            for (seed, v) in seeds.iter().enumerate() {
                let labels = [
                    ("pair", "opt"),
                    ("dataset", "tldr"),
                    ("objective", "dpo"),
                    ("annotation", annotation),
                    ("seed", &seed.to_string()),
                ];
                out.push(CellResult {
                    labels: labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    metrics: [("gra".to_string(), *v)].into(),
                    prompt_outcomes: None,
                });
            }
        }
        out
    }

    /// The grid of `cells` in points (scale 100), as Table 1 prints GRA.
    fn grid_of(cells: &[CellResult]) -> Grid {
        let mut spec = TableSpec::new(&["pair", "dataset"], &["objective", "annotation"], "gra");
        spec.scale = 100.0;
        Grid::build(&spec, cells).unwrap()
    }

    fn checks(values: &[(&str, [f64; 3])]) -> Vec<ClaimCheck> {
        let spec = TableSpec::new(&["pair", "dataset"], &["objective", "annotation"], "gra");
        let grid = Grid::build(&spec, &cells(values)).unwrap();
        let claims = [
            Claim::parse("cw > ws").unwrap(),
            Claim::parse("cw>human").unwrap(),
        ];
        let paper = crate::report::paper_table("table1").unwrap().unwrap();
        check_claims(&grid, &claims, Some(&paper))
    }

    #[test]
    fn separated_when_intervals_do_not_touch() {
        let c = checks(&[
            ("human", [0.50, 0.51, 0.52]),
            ("ws", [0.40, 0.41, 0.42]),
            ("cw", [0.70, 0.71, 0.72]),
        ]);
        assert_eq!(c.len(), 2);
        assert!(
            c.iter()
                .all(|c| c.holds && c.separation == Separation::Separated)
        );
        // paper, OPT TL;DR DPO: CW 56.6 > WS 53.5 holds, CW 56.6 > Human 57.0 does not
        assert_eq!(c[0].paper, Some((56.6, 53.5)));
        assert_eq!(c[0].paper_holds(), Some(true));
        assert_eq!(c[1].paper_holds(), Some(false));
    }

    #[test]
    fn overlap_reversal_and_failure_are_told_apart() {
        let c = checks(&[
            ("human", [0.70, 0.71, 0.72]),
            ("ws", [0.40, 0.60, 0.50]),
            ("cw", [0.55, 0.56, 0.57]),
        ]);
        let (vs_ws, vs_human) = (&c[0], &c[1]);
        assert!(vs_ws.holds);
        assert_eq!(vs_ws.separation, Separation::Overlap);
        assert!(!vs_human.holds);
        assert_eq!(vs_human.separation, Separation::Reversed);
        // each side's labels name its entry
        assert_eq!(vs_human.worse_at["annotation"], "human");
        assert_eq!(vs_human.better_at["dataset"], "tldr");
    }

    #[test]
    fn tally_counts_each_claim_over_its_entries() {
        let mut c = checks(&[
            ("human", [0.70, 0.71, 0.72]),
            ("ws", [0.40, 0.41, 0.42]),
            ("cw", [0.55, 0.56, 0.57]),
        ]);
        // a second entry of `cw > ws` that holds without separating
        let mut overlap = c[0].clone();
        overlap.separation = Separation::Overlap;
        overlap.paper = None;
        c.push(overlap);
        let t = tally(&c);
        assert_eq!(t.len(), 2);
        let (vs_ws, vs_human) = (&t[0], &t[1]);
        assert_eq!(vs_ws.claim.to_string(), "cw > ws");
        assert_eq!(
            (vs_ws.entries, vs_ws.holds, vs_ws.separated, vs_ws.reversed),
            (2, 2, 1, 0)
        );
        assert_eq!((vs_ws.paper_entries, vs_ws.paper_holds), (1, 1));
        assert_eq!(vs_ws.verdict(), "holds everywhere (2)");
        assert_eq!((vs_human.holds, vs_human.reversed), (0, 1));
        // the paper: CW 56.6 < Human 57.0 at OPT TL;DR DPO
        assert_eq!((vs_human.paper_entries, vs_human.paper_holds), (1, 0));
        assert_eq!(vs_human.verdict(), "fails everywhere (1)");
    }

    #[test]
    fn claim_syntax_is_checked() {
        assert!(Claim::parse("cw ws").is_err());
        assert!(Claim::parse("cw > ").is_err());
        assert_eq!(Claim::parse(" cw>ws ").unwrap().to_string(), "cw > ws");
    }

    /// Overlapping CIs can hide a difference that every seed shows: the
    /// paired test separates it, the CI-overlap test cannot. Worked by hand:
    /// better − worse per seed = 1.0, 1.5, 2.0 → mean 1.5, s = 0.5,
    /// t_{0.975,2} = 4.303, half-width 4.303 · 0.5 / √3 = 1.242.
    #[test]
    fn the_paired_test_separates_a_consistent_difference_that_overlapping_cis_hide() {
        let grid = grid_of(&cells(&[
            ("human", [0.500, 0.600, 0.700]),
            ("cw", [0.510, 0.615, 0.720]),
        ]));
        let checks = check_claims(&grid, &[Claim::parse("cw > human").unwrap()], None);
        assert_eq!(checks.len(), 1);
        let c = &checks[0];
        assert_eq!(c.separation, Separation::Overlap);
        let d = c.paired.unwrap();
        assert_eq!(d.n, 3);
        assert!((d.mean - 1.5).abs() < 1e-9, "{d:?}");
        let (lo, hi) = d.ci95.unwrap();
        assert!(
            (lo - (1.5 - 1.242)).abs() < 1e-3 && (hi - (1.5 + 1.242)).abs() < 1e-3,
            "{d:?}"
        );
        assert_eq!(c.paired_separation, Separation::Separated);
        let t = &tally(&checks)[0];
        assert_eq!(
            (t.separated, t.paired_separated, t.paired_reversed),
            (0, 1, 0)
        );
        // The other way round the paired test says reversed.
        let reversed = check_claims(&grid, &[Claim::parse("human > cw").unwrap()], None);
        assert_eq!(reversed[0].paired_separation, Separation::Reversed);
    }

    /// Seeds only one side ran are left out of the pairing.
    #[test]
    fn the_paired_difference_uses_the_seeds_both_sides_ran() {
        let better = Samples::from([("0".into(), 3.0), ("1".into(), 5.0), ("2".into(), 9.0)]);
        let worse = Samples::from([("0".into(), 1.0), ("1".into(), 2.0), ("7".into(), 0.0)]);
        let d = paired_difference(&better, &worse).unwrap();
        assert_eq!((d.n, d.mean), (2, 2.5));
        assert!(paired_difference(&better, &Samples::new()).is_none());
    }
}
