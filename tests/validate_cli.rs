//! `sweep validate` (and `run`) reject every out-of-range number and every
//! weighting expression the parser rejects, at the manifest's
//! `file:line:col`, with exit code 2 and nothing written; and accept every
//! expression the parser accepts.
mod common;
use common::{snapshot, sweep, text};
use std::path::Path;

/// A one-cell manifest that stops after `split`; `extra` is appended.
fn manifest(objective: &str, annotation: &str, extra: &str) -> String {
    format!(
        r#"[experiment]
name = "v"
until = "split"
[defaults]
dataset = "hh-rlhf"
pair = "opt"
objective = "{objective}"
annotation = "{annotation}"
{extra}"#
    )
}

/// `validate` and `run` both exit 2 naming `expected` (the first is the
/// location), and the directory holds only the manifest afterwards.
fn rejected(dir: &Path, file: &str, body: &str, expected: &[&str]) {
    std::fs::write(dir.join(file), body).unwrap();
    let before = snapshot(dir);
    for cmd in ["validate", "run", "plan"] {
        let out = sweep(dir, &[cmd, file]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd} {file}:\n{msg}");
        for e in expected {
            assert!(msg.contains(e), "{cmd} {file}: expected `{e}` in:\n{msg}");
        }
        assert_eq!(snapshot(dir), before, "{cmd} {file} wrote something");
    }
}

#[test]
fn out_of_range_numbers_exit_2_at_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The bad value is always on line 10 (after `[align]` etc. on line 9).
    let cases: &[(&str, &str, &str, &str, &[&str])] = &[
        (
            "dpo",
            "cw",
            "[align]\nbeta = -1.0\n",
            "beta.toml",
            &["beta.toml:10:8", "`align.beta`", "positive"],
        ),
        (
            "dpo",
            "cw",
            "[align]\nbeta = 0.0\n",
            "beta0.toml",
            &["beta0.toml:10:8", "`align.beta`"],
        ),
        (
            "rdpo",
            "cw",
            "[align]\nbeta = -0.5\n",
            "rbeta.toml",
            &["rbeta.toml:10:8", "`align.beta`"],
        ),
        (
            "ipo",
            "cw",
            "[align]\ntau = 0.0\n",
            "tau.toml",
            &["tau.toml:10:7", "`align.tau`", "positive"],
        ),
        (
            "rdpo",
            "cw",
            "[align]\neps = 0.5\n",
            "eps.toml",
            &["eps.toml:10:7", "`align.eps`", "[0, 0.5)"],
        ),
        (
            "rdpo",
            "cw",
            "[align]\neps = -0.1\n",
            "eps_neg.toml",
            &["eps_neg.toml:10:7", "`align.eps`"],
        ),
        (
            "dpo",
            "cw",
            "[align]\nlearning_rate = -3\n",
            "lr_int.toml",
            &["lr_int.toml:10:17", "`align.learning_rate = -3`"],
        ),
        (
            "dpo",
            "cw",
            "[align]\nlearning_rate = 0.0\n",
            "lr_align.toml",
            &["lr_align.toml:10:17", "align.learning_rate"],
        ),
        (
            "dpo",
            "cw",
            "[weak]\nlearning_rate = -1e-3\n",
            "lr_weak.toml",
            &["lr_weak.toml:10:17", "weak.learning_rate"],
        ),
        (
            "dpo",
            "cw",
            "[sft]\nlearning_rate = 0.0\n",
            "lr_sft.toml",
            &["lr_sft.toml:10:17", "sft.learning_rate"],
        ),
        (
            "dpo",
            "ws",
            "[weak]\nbeta = -2.0\n",
            "weak_beta.toml",
            &["weak_beta.toml:10:8", "`weak.beta`"],
        ),
        (
            "dpo",
            "cw",
            "[align]\nweighting = \"s_c + foo\"\n",
            "unknown_var.toml",
            &["unknown_var.toml:10:13", "foo", "s_c, s_r, delta, c"],
        ),
        (
            "dpo",
            "cw",
            "[align]\nweighting = \"2*(s_c - \"\n",
            "unparsable.toml",
            &["unparsable.toml:10:13", "weighting expression"],
        ),
        (
            "dpo",
            "cw",
            "[align]\nweighting = \"fancy\"\n",
            "fancy.toml",
            &["fancy.toml:10:13", "uniform, cw, sigmoid"],
        ),
        (
            "dpo",
            "cw",
            "[sft]\ngrad_accum = 0\n",
            "grad_accum.toml",
            &[
                "grad_accum.toml:10:14",
                "`sft.grad_accum = 0`",
                "at least 1",
            ],
        ),
        (
            "dpo",
            "cw",
            "[align]\nweight_decay = -0.05\n",
            "weight_decay.toml",
            &[
                "weight_decay.toml:10:16",
                "`align.weight_decay = -0.05`",
                ">= 0",
            ],
        ),
        (
            "dpo",
            "cw",
            "[weak]\nmax_grad_norm = -1.0\n",
            "clip.toml",
            &["clip.toml:10:17", "`weak.max_grad_norm = -1`", ">= 0"],
        ),
        (
            "dpo",
            "cw",
            "[sft]\nlora_alpha = 16.0\n",
            "alpha_no_rank.toml",
            &[
                "alpha_no_rank.toml:10:14",
                "`sft.lora_alpha` needs `lora_rank`",
            ],
        ),
        (
            "dpo",
            "cw",
            "[align]\nlora_rank = 8\nlora_dropout = 1.0\n",
            "dropout.toml",
            &["dropout.toml:11:16", "`align.lora_dropout = 1`", "[0, 1)"],
        ),
        (
            "dpo",
            "cw",
            "[align]\nwarmup_steps = -10\n",
            "warmup.toml",
            &["warmup.toml:10:", "align.warmup_steps", "invalid value"],
        ),
        (
            "rdpo",
            "cw",
            "[align]\nlength_normalised = true\n",
            "rdpo_normalised.toml",
            &[
                "rdpo_normalised.toml:10:21",
                "`align.length_normalised = true`",
                "rDPO",
            ],
        ),
        (
            "dpo",
            "cw",
            "[generate]\ntop_p = 0.0\n",
            "top_p.toml",
            &["top_p.toml:10:9", "`generate.top_p = 0`", "(0, 1]"],
        ),
        (
            "dpo",
            "cw",
            "[generate]\ntemperature = 0.0\ntop_p = 0.9\n",
            "greedy_top_p.toml",
            &[
                "greedy_top_p.toml:11:9",
                "`generate.top_p = 0.9`",
                "temperature",
            ],
        ),
        (
            "dpo",
            "top0",
            "",
            "top0.toml",
            &["top0.toml:8:14", "1..=99", "not 0"],
        ),
        (
            "dpo",
            "top100",
            "",
            "top100.toml",
            &["top100.toml:8:14", "1..=99", "not 100"],
        ),
    ];
    for (objective, annotation, extra, file, expected) in cases {
        let body = manifest(objective, annotation, extra);
        // Keep the bad value's line fixed whatever the block: line 9 is the header.
        assert_eq!(body.lines().count(), 8 + extra.lines().count(), "{file}");
        rejected(dir, file, &body, expected);
    }
}

#[test]
fn every_expression_the_parser_accepts_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (i, expression) in [
        "delta",
        "2*c-1",
        "c",
        "clamp(delta, 0, 1)",
        "min(s_c, s_r) / 2",
        "sigmoid(s_c - s_r)^2",
        "cw",
        "uniform",
    ]
    .iter()
    .enumerate()
    {
        let file = format!("ok{i}.toml");
        let body = manifest(
            "dpo",
            "cw",
            &format!("[align]\nweighting = \"{expression}\"\n"),
        );
        std::fs::write(dir.join(&file), body).unwrap();
        let out = sweep(dir, &["validate", &file]);
        assert!(
            out.status.success(),
            "`{expression}` rejected:\n{}",
            text(&out)
        );
    }
    // The edges of the ranges are accepted: ε = 0, top1, top99.
    for (i, (objective, annotation, extra)) in [
        ("rdpo", "cw", "[align]\neps = 0.0\n"),
        ("dpo", "top1", ""),
        ("dpo", "top99", ""),
    ]
    .iter()
    .enumerate()
    {
        let file = format!("edge{i}.toml");
        std::fs::write(dir.join(&file), manifest(objective, annotation, extra)).unwrap();
        let out = sweep(dir, &["validate", &file]);
        assert!(
            out.status.success(),
            "{objective} {annotation} {extra}:\n{}",
            text(&out)
        );
    }
}

/// Every shipped manifest (the paper tables in experiments/ and the
/// calibrations in docs/calibration/) validates, so a documented command
/// never meets a stale key.
#[test]
fn every_shipped_manifest_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for shipped in ["experiments", "docs/calibration", "experiments/ablations"] {
        let path = root.join(shipped);
        let out = sweep(dir.path(), &["validate", path.to_str().unwrap()]);
        assert!(out.status.success(), "{shipped}:\n{}", text(&out));
    }
}
