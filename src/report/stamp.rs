//! A report's stamp, `<results>/<experiment>/.report-stamp.json`: what lets
//! a warm `sweep run` keep a report instead of rendering it again.
//!
//! A report is a pure function of its inputs: the manifest's `[report]`
//! spec, the experiment's cells, the records of the cached stages it reads
//! (their metrics, and by checksum the artifact files its figures and the
//! claims' bootstrap read), what the profile says around them (models,
//! `fails_calibration`) and the code of this binary (templates, the font and
//! the paper's numbers are embedded in it). Rendering every report of the
//! shipped manifests costs about a second, most of it the claims' bootstrap
//! over test prompts; hashing their inputs costs milliseconds.
//!
//! The stamp holds the blake3 of those inputs ([`ReportKey`]) and what the
//! render returned ([`ReportSummary`]: what `results/index.md` shows, and
//! the files written). A report is kept while its stamp's key matches and
//! every file it lists exists; a missing, unreadable or older-format stamp,
//! another key or a missing file means rendering it again. The stamp is
//! removed before a render and written (atomically) after its last file, so
//! a render cut short leaves no stamp, and the next run renders again.
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::atomic::write_bytes_atomic;
use super::index::ReportSummary;

/// The stamp's file name inside the experiment's results dir.
pub const STAMP_FILE: &str = ".report-stamp.json";

/// The stamp layout this code writes and reads; another one is re-rendered.
const FORMAT: u32 = 1;

/// Whether a report whose stamp matches its inputs is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// `sweep run`: render only the reports whose inputs changed.
    Changed,
    /// `sweep report`: render every report (the command's whole point).
    Always,
}

/// blake3 (hex) of everything a report is rendered from, and of this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey(String);

impl ReportKey {
    /// The key of a report rendered from `inputs` (serialised as JSON) by
    /// this binary.
    pub fn of(inputs: &impl Serialize) -> anyhow::Result<ReportKey> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(binary_identity().as_bytes());
        serde_json::to_writer(&mut hasher, inputs).context("hashing a report's inputs")?;
        Ok(ReportKey(hasher.finalize().to_hex().to_string()))
    }
}

/// This executable's size and mtime: a rebuilt binary may render
/// differently (its templates, font and paper tables are embedded), so its
/// reports are rendered again. A binary whose metadata cannot be read gets
/// an identity of this process alone, so it keeps no report of another run.
fn binary_identity() -> &'static str {
    static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(|| {
        let meta = std::env::current_exe().and_then(std::fs::metadata);
        let mtime = meta.as_ref().ok().and_then(|m| m.modified().ok());
        match (meta, mtime) {
            (Ok(meta), Some(mtime)) => format!(
                "{} {} {:?}",
                env!("CARGO_PKG_VERSION"),
                meta.len(),
                mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
            ),
            _ => format!(
                "unknown binary, pid {} at {:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ),
        }
    })
}

/// The file's content.
#[derive(Serialize, Deserialize)]
struct Stamp {
    format: u32,
    key: String,
    summary: ReportSummary,
}

/// The report in `dir` whose inputs have key `key`: kept when its stamp
/// matches and every file it lists exists (never under [`Render::Always`]),
/// else written by `render`, then stamped. Returns what the index shows of it.
pub fn render_unless_kept(
    dir: &Path,
    key: &ReportKey,
    mode: Render,
    render: impl FnOnce() -> anyhow::Result<ReportSummary>,
) -> anyhow::Result<ReportSummary> {
    if mode == Render::Changed
        && let Some(summary) = kept(dir, key)
    {
        return Ok(summary);
    }
    let path = dir.join(STAMP_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let summary = render()?;
    let stamp = Stamp {
        format: FORMAT,
        key: key.0.clone(),
        summary,
    };
    write_bytes_atomic(&path, &serde_json::to_vec_pretty(&stamp)?)?;
    Ok(stamp.summary)
}

/// The summary in `dir`'s stamp, if the stamp is readable, of this format
/// and key, and every file it lists is still there.
fn kept(dir: &Path, key: &ReportKey) -> Option<ReportSummary> {
    let text = std::fs::read(dir.join(STAMP_FILE)).ok()?;
    let stamp: Stamp = serde_json::from_slice(&text).ok()?;
    let complete = stamp.summary.files.iter().all(|f| dir.join(f).is_file());
    (stamp.format == FORMAT && stamp.key == key.0 && complete).then_some(stamp.summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::stats::Interval;

    /// A report of one file, `t.csv`, besides `report.md`.
    fn summary() -> ReportSummary {
        ReportSummary {
            value: "gra (×100)".into(),
            interval: Interval::StudentT,
            headline: "| a |\n".into(),
            csv: "t.csv".into(),
            figure: None,
            report: "report.md".into(),
            more_figures: Vec::new(),
            claims: Vec::new(),
            files: vec!["t.csv".into(), "report.md".into()],
        }
    }

    /// Renders `summary()` into `dir`, counting the renders.
    fn render(dir: &Path, renders: &mut usize) -> anyhow::Result<ReportSummary> {
        *renders += 1;
        std::fs::write(dir.join("t.csv"), "a\n1\n")?;
        std::fs::write(dir.join("report.md"), "# t\n")?;
        Ok(summary())
    }

    #[test]
    fn the_key_follows_the_inputs() -> anyhow::Result<()> {
        assert_eq!(ReportKey::of(&("a", 1))?, ReportKey::of(&("a", 1))?);
        assert_ne!(ReportKey::of(&("a", 1))?, ReportKey::of(&("a", 2))?);
        Ok(())
    }

    #[test]
    fn a_report_is_kept_only_while_its_key_and_files_match() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        let (key, other) = (ReportKey::of(&1)?, ReportKey::of(&2)?);
        let mut renders = 0;
        {
            let mut run = |key: &ReportKey, mode| {
                render_unless_kept(dir, key, mode, || render(dir, &mut renders)).unwrap()
            };
            assert_eq!(run(&key, Render::Changed), summary());
            assert_eq!(run(&key, Render::Changed), summary(), "kept");
            run(&other, Render::Changed);
            run(&other, Render::Always);
            std::fs::remove_file(dir.join("t.csv"))?;
            run(&other, Render::Changed);
            std::fs::write(dir.join(STAMP_FILE), "{\"format\": 1, \"key\": ")?;
            run(&other, Render::Changed);
            assert_eq!(run(&other, Render::Changed), summary(), "kept");
        }
        assert_eq!(
            renders, 5,
            "first, new key, always, missing file, corrupt stamp"
        );
        Ok(())
    }

    #[test]
    fn a_failed_render_leaves_no_stamp() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let key = ReportKey::of(&1)?;
        let mut renders = 0;
        render_unless_kept(tmp.path(), &key, Render::Changed, || {
            render(tmp.path(), &mut renders)
        })?;
        let failed = render_unless_kept(tmp.path(), &key, Render::Always, || {
            anyhow::bail!("disk full")
        });
        assert!(failed.is_err());
        assert!(
            !tmp.path().join(STAMP_FILE).exists(),
            "removed before the render"
        );
        render_unless_kept(tmp.path(), &key, Render::Changed, || {
            render(tmp.path(), &mut renders)
        })?;
        assert_eq!(renders, 2, "rendered again after the failure");
        Ok(())
    }
}
