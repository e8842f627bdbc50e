//! Integration tests of the runner: they drive the real `sweep` binary on
//! temp dirs, with manifests that stop after the cheap real stages
//! (`[experiment] until = "split"`), or only plan (no stage runs).
mod common;
use common::{assert_each_case_exits_2, plan_json, shipped_plan_json, snapshot, sweep, text};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn count(plan: &serde_json::Value, kind: &str, field: &str) -> u64 {
    plan["kinds"][kind][field].as_u64().unwrap_or(0)
}

/// Names of the stages a `sweep run` reports as done (one line each when stderr is not a TTY).
fn ran(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("done   "))
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

fn split_manifest(name: &str, seeds: &str, fraction: f64) -> String {
    format!(
        r#"[experiment]
name = "{name}"
until = "split"
[axes]
dataset = ["hh-rlhf"]
seed = [{seeds}]
[defaults]
pair = "opt"
objective = "dpo"
annotation = "cw"
labeled_fraction = {fraction}
"#
    )
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    std::fs::write(dir.join(name), body).unwrap();
    name.to_string()
}

#[test]
fn second_run_of_unchanged_manifest_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("noop", "0, 1", 0.3));
    let first = sweep(dir.path(), &["run", &m]);
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(ran(&first).len(), 3, "dataset + 2 splits: {}", text(&first));
    let started = Instant::now();
    let second = sweep(dir.path(), &["run", &m]);
    eprintln!(
        "no-op re-run took {:?} (not asserted; aim well under 2 s)",
        started.elapsed()
    );
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        ran(&second).is_empty(),
        "second run ran stages: {}",
        text(&second)
    );
    assert_eq!(count(&plan_json(dir.path(), &m), "split", "to_run"), 0);
    assert!(dir.path().join("results/noop/cells.json").exists());
}

#[test]
fn changing_one_axis_value_reruns_exactly_its_downstream() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("axis", "0, 1", 0.3));
    assert!(sweep(dir.path(), &["run", &m]).status.success());
    write(dir.path(), "m.toml", &split_manifest("axis", "0, 2", 0.3));
    let plan = plan_json(dir.path(), &m);
    assert_eq!(count(&plan, "dataset", "to_run"), 0, "{plan}");
    assert_eq!(count(&plan, "split", "cached"), 1, "{plan}");
    assert_eq!(count(&plan, "split", "to_run"), 1, "{plan}");
    let rerun = sweep(dir.path(), &["run", &m]);
    assert_eq!(
        ran(&rerun),
        vec!["split/hh-rlhf/f0.3/seed2".to_string()],
        "{}",
        text(&rerun)
    );
}

/// Keys of every planned stage, per kind.
fn keys_by_kind(plan: &serde_json::Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in plan["stages"].as_array().unwrap() {
        out.entry(s["kind"].as_str().unwrap().into())
            .or_default()
            .insert(s["key"].as_str().unwrap().into());
    }
    out
}

#[test]
fn an_align_only_param_never_rekeys_the_weak_model() {
    let dir = tempfile::tempdir().unwrap();
    let body = |beta: f64| {
        format!(
            "[experiment]\nname = \"b\"\n[axes]\nseed = [0]\n[defaults]\ndataset = \"tldr\"\npair = \"qwen\"\nobjective = \"dpo\"\nannotation = \"cw\"\n[align]\nbeta = {beta}\n"
        )
    };
    let m = write(dir.path(), "m.toml", &body(0.5));
    let before = keys_by_kind(&plan_json(dir.path(), &m));
    write(dir.path(), "m.toml", &body(0.9));
    let after = keys_by_kind(&plan_json(dir.path(), &m));
    for kind in [
        "dataset",
        "split",
        "pretrain",
        "weak_train",
        "weak_eval",
        "annotate",
        "sft",
        "ref_logps",
    ] {
        assert!(!before[kind].is_empty(), "{kind} planned");
        assert_eq!(
            before[kind], after[kind],
            "{kind} was re-keyed by align.beta"
        );
    }
    assert_ne!(before["align"], after["align"]);
    assert_eq!(before["metric"].len(), 1);
    assert_ne!(
        before["metric"], after["metric"],
        "metric is downstream of align"
    );
}

#[test]
fn two_experiments_sharing_a_weak_model_have_one_weak_train_node() {
    let dir = tempfile::tempdir().unwrap();
    let exp = |name: &str, objective: &str| {
        format!(
            "[experiment]\nname = \"{name}\"\n[axes]\nobjective = [\"{objective}\"]\n[defaults]\ndataset = \"hh-rlhf\"\npair = \"opt\"\nannotation = \"cw\"\nseed = 0\n"
        )
    };
    std::fs::create_dir(dir.path().join("exps")).unwrap();
    write(dir.path(), "exps/a.toml", &exp("a", "dpo"));
    write(dir.path(), "exps/b.toml", &exp("b", "ipo"));
    let plan = plan_json(dir.path(), "exps");
    assert_eq!(plan["experiments"].as_array().unwrap().len(), 2);
    assert_eq!(count(&plan, "weak_train", "nodes"), 1, "{plan}");
    assert_eq!(count(&plan, "align", "nodes"), 2, "{plan}");
    let ratio = plan["dedup_ratio"].as_f64().unwrap();
    assert!(ratio < 1.0, "shared stages are deduplicated: ratio {ratio}");
}

#[test]
fn a_run_killed_at_a_random_moment_resumes_without_rerunning_finished_stages() {
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<String> = (0..40).map(|s| s.to_string()).collect();
    let m = write(
        dir.path(),
        "m.toml",
        &split_manifest("kill", &seeds.join(", "), 0.3),
    );
    // Time a full run elsewhere to pick a kill moment inside a run.
    let probe = tempfile::tempdir().unwrap();
    write(
        probe.path(),
        "m.toml",
        &split_manifest("kill", &seeds.join(", "), 0.3),
    );
    let t = Instant::now();
    assert!(sweep(probe.path(), &["run", "m.toml"]).status.success());
    let full = t.elapsed();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let kill_after = Duration::from_nanos(nanos % (full.as_nanos() as u64).max(1));

    let mut child = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .current_dir(dir.path())
        .args(["run", &m])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    let killed = child.wait_with_output().unwrap();
    let finished_before = ran(&killed);

    // No record for an unfinished stage: every recorded stage verifies (no "stale").
    let plan = plan_json(dir.path(), &m);
    for s in plan["stages"].as_array().unwrap() {
        let state = s["state"].as_str().unwrap();
        assert!(
            state == "cached" || state == "to_run",
            "{}: {state}",
            s["name"]
        );
    }
    let cached: u64 = ["dataset", "split"]
        .iter()
        .map(|k| count(&plan, k, "cached"))
        .sum();
    assert!(
        cached >= finished_before.len() as u64,
        "every reported stage is recorded"
    );

    let rerun = sweep(dir.path(), &["run", &m]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    let again = ran(&rerun);
    for name in &finished_before {
        assert!(
            !again.contains(name),
            "{name} ran twice (killed after {kill_after:?})"
        );
    }
    let plan = plan_json(dir.path(), &m);
    assert_eq!(
        count(&plan, "split", "to_run") + count(&plan, "dataset", "to_run"),
        0
    );
    assert_eq!(count(&plan, "split", "cached"), 40);
}

/// Runs a valid manifest (so a cache exists), then each bad input: exit 2,
/// its message, and the results dir byte-for-byte unchanged.
#[test]
fn bad_input_exits_2_with_its_message_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = split_manifest("good", "0", 0.3);
    write(dir.path(), "good.toml", &good);
    assert!(sweep(dir.path(), &["run", "good.toml"]).status.success());
    let before = snapshot(&dir.path().join("results"));

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "typo_block.toml",
            good.replace("[defaults]", "[defaults]\n[algin]\nbeta = 1.0\n[generate]"),
            vec!["typo_block.toml:", "algin", "align"],
        ),
        (
            "typo_key.toml",
            format!("{good}[align]\nbetta = 0.5\n"),
            vec!["typo_key.toml:13:", "betta", "`beta`"],
        ),
        (
            "wrong_type.toml",
            format!("{good}[align]\nbeta = \"high\"\n"),
            vec!["wrong_type.toml:13:", "align.beta", "invalid type"],
        ),
        (
            "unknown_slot.toml",
            good.replace("[\"hh-rlhf\"]", "[\"hh-rlhf\", \"imdb\"]"),
            vec![
                "unknown_slot.toml:5:",
                "imdb",
                "harmless, helpful, hh-rlhf, shp-askacademia",
            ],
        ),
        (
            "bad_axis.toml",
            good.replace("seed = [0]", "seed = [0]\nobjective = [\"dpo\", \"ppo\"]"),
            vec!["bad_axis.toml:7:", "ppo", "dpo, ipo, rdpo"],
        ),
        (
            "bad_world.toml",
            format!("{good}[world]\nflipp = 0.1\n"),
            vec!["bad_world.toml:13:", "flipp", "`flip`"],
        ),
        (
            "loop_a.toml",
            format!("extends = \"loop_b.toml\"\n{good}"),
            vec!["loop_b.toml:1:", "`extends` loop"],
        ),
    ];
    write(dir.path(), "loop_b.toml", "extends = \"loop_a.toml\"\n");
    assert_each_case_exits_2(dir.path(), &cases, |cmd, file| {
        assert_eq!(
            snapshot(&dir.path().join("results")),
            before,
            "{cmd} {file} changed the cache"
        );
    });
    // All errors of a run are reported together.
    let two = good
        .replace("seed = [0]", "seed = [0]\nobjective = [\"ppo\"]")
        .replace("[\"hh-rlhf\"]", "[\"imdb\"]");
    write(dir.path(), "two.toml", &two);
    let out = sweep(dir.path(), &["run", "two.toml"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("ppo") && msg.contains("imdb"),
        "both errors reported:\n{msg}"
    );
    assert_eq!(snapshot(&dir.path().join("results")), before);
}

/// The test itself holds the cache lock, as a running `sweep` would.
#[test]
fn a_second_sweep_on_the_same_cache_refuses_naming_the_holder() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("lock", "0", 0.3));
    assert!(sweep(dir.path(), &["run", &m]).status.success());
    let before = snapshot(&dir.path().join("results"));
    let lock_path = dir.path().join("results/cache/.lock");
    let mut lock = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .unwrap();
    assert!(fs4::fs_std::FileExt::try_lock_exclusive(&lock).unwrap());
    lock.set_len(0).unwrap();
    write!(lock, "4242").unwrap();
    let before_lock = snapshot(&dir.path().join("results"));
    let second = sweep(dir.path(), &["run", &m]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert!(
        text(&second).contains("in use by another sweep process (pid 4242)"),
        "{}",
        text(&second)
    );
    assert_eq!(snapshot(&dir.path().join("results")), before_lock);
    drop(lock);
    assert_ne!(before, before_lock, "the lock file held the holder's pid");
}

#[test]
fn why_names_the_param_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("why", "0", 0.3));
    assert!(sweep(dir.path(), &["run", &m]).status.success());
    write(dir.path(), "m.toml", &split_manifest("why", "0", 0.4));
    let out = sweep(dir.path(), &["why", "split/hh-rlhf/f0.4/seed0", &m]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("param labeled_fraction: cached 0.3, now 0.4"),
        "{msg}"
    );
}

#[test]
fn every_shipped_manifest_validates_under_the_tiny_profile() {
    let plan = shipped_plan_json("experiments");
    assert!(plan["experiments"].as_array().unwrap().len() >= 10);
    assert!(plan["dedup_ratio"].as_f64().unwrap() < 1.0);
}

#[test]
fn ctrl_c_stops_cleanly_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<String> = (0..300).map(|s| s.to_string()).collect();
    let m = write(
        dir.path(),
        "m.toml",
        &split_manifest("int", &seeds.join(", "), 0.3),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .current_dir(dir.path())
        .args(["run", &m])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first split is recorded.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join("results/cache/split").exists() {
        assert!(Instant::now() < deadline, "sweep never finished a split");
        std::thread::sleep(Duration::from_millis(2));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let msg = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(130), "{msg}");
    assert!(msg.contains("cancelled"), "{msg}");
    let done = ran(&out).len();
    assert!(done < 301, "interrupted before the end: {done} stages ran");
    let tmp = dir.path().join("results/cache/tmp");
    assert!(
        !tmp.exists() || std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "temp dirs removed"
    );
    let rerun = sweep(dir.path(), &["run", &m]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(ran(&rerun).len(), 301 - done, "{}", text(&rerun));
}

/// Overwrites the artifact of the first cached `split` stage under
/// `results` with an empty split (a changed artifact under the same key);
/// returns that stage's dir.
fn empty_the_first_split(results: &Path) -> std::path::PathBuf {
    let split_dir = std::fs::read_dir(results.join("cache/split"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(
        split_dir.join("split.json"),
        "{\"labeled\": [], \"unlabeled\": []}",
    )
    .unwrap();
    split_dir
}

#[test]
fn a_changed_artifact_is_reported_and_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("sum", "0", 0.3));
    assert!(sweep(dir.path(), &["run", &m]).status.success());
    let split_dir = empty_the_first_split(&dir.path().join("results"));
    let plan = plan_json(dir.path(), &m);
    let stale: Vec<&serde_json::Value> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"].as_str().unwrap().starts_with("stale"))
        .collect();
    assert_eq!(stale.len(), 1, "{plan}");
    assert!(
        stale[0]["state"]
            .as_str()
            .unwrap()
            .contains("split.json changed on disk"),
        "{plan}"
    );
    let rerun = sweep(dir.path(), &["run", &m]);
    assert!(
        text(&rerun).contains("checksum mismatch"),
        "{}",
        text(&rerun)
    );
    assert_eq!(ran(&rerun), vec!["split/hh-rlhf/f0.3/seed0".to_string()]);
    let again = std::fs::read_to_string(split_dir.join("split.json")).unwrap();
    assert!(
        again.contains("\"labeled\": [\n"),
        "artifact rebuilt: {again}"
    );
}

#[test]
fn jobs_run_independent_stages_in_parallel_and_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "m.toml",
        &split_manifest("jobs", "0, 1, 2, 3, 4, 5", 0.3),
    );
    let out = sweep(dir.path(), &["run", "--jobs", "3", &m]);
    assert!(out.status.success(), "{}", text(&out));
    let mut names = ran(&out);
    assert_eq!(
        names[0], "dataset/hh-rlhf",
        "the dataset precedes its splits"
    );
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 7);
}

#[test]
fn gc_deletes_what_the_manifests_no_longer_reach() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("gc", "0, 1", 0.3));
    assert!(sweep(dir.path(), &["run", &m]).status.success());
    write(dir.path(), "m.toml", &split_manifest("gc", "0", 0.3));
    let dry = sweep(dir.path(), &["gc", "--dry-run", &m]);
    assert!(
        text(&dry).contains("would delete split/hh-rlhf/f0.3/seed1"),
        "{}",
        text(&dry)
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("results/cache/split"))
            .unwrap()
            .count(),
        2
    );
    let real = sweep(dir.path(), &["gc", &m]);
    assert!(real.status.success(), "{}", text(&real));
    assert_eq!(
        std::fs::read_dir(dir.path().join("results/cache/split"))
            .unwrap()
            .count(),
        1
    );
    let status = sweep(dir.path(), &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["kinds"]["split"]["records"], 1);
    assert_eq!(count(&plan_json(dir.path(), &m), "split", "to_run"), 0);
}

/// A profile whose `broken` dataset names a family the world does not have:
/// the failure shows only when its stage runs.
fn profile_with_a_broken_dataset(dir: &Path) -> String {
    let tiny = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/profiles/tiny.toml"),
    )
    .unwrap();
    write(
        dir,
        "p.toml",
        &format!(
            "{tiny}\n[datasets.broken]\nstands_for = \"nothing\"\nsynthetic = \"no-such-family\"\n"
        ),
    )
}

#[test]
fn a_failed_stage_exits_1_naming_it_and_its_log_and_keep_going_runs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_with_a_broken_dataset(dir.path());
    let m = write(
        dir.path(),
        "m.toml",
        &split_manifest("fail", "0", 0.3).replace("[\"hh-rlhf\"]", "[\"broken\", \"tldr\"]"),
    );
    let out = sweep(dir.path(), &["run", "--profile", &profile, &m]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("stage dataset/broken failed"), "{msg}");
    let log = dir.path().join(
        msg.split("log: ")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim(),
    );
    let log_text =
        std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(log_text.contains("no-such-family"), "{log_text}");

    let out = sweep(
        dir.path(),
        &["run", "--keep-going", "--profile", &profile, &m],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan: serde_json::Value = {
        let p = sweep(dir.path(), &["plan", "--json", "--profile", &profile, &m]);
        serde_json::from_slice(&p.stdout).unwrap()
    };
    assert_eq!(
        count(&plan, "split", "cached"),
        1,
        "the tldr branch ran: {plan}"
    );
    assert_eq!(
        count(&plan, "split", "to_run"),
        1,
        "the broken branch's split never ran: {plan}"
    );
}

/// Two seeds × two labelled fractions that stop after `split`, reported as
/// `n_labeled` by fraction with a claim and a figure.
fn reported_split_manifest(fractions: &str) -> String {
    format!(
        r#"[experiment]
name = "warm"
until = "split"
[axes]
dataset = ["hh-rlhf"]
seed = [0, 1]
labeled_fraction = [{fractions}]
[defaults]
pair = "opt"
objective = "dpo"
annotation = "cw"
[report]
rows = ["dataset"]
columns = ["labeled_fraction"]
value = "n_labeled"
claims = ["0.5 > 0.3"]
[report.figure]
kind = "grouped_bars"
x = "dataset"
series = ["labeled_fraction"]
"#
    )
}

/// Modification time of every file of the report's dir and of `index.md`.
fn report_mtimes(results: &Path) -> BTreeMap<String, std::time::SystemTime> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(results.join("warm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(results.join("index.md"));
    files
        .into_iter()
        .map(|p| {
            let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), mtime)
        })
        .collect()
}

#[test]
fn a_warm_run_keeps_a_report_whose_inputs_did_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let m = write(dir.path(), "m.toml", &reported_split_manifest("0.3, 0.5"));
    let run = || {
        let out = sweep(dir.path(), &["run", &m]);
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    run();
    let first = report_mtimes(&results);
    for file in [
        "cells.json",
        "warm.csv",
        "warm.png",
        "report.md",
        ".report-stamp.json",
    ] {
        assert!(first.contains_key(file), "{file} written: {first:?}");
    }
    let rendered_since = |before: &BTreeMap<String, std::time::SystemTime>| {
        report_mtimes(&results)["report.md"] != before["report.md"]
    };

    run();
    assert_eq!(
        report_mtimes(&results),
        first,
        "a warm run rewrites nothing"
    );

    std::fs::remove_file(results.join("warm/warm.png")).unwrap();
    run();
    assert!(
        results.join("warm/warm.png").is_file(),
        "a deleted output comes back"
    );
    assert!(rendered_since(&first));

    let before = report_mtimes(&results);
    std::fs::write(results.join("warm/.report-stamp.json"), "{\"format\": 1,").unwrap();
    run();
    assert!(rendered_since(&before), "a corrupt stamp is rendered again");
    let before = report_mtimes(&results);
    run();
    assert_eq!(report_mtimes(&results), before, "and its new stamp is kept");

    // A stage re-run under the same key (its artifact changed on disk) is a
    // new record the report reads.
    empty_the_first_split(&results);
    assert_eq!(ran(&run()).len(), 1, "the changed split re-ran");
    assert!(rendered_since(&before), "its report is rendered again");

    let before = report_mtimes(&results);
    let out = sweep(dir.path(), &["report", &m]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        rendered_since(&before),
        "`sweep report` renders every report"
    );

    // Other cells: other stage keys and another table.
    write(dir.path(), "m.toml", &reported_split_manifest("0.3, 0.6"));
    run();
    let csv = std::fs::read_to_string(results.join("warm/warm.csv")).unwrap();
    assert!(csv.starts_with("dataset,0.3,0.3_lo,0.3_hi,0.6,"), "{csv}");
    let index = std::fs::read_to_string(results.join("index.md")).unwrap();
    assert!(
        index.contains("| hh-rlhf | 300.000 [300.000, 300.000] | 600.000"),
        "{index}"
    );
}
