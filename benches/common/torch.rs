//! Running a PyTorch counterpart script next to a Rust benchmark, so both
//! numbers come from one run on one machine state.
//!
//! The interpreter is `$TORCH_PYTHON`, else the repository's
//! `.venv-torch/bin/python` (`python3 -m venv .venv-torch &&
//! .venv-torch/bin/pip install torch transformers accelerate gguf numpy regex`); without
//! either, the comparison is skipped with a message.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python with torch, if one is set up.
pub fn torch_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TORCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-torch/bin/python");
    if venv.exists() {
        Some(venv)
    } else {
        eprintln!(
            "no PyTorch comparison: set TORCH_PYTHON or create .venv-torch (benches/common/torch.rs)"
        );
        None
    }
}

/// Runs `scripts/<script> args…` with `python`, `threads` torch threads,
/// and parses the JSON object it prints last on stdout.
pub fn run_script(
    python: &Path,
    script: &str,
    args: &[&str],
    threads: usize,
) -> anyhow::Result<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .env("TORCH_THREADS", threads.to_string())
        .output()
        .map_err(|e| anyhow::anyhow!("running {} (TORCH_PYTHON): {e}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    let start = stdout
        .find('{')
        .ok_or_else(|| anyhow::anyhow!("{script} printed no JSON: {stdout}"))?;
    Ok(serde_json::from_str(&stdout[start..])?)
}

/// The 1-minute load average, to record next to each measurement.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// One round at one thread count: ours, and PyTorch's when a torch venv is
/// set up and its script printed the number; each with the 1-minute load
/// average taken just before it ran.
pub struct Row<O, T> {
    pub round: usize,
    pub threads: usize,
    pub ours: (O, f64),
    pub theirs: Option<(T, f64)>,
}

/// `rounds` times, for each of `threads`: `ours(n)`, then `theirs(python,
/// n)` back to back, so both numbers see the same machine state.
pub fn side_by_side<O, T>(
    threads: &[usize],
    rounds: usize,
    mut ours: impl FnMut(usize) -> anyhow::Result<O>,
    mut theirs: impl FnMut(&Path, usize) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<Vec<Row<O, T>>> {
    let python = torch_python();
    let mut rows = Vec::new();
    for round in 1..=rounds {
        for &n in threads {
            let load = load_average();
            let ours = (ours(n)?, load);
            let theirs = match &python {
                Some(py) => {
                    let load = load_average();
                    theirs(py, n)?.map(|t| (t, load))
                }
                None => None,
            };
            rows.push(Row {
                round,
                threads: n,
                ours,
                theirs,
            });
        }
    }
    Ok(rows)
}
