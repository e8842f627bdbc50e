//! Tables 21–22 end to end on a CI-sized world: the shipped manifest
//! (`experiments/table21.toml`) at one dataset and seed, its three
//! labellers (the judge, the weak BT annotator with confidence weights,
//! the WS-DPO weak LM), two online rounds each, through the real `sweep`
//! binary. Then, on the cached artifacts:
//! - round 1 starts from the cell's SFT model and round 2 from round 1's
//!   policy, every round against the SFT reference;
//! - a round's pairs are its starting policy's own samples: re-sampling
//!   that policy with the round's seed gives them back, and the SFT model
//!   (round 1's start) gives other ones;
//! - a round killed inside its training resumes from its checkpoint and ends
//!   with the same policy, byte for byte, as the uninterrupted run's.
//!
//! The full-size tables: `sweep run experiments/table21.toml
//! experiments/table22.toml` (README).
mod common;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::table1_ci::{ci_sized, files_of, small_profile};
use common::{sweep, text};
use cwpo::model::sample::generate;
use cwpo::stage::models::{load_policy, tokenizer_of_checkpoint};
use cwpo::stage::online_round::{self, ONLINE_PAIRS_FILE, OnlinePair, round_sampling, sample_rows};
use cwpo::stage::{Progress, StageContext, read_json, run_stage};
use cwpo::train::checkpoint::{CheckpointEvery, CheckpointPlace};

fn record(stage: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(stage.join("sweep-record.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["record"].clone()
}

/// Every recorded stage dir of `kind`.
fn stages(cache: &Path, kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(cache.join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("sweep-record.json").is_file())
        .collect();
    out.sort();
    out
}

/// The texts `policy_dir`'s model samples for the round's prompts with the round's sampling.
fn resample(policy_dir: &Path, params: &online_round::Params, prompts: &[String]) -> Vec<String> {
    let model = policy_dir.join("model");
    let tokenizer = tokenizer_of_checkpoint(&model).unwrap();
    let policy = load_policy(&model, &candle_core::Device::Cpu).unwrap();
    let ids = sample_rows(prompts, tokenizer.as_ref()).unwrap();
    generate(&policy, &ids, &round_sampling(params))
        .unwrap()
        .iter()
        .map(|o| tokenizer.decode(o).unwrap())
        .collect()
}

/// Cancels the run (as Ctrl-C does) once training reaches step `at`.
struct CancelAt {
    at: u64,
    cancel: Arc<AtomicBool>,
    log: Mutex<Vec<String>>,
}

impl Progress for CancelAt {
    fn set_total(&self, _total: u64) {}
    fn set_step(&self, step: u64, loss: Option<f64>) {
        if loss.is_some() && step >= self.at {
            self.cancel.store(true, Ordering::Relaxed);
        }
    }
    fn log(&self, line: &str) {
        self.log.lock().unwrap().push(line.to_string());
    }
}

#[test]
fn online_rounds_train_on_their_policys_own_samples_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = small_profile(dir);
    let manifest = ci_sized(
        dir,
        "table21",
        "Table 21 (CI-sized world)",
        "regime = [\"online\"]\npair = [\"opt\"]\ndataset = [\"hh-rlhf\"]\n\
         annotation = [\"reward-model\", \"cw\", \"ws\"]\nseed = [0]\n",
    );
    let (profile, manifest) = (profile.to_str().unwrap(), manifest.to_str().unwrap());
    let run = sweep(dir, &["run", manifest, "--profile", profile]);
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    let csv = std::fs::read_to_string(dir.join("results/table21/table21.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for column in ["online_reward-model", "online_cw", "online_ws"] {
        assert!(header.split(',').any(|c| c == column), "{header}");
    }
    let report = std::fs::read_to_string(dir.join("results/table21/report.md")).unwrap();
    assert!(
        report.contains("85.3"),
        "report.md shows the paper's Table 21"
    );

    let cache = dir.join("results/cache");
    let rounds = stages(&cache, "online_round");
    assert_eq!(rounds.len(), 3 * 2, "two rounds per labeller");
    let sfts: Vec<String> = stages(&cache, "sft")
        .iter()
        .map(|d| record(d)["key"].as_str().unwrap().to_string())
        .collect();
    let by_key: BTreeMap<String, serde_json::Value> = rounds
        .iter()
        .map(|d| {
            let r = record(d);
            (r["key"].as_str().unwrap().to_string(), r)
        })
        .collect();
    let mut checked_second_rounds = 0;
    for (key, r) in &by_key {
        let params: online_round::Params = serde_json::from_value(r["params"].clone()).unwrap();
        let inputs = &r["inputs"];
        let start = inputs["policy"].as_str().unwrap();
        let reference = inputs["sft"].as_str().unwrap();
        assert!(
            sfts.iter().any(|s| s == reference),
            "{key}: reference is an SFT model"
        );
        let start_dir = if params.round == 1 {
            assert_eq!(start, reference, "{key}: round 1 starts from the SFT model");
            cache.join("sft").join(start)
        } else {
            let previous = &by_key[start];
            let previous_params: online_round::Params =
                serde_json::from_value(previous["params"].clone()).unwrap();
            assert_eq!(previous_params.round, params.round - 1, "{key}");
            assert_eq!(previous_params.labeller, params.labeller, "{key}");
            assert_eq!(previous["inputs"]["sft"], inputs["sft"], "{key}");
            cache.join("online_round").join(start)
        };
        // The pairs are the starting policy's samples, two per prompt.
        let stage = cache.join("online_round").join(key);
        let pairs: Vec<OnlinePair> = read_json(&stage, ONLINE_PAIRS_FILE).unwrap();
        assert!(!pairs.is_empty());
        assert_eq!(r["metrics"]["pairs"].as_f64().unwrap(), pairs.len() as f64);
        let prompts: Vec<String> = pairs.iter().map(|p| p.prompt.clone()).collect();
        let sampled: Vec<String> = pairs
            .iter()
            .flat_map(|p| [p.first.clone(), p.second.clone()])
            .collect();
        assert_eq!(
            resample(&start_dir, &params, &prompts),
            sampled,
            "{key}: round {}'s pairs are not its starting policy's samples",
            params.round
        );
        if params.round == 2 {
            // ...and not the SFT model's: the check tells the two apart.
            let sft_dir = cache.join("sft").join(reference);
            assert_ne!(resample(&sft_dir, &params, &prompts), sampled, "{key}");
            checked_second_rounds += 1;
        }
        let weights: Vec<f64> = pairs.iter().map(|p| p.weight).collect();
        match params.labeller {
            online_round::Labeller::Weak if params.weighting.to_string() == "cw" => {
                for p in &pairs {
                    assert!((p.weight - p.label.confidence()).abs() < 1e-12, "{key}");
                }
            }
            _ => assert!(weights.iter().all(|&w| w == 1.0), "{key}: {weights:?}"),
        }
        if params.labeller == online_round::Labeller::RewardModel {
            // The judge labelling its own pairs agrees with itself.
            if let Some(a) = r["metrics"].get("label_gold_agreement") {
                assert_eq!(a.as_f64().unwrap(), 1.0, "{key}");
            }
        }
    }
    assert_eq!(checked_second_rounds, 3);

    // A second round killed after 2 training steps resumes and ends byte-identical.
    let (key, r) = by_key
        .iter()
        .find(|(_, r)| r["params"]["round"] == 2)
        .unwrap();
    let want = files_of(&cache.join("online_round").join(key).join("model"));
    let inputs: BTreeMap<String, PathBuf> = r["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(role, k)| {
            let kind = record_kind(&cache, k.as_str().unwrap());
            (role.clone(), cache.join(kind).join(k.as_str().unwrap()))
        })
        .collect();
    let partial = tempfile::tempdir().unwrap();
    let place = CheckpointPlace {
        dir: partial.path().to_path_buf(),
        stage: format!("online_round/{key}"),
        every: CheckpointEvery {
            steps: 1,
            interval: Duration::from_secs(3600),
        },
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let run_once = |progress: &CancelAt| {
        let out = tempfile::tempdir().unwrap();
        let ctx = StageContext {
            params: &r["params"],
            inputs: &inputs,
            out_dir: out.path(),
            device: &candle_core::Device::Cpu,
            progress,
            cancel: &progress.cancel,
            checkpoint: Some(&place),
        };
        run_stage("online_round", &ctx).map(|_| files_of(&out.path().join("model")))
    };
    let killed = CancelAt {
        at: 2,
        cancel: cancel.clone(),
        log: Mutex::new(Vec::new()),
    };
    let err = format!("{:#}", run_once(&killed).unwrap_err());
    assert!(err.contains("cancelled at step 2"), "{err}");
    let resumed = CancelAt {
        at: u64::MAX,
        cancel: Arc::new(AtomicBool::new(false)),
        log: Mutex::new(Vec::new()),
    };
    let got = run_once(&resumed).unwrap();
    let log = resumed.log.lock().unwrap().join("\n");
    assert!(
        log.contains("resuming online_round from its checkpoint at step 2"),
        "{log}"
    );
    assert!(log.contains("resuming online_sample after"), "{log}");
    assert_eq!(
        got, want,
        "the resumed round's policy differs from the uninterrupted run's"
    );
}

/// The kind of the recorded stage `key` (its cache dir's parent).
fn record_kind(cache: &Path, key: &str) -> String {
    for kind in cwpo::stage::KINDS {
        if cache
            .join(kind)
            .join(key)
            .join("sweep-record.json")
            .is_file()
        {
            return kind.to_string();
        }
    }
    panic!("no recorded stage {key}");
}
