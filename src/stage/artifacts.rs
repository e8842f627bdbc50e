//! What stages write and read: the artifact file names of each kind, and
//! readers of the inputs several kinds share (the dataset's pairs, the
//! split into D_L / D_U, the weak labels).
//!
//! Artifact layout (each stage's `out_dir`):
//! - `dataset`: `pairs.json`, `test_prompts.json`, `source.json`, and
//!   `subsets.json` for a mixture cell's pool
//! - `split`: `split.json`
//! - `pretrain`, `sft`, `align`: `model/` (a checkpoint), `train.json`
//! - `weak_train`: `weak/` (scorer or policy), `reference/` (DPO weak only), `weak.json`, `train.json`
//! - `annotate`: `labels.json` (one [`WeakLabel`] per D_U pair, in D_U order)
//! - `ref_logps`: `ref_logps.json` (one `PairLogProbs` per D_U pair)
//! - `generate`: `generations.json`; `score`: `scores.json`
use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StageContext;
use crate::data::PreferencePair;
use crate::spec::{DatasetSource, TrainOn};
use crate::train::WeakLabel;

pub const PAIRS_FILE: &str = "pairs.json";
pub const TEST_PROMPTS_FILE: &str = "test_prompts.json";
/// The dataset's source, written beside its pairs so later stages (the gold
/// scorer) know which family they score.
pub const SOURCE_FILE: &str = "source.json";
pub const MODEL_DIR: &str = "model";
pub const TRAIN_REPORT_FILE: &str = "train.json";
pub const LABELS_FILE: &str = "labels.json";

/// Which range of a pool's `pairs.json` holds one dataset's pairs.
pub const SUBSETS_FILE: &str = "subsets.json";

/// One dataset of a pool: `pairs[start..start + len]` are its pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subset {
    pub name: String,
    pub source: DatasetSource,
    pub start: usize,
    pub len: usize,
}

/// Indices into the dataset's `pairs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitIndices {
    pub labeled: Vec<usize>,
    pub unlabeled: Vec<usize>,
    /// Pairs of D_L whose human label is reversed (poisoned D_L, Eq. 18):
    /// their `chosen` and `rejected` swap wherever D_L is read. Sorted;
    /// absent from older artifacts and when nothing is poisoned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flipped: Vec<usize>,
}

pub const SPLIT_FILE: &str = "split.json";

/// Writes `value` as pretty JSON to `dir/name`.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Reads JSON written by [`write_json`].
pub fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<T> {
    let path = dir.join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The pairs of a `dataset` artifact dir.
pub fn read_pairs(dir: &Path) -> Result<Vec<PreferencePair>> {
    read_json(dir, PAIRS_FILE)
}

/// The test prompts of a `dataset` artifact dir.
pub fn read_test_prompts(dir: &Path) -> Result<Vec<String>> {
    read_json(dir, TEST_PROMPTS_FILE)
}

/// The indices of a `split` artifact dir.
pub fn read_split(dir: &Path) -> Result<SplitIndices> {
    read_json(dir, SPLIT_FILE)
}

/// The pairs of D_L or D_U, as the `dataset` and `split` inputs say.
pub struct SplitPairs {
    pub labeled: Vec<PreferencePair>,
    pub unlabeled: Vec<PreferencePair>,
}

/// Reads the `dataset` and `split` inputs of a stage: D_L with its
/// (possibly poisoned) labels, D_U with its human labels.
pub fn split_pairs(ctx: &StageContext) -> Result<SplitPairs> {
    let pairs = read_pairs(ctx.input("dataset")?)?;
    let split = read_split(ctx.input("split")?)?;
    pick_split(&pairs, &split)
}

/// D_L and D_U of `pairs` as `split` says, each flipped pair of D_L turned
/// round (`chosen` ↔ `rejected`).
pub fn pick_split(pairs: &[PreferencePair], split: &SplitIndices) -> Result<SplitPairs> {
    let pick = |indices: &[usize]| -> Result<Vec<PreferencePair>> {
        indices
            .iter()
            .map(|&i| {
                let pair = pairs.get(i).with_context(|| {
                    format!("split index {i} is out of range ({} pairs)", pairs.len())
                })?;
                Ok(if split.flipped.binary_search(&i).is_ok() {
                    flip(pair.clone())
                } else {
                    pair.clone()
                })
            })
            .collect()
    };
    if let Some(i) = split
        .flipped
        .iter()
        .find(|i| split.labeled.binary_search(i).is_err())
    {
        anyhow::bail!(
            "split: flipped pair {i} is not in D_L (only D_L's human labels are poisoned); \
             the split artifact is corrupt, rerun its stage"
        );
    }
    Ok(SplitPairs {
        labeled: pick(&split.labeled)?,
        unlabeled: pick(&split.unlabeled)?,
    })
}

/// The same pair with the other response preferred.
pub fn flip(p: PreferencePair) -> PreferencePair {
    PreferencePair {
        prompt: p.prompt,
        chosen: p.rejected,
        rejected: p.chosen,
    }
}

/// The dataset's held-out test prompts.
pub fn test_prompts(ctx: &StageContext) -> Result<Vec<String>> {
    read_test_prompts(ctx.input("dataset")?)
}

/// The dataset's source (which synthetic family or which files).
pub fn dataset_source(ctx: &StageContext) -> Result<DatasetSource> {
    read_json(ctx.input("dataset")?, SOURCE_FILE)
}

/// The pairs the strong model trains on (`train_on`), with the weak labels
/// when D_U is weakly labelled: D_U as [`labelled_unlabeled`] gives it; D_L
/// with its human labels; or every pair of the dataset (D_L ∪ D_U, in the
/// dataset's order, so the set and its order do not depend on the split).
pub fn training_pairs(
    ctx: &StageContext,
    train_on: TrainOn,
) -> Result<(Vec<PreferencePair>, Option<Vec<WeakLabel>>)> {
    if let (true, Some(dir)) = (train_on.needs_human_labels(), ctx.inputs.get("annotation")) {
        anyhow::bail!(
            "train_on = \"{train_on}\" reads human labels of D_L, but the stage has weak labels \
             ({}) as input; plan it without an annotation (annotation = \"human\")",
            dir.display()
        );
    }
    Ok(match train_on {
        TrainOn::Unlabeled => labelled_unlabeled(ctx)?,
        TrainOn::Labeled => (split_pairs(ctx)?.labeled, None),
        TrainOn::All => (read_pairs(ctx.input("dataset")?)?, None),
    })
}

/// D_U as a labeller sees it: with an `annotation` input, each pair turned
/// so that `chosen` is the weak annotator's choice, plus its labels; without
/// one, the human labels as they are.
pub fn labelled_unlabeled(
    ctx: &StageContext,
) -> Result<(Vec<PreferencePair>, Option<Vec<WeakLabel>>)> {
    let unlabeled = split_pairs(ctx)?.unlabeled;
    let Some(dir) = ctx.inputs.get("annotation") else {
        return Ok((unlabeled, None));
    };
    let labels: Vec<WeakLabel> = read_json(dir, LABELS_FILE)?;
    anyhow::ensure!(
        labels.len() == unlabeled.len(),
        "{}: {} labels for {} unlabelled pairs (stale annotation?)",
        dir.display(),
        labels.len(),
        unlabeled.len()
    );
    let oriented = unlabeled
        .into_iter()
        .zip(&labels)
        .map(|(p, l)| if l.prefers_chosen { p } else { flip(p) })
        .collect();
    Ok((oriented, Some(labels)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(i: usize) -> PreferencePair {
        PreferencePair {
            prompt: format!("p{i}"),
            chosen: format!("good{i}"),
            rejected: format!("bad{i}"),
        }
    }

    /// A poisoned D_L reads its flipped pairs turned round and every other
    /// pair (of D_L and D_U) as it is.
    #[test]
    fn flipped_pairs_and_only_they_are_turned_round() {
        let pairs: Vec<PreferencePair> = (0..6).map(pair).collect();
        let split = SplitIndices {
            labeled: vec![0, 2, 3],
            unlabeled: vec![1, 4, 5],
            flipped: vec![2],
        };
        let read = pick_split(&pairs, &split).unwrap();
        assert_eq!(read.labeled, [pair(0), flip(pair(2)), pair(3)]);
        assert_eq!(read.labeled[1].chosen, "bad2");
        assert_eq!(read.unlabeled, [pair(1), pair(4), pair(5)]);
        // An unpoisoned split (as older artifacts, without `flipped`) reads as written.
        let old: SplitIndices =
            serde_json::from_str(r#"{"labeled": [0, 2, 3], "unlabeled": [1, 4, 5]}"#).unwrap();
        assert_eq!(
            pick_split(&pairs, &old).unwrap().labeled,
            [pair(0), pair(2), pair(3)]
        );
        assert!(!serde_json::to_string(&old).unwrap().contains("flipped"));
        // A flipped pair outside D_L is a corrupt artifact.
        let bad = SplitIndices {
            flipped: vec![4],
            ..split
        };
        let err = pick_split(&pairs, &bad).err().unwrap().to_string();
        assert!(err.contains("not in D_L"), "{err}");
    }
}
