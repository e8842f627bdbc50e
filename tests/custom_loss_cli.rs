//! `objective = "custom"` through the real `sweep` binary: every bad loss is
//! rejected at validate time (exit 2, `file:line:col`, nothing written), and
//! the shipped ablation manifest plans, sharing one align stage between
//! spellings of the same loss.
mod common;
use common::{assert_each_case_exits_2, plan_json, shipped_plan_json};

/// A CW cell with a custom loss; the loss string starts at line 9, column 9.
fn manifest(loss_line: &str, extra: &str) -> String {
    format!(
        "[experiment]\nname = \"bad\"\n[defaults]\ndataset = \"hh-rlhf\"\npair = \"opt\"\n\
         annotation = \"cw\"\nobjective = \"custom\"\n[align]\n{loss_line}\n{extra}"
    )
}

#[test]
fn every_bad_loss_exits_2_at_its_place_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown_variable.toml",
            manifest("loss = \"relu(1 - betta*h)\"", ""),
            vec![
                "unknown_variable.toml:9:18:",
                "unknown variable `betta`",
                "logp_c",
            ],
        ),
        (
            "unknown_function.toml",
            manifest("loss = \"-logsigmoid(beta*h)\"", ""),
            vec![
                "unknown_function.toml:9:10:",
                "unknown function `logsigmoid`",
            ],
        ),
        (
            "zero_denominator.toml",
            manifest("loss = \"-log_sigmoid(beta*h)/(len_c - len_c)\"", ""),
            vec![
                "zero_denominator.toml:9:30:",
                "`len_c - len_c`",
                "0 for every input",
            ],
        ),
        (
            "zero_knob_denominator.toml",
            manifest("loss = \"h/(tau - 0.1)\"", "tau = 0.1\n"),
            vec!["zero_knob_denominator.toml:9:11:", "0 for every input"],
        ),
        (
            "no_policy.toml",
            manifest("loss = \"ref_c - ref_r\"", ""),
            vec!["no_policy.toml:9:9:", "does not depend on the policy"],
        ),
        (
            "cancelling.toml",
            manifest("loss = \"relu(1 - beta*(h - h))\"", ""),
            vec!["cancelling.toml:9:9:", "policy terms cancel"],
        ),
        (
            "infinite_at_start.toml",
            manifest("loss = \"-log(sigmoid(beta*h) - 0.5)\"", ""),
            vec!["infinite_at_start.toml:9:9:", "first step"],
        ),
        (
            "missing_loss.toml",
            manifest("beta = 0.5", ""),
            vec!["missing_loss.toml:7:13:", "needs the loss itself"],
        ),
        (
            "shadowing_constant.toml",
            manifest(
                "loss = \"relu(1 - beta*h)\"",
                "[align.constants]\nh = 1.0\n",
            ),
            vec![
                "shadowing_constant.toml:",
                "constant `h`",
                "already a variable",
            ],
        ),
        (
            // In an axis array the column still points into the right string.
            "axis.toml",
            manifest(
                "loss = \"relu(1 - beta*h)\"",
                "[axes]\n\"align.loss\" = [\"relu(1 - beta*h)\", \"h/0\"]\n",
            ),
            vec!["axis.toml:11:40:", "0 for every input"],
        ),
    ];
    assert_each_case_exits_2(dir.path(), &cases, |cmd, file| {
        assert!(
            !dir.path().join("results").exists(),
            "{cmd} {file} wrote results/"
        );
    });
}

#[test]
fn spellings_of_one_loss_share_an_align_stage_and_built_ins_ignore_it() {
    let dir = tempfile::tempdir().unwrap();
    let body = manifest(
        "loss = \"relu(1 - beta*h)\"",
        "[axes]\n\"align.loss\" = [\"relu(1-beta*(h))\", \"relu( 1 - beta * h )\", \"relu(2 - beta*h)\"]\n",
    );
    std::fs::write(dir.path().join("m.toml"), body).unwrap();
    let plan = plan_json(dir.path(), "m.toml");
    assert_eq!(plan["kinds"]["align"]["nodes"], 2, "{plan:#}");
    // With a dpo cell beside, `align.loss` does not reach dpo's params: one dpo node.
    let body = manifest(
        "loss = \"relu(1 - beta*h)\"",
        "[axes]\nobjective = [\"dpo\", \"custom\"]\n\"align.loss\" = [\"relu(1 - beta*h)\", \"relu(2 - beta*h)\"]\n",
    );
    std::fs::write(dir.path().join("m.toml"), body).unwrap();
    let plan = plan_json(dir.path(), "m.toml");
    assert_eq!(plan["kinds"]["align"]["nodes"], 3, "{plan:#}");
}

#[test]
fn the_ablation_manifest_plans_and_a_whole_experiments_run_skips_it() {
    let ablation = "experiments/ablations/losses.toml";
    let plan = shipped_plan_json(ablation);
    assert_eq!(plan["experiments"][0]["name"], "ablation_losses");
    assert_eq!(plan["experiments"][0]["cells"], 9, "3 losses × 3 seeds");
    assert_eq!(plan["kinds"]["align"]["nodes"], 9, "{plan:#}");

    let plan = shipped_plan_json("experiments");
    let names: Vec<&str> = plan["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"table1"), "{names:?}");
    assert!(!names.contains(&"ablation_losses"), "{names:?}");
}
