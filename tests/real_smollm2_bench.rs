//! Proof on real weights (BENCHMARKS.md, "Real weights"): SmolLM2-135M as
//! the Bradley–Terry weak annotator on the HH-layout fixture, and one DPO
//! step on 2 pairs of 128 + 128 tokens, both on the CPU, timed. The DPO
//! step against PyTorch, split into phases, is `benches/smollm2_dpo_step.rs`;
//! the PyTorch counterpart is scripts/smollm2_torch_dpo_step.py.
//!
//! Ignored by default (minutes on a shared CPU); run with
//! `cargo test --release --test real_smollm2_bench -- --ignored --nocapture --test-threads 1`.
//! The optimiser is the pipeline's in-place AdamW.
//! Timings are printed, never asserted; what is asserted is that the numbers
//! are sane (BT loss falls on its training pairs, confidences lie in [0, 1),
//! the first DPO loss is ln 2 because policy = reference).
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, ParamsAdamW};
use cwpo::data::real::{DatasetFormat, LengthFilter, LoadOptions, OnBadRow};
use cwpo::model::probe::load_lm;
use cwpo::model::reward::RewardModel;
use cwpo::model::{LanguageModel, PadSide, ScalarScorer, SeqBatch};
use cwpo::train::WeakLabel;
use cwpo::train::adamw::AdamW;
use cwpo::train::losses::bradley_terry_loss;

use cwpo::testing::smollm2_gguf;

#[path = "../benches/common/smollm2_dpo.rs"]
mod smollm2_dpo;
use smollm2_dpo::{DpoStep, LEN, PAIRS};

#[test]
#[ignore = "minutes on CPU; documents BENCHMARKS.md's real-weights numbers"]
fn smollm2_bt_weak_annotator_on_hh_fixture() {
    let Some(path) = smollm2_gguf() else { return };
    let device = Device::Cpu;
    let start = Instant::now();
    let lm = load_lm(&path, &device).unwrap();
    let load_s = start.elapsed().as_secs_f64();

    let hh = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real/hh-rlhf.jsonl");
    // The paper's recipe: bad rows skipped, pairs over 512 SmolLM2 tokens dropped.
    let options = LoadOptions {
        on_bad_row: OnBadRow::Skip,
        length_filter: Some(LengthFilter {
            tokenizer: lm.tokenizer.as_ref(),
            max_tokens: DatasetFormat::HhRlhf.max_tokens(),
        }),
    };
    let loaded = DatasetFormat::HhRlhf.load(&hh, &options).unwrap();
    println!("{}", loaded.report);
    let pairs = loaded.pairs;
    let tok = &lm.tokenizer;
    let encode = |s: &str| tok.encode(s).unwrap();
    let chosen: Vec<(Vec<u32>, Vec<u32>)> = pairs
        .iter()
        .map(|p| (encode(&p.prompt), encode(&p.chosen)))
        .collect();
    let rejected: Vec<(Vec<u32>, Vec<u32>)> = pairs
        .iter()
        .map(|p| (encode(&p.prompt), encode(&p.rejected)))
        .collect();
    let batch_of = |rows: &[(Vec<u32>, Vec<u32>)]| {
        let refs: Vec<(&[u32], &[u32])> = rows
            .iter()
            .map(|(p, r)| (p.as_slice(), r.as_slice()))
            .collect();
        SeqBatch::from_prompt_response(&refs, tok.pad_id(), PadSide::Right, 512, &device).unwrap()
    };
    let (chosen_batch, rejected_batch) = (batch_of(&chosen), batch_of(&rejected));

    let rm = RewardModel::from_policy(&lm.policy, None, 0).unwrap();
    let bt_loss = || -> Tensor {
        let (s_chosen, s_rejected) = (
            rm.scores(&chosen_batch).unwrap(),
            rm.scores(&rejected_batch).unwrap(),
        ); // [B]
        bradley_terry_loss(&s_chosen, &s_rejected)
            .unwrap()
            .mean_all()
            .unwrap()
    };
    let mut opt = AdamW::new(
        rm.trainable_vars(),
        ParamsAdamW {
            lr: 1e-5,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let train_start = Instant::now();
    let steps = 3;
    let first = bt_loss();
    opt.backward_step(&first).unwrap();
    for _ in 1..steps {
        opt.backward_step(&bt_loss()).unwrap();
    }
    let train_s = train_start.elapsed().as_secs_f64();

    let annotate_start = Instant::now();
    let (s_chosen, s_rejected) = (
        rm.scores(&chosen_batch).unwrap(),
        rm.scores(&rejected_batch).unwrap(),
    );
    let labels: Vec<WeakLabel> = s_chosen
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .zip(s_rejected.to_vec1::<f32>().unwrap())
        .map(|(c, r)| WeakLabel::from_scores(c as f64, r as f64))
        .collect();
    let confidence: Vec<f64> = labels.iter().map(WeakLabel::confidence).collect();
    let annotate_s = annotate_start.elapsed().as_secs_f64();
    let last = bradley_terry_loss(&s_chosen, &s_rejected)
        .unwrap()
        .mean_all()
        .unwrap();
    let (first, last) = (
        first.to_scalar::<f32>().unwrap(),
        last.to_scalar::<f32>().unwrap(),
    );
    println!(
        "BT weak annotator (SmolLM2-135M, f32, CPU): load {load_s:.1} s; {steps} full-model AdamW steps on {} HH pairs {train_s:.1} s; annotate {annotate_s:.2} s; loss {first:.4} -> {last:.4}; agrees with human {}/{}; confidence {confidence:.3?}",
        pairs.len(),
        labels.iter().filter(|l| l.prefers_chosen).count(),
        labels.len()
    );
    assert!(
        last < first,
        "BT loss on its training pairs should fall: {first} -> {last}"
    );
    assert!(confidence.iter().all(|c| (0.0..1.0).contains(c)));
}

#[test]
#[ignore = "minutes on CPU; documents BENCHMARKS.md's real-weights numbers"]
fn smollm2_one_dpo_step() {
    let Some(path) = smollm2_gguf() else { return };
    let step = DpoStep::new(&path);
    let (pairs, prompt_len, response_len) = (PAIRS, LEN, LEN);

    let mut opt = AdamW::new(step.lm.policy.trainable_vars(), ParamsAdamW::default()).unwrap();
    let start = Instant::now();
    let loss = step.loss(&step.reference_margin());
    opt.backward_step(&loss).unwrap();
    let step_s = start.elapsed().as_secs_f64();
    let loss = loss
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    println!(
        "DPO step (SmolLM2-135M, f32, CPU, {pairs} pairs of {prompt_len} + {response_len} tokens, full-model AdamW, reference forward included): {step_s:.2} s, loss {loss:.5}"
    );
    assert!(
        (loss - std::f32::consts::LN_2).abs() < 1e-4,
        "policy = reference gives ln 2, got {loss}"
    );
}
