//! Cells → a grid of summaries: one row per combination of the row labels,
//! one column per combination of the column labels, each entry the mean and
//! 95% CI of the metric over the `over` label (the seeds), the CI inside the
//! metric's range ([`TableSpec::interval`]).
//!
//! Both the CSV table and the markdown table are views of this grid, and the
//! ordering checks read it; the figure groups cells the same way through
//! [`group_cells`].
use std::collections::BTreeMap;

use anyhow::{Context, bail};

use super::CellResult;
use super::spec::TableSpec;
use super::stats::{Interval, Summary};

/// The row label of the per-block average row.
pub const AVG_LABEL: &str = "Avg.";

/// The metric values of one group, keyed by the `over` label's value (seed).
pub type Samples = BTreeMap<String, f64>;

/// The summarised table.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub row_keys: Vec<String>,
    pub column_keys: Vec<String>,
    /// Label values of each row, in display order; `Avg.` rows included.
    pub rows: Vec<Vec<String>>,
    /// Label values of each column, in display order.
    pub columns: Vec<Vec<String>>,
    /// `[row][column]`; `None` where no cell exists (or an average lacks a row).
    pub entries: Vec<Vec<Option<Summary>>>,
    /// The interval every entry's `ci95` is.
    pub interval: Interval,
    /// Each data entry's values per `over` label (seed), keyed by its row
    /// then column label values: what a paired test of two entries reads.
    /// Always absolute, also under `relative_to`.
    pub samples: BTreeMap<Vec<String>, Samples>,
    /// `[report] relative_to` as (row key, reference value): rows whose
    /// label differs show deltas against the reference row ([`Grid::reference_of`]).
    pub relative_to: Option<(String, String)>,
}

impl Grid {
    /// Groups `cells` by the spec's rows × columns and summarises each group
    /// over `spec.over`, scaled by `spec.scale`.
    pub fn build(spec: &TableSpec, cells: &[CellResult]) -> anyhow::Result<Grid> {
        if spec.rows.is_empty() || spec.columns.is_empty() {
            bail!(
                "report table for metric `{}` needs at least one row key and one column key (got rows = {:?}, columns = {:?})",
                spec.value,
                spec.rows,
                spec.columns
            );
        }
        if cells.is_empty() {
            bail!(
                "report table for metric `{}`: no finished cells to tabulate",
                spec.value
            );
        }
        let keys: Vec<String> = spec.rows.iter().chain(&spec.columns).cloned().collect();
        let groups = group_cells(cells, &keys, &spec.value, &spec.over, spec.scale)?;
        let n_row_keys = spec.rows.len();
        let split = |key: &[String]| (key[..n_row_keys].to_vec(), key[n_row_keys..].to_vec());

        let row_order = OrderedKeys::new(&spec.rows, cells, &spec.order);
        let column_order = OrderedKeys::new(&spec.columns, cells, &spec.order);
        let mut data_rows: Vec<Vec<String>> = groups.keys().map(|k| split(k).0).collect();
        let mut columns: Vec<Vec<String>> = groups.keys().map(|k| split(k).1).collect();
        row_order.sort_dedup(&mut data_rows);
        column_order.sort_dedup(&mut columns);

        let interval = spec.interval();
        let summary_of = |samples: &Samples| summarise(samples, interval);
        let samples_at = |row: &[String], column: &[String]| {
            let key: Vec<String> = row.iter().chain(column).cloned().collect();
            groups.get(&key)
        };
        let mut rows = Vec::new();
        let mut entries: Vec<Vec<Option<Summary>>> = Vec::new();
        let mut i = 0;
        while i < data_rows.len() {
            // A block: consecutive rows sharing every row label but the last.
            let prefix = &data_rows[i][..n_row_keys - 1];
            let end = i + data_rows[i..]
                .iter()
                .take_while(|r| &r[..n_row_keys - 1] == prefix)
                .count();
            for row in &data_rows[i..end] {
                rows.push(row.clone());
                entries.push(
                    columns
                        .iter()
                        .map(|c| samples_at(row, c).and_then(summary_of))
                        .collect(),
                );
            }
            if spec.avg_row {
                let mut avg_label = prefix.to_vec();
                avg_label.push(AVG_LABEL.to_string());
                let avg = columns
                    .iter()
                    .map(|c| {
                        let block: Option<Vec<&Samples>> =
                            data_rows[i..end].iter().map(|r| samples_at(r, c)).collect();
                        block.and_then(|b| average_of_rows(&b, interval))
                    })
                    .collect();
                rows.push(avg_label);
                entries.push(avg);
            }
            i = end;
        }
        let relative_to = spec
            .reference_row()
            .map(|(k, v)| (k.to_string(), v.to_string()));
        if let Some((key, value)) = &relative_to {
            let at = spec.rows.iter().position(|k| k == key).with_context(|| {
                format!(
                    "report relative_to: `{key}` is not one of the table's rows {:?}",
                    spec.rows
                )
            })?;
            for (row, entries) in rows.iter().zip(entries.iter_mut()) {
                if row[at] == *value {
                    continue;
                }
                let mut reference = row.clone();
                reference[at] = value.clone();
                for (column, entry) in columns.iter().zip(entries.iter_mut()) {
                    *entry = match (samples_at(row, column), samples_at(&reference, column)) {
                        (Some(ours), Some(base)) => delta_summary(ours, base),
                        _ => None,
                    };
                }
            }
        }
        Ok(Grid {
            row_keys: spec.rows.clone(),
            column_keys: spec.columns.clone(),
            rows,
            columns,
            entries,
            interval,
            samples: groups,
            relative_to,
        })
    }

    /// The reference row a delta row is shown against (`relative_to`);
    /// `None` for the reference row itself and without `relative_to`.
    pub fn reference_of(&self, row: &[String]) -> Option<Vec<String>> {
        let (key, value) = self.relative_to.as_ref()?;
        let at = self.row_keys.iter().position(|k| k == key)?;
        (row[at] != *value).then(|| {
            let mut reference = row.to_vec();
            reference[at] = value.clone();
            reference
        })
    }

    /// The per-seed values of the entry at this row and column.
    pub fn samples_at(&self, row: &[String], column: &[String]) -> Option<&Samples> {
        let key: Vec<String> = row.iter().chain(column).cloned().collect();
        self.samples.get(&key)
    }

    /// The summary at the row and column with these label values.
    pub fn get(&self, row: &[String], column: &[String]) -> Option<Summary> {
        let r = self.rows.iter().position(|x| x == row)?;
        let c = self.columns.iter().position(|x| x == column)?;
        self.entries[r][c]
    }

    /// Whether any entry has a CI (false when every group holds one seed).
    pub fn has_any_ci(&self) -> bool {
        self.entries
            .iter()
            .flatten()
            .flatten()
            .any(|s| s.ci95.is_some())
    }
}

/// Mean and CI of one group's samples.
pub fn summarise(samples: &Samples, interval: Interval) -> Option<Summary> {
    Summary::of(&samples.values().copied().collect::<Vec<_>>(), interval)
}

/// `ours − base` for a `relative_to` table: when both ran the same seeds,
/// the per-seed differences' mean and Student t CI (a difference is
/// unbounded, and pairing by seed removes what a seed shares across rows);
/// otherwise the difference of the means, without a CI.
pub fn delta_summary(ours: &Samples, base: &Samples) -> Option<Summary> {
    if ours.keys().eq(base.keys()) {
        let diffs: Vec<f64> = ours.iter().map(|(seed, v)| v - base[seed]).collect();
        return Summary::of(&diffs, Interval::StudentT);
    }
    let (a, b) = (
        summarise(ours, Interval::StudentT)?,
        summarise(base, Interval::StudentT)?,
    );
    Some(Summary {
        mean: a.mean - b.mean,
        ci95: None,
        n: a.n.min(b.n),
    })
}

/// The `Avg.` entry of one column: the mean of the rows' means. When every row
/// ran the same seeds the CI is taken over the per-seed averages (paired by
/// seed, so a seed that is good everywhere does not inflate it); otherwise
/// there is no CI.
fn average_of_rows(rows: &[&Samples], interval: Interval) -> Option<Summary> {
    let first = rows.first()?;
    let same_seeds = rows.iter().all(|r| r.keys().eq(first.keys()));
    if same_seeds {
        let per_seed: Vec<f64> = first
            .keys()
            .map(|seed| rows.iter().map(|r| r[seed]).sum::<f64>() / rows.len() as f64)
            .collect();
        Summary::of(&per_seed, interval)
    } else {
        let means: Vec<f64> = rows
            .iter()
            .filter_map(|r| summarise(r, interval))
            .map(|s| s.mean)
            .collect();
        let n = rows.iter().map(|r| r.len()).min().unwrap_or(0);
        Summary::of(&means, interval).map(|s| Summary {
            mean: s.mean,
            ci95: None,
            n,
        })
    }
}

/// Groups cells by the values of `keys`, each group's samples keyed by the
/// `over` label. Every error names the offending cell: a missing label, a
/// missing metric, a NaN/inf value, or two cells of one group with the same
/// `over` value (they differ in a label the table does not show).
pub fn group_cells(
    cells: &[CellResult],
    keys: &[String],
    value: &str,
    over: &str,
    scale: f64,
) -> anyhow::Result<BTreeMap<Vec<String>, Samples>> {
    if !scale.is_finite() {
        bail!("report scale must be a finite number, got {scale}");
    }
    let mut groups: BTreeMap<Vec<String>, Samples> = BTreeMap::new();
    let mut first_cell: BTreeMap<(Vec<String>, String), &CellResult> = BTreeMap::new();
    for cell in cells {
        let label = |k: &str| {
            cell.labels.get(k).cloned().with_context(|| {
                format!(
                    "cell {} has no label `{k}` that the report groups by; give every cell that axis or drop it from the [report] block",
                    cell.describe()
                )
            })
        };
        let key = keys
            .iter()
            .map(|k| label(k))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let seed = label(over)?;
        let Some(&v) = cell.metrics.get(value) else {
            bail!(
                "cell {} has no metric `{value}` (it has: {}); fix the report's value or the metric stage",
                cell.describe(),
                cell.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        if !v.is_finite() {
            bail!(
                "cell {} has a non-finite metric `{value}` = {v}; the run that produced it diverged or divided by zero: rerun that cell",
                cell.describe()
            );
        }
        if let Some(other) = first_cell.insert((key.clone(), seed.clone()), cell) {
            let differing = cell.labels_differing_from(other);
            bail!(
                "cells {} and {} fall into the same table entry for {over} = {seed}; they differ in {differing:?}: add those labels to the report's rows or columns",
                other.describe(),
                cell.describe()
            );
        }
        groups.entry(key).or_default().insert(seed, v * scale);
    }
    Ok(groups)
}

/// `cells` with the labels `away` averaged out: one cell per value of the
/// labels `keep` (a figure's panel, x and series, and `over`, so the mean
/// is paired by seed as in `Avg.` rows), its `away` labels set to
/// [`AVG_LABEL`] and its `value` the mean of the group's cells, which must
/// differ in their `away` labels (labels that vary with them, such as a
/// pair's models, go too); groups in the order they first appear. Other
/// labels and metrics are dropped.
pub fn average_over(
    cells: &[CellResult],
    away: &[String],
    keep: &[String],
    value: &str,
) -> anyhow::Result<Vec<CellResult>> {
    type Group<'a> = (Vec<String>, Vec<(Vec<String>, &'a CellResult)>);
    let mut groups: Vec<Group> = Vec::new();
    for cell in cells {
        let label = |k: &String| {
            cell.labels.get(k).cloned().with_context(|| {
                format!(
                    "cell {} has no label `{k}` that the figure groups or averages by",
                    cell.describe()
                )
            })
        };
        let key = keep.iter().map(label).collect::<anyhow::Result<Vec<_>>>()?;
        let averaged = away.iter().map(label).collect::<anyhow::Result<Vec<_>>>()?;
        if !cell.metrics.contains_key(value) {
            bail!(
                "cell {} has no metric `{value}`; fix the report's value or the metric stage",
                cell.describe()
            );
        }
        let members = match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members,
            None => {
                groups.push((key, Vec::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        if let Some((_, other)) = members.iter().find(|(a, _)| *a == averaged) {
            let differing = cell.labels_differing_from(other);
            bail!(
                "cells {} and {} fall into one point of the figure with the same {away:?}; they differ in {differing:?}: add those labels to the figure's panel, x or series",
                other.describe(),
                cell.describe()
            );
        }
        members.push((averaged, cell));
    }
    Ok(groups
        .into_iter()
        .map(|(key, members)| {
            let mut labels: BTreeMap<String, String> = keep.iter().cloned().zip(key).collect();
            labels.extend(away.iter().map(|k| (k.clone(), AVG_LABEL.to_string())));
            let sum: f64 = members.iter().map(|(_, c)| c.metrics[value]).sum();
            CellResult {
                labels,
                metrics: BTreeMap::from([(value.to_string(), sum / members.len() as f64)]),
                prompt_outcomes: None,
            }
        })
        .collect())
}

/// Display order of label tuples: for each key, the spec's explicit order
/// first, then the order in which values first appear among the cells.
pub struct OrderedKeys {
    ranks: Vec<BTreeMap<String, usize>>,
}

impl OrderedKeys {
    pub fn new(
        keys: &[String],
        cells: &[CellResult],
        explicit: &BTreeMap<String, Vec<String>>,
    ) -> Self {
        let ranks = keys
            .iter()
            .map(|k| {
                let mut rank = BTreeMap::new();
                let listed = explicit.get(k).into_iter().flatten();
                let seen = cells.iter().filter_map(|c| c.labels.get(k));
                for v in listed.chain(seen) {
                    let next = rank.len();
                    rank.entry(v.clone()).or_insert(next);
                }
                rank
            })
            .collect();
        OrderedKeys { ranks }
    }

    fn rank_of(&self, tuple: &[String]) -> Vec<usize> {
        tuple
            .iter()
            .zip(&self.ranks)
            .map(|(v, r)| r.get(v).copied().unwrap_or(usize::MAX))
            .collect()
    }

    /// Sorts label tuples into display order and drops duplicates.
    pub fn sort_dedup(&self, tuples: &mut Vec<Vec<String>>) {
        tuples.sort_by_key(|t| self.rank_of(t));
        tuples.dedup();
    }
}
