//! Helpers shared by the integration tests that drive the real `sweep` binary.
#![allow(dead_code)] // each test file uses its own subset

pub mod table1_ci;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `sweep ARGS…` in `dir` and waits for it.
pub fn sweep(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sweep"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("sweep runs")
}

/// Everything a run printed, stdout then stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sweep plan --json MANIFEST` in `dir`, which must succeed, as JSON.
pub fn plan_json(dir: &Path, manifest: &str) -> serde_json::Value {
    plan_json_with(dir, &[manifest])
}

/// The plan of a shipped manifest or folder (relative to the repository
/// root) against a results folder that does not exist, so nothing counts as
/// cached.
pub fn shipped_plan_json(path: &str) -> serde_json::Value {
    plan_json_with(repo(), &["--results", "/nonexistent-sweep-results", path])
}

fn plan_json_with(dir: &Path, args: &[&str]) -> serde_json::Value {
    sweep_json(dir, &[&["plan", "--json"], args].concat())
}

/// Runs `sweep ARGS…` in `dir`, which must succeed.
pub fn sweep_ok(dir: &Path, args: &[&str]) -> Output {
    let out = sweep(dir, args);
    assert!(
        out.status.success(),
        "sweep {args:?} failed: {}",
        text(&out)
    );
    out
}

/// What `sweep ARGS…` (which must succeed) printed on stdout, as JSON.
pub fn sweep_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = sweep_ok(dir, args);
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Writes each `(file, body, expected)` case into `dir` and checks that
/// `sweep run`, `plan` and `validate` all refuse it with exit 2 and a message
/// holding every expected piece; `after_each(file)` then checks what the
/// case must not have written.
pub fn assert_each_case_exits_2(
    dir: &Path,
    cases: &[(&str, String, Vec<&str>)],
    after_each: impl Fn(&str, &str),
) {
    for (file, body, expected) in cases {
        std::fs::write(dir.join(file), body).unwrap();
        for cmd in ["run", "plan", "validate"] {
            let out = sweep(dir, &[cmd, file]);
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd} {file}: {msg}");
            for e in expected {
                assert!(msg.contains(e), "{cmd} {file}: expected `{e}` in:\n{msg}");
            }
            after_each(cmd, file);
        }
    }
}

/// The repository root (where `experiments/` and `tests/fixtures/` live).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The embedded tiny profile as a TOML table, for a test to shrink and then
/// write with [`write_profile`].
pub fn tiny_profile() -> toml::Table {
    let text = std::fs::read_to_string(repo().join("experiments/profiles/tiny.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

/// Sets `section.key = value` in a profile table (e.g. `pretrain.steps`).
pub fn set(profile: &mut toml::Table, section: &str, key: &str, value: i64) {
    profile[section]
        .as_table_mut()
        .unwrap_or_else(|| panic!("profile has no [{section}]"))
        .insert(key.into(), toml::Value::Integer(value));
}

/// Writes a profile table to `dir/tiny-ci.toml` and returns the path.
pub fn write_profile(dir: &Path, profile: &toml::Table) -> PathBuf {
    let path = dir.join("tiny-ci.toml");
    std::fs::write(&path, toml::to_string(profile).unwrap()).unwrap();
    path
}

/// Every file under `dir` with its bytes (to show a command wrote nothing).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
