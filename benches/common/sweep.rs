//! Running the real `sweep` binary from a benchmark.
use std::path::Path;
use std::process::Command;

/// Runs `sweep ARGS…` in `dir`; panics with its stderr unless it succeeds.
pub fn sweep(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("sweep runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
