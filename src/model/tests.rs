//! End-to-end checks of the decoder family through the public model API.
use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::Optimizer;

use super::fused::with_fused;
use super::init::seeded_varbuilder;
use super::lora::LoraConfig;
use super::ops::tests::check_gradient;
use super::{DecoderConfig, LanguageModel, PadSide, Policy, RewardModel, ScalarScorer, SeqBatch};
use crate::testing::{tiny_llama, tiny_opt, tiny_qwen3};

fn rows() -> Vec<(Vec<u32>, Vec<u32>)> {
    vec![
        (vec![1, 5, 6, 7], vec![8, 9, 2]),
        (vec![1, 10], vec![11, 12, 13, 14, 2]),
        (vec![1, 3, 4, 5, 6, 7, 8], vec![9]),
    ]
}

fn batch(side: PadSide, dev: &Device) -> Result<SeqBatch> {
    let rows = rows();
    let refs: Vec<(&[u32], &[u32])> = rows.iter().map(|(p, r)| (&p[..], &r[..])).collect();
    SeqBatch::from_prompt_response(&refs, 0, side, 64, dev)
}

fn close(a: &Tensor, b: &Tensor, tol: f64) -> Result<()> {
    let a = a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
    Ok(())
}

/// Log-probs and rewards of each row alone (no padding) equal those of the
/// same row inside a left- or right-padded batch.
fn padding_does_not_change_outputs(cfg: &DecoderConfig) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let policy = Policy::new_random(cfg, None, 11, &dev)?;
    let rm = RewardModel::new_random(cfg, None, 12, &dev)?;
    let (left, right) = (batch(PadSide::Left, &dev)?, batch(PadSide::Right, &dev)?);
    let lp_left = policy.response_logprobs(&left)?;
    let lp_right = policy.response_logprobs(&right)?;
    close(&lp_left.sum, &lp_right.sum, 1e-5)?;
    close(&lp_left.count, &Tensor::new(&[3f32, 5., 1.], &dev)?, 0.0)?;
    close(&rm.scores(&left)?, &rm.scores(&right)?, 1e-5)?;
    for (i, (p, r)) in rows().iter().enumerate() {
        let single =
            SeqBatch::from_prompt_response(&[(&p[..], &r[..])], 0, PadSide::Right, 64, &dev)?;
        close(
            &policy.response_logprobs(&single)?.sum,
            &lp_left.sum.narrow(0, i, 1)?,
            1e-5,
        )?;
        close(
            &rm.scores(&single)?,
            &rm.scores(&left)?.narrow(0, i, 1)?,
            1e-5,
        )?;
    }
    // The sums are real log-probs: negative and finite.
    assert!(
        lp_left
            .sum
            .to_vec1::<f32>()?
            .iter()
            .all(|x| x.is_finite() && *x < 0.0)
    );
    Ok(())
}

/// Runs `check` with the fused CPU kernels off, then on.
fn on_both_paths(check: impl Fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    with_fused(false, &check)?;
    with_fused(true, &check)
}

#[test]
fn padding_side_does_not_change_llama_outputs() -> anyhow::Result<()> {
    on_both_paths(|| padding_does_not_change_outputs(&tiny_llama()))
}

#[test]
fn padding_side_does_not_change_qwen3_outputs() -> anyhow::Result<()> {
    on_both_paths(|| padding_does_not_change_outputs(&tiny_qwen3()))
}

#[test]
fn padding_side_does_not_change_opt_outputs() -> anyhow::Result<()> {
    on_both_paths(|| padding_does_not_change_outputs(&tiny_opt()))
}

/// Whole models give the same log-probs, rewards and gradients with the
/// fused kernels as with composed ops.
#[test]
fn fused_and_composed_models_agree() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    for cfg in [tiny_qwen3(), tiny_opt()] {
        let policy = Policy::new_random(&cfg, None, 41, &dev)?;
        let rm = RewardModel::new_random(&cfg, None, 42, &dev)?;
        let b = batch(PadSide::Left, &dev)?;
        let run = |fused: bool| -> Result<(Tensor, Tensor, candle_core::backprop::GradStore)> {
            with_fused(fused, || {
                let lp = policy.response_logprobs(&b)?.sum;
                let grads = lp.sum_all()?.backward()?;
                Ok((lp, rm.scores(&b)?, grads))
            })
        };
        let (lp0, s0, g0) = run(false)?;
        let (lp1, s1, g1) = run(true)?;
        close(&lp0, &lp1, 1e-4)?;
        close(&s0, &s1, 1e-5)?;
        for var in policy.trainable_vars() {
            close(
                g0.get(&var).expect("gradient"),
                g1.get(&var).expect("gradient"),
                1e-4,
            )?;
        }
    }
    Ok(())
}

/// Logits equal an independent, loop-based softmax over the logits: the
/// response log-prob is Σ_t log softmax(logits[t-1])[ids[t]].
#[test]
fn response_logprobs_match_logits_by_hand() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let policy = Policy::new_random(&tiny_llama(), None, 3, &dev)?;
    let b = batch(PadSide::Right, &dev)?;
    let logits = policy.logits(&b)?.to_vec3::<f32>()?;
    let ids = b.ids.to_vec2::<u32>()?;
    let mask = b.target_mask.to_vec2::<f32>()?;
    let got = policy.response_logprobs(&b)?.sum.to_vec1::<f32>()?;
    for row in 0..ids.len() {
        let mut expected = 0f64;
        for t in 1..ids[row].len() {
            if mask[row][t] == 1.0 {
                let l = &logits[row][t - 1];
                let lse = l.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
                expected += l[ids[row][t] as usize] as f64 - lse;
            }
        }
        assert!(
            (got[row] as f64 - expected).abs() < 1e-4,
            "row {row}: {} vs {expected}",
            got[row]
        );
    }
    Ok(())
}

/// d(Σ response log-probs)/d(weight) by backprop equals finite differences in f64.
fn gradients_match_finite_differences(cfg: &DecoderConfig, names: &[&str]) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let policy = Policy::from_varbuilder(cfg, seeded_varbuilder(5, DType::F64, &dev), None)?;
    let b = batch(PadSide::Left, &dev)?;
    on_both_paths(|| {
        let f = || -> Result<Tensor> { policy.response_logprobs(&b)?.sum.sum_all() };
        for name in names {
            let var: &Var = policy
                .backbone()
                .params()
                .get(name)
                .unwrap_or_else(|| panic!("no parameter {name}"));
            check_gradient(var, 6, &f)?;
        }
        Ok(())
    })
}

#[test]
fn llama_gradients_match_finite_differences() -> anyhow::Result<()> {
    gradients_match_finite_differences(
        &tiny_qwen3(),
        &[
            "model.embed_tokens.weight",
            "model.layers.0.input_layernorm.weight",
            "model.layers.1.self_attn.q_norm.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.bias",
            "model.layers.1.self_attn.v_proj.weight",
            "model.layers.0.mlp.gate_proj.weight",
            "model.norm.weight",
            "lm_head.weight",
        ],
    )
}

#[test]
fn opt_gradients_match_finite_differences() -> anyhow::Result<()> {
    gradients_match_finite_differences(
        &tiny_opt(),
        &[
            "model.decoder.embed_tokens.weight",
            "model.decoder.embed_positions.weight",
            "model.decoder.layers.0.self_attn_layer_norm.weight",
            "model.decoder.layers.0.self_attn_layer_norm.bias",
            "model.decoder.layers.1.self_attn.k_proj.weight",
            "model.decoder.layers.0.self_attn.out_proj.bias",
            "model.decoder.layers.0.fc1.weight",
            "model.decoder.final_layer_norm.weight",
        ],
    )
}

#[test]
fn reward_gradients_match_finite_differences() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let rm =
        RewardModel::from_varbuilder(&tiny_llama(), seeded_varbuilder(6, DType::F64, &dev), None)?;
    let b = batch(PadSide::Left, &dev)?;
    let w = Tensor::new(&[1.0f64, -2.0, 0.5], &dev)?;
    let f = || -> Result<Tensor> { (rm.scores(&b)? * &w)?.sum_all() };
    for name in [
        "score.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.embed_tokens.weight",
    ] {
        check_gradient(rm.backbone().params().get(name).expect(name), 6, &f)?;
    }
    Ok(())
}

fn lora(targets: &[&str]) -> LoraConfig {
    LoraConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.1,
        targets: targets.iter().map(|s| s.to_string()).collect(),
    }
}

/// With LoRA on, an AdamW step moves adapter tensors and nothing else.
#[test]
fn lora_step_changes_only_adapters() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let cfg = tiny_llama();
    let policy = Policy::new_random(
        &cfg,
        Some(&lora(&["q_proj", "v_proj", "down_proj"])),
        7,
        &dev,
    )?;
    policy.backbone().set_training(true);
    let trainable = policy.trainable_vars();
    assert_eq!(
        trainable.len(),
        2 * 3 * cfg.num_layers,
        "A and B per targeted projection"
    );
    let before = policy.backbone().params().tensors();
    let before: Vec<(String, Tensor)> = before
        .into_iter()
        .map(|(k, t)| Ok((k, t.copy()?)))
        .collect::<Result<_>>()?;
    let mut opt = candle_nn::AdamW::new_lr(trainable, 1e-2)?;
    for _ in 0..2 {
        let loss = policy
            .response_logprobs(&batch(PadSide::Right, &dev)?)?
            .sum
            .sum_all()?
            .neg()?;
        opt.backward_step(&loss)?;
    }
    let after = policy.backbone().params().tensors();
    let mut changed = Vec::new();
    for (name, old) in &before {
        let diff = (old - &after[name])?.abs()?.sum_all()?.to_scalar::<f32>()?;
        if diff > 0.0 {
            changed.push(name.clone());
        }
        let is_adapter = name.contains(".lora_");
        assert_eq!(
            policy.backbone().params().is_trainable(name),
            is_adapter,
            "{name}"
        );
        if !is_adapter {
            assert_eq!(diff, 0.0, "frozen base tensor {name} changed");
        }
    }
    // Both A and B move (B starts at zero, A moves once B is non-zero).
    assert!(
        changed.iter().any(|n| n.ends_with("lora_A.weight")),
        "{changed:?}"
    );
    assert!(
        changed.iter().any(|n| n.ends_with("lora_B.weight")),
        "{changed:?}"
    );
    Ok(())
}

/// A fresh adapter is the identity; merge() folds a trained adapter into
/// the base weights without changing outputs.
#[test]
fn lora_fresh_is_identity_and_merge_preserves_outputs() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let cfg = tiny_opt();
    let base = Policy::new_random(&cfg, None, 8, &dev)?;
    let adapted = base.with_lora(&lora(&["q_proj", "fc1", "out_proj"]), 9)?;
    let b = batch(PadSide::Left, &dev)?;
    close(
        &base.response_logprobs(&b)?.sum,
        &adapted.response_logprobs(&b)?.sum,
        1e-6,
    )?;
    // Train the adapters a little so that B ≠ 0.
    let mut opt = candle_nn::AdamW::new_lr(adapted.trainable_vars(), 5e-2)?;
    for _ in 0..3 {
        opt.backward_step(&adapted.response_logprobs(&b)?.sum.sum_all()?.neg()?)?;
    }
    let trained = adapted.response_logprobs(&b)?.sum;
    assert!(
        (&trained - &base.response_logprobs(&b)?.sum)?
            .abs()?
            .max(0)?
            .to_scalar::<f32>()?
            > 1e-3
    );
    let mut merged = adapted.deep_clone()?;
    merged.backbone_mut().merge_lora()?;
    assert!(merged.lora_config().is_none());
    assert!(
        merged
            .backbone()
            .params()
            .iter()
            .all(|(n, _)| !n.contains("lora_"))
    );
    close(&merged.response_logprobs(&b)?.sum, &trained, 1e-4)?;
    Ok(())
}

/// Dropout is seeded: two models built with the same seed draw the same masks;
/// eval mode is deterministic and differs from training mode.
#[test]
fn lora_dropout_is_seeded_and_only_in_training() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let cfg = tiny_llama();
    let mut l = lora(&["q_proj", "up_proj"]);
    l.dropout = 0.5;
    let make = || -> anyhow::Result<Policy> {
        let p = Policy::new_random(&cfg, Some(&l), 4, &dev)?;
        // Make B non-zero so dropout on the adapter input shows in the output.
        for v in p.trainable_vars() {
            v.set(&(v.as_tensor() + 0.3)?)?;
        }
        Ok(p)
    };
    let (p1, p2) = (make()?, make()?);
    let b = batch(PadSide::Right, &dev)?;
    let eval1 = p1.response_logprobs(&b)?.sum;
    close(&eval1, &p1.response_logprobs(&b)?.sum, 0.0)?;
    p1.backbone().set_training(true);
    p2.backbone().set_training(true);
    let t1 = p1.response_logprobs(&b)?.sum;
    close(&t1, &p2.response_logprobs(&b)?.sum, 0.0)?;
    let diff = (&t1 - &eval1)?.abs()?.max(D::Minus1)?.to_scalar::<f32>()?;
    assert!(diff > 1e-4, "dropout had no effect ({diff})");
    Ok(())
}

/// The reward model built from a policy shares its backbone values, not its variables.
#[test]
fn reward_from_policy_copies_backbone() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let policy = Policy::new_random(&tiny_llama(), None, 21, &dev)?;
    let rm = RewardModel::from_policy(&policy, None, 22)?;
    let name = "model.layers.0.self_attn.q_proj.weight";
    let p = policy.backbone().params().get(name).unwrap();
    let r = rm.backbone().params().get(name).unwrap();
    close(p.as_tensor(), r.as_tensor(), 0.0)?;
    r.set(&(r.as_tensor() + 1.0)?)?;
    let diff = (p.as_tensor() - r.as_tensor())?
        .abs()?
        .mean_all()?
        .to_scalar::<f32>()?;
    assert!(
        (diff - 1.0).abs() < 1e-6,
        "policy weight changed with the reward model's"
    );
    assert!(rm.backbone().params().get("score.weight").is_some());
    assert!(rm.backbone().params().get("lm_head.weight").is_none());
    Ok(())
}

/// A Qwen3-shaped model (q/k norm, head_dim ≠ D/H, GQA 4:1, bias, untied
/// head) builds with the expected parameter count and learns: a few AdamW
/// steps raise the log-prob of a fixed batch.
#[test]
fn qwen3_style_config_runs_and_learns() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let cfg = tiny_qwen3();
    let policy = Policy::new_random(&cfg, None, 13, &dev)?;
    assert_eq!(policy.backbone().params().num_params().0, cfg.num_params());
    assert!(
        policy
            .backbone()
            .params()
            .get("model.layers.0.self_attn.k_norm.weight")
            .is_some()
    );
    let b = batch(PadSide::Left, &dev)?;
    let start = policy
        .response_logprobs(&b)?
        .sum
        .sum_all()?
        .to_scalar::<f32>()?;
    let mut opt = candle_nn::AdamW::new_lr(policy.trainable_vars(), 1e-2)?;
    for _ in 0..10 {
        opt.backward_step(&policy.response_logprobs(&b)?.sum.sum_all()?.neg()?)?;
    }
    let end = policy
        .response_logprobs(&b)?
        .sum
        .sum_all()?
        .to_scalar::<f32>()?;
    assert!(end > start + 1.0, "log-prob did not rise: {start} → {end}");
    Ok(())
}

#[test]
fn same_seed_same_weights_and_bad_configs_are_errors() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let a = Policy::new_random(&tiny_llama(), None, 1, &dev)?;
    let b = Policy::new_random(&tiny_llama(), None, 1, &dev)?;
    for (name, var) in a.backbone().params().iter() {
        close(
            var.as_tensor(),
            b.backbone().params().get(name).unwrap().as_tensor(),
            0.0,
        )?;
    }
    let mut bad = tiny_llama();
    bad.num_kv_heads = 3;
    let err = Policy::new_random(&bad, None, 1, &dev).unwrap_err();
    assert!(format!("{err:#}").contains("num_kv_heads"), "{err:#}");
    let err = Policy::new_random(&tiny_llama(), Some(&lora(&["qkv"])), 1, &dev).unwrap_err();
    assert!(
        format!("{err:#}").contains("unknown projection `qkv`"),
        "{err:#}"
    );
    Ok(())
}
