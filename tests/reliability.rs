//! What `sweep` promises about the cache and results dir (docs/reliability.md),
//! each tested on the real binary with cheap manifests (`until = "split"`):
//! the index is rebuilt from the record files, corrupt records are dropped
//! and re-run, `sweep verify` catches what the quick check trusts,
//! read-only commands work while a run holds the lock, names cannot escape
//! `results/`, huge sweeps are refused before they are built, and a write
//! error leaves nothing half-recorded.
mod common;
use common::{sweep, text};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use cwpo::cache::{CacheRead, RECORD_FILE};

fn write(dir: &Path, name: &str, body: &str) -> String {
    std::fs::write(dir.join(name), body).unwrap();
    name.to_string()
}

fn split_manifest(name: &str, seeds: &str) -> String {
    format!(
        "[experiment]\nname = \"{name}\"\nuntil = \"split\"\n[axes]\ndataset = [\"hh-rlhf\"]\nseed = [{seeds}]\n[defaults]\npair = \"opt\"\nobjective = \"dpo\"\nannotation = \"cw\"\n"
    )
}

/// Names of the stages a `sweep run` reports as done.
fn ran(out: &Output) -> Vec<String> {
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("done   "))
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", text(&out));
    out
}

fn cache_root(dir: &Path) -> PathBuf {
    dir.join("results/cache")
}

/// The artifact dirs of one kind.
fn dirs_of(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(cache_root(dir).join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// A fresh dir with the 3-stage split sweep run once.
fn ran_once(seeds: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("rel", seeds));
    ok(sweep(dir.path(), &["run", &m]));
    (dir, m)
}

#[test]
fn every_finished_stage_has_a_record_file_that_matches_the_index() {
    let (dir, _) = ran_once("0, 1");
    let snapshot = cwpo::cache::snapshot::Snapshot::open(&dir.path().join("results")).unwrap();
    let records = snapshot.records().unwrap();
    assert_eq!(records.len(), 3, "dataset + 2 splits");
    for rec in &records {
        let dir = snapshot.artifact_dir(rec);
        assert!(dir.join(RECORD_FILE).is_file());
        assert!(!rec.files.contains_key(RECORD_FILE));
        assert_eq!(rec.files.len(), rec.stats.len(), "{}", rec.name);
        assert_eq!(snapshot.verify(rec), Ok(()));
    }
}

#[test]
fn a_corrupt_index_is_rebuilt_from_the_record_files_with_a_warning() {
    let (dir, m) = ran_once("0, 1");
    let index = cache_root(dir.path()).join("index.sled");
    for entry in std::fs::read_dir(&index).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let mut bytes = std::fs::read(&path).unwrap();
            for b in bytes.iter_mut() {
                *b ^= 0x5a;
            }
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let out = ok(sweep(dir.path(), &["run", &m]));
    let msg = text(&out);
    assert!(
        msg.contains("cache index rebuilt from the record files"),
        "{msg}"
    );
    assert!(msg.contains("3 finished stage(s) restored"), "{msg}");
    assert!(ran(&out).is_empty(), "nothing re-ran: {msg}");
    assert!(
        cache_root(dir.path()).join("index.sled.corrupt").is_dir(),
        "the corrupt index is kept aside, not deleted"
    );
    let again = ok(sweep(dir.path(), &["run", &m]));
    assert!(!text(&again).contains("warning"), "{}", text(&again));
}

#[test]
fn a_missing_index_is_rebuilt_and_a_torn_record_is_dropped_and_rerun() {
    let (dir, m) = ran_once("0, 1");
    std::fs::remove_dir_all(cache_root(dir.path()).join("index.sled")).unwrap();
    let split = &dirs_of(dir.path(), "split")[0];
    let record = split.join(RECORD_FILE);
    let text_before = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, &text_before[..text_before.len() / 2]).unwrap();
    let out = ok(sweep(dir.path(), &["run", &m]));
    let msg = text(&out);
    assert!(msg.contains("was missing"), "{msg}");
    assert!(msg.contains("2 finished stage(s) restored"), "{msg}");
    assert!(msg.contains("is unreadable"), "{msg}");
    assert_eq!(ran(&out).len(), 1, "only the torn split re-ran: {msg}");
    assert!(
        cache_root(dir.path())
            .join("failed")
            .join(split.file_name().unwrap())
            .is_dir(),
        "the dropped dir is kept in failed/"
    );
}

#[test]
fn cache_repair_rebuilds_the_index_and_drops_what_fails_its_checksums() {
    let (dir, m) = ran_once("0, 1");
    let split = &dirs_of(dir.path(), "split")[1];
    std::fs::write(
        split.join("split.json"),
        "{\"labeled\": [], \"unlabeled\": []}",
    )
    .unwrap();
    let out = ok(sweep(dir.path(), &["cache", "repair"]));
    let msg = text(&out);
    assert!(msg.contains("2 finished stage(s) restored"), "{msg}");
    assert!(
        msg.contains("split.json changed on disk (checksum mismatch)"),
        "{msg}"
    );
    let rerun = ok(sweep(dir.path(), &["run", &m]));
    assert_eq!(ran(&rerun).len(), 1, "{}", text(&rerun));
}

#[test]
fn a_worker_sealed_dir_is_ingested_by_the_controller() {
    use cwpo::cache::record::{RecordHead, read_record_file, seal};
    let (dir, _) = ran_once("0");
    let results = dir.path().join("results");
    // A worker without sled writes a stage straight into its final dir and seals it.
    let worker_dir = cache_root(dir.path()).join("split/00000000000000000000000000000abc");
    std::fs::create_dir_all(&worker_dir).unwrap();
    std::fs::write(worker_dir.join("split.json"), b"{}").unwrap();
    let head = RecordHead {
        key: "00000000000000000000000000000abc".into(),
        kind: "split".into(),
        version: 1,
        name: "split/from-a-worker".into(),
        started_unix_s: 0.0,
        duration_s: 1.0,
        metrics: Default::default(),
        params: serde_json::json!({}),
        inputs: Default::default(),
    };
    let sealed = seal(&worker_dir, head).unwrap();
    assert_eq!(read_record_file(&worker_dir).unwrap(), sealed);
    let cache = cwpo::cache::Cache::open(&results).unwrap();
    assert_eq!(cache.get(&sealed.key).unwrap(), Some(sealed.clone()));
    assert_eq!(
        cache.ingest_record(&worker_dir).unwrap(),
        sealed,
        "idempotent"
    );
    // A file changed after sealing: the controller refuses it.
    std::fs::write(worker_dir.join("split.json"), b"{ }").unwrap();
    let err = cache.ingest_record(&worker_dir).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn the_quick_check_trusts_size_and_mtime_and_verify_hashes_everything() {
    let (dir, m) = ran_once("0");
    let split = &dirs_of(dir.path(), "split")[0];
    let file = split.join("split.json");
    let before = std::fs::read(&file).unwrap();
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut flipped = before.clone();
    let i = flipped.iter().position(|b| b.is_ascii_digit()).unwrap();
    flipped[i] = if flipped[i] == b'1' { b'2' } else { b'1' };
    std::fs::write(&file, &flipped).unwrap();
    set_mtime(&file, mtime);
    // Same size, same mtime: the warm run trusts it (the documented limit)…
    let warm = ok(sweep(dir.path(), &["run", &m]));
    assert!(ran(&warm).is_empty(), "{}", text(&warm));
    // …and `sweep verify` catches it, drops it, and the next run re-runs it.
    let verify = sweep(dir.path(), &["verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).contains("split.json changed on disk"),
        "{}",
        text(&verify)
    );
    assert!(
        text(&verify).contains("2 record(s) hashed in full, 1 dropped"),
        "{}",
        text(&verify)
    );
    let rerun = ok(sweep(dir.path(), &["run", &m]));
    assert_eq!(ran(&rerun), vec!["split/hh-rlhf/f0.3/seed0".to_string()]);
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let clean = ok(sweep(dir.path(), &["verify"]));
    assert!(
        text(&clean).contains("2 record(s) hashed in full, 0 dropped"),
        "{}",
        text(&clean)
    );
    // A touch alone re-runs nothing.
    set_mtime(&file, SystemTime::now() + Duration::from_secs(3));
    assert!(ran(&ok(sweep(dir.path(), &["run", &m]))).is_empty());
}

/// The test holds the cache lock, as a running `sweep run` would.
#[test]
fn read_only_commands_work_while_a_run_holds_the_lock() {
    let (dir, m) = ran_once("0, 1");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(cache_root(dir.path()).join(".lock"))
        .unwrap();
    assert!(fs4::fs_std::FileExt::try_lock_exclusive(&lock).unwrap());
    let status = ok(sweep(dir.path(), &["status", "--json"]));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["kinds"]["split"]["records"], 2);
    let plan = ok(sweep(dir.path(), &["plan", "--json", &m]));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["kinds"]["split"]["cached"], 2, "{plan}");
    let why = ok(sweep(dir.path(), &["why", "split/hh-rlhf/f0.3/seed1", &m]));
    assert!(text(&why).contains("cached: ran"), "{}", text(&why));
    let run = sweep(dir.path(), &["run", &m]);
    assert_eq!(run.status.code(), Some(1), "a second writer still refuses");
    drop(lock);
}

// ---- names that become paths ----

/// Validate, plan and run all refuse `body` with exit 2, a `file:line:col`
/// and `expected`, and write nothing.
fn refused(body: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "bad.toml", body);
    for cmd in ["validate", "plan", "run"] {
        let out = sweep(dir.path(), &[cmd, &m]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {msg}");
        assert!(msg.contains("bad.toml:1:1: "), "{cmd}: located: {msg}");
        assert!(msg.contains(expected), "{cmd}: `{expected}` in {msg}");
    }
    assert!(!dir.path().join("results").exists(), "nothing written");
}

#[test]
fn a_dotdot_experiment_name_is_refused_at_validate() {
    refused(&split_manifest("..", "0"), "starts with `.`");
    refused(&split_manifest("../../escaped", "0"), "a path separator");
}

#[test]
fn an_absolute_experiment_name_is_refused_at_validate() {
    refused(&split_manifest("/tmp/escaped", "0"), "a path separator");
}

#[test]
fn a_separator_in_a_name_is_refused_at_validate() {
    refused(&split_manifest("a/b", "0"), "a path separator");
    refused(&split_manifest("a\\\\b", "0"), "a path separator");
    let extra = format!(
        "{}[report]\nrows = [\"dataset\"]\ncolumns = [\"seed\"]\nvalue = \"labeled\"\nextra_values = [\"x/../../y\"]\n",
        split_manifest("ok", "0")
    );
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "bad.toml", &extra);
    let out = sweep(dir.path(), &["validate", &m]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("bad.toml:11:1: report extra value"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_nul_in_a_name_is_refused_at_validate() {
    refused(&split_manifest("a\\u0000b", "0"), "a NUL character");
}

#[cfg(unix)]
#[test]
fn a_symlink_in_results_pointing_out_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("linked", "0"));
    std::fs::create_dir_all(dir.path().join("results")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("results/linked")).unwrap();
    let out = sweep(dir.path(), &["run", &m]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("is a symlink"), "{msg}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

// ---- the planned-stage limit ----

#[test]
fn an_axis_explosion_is_refused_before_any_cell_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let list = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let body = format!(
        "[experiment]\nname = \"big\"\n[axes]\nseed = [{}]\n\"align.beta\" = [{}]\ndataset = [\"hh-rlhf\", \"tldr\", \"ufb\", \"harmless\", \"helpful\"]\n[defaults]\npair = \"opt\"\nobjective = \"dpo\"\nannotation = \"cw\"\n",
        list(2000),
        (0..90)
            .map(|i| format!("0.{i:02}1"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let m = write(dir.path(), "big.toml", &body);
    let started = Instant::now();
    let out = sweep(dir.path(), &["validate", &m]);
    let took = started.elapsed();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("big.toml:4:"), "{msg}");
    assert!(
        msg.contains("900000 cells (seed 2000 × align.beta 90 × dataset 5)"),
        "{msg}"
    );
    eprintln!("refused in {took:?} (not asserted)");
}

#[test]
fn the_limit_is_a_flag_of_run_plan_and_validate_and_also_stops_the_dag_build() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.toml", &split_manifest("lim", "0, 1, 2"));
    // `sweep CMD m.toml ARGS…` with SWEEP_MAX_STAGES set to `env` (or unset).
    let sweep_with = |env: Option<&str>, cmd: &str, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sweep"));
        command
            .current_dir(dir.path())
            .env_remove("SWEEP_MAX_STAGES");
        if let Some(limit) = env {
            command.env("SWEEP_MAX_STAGES", limit);
        }
        command.arg(cmd).arg(&m).args(args).output().unwrap()
    };
    // 3 cells, 4 stages (one dataset, three splits).
    let out = sweep_with(None, "validate", &["--max-stages", "4"]);
    assert!(out.status.success(), "{}", text(&out));
    for cmd in ["validate", "plan", "run"] {
        let out = sweep_with(None, cmd, &["--max-stages", "3"]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {msg}");
        assert!(
            msg.contains("planning stopped: 4 stages after 3 of the 3 cells of experiment `lim`"),
            "{cmd}: {msg}"
        );
        assert!(
            msg.contains("--max-stages N"),
            "{cmd}: says how to raise it: {msg}"
        );
        let out = sweep_with(None, cmd, &["--max-stages", "2"]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {msg}");
        assert!(msg.contains("m.toml:6:"), "{cmd}: at the seed axis: {msg}");
        assert!(
            msg.contains("3 cells (seed 3)"),
            "{cmd}: names the axes: {msg}"
        );
    }
    assert!(
        !dir.path().join("results").exists(),
        "a refused run writes nothing"
    );
    // The environment is the fallback; the flag wins over it.
    let out = sweep_with(Some("3"), "validate", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("planning stopped: 4 stages"),
        "{}",
        text(&out)
    );
    let out = sweep_with(Some("3"), "validate", &["--max-stages", "4"]);
    assert!(out.status.success(), "the flag wins: {}", text(&out));
    let out = sweep_with(Some("lots"), "validate", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("SWEEP_MAX_STAGES=\"lots\""),
        "{}",
        text(&out)
    );
    let out = sweep_with(None, "validate", &["--max-stages", "lots"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap's usage error: {}",
        text(&out)
    );
}

// ---- a full disk ----

/// A small tmpfs mounted for one test (needs root, Linux); unmounted on drop.
struct Tmpfs {
    mount: PathBuf,
}

impl Tmpfs {
    /// Mounts a `size`-byte tmpfs on the fresh dir `mount`. `None` (the test
    /// is skipped, saying why) when this machine cannot mount one, except
    /// under `CI=true`, where CI is expected to run as root and it fails.
    fn mount(mount: &Path, size: u64, test: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(mount).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount)
            .output();
        let why = match out {
            Ok(out) if out.status.success() => {
                return Some(Tmpfs {
                    mount: mount.to_path_buf(),
                });
            }
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => format!("cannot run `mount`: {e}"),
        };
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI=true but `mount -t tmpfs` failed ({why}); CI runs the tests as root so that this test fills a real disk"
        );
        eprintln!(
            "SKIPPED {test}: cannot mount a small tmpfs to fill ({why}); run the tests as root to check the full-disk promise"
        );
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(&self.mount)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a test that panicked left a child behind): detach it.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mount)
                .status();
        }
    }
}

/// Fills the filesystem of `dir` with `dir/filler` until `free` bytes are left.
fn fill_leaving(dir: &Path, free: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(free)).unwrap();
    file.sync_all().unwrap();
    path
}

/// `results/` on its own small tmpfs, filled up after a first run: the next
/// stage's writes hit ENOSPC from the kernel. The stage fails cleanly, the
/// cache records nothing new and keeps no half-written dir, and once space
/// is freed the next run re-runs exactly the stages that failed or never ran.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_fails_the_stage_cleanly_and_the_next_run_with_space_resumes() {
    let test = "a_full_disk_fails_the_stage_cleanly_and_the_next_run_with_space_resumes";
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let Some(_disk) = Tmpfs::mount(&results, 64 << 20, test) else {
        return;
    };
    // A world of 20,000 pairs: each dataset artifact is ~3 MB, well above
    // the 1 MiB left free below, which is well above what opening the sled
    // index writes (256-512 KiB measured).
    let world = "[world]\nn_pairs = 20000\n";
    let m = write(
        dir.path(),
        "m.toml",
        &format!("{}{world}", split_manifest("rel", "0")),
    );
    ok(sweep(dir.path(), &["run", &m]));
    // Grow the sweep by a dataset whose artifact does not fit in what is left.
    let grown = split_manifest("rel", "0").replace("[\"hh-rlhf\"]", "[\"hh-rlhf\", \"tldr\"]");
    write(dir.path(), &m, &format!("{grown}{world}"));
    let snapshot = || {
        cwpo::cache::snapshot::Snapshot::open(&results)
            .unwrap()
            .records()
            .unwrap()
    };
    let before = snapshot();
    let filler = fill_leaving(&results, 1 << 20);

    let out = sweep(dir.path(), &["run", "--jobs", "1", &m]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(msg.contains("error: stage dataset/tldr failed"), "{msg}");
    assert_eq!(snapshot(), before, "nothing new recorded: {msg}");
    let tmp = cache_root(dir.path()).join("tmp");
    assert!(
        !tmp.exists() || std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "no half-written temp dir is left"
    );
    let dataset_dirs = dirs_of(dir.path(), "dataset");
    assert_eq!(
        dataset_dirs.len(),
        1,
        "no half-written artifact dir: {dataset_dirs:?}"
    );

    std::fs::remove_file(filler).unwrap();
    let resumed = ok(sweep(dir.path(), &["run", &m]));
    assert_eq!(
        ran(&resumed),
        vec![
            "dataset/tldr".to_string(),
            "split/tldr/f0.3/seed0".to_string()
        ],
        "{}",
        text(&resumed)
    );
    let verify = ok(sweep(dir.path(), &["verify"]));
    assert!(
        text(&verify).contains("4 record(s) hashed in full, 0 dropped"),
        "{}",
        text(&verify)
    );
}
