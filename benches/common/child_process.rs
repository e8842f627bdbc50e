//! A bench's child process: the parent runs this same binary again with a
//! marker variable and `RAYON_NUM_THREADS` set (candle reads the thread
//! count once per process), so each thread count gets a fresh process; the
//! child prints its result on a last line `RESULT <payload>`.

use std::process::Command;

/// `key`'s value parsed, else `default`.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The thread counts to measure: `THREADS` (comma-separated), default 1 and 2.
pub fn thread_counts() -> anyhow::Result<Vec<usize>> {
    Ok(std::env::var("THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|t| t.trim().parse())
        .collect::<Result<_, _>>()?)
}

/// Runs this binary with `marker=1`, `threads` threads and `STEPS=steps`,
/// echoes what it prints, and returns the payload of its `RESULT` line.
pub fn run_child(marker: &str, threads: usize, steps: usize) -> anyhow::Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .env(marker, "1")
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("STEPS", steps.to_string())
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    print!("{stdout}");
    anyhow::ensure!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|payload| payload.trim().to_string())
        .ok_or_else(|| anyhow::anyhow!("child printed no RESULT"))
}

/// Runs `work` with memory and threads set up as `sweep` sets them up
/// (freed memory kept, idle candle workers sleep) and on a rayon pool's
/// thread, as a pipeline stage runs.
///
/// # Safety
/// Sets an environment variable: call it first thing in the child's
/// `main`, before any other thread exists.
pub unsafe fn as_a_stage<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    cwpo::exec::memory::keep_freed_memory();
    // SAFETY: the caller promises no other thread exists yet.
    unsafe { cwpo::exec::idle_candle_workers_sleep() };
    cwpo::exec::on_own_compute_threads(work)
}
