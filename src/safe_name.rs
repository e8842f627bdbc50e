//! Names that become paths. An experiment's name is the dir its results go
//! to (`results/<name>/`), and it and every extra metric name are parts of
//! file names (`<name>_<metric>.csv`). Each must be one safe path
//! component, checked when the manifest is validated, so nothing a manifest
//! says can write outside `results/`; and the writer refuses a symlink where
//! it expects the experiment's dir, so a link planted in `results/` cannot
//! redirect it either.
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::manifest::Manifest;
use crate::manifest::diagnostic::{Diagnostic, Diagnostics};

/// Longest name accepted (well under every file system's 255-byte limit,
/// leaving room for the suffixes the report adds).
const MAX_LEN: usize = 100;

/// Names `results/` uses itself.
const RESERVED: &[&str] = &["cache"];

/// `Ok` when `name` is one safe path component: 1–100 characters from
/// letters, digits, `-`, `_`, `.` and `+`, not starting with `.` (no `..`,
/// no hidden files), and not a name `results/` reserves.
pub fn check_component(name: &str) -> std::result::Result<(), String> {
    let why = if name.is_empty() {
        "is empty".to_string()
    } else if name.len() > MAX_LEN {
        format!("is longer than {MAX_LEN} characters")
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+')))
    {
        let what = match c {
            '/' | '\\' => "a path separator".to_string(),
            '\0' => "a NUL character".to_string(),
            c if c.is_control() => format!("the control character {c:?}"),
            c => format!("`{c}`"),
        };
        format!("contains {what}")
    } else if name.starts_with('.') {
        "starts with `.`".to_string()
    } else if RESERVED.contains(&name) {
        "is reserved for sweep's own use".to_string()
    } else {
        return Ok(());
    };
    Err(format!(
        "`{}` {why}; it names a path under results/, so it must be one path component of letters, digits, `-`, `_`, `.`, `+` (not starting with `.`)",
        name.escape_default()
    ))
}

/// Checks every name in `m` that becomes part of an output path.
pub fn check_manifest(m: &Manifest, errors: &mut Diagnostics) {
    if let Some(header) = &m.experiment
        && let Err(e) = check_component(&header.name)
    {
        errors.push(Diagnostic::at(&header.loc, format!("experiment name {e}")));
    }
    if let Some((spec, loc)) = &m.report {
        for extra in &spec.extra_values {
            if let Err(e) = check_component(extra.value()) {
                errors.push(Diagnostic::at(loc, format!("report extra value {e}")));
            }
        }
    }
}

/// `root/name`, creating it if needed, after checking `name` again and
/// refusing a symlink (or anything but a dir) in its place.
pub fn output_dir(root: &Path, name: &str) -> Result<PathBuf> {
    if let Err(e) = check_component(name) {
        bail!("refusing to write results: {e}");
    }
    let dir = root.join(name);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "refusing to write into {}: it is a symlink (to {}), and results stay inside {}; remove the link",
            dir.display(),
            std::fs::read_link(&dir).map_or("?".into(), |t| t.display().to_string()),
            root.display()
        ),
        Ok(meta) if !meta.is_dir() => {
            bail!(
                "refusing to write into {}: it is not a directory",
                dir.display()
            )
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?,
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for ok in ["table1", "fig-3", "gra_shared", "v1.2", "a+b"] {
            assert_eq!(check_component(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn each_escape_route_is_refused_with_its_reason() {
        let cases = [
            ("..", "starts with `.`"),
            ("../../escaped", "a path separator"),
            ("/etc", "a path separator"),
            ("a\\b", "a path separator"),
            ("a\0b", "a NUL character"),
            ("a\nb", "control character"),
            ("", "is empty"),
            ("cache", "reserved"),
            (".hidden", "starts with `.`"),
            ("a b", "` `"),
        ];
        for (name, why) in cases {
            let err = check_component(name).unwrap_err();
            assert!(err.contains(why), "{name:?}: {err}");
        }
        assert!(check_component(&"x".repeat(101)).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_writer_refuses_a_symlinked_experiment_dir() {
        let results = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), results.path().join("table1")).unwrap();
        let err = output_dir(results.path(), "table1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a symlink"), "{err}");
        assert_eq!(
            output_dir(results.path(), "table2").unwrap(),
            results.path().join("table2")
        );
        assert!(results.path().join("table2").is_dir());
    }
}
