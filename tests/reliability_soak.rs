//! The soak: SIGKILL `sweep run` at random moments over a CI-sized sweep,
//! damaging the cache in between (a corrupted artifact file, a truncated
//! index, a removed artifact dir, a torn record file), and resume each time.
//! After every kill, no stage is recorded without its files; at the end
//! the results are byte-identical to an uninterrupted run's and
//! `sweep verify` finds nothing to drop.
//!
//! CI runs 10 kills. The figure in docs/reliability.md is
//! `SWEEP_SOAK_KILLS=50 cargo test --test reliability_soak -- --nocapture`;
//! `SWEEP_SOAK_SEED=N` replays one sequence of kill moments and damages.
mod common;
use common::{sweep, text};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rand::{Rng, SeedableRng};

use cwpo::cache::RECORD_FILE;
use cwpo::cache::check::{Depth, check_record};
use cwpo::cache::record::read_record_file;

/// Two datasets × 12 seeds of splits: 26 stages, each cheap, so one full
/// run is long enough to be killed at many points and short enough for CI.
const MANIFEST: &str = "[experiment]\nname = \"soak\"\nuntil = \"split\"\n[axes]\ndataset = [\"hh-rlhf\", \"tldr\"]\nseed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\nlabeled_fraction = [0.3]\n[defaults]\npair = \"opt\"\nobjective = \"dpo\"\nannotation = \"cw\"\n";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every file under `dir`, relative, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// What must match an uninterrupted run: the experiment's results and
/// every artifact file (the stage log and record file hold timings).
fn results_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out: BTreeMap<PathBuf, Vec<u8>> = files(&dir.join("results/soak"))
        .into_iter()
        .map(|(p, b)| (Path::new("soak").join(p), b))
        .collect();
    for kind in ["dataset", "split"] {
        for (p, b) in files(&dir.join("results/cache").join(kind)) {
            let name = p.file_name().unwrap().to_string_lossy();
            if name != RECORD_FILE && name != cwpo::cache::LOG_FILE {
                out.insert(Path::new(kind).join(p), b);
            }
        }
    }
    out
}

/// Sealed stage dirs (kind/key) of the cache.
fn stage_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kind in ["dataset", "split"] {
        if let Ok(entries) = std::fs::read_dir(dir.join("results/cache").join(kind)) {
            out.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// No stage is recorded without its files: every record file that is
/// whole describes files that hash to its sums, except the dirs this soak
/// damaged itself (whose record file is unchanged since).
fn assert_no_record_without_its_files(dir: &Path, damaged: &HashMap<PathBuf, Vec<u8>>) {
    let root = dir.join("results/cache");
    for stage in stage_dirs(dir) {
        let Ok(rec) = read_record_file(&stage) else {
            continue; // no or torn record file: the stage counts as not done
        };
        let untouched = damaged.get(&stage).is_none_or(|bytes| {
            std::fs::read(stage.join(RECORD_FILE)).ok().as_ref() != Some(bytes)
        });
        if untouched {
            assert_eq!(
                check_record(&root, &rec, Depth::Full),
                Ok(()),
                "{}",
                rec.name
            );
        }
    }
}

#[test]
fn killed_and_damaged_runs_end_byte_identical_to_an_uninterrupted_one() {
    let kills: usize = env_or("SWEEP_SOAK_KILLS", 10);
    let seed: u64 = env_or(
        "SWEEP_SOAK_SEED",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    eprintln!("soak: {kills} kills, SWEEP_SOAK_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let reference = tempfile::tempdir().unwrap();
    std::fs::write(reference.path().join("m.toml"), MANIFEST).unwrap();
    let started = Instant::now();
    let out = sweep(reference.path(), &["run", "m.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let full = started.elapsed();
    let want = results_of(reference.path());

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("m.toml"), MANIFEST).unwrap();
    let mut damaged: HashMap<PathBuf, Vec<u8>> = HashMap::new();
    let (mut mid_run, mut damages) = (0, BTreeMap::<&str, usize>::new());
    for i in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sweep"))
            .current_dir(dir)
            .args(["run", "m.toml"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let at = full.mul_f64(rng.random_range(0.0..1.0));
        std::thread::sleep(at);
        let was_running = child.try_wait().unwrap().is_none();
        mid_run += usize::from(was_running);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_no_record_without_its_files(dir, &damaged);

        let stages = stage_dirs(dir);
        let damage = match rng.random_range(0..5) {
            0 => "none",
            1 => "corrupt an artifact file",
            2 => "truncate the index",
            3 => "remove an artifact dir",
            _ => "tear a record file",
        };
        let victim =
            (!stages.is_empty()).then(|| stages[rng.random_range(0..stages.len())].clone());
        match (damage, &victim) {
            ("corrupt an artifact file", Some(stage)) => {
                let files: Vec<PathBuf> = std::fs::read_dir(stage)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.file_name().unwrap() != RECORD_FILE)
                    .collect();
                if let Some(file) = files.get(rng.random_range(0..files.len().max(1))) {
                    let mut bytes = std::fs::read(file).unwrap();
                    if !bytes.is_empty() {
                        let at = rng.random_range(0..bytes.len());
                        bytes[at] ^= 0x20;
                    }
                    std::fs::write(file, &bytes).unwrap();
                    // A real corruption by a write changes the mtime; make
                    // sure it differs even on a coarse clock.
                    std::fs::File::options()
                        .write(true)
                        .open(file)
                        .unwrap()
                        .set_modified(SystemTime::now() + Duration::from_secs(1 + i as u64))
                        .unwrap();
                    if let Ok(record) = std::fs::read(stage.join(RECORD_FILE)) {
                        damaged.insert(stage.clone(), record);
                    }
                }
            }
            ("truncate the index", _) => {
                let db = dir.join("results/cache/index.sled/db");
                if let Ok(meta) = std::fs::metadata(&db) {
                    let len = rng.random_range(0..=meta.len());
                    std::fs::File::options()
                        .write(true)
                        .open(&db)
                        .unwrap()
                        .set_len(len)
                        .unwrap();
                }
            }
            ("remove an artifact dir", Some(stage)) => std::fs::remove_dir_all(stage).unwrap(),
            ("tear a record file", Some(stage)) => {
                let path = stage.join(RECORD_FILE);
                if let Ok(bytes) = std::fs::read(&path)
                    && !bytes.is_empty()
                {
                    std::fs::write(&path, &bytes[..rng.random_range(0..bytes.len())]).unwrap();
                }
            }
            _ => {}
        }
        *damages.entry(damage).or_default() += 1;
        eprintln!(
            "kill {i}: after {at:?}{}; then: {damage}",
            if was_running {
                ""
            } else {
                " (the run had finished)"
            }
        );
    }

    let last = sweep(dir, &["run", "m.toml"]);
    assert!(last.status.success(), "{}", text(&last));
    let verify = sweep(dir, &["verify"]);
    assert!(
        text(&verify).contains(" 0 dropped"),
        "every record verifies in full: {}",
        text(&verify)
    );
    let got = results_of(dir);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same files (seed {seed})"
    );
    for (path, bytes) in &want {
        assert!(
            &got[path] == bytes,
            "{} differs (seed {seed})",
            path.display()
        );
    }
    eprintln!(
        "soak: {kills} kills ({mid_run} mid-run), damages {damages:?}, one full run {full:?}: results byte-identical"
    );
}
