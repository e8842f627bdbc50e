//! Issue 23 end to end: `sweep run` killed (SIGKILL) inside a training stage
//! resumes from the stage's checkpoint, and the finished model is the same,
//! byte for byte, as an uninterrupted run's. The loop-level guarantees
//! (random kill steps, bounded repeated work, a changed config or a corrupt
//! file restarting with a warning) are unit tests in `src/train/checkpoint.rs`.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::table1_ci::files_of;
use common::{set, sweep, text, tiny_profile, write_profile};

/// Pretraining alone, on one dataset and seed.
fn manifest(dir: &Path) -> String {
    std::fs::write(
        dir.join("m.toml"),
        r#"[experiment]
name = "ckpt"
until = "pretrain"
[axes]
dataset = ["hh-rlhf"]
seed = [0]
[defaults]
pair = "opt"
objective = "dpo"
annotation = "cw"
"#,
    )
    .unwrap();
    "m.toml".into()
}

/// The tiny profile with `steps` pretraining steps at `lr`.
fn profile(dir: &Path, steps: i64, lr: f64) -> String {
    let mut p = tiny_profile();
    set(&mut p, "pretrain", "steps", steps);
    p["pretrain"]
        .as_table_mut()
        .unwrap()
        .insert("learning_rate".into(), toml::Value::Float(lr));
    write_profile(dir, &p).to_string_lossy().into_owned()
}

fn run_args<'a>(m: &'a str, p: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        m,
        "--profile",
        p,
        "--checkpoint-steps",
        "3",
        "--jobs",
        "1",
    ]
}

/// A dir's files: (name, bytes), sorted by name.
type Files = Vec<(String, Vec<u8>)>;

/// Every `pretrain` artifact's model files, by stage dir name.
fn pretrained_models(results: &Path) -> Vec<(String, Files)> {
    let root = results.join("cache/pretrain");
    let mut out: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|d| {
            (
                d.file_name().unwrap().to_string_lossy().into_owned(),
                files_of(&d.join("model")),
            )
        })
        .collect();
    out.sort();
    out
}

fn checkpoints(results: &Path) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(results.join("cache/partial")) else {
        return Vec::new();
    };
    dirs.flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|f| f.extension().is_some_and(|x| x == "safetensors"))
        .collect()
}

fn status_json(dir: &Path) -> serde_json::Value {
    let out = sweep(dir, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts `sweep run`, waits until a checkpoint newer than the start exists,
/// waits `extra` more, and kills it with SIGKILL. `false` if the run ended
/// first.
fn kill_after_a_checkpoint(dir: &Path, args: &[&str], extra: Duration) -> bool {
    let started = std::time::SystemTime::now();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let fresh = checkpoints(&dir.join("results")).iter().any(|f| {
            std::fs::metadata(f)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > started)
        });
        if fresh {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(extra);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

#[test]
fn a_run_killed_inside_pretraining_resumes_and_ends_byte_identical() {
    let clean = tempfile::tempdir().unwrap();
    let (m, p) = (manifest(clean.path()), profile(clean.path(), 30, 3e-3));
    let out = sweep(clean.path(), &run_args(&m, &p));
    assert!(out.status.success(), "{}", text(&out));
    let want = pretrained_models(&clean.path().join("results"));
    assert!(!want.is_empty());
    assert!(
        checkpoints(&clean.path().join("results")).is_empty(),
        "a recorded stage's partial dir is deleted"
    );

    let dir = tempfile::tempdir().unwrap();
    let (m, p) = (manifest(dir.path()), profile(dir.path(), 30, 3e-3));
    let args = run_args(&m, &p);
    let mut killed = 0;
    for extra_ms in [0, 40, 15] {
        if !kill_after_a_checkpoint(dir.path(), &args, Duration::from_millis(extra_ms)) {
            break;
        }
        killed += 1;
        // `sweep status` shows the unfinished stage and its progress.
        let status = status_json(dir.path());
        let partial = status["partial"].as_array().unwrap();
        assert!(!partial.is_empty(), "{status}");
        for l in partial.iter().flat_map(|p| p["loops"].as_array().unwrap()) {
            assert_eq!(l["phase"], "pretrain", "{status}");
            assert!(l["step"].as_u64().unwrap() <= l["total_steps"].as_u64().unwrap());
        }
    }
    assert!(killed >= 1, "the runs finished before any kill");
    let out = sweep(dir.path(), &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("resuming pretrain from its checkpoint at step"),
        "{}",
        text(&out)
    );
    assert_eq!(
        pretrained_models(&dir.path().join("results")),
        want,
        "resumed models differ from the uninterrupted run's"
    );
    assert!(checkpoints(&dir.path().join("results")).is_empty());
}

/// A changed parameter is another key: its stage starts from step 0, and
/// `sweep gc` of the new manifest deletes the old key's partial work.
#[test]
fn a_changed_parameter_starts_over_and_gc_removes_the_old_partial_work() {
    let dir = tempfile::tempdir().unwrap();
    let (m, p) = (manifest(dir.path()), profile(dir.path(), 30, 3e-3));
    assert!(kill_after_a_checkpoint(
        dir.path(),
        &run_args(&m, &p),
        Duration::ZERO
    ));
    let old = checkpoints(&dir.path().join("results"));
    assert!(!old.is_empty());

    let p = profile(dir.path(), 30, 2e-3);
    let out = sweep(dir.path(), &run_args(&m, &p));
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("resuming"), "{}", text(&out));
    assert!(old.iter().all(|f| f.exists()), "run keeps other keys' work");

    let out = sweep(dir.path(), &["gc", &m, "--profile", &p]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(old.iter().all(|f| !f.exists()), "{}", text(&out));
    assert!(
        status_json(dir.path())["partial"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// SIGTERM (Slurm's preemption and time-limit signal; Ctrl-C works the
/// same) during pretraining: the running stage saves where it is, without
/// waiting for its interval, and the run exits 130.
#[test]
fn sigterm_saves_a_checkpoint_before_the_run_exits() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the signal lands inside the first pretraining stage.
    let (m, p) = (manifest(dir.path()), profile(dir.path(), 400, 3e-3));
    let child = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .current_dir(dir.path())
        .args(["run", &m, "--profile", &p, "--jobs", "1"])
        .args(["--checkpoint-steps", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = dir.path().join("results/cache/tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_some()) {
        assert!(Instant::now() < deadline, "no stage started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{msg}");
    assert!(msg.contains("cancelled"), "{msg}");
    let status = status_json(dir.path());
    let loops: Vec<&serde_json::Value> = status["partial"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["loops"].as_array().unwrap())
        .collect();
    assert_eq!(loops.len(), 1, "the one running stage saved: {status}");
    let (step, total) = (loops[0]["step"].as_u64(), loops[0]["total_steps"].as_u64());
    assert!(step >= Some(1) && step < total, "{status}");
}
