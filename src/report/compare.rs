//! The paper's orderings (e.g. CW > WS, CW > Human), checked entry by entry:
//! for each table row and each group of the outer column labels (the
//! objective), does the claim hold in our means, do the 95% CIs separate the
//! two, and does it hold in the paper's own numbers?
use std::collections::BTreeMap;

use anyhow::bail;

use super::grid::Grid;
use super::paper::PaperTable;
use super::stats::Summary;

/// `better > worse` on the last column label (e.g. annotation `cw > ws`).
#[derive(Debug, Clone, PartialEq, Eq)]
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
        match (better.interval(), worse.interval()) {
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
    pub ours_better: Summary,
    pub ours_worse: Summary,
    /// Our means order the two as claimed.
    pub holds: bool,
    pub separation: Separation,
    /// The paper's two numbers, where it has this entry.
    pub paper: Option<(f64, f64)>,
}

impl ClaimCheck {
    /// Whether the claim holds in the paper's own numbers (None: no entry).
    pub fn paper_holds(&self) -> Option<bool> {
        self.paper.map(|(b, w)| b > w)
    }
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
                let paper_at = |column: &[String]| {
                    let labels: BTreeMap<String, String> = grid
                        .row_keys
                        .iter()
                        .chain(&grid.column_keys)
                        .cloned()
                        .zip(row.iter().chain(column).cloned())
                        .collect();
                    paper.and_then(|p| p.lookup(&labels))
                };
                let paper_pair = paper_at(&better_col).zip(paper_at(&worse_col));
                checks.push(ClaimCheck {
                    claim: claim.clone(),
                    row: row.clone(),
                    group: group.clone(),
                    ours_better: b,
                    ours_worse: w,
                    holds: b.mean > w.mean,
                    separation: Separation::of(&b, &w),
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
                });
            }
        }
        out
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
    }

    #[test]
    fn claim_syntax_is_checked() {
        assert!(Claim::parse("cw ws").is_err());
        assert!(Claim::parse("cw > ").is_err());
        assert_eq!(Claim::parse(" cw>ws ").unwrap().to_string(), "cw > ws");
    }
}
