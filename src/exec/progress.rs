//! Progress display: an overall bar (stages done / total, ETA) and one bar per
//! running stage (step, loss, ETA) with indicatif; hidden when stderr is not
//! a terminal, where one line per finished stage is printed instead.
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stage::Progress;

pub struct Display {
    multi: MultiProgress,
    overall: ProgressBar,
    interactive: bool,
}

impl Display {
    pub fn new(total: u64) -> Display {
        let interactive = std::io::stderr().is_terminal();
        let target = if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {pos}/{len} stages  eta {eta}  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix("sweep");
        Display {
            multi,
            overall,
            interactive,
        }
    }

    /// A bar for a starting stage; `log` is its log file.
    pub fn stage(&self, name: &str, log: &Path) -> std::io::Result<StageProgress> {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("  {prefix} [{bar:20}] {pos}/{len} eta {eta} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        Ok(StageProgress {
            bar,
            log: Mutex::new(File::create(log)?),
        })
    }

    /// A stage ended: drop its bar and close its log file (before the cache
    /// checksums the artifact dir).
    pub fn close(&self, stage: StageProgress) {
        stage.bar.finish_and_clear();
        self.multi.remove(&stage.bar);
    }

    /// Bumps the overall bar and prints one line about a stage that ended
    /// (after its record is written, so "done" always means recorded).
    pub fn ended(&self, line: &str) {
        self.overall.inc(1);
        if self.interactive {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn done(&self) {
        self.overall.finish_and_clear();
    }
}

/// What a running stage reports to; log lines go to its `stage.log`.
pub struct StageProgress {
    bar: ProgressBar,
    log: Mutex<File>,
}

impl Progress for StageProgress {
    fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }
    fn set_step(&self, step: u64, loss: Option<f64>) {
        self.bar.set_position(step);
        if let Some(loss) = loss {
            self.bar.set_message(format!("loss {loss:.4}"));
        }
    }
    fn log(&self, line: &str) {
        if let Ok(mut f) = self.log.lock() {
            let _ = writeln!(f, "{line}");
        }
    }
}
