//! Atomic file writes: write a temporary file in the destination's directory,
//! then rename it over the destination. A crash leaves either the old file or
//! the new one, never half of one.
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `path` atomically; `fill` writes the content into the temp file.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut tmp = temp_file_beside(path, "")?;
    fill(tmp.as_file_mut()).with_context(|| format!("while writing {}", path.display()))?;
    tmp.as_file_mut().flush()?;
    sync_and_rename(tmp, path)
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic(path, |f| Ok(f.write_all(bytes)?))
}

/// Writes `bytes` to `path` atomically unless the file already holds
/// exactly them (then it is left alone, mtime and all, and no fsync is
/// paid): for files rewritten on every run that mostly come out the same,
/// such as `cells.json` and `index.md`. Returns whether it wrote.
pub fn write_bytes_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    match std::fs::read(path) {
        Ok(old) if old == bytes => Ok(false),
        _ => write_bytes_atomic(path, bytes).map(|()| true),
    }
}

/// Atomic write for writers that insist on opening a path themselves (the
/// plotters bitmap backend picks its encoder from the extension): `fill`
/// writes to a temporary path in the same directory ending in `suffix`
/// (`".png"`), which is then renamed onto `path`.
pub fn write_atomic_via_path(
    path: &Path,
    suffix: &str,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = temp_file_beside(path, suffix)?;
    fill(tmp.path()).with_context(|| format!("while writing {}", path.display()))?;
    sync_and_rename(tmp, path)
}

/// A fresh `.tmp-…{suffix}` file in `path`'s directory (created if
/// missing): a rename onto `path` is then atomic, on one filesystem.
fn temp_file_beside(path: &Path, suffix: &str) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create directory {} for {}",
            dir.display(),
            path.display()
        )
    })?;
    tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(suffix)
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// fsyncs the written temp file, then renames it onto `path`.
fn sync_and_rename(tmp: tempfile::NamedTempFile, path: &Path) -> anyhow::Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot rename the temporary file onto {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_are_not_written_again() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("index.md");
        assert!(write_bytes_if_changed(&path, b"a")?, "a new file");
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let first = inode(&path);
        assert!(!write_bytes_if_changed(&path, b"a")?);
        assert_eq!(inode(&path), first, "left alone");
        assert!(write_bytes_if_changed(&path, b"b")?);
        assert_eq!(std::fs::read(&path)?, b"b");
        Ok(())
    }
}
