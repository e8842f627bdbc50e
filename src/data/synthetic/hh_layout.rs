//! The synthetic world's data written as Anthropic HH-RLHF files
//! (`{"chosen": …, "rejected": …}` transcripts `"\n\nHuman: …\n\nAssistant: …"`),
//! so a real pretrained model runs the paper profile's whole path (the HH
//! reader, a real tokenizer, HH-layout prompts) on data whose labels we know:
//! the human pairs carry the world's simulated human labels (its noise
//! model), the judge's pairs the *true* reward's. The `smollm2` profile reads
//! the files `sweep world export-hh` writes (shipped under assets/smollm2/).
//!
//! Layout: `export_family` → `<dir>/<family>/{train,test}.jsonl` (human
//! pairs; test rows are bare prompts, both responses empty, as the reader
//! takes only a test file's prompts) and `<dir>/gold/{train,valid}.jsonl`
//! (gold-labelled pairs of the same family, never a test prompt, on their
//! own random streams: the training and held-out sets of the learned judge).
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{WorldConfig, generate_family, gold_labelled_pairs};
use crate::data::PreferencePair;
use crate::data::real::hh_rlhf::ASSISTANT_MARKER;

/// An HH transcript's prompt: one human turn and the open assistant turn,
/// `"\n\nHuman: {prompt}\n\nAssistant:"`.
pub fn hh_prompt(prompt: &str) -> String {
    format!("\n\nHuman: {prompt}{ASSISTANT_MARKER}")
}

/// One HH row: both full transcripts; a response follows the marker after
/// one space, as in Anthropic's files (the reader keeps that space).
pub fn hh_row(pair: &PreferencePair) -> Value {
    let prompt = hh_prompt(&pair.prompt);
    let side = |response: &str| match response {
        "" => prompt.clone(),
        r => format!("{prompt} {r}"),
    };
    json!({"chosen": side(&pair.chosen), "rejected": side(&pair.rejected)})
}

/// What [`export_family`] writes, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct HhExport {
    /// Human-labelled pairs (`cfg.n_pairs`).
    pub train: Vec<Value>,
    /// The held-out test prompts (`cfg.n_test_prompts`), empty responses.
    pub test: Vec<Value>,
    /// Gold-labelled pairs: the learned judge's training set ...
    pub gold_train: Vec<Value>,
    /// ... and its held-out set.
    pub gold_valid: Vec<Value>,
}

/// `family`'s human pairs and test prompts, and `n_gold` + `n_gold_valid`
/// gold-labelled pairs of it, as HH rows.
pub fn export_family(
    cfg: &WorldConfig,
    family: &str,
    n_gold: usize,
    n_gold_valid: usize,
) -> Result<HhExport> {
    let data = generate_family(cfg, family)?;
    let bare = |prompt: &String| {
        hh_row(&PreferencePair {
            prompt: prompt.clone(),
            chosen: String::new(),
            rejected: String::new(),
        })
    };
    let gold = |n, purpose| -> Result<Vec<Value>> {
        Ok(gold_labelled_pairs(cfg, Some(family), n, purpose)?
            .iter()
            .map(hh_row)
            .collect())
    };
    Ok(HhExport {
        train: data.pairs.iter().map(hh_row).collect(),
        test: data.test_prompts.iter().map(bare).collect(),
        gold_train: gold(n_gold, "hh-export/gold-train")?,
        gold_valid: gold(n_gold_valid, "hh-export/gold-valid")?,
    })
}

/// Writes `export` under `dir` (layout in the module doc); returns the files.
pub fn write_export(dir: &Path, family: &str, export: &HhExport) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for (sub, name, rows) in [
        (family, "train.jsonl", &export.train),
        (family, "test.jsonl", &export.test),
        ("gold", "train.jsonl", &export.gold_train),
        ("gold", "valid.jsonl", &export.gold_valid),
    ] {
        let folder = dir.join(sub);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let path = folder.join(name);
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(format!("{} ({} rows)", path.display(), rows.len()));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::real::{DatasetFormat, LoadOptions, OnBadRow};

    #[test]
    fn an_hh_row_reads_back_as_its_pair() {
        let pair = PreferencePair {
            prompt: "how do i sell a red house ?".into(),
            chosen: "first sell the house".into(),
            rejected: "sorry , no".into(),
        };
        let row = hh_row(&pair);
        assert_eq!(
            row["chosen"],
            "\n\nHuman: how do i sell a red house ?\n\nAssistant: first sell the house"
        );
        let back = crate::data::real::hh_rlhf::parse_row(&row).unwrap();
        assert_eq!(back.prompt, hh_prompt(&pair.prompt));
        assert_eq!(
            (back.chosen.as_str(), back.rejected.as_str()),
            (" first sell the house", " sorry , no"),
            "the reader keeps the space after the marker"
        );
    }

    /// Written files load through the real HH reader: every row, the
    /// world's pairs in order, test rows giving only their prompts, and the
    /// judge's pairs on other streams than the humans'.
    #[test]
    fn exported_files_load_through_the_hh_reader() {
        let cfg = WorldConfig {
            n_pairs: 6,
            n_test_prompts: 3,
            ..WorldConfig::default()
        };
        let export = export_family(&cfg, "hh-rlhf", 5, 4).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        write_export(tmp.path(), "hh-rlhf", &export).unwrap();
        let options = LoadOptions {
            on_bad_row: OnBadRow::Error,
            length_filter: None,
        };
        let load = |p: &str| {
            DatasetFormat::HhRlhf
                .load(&tmp.path().join(p), &options)
                .unwrap()
                .pairs
        };
        let world = generate_family(&cfg, "hh-rlhf").unwrap();
        let train = load("hh-rlhf/train.jsonl");
        assert_eq!(train.len(), 6);
        for (read, pair) in train.iter().zip(&world.pairs) {
            assert_eq!(read.prompt, hh_prompt(&pair.prompt));
            assert_eq!(read.chosen, format!(" {}", pair.chosen));
            assert_eq!(read.rejected, format!(" {}", pair.rejected));
        }
        let test = load("hh-rlhf/test.jsonl");
        let prompts: Vec<String> = world.test_prompts.iter().map(|p| hh_prompt(p)).collect();
        assert_eq!(
            test.iter().map(|p| p.prompt.clone()).collect::<Vec<_>>(),
            prompts
        );
        assert!(test.iter().all(|p| p.chosen.is_empty()));
        let (gold, valid) = (load("gold/train.jsonl"), load("gold/valid.jsonl"));
        assert_eq!((gold.len(), valid.len()), (5, 4));
        assert_ne!(gold[0], valid[0]);
        assert!(gold.iter().all(|g| !prompts.contains(&g.prompt)));
    }
}
