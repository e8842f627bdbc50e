//! User-input errors with a place: `file:line:col: message`. All errors of a
//! run are collected into one [`Diagnostics`] and reported together.
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A source file's path and text, shared by every location inside it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub path: PathBuf,
    pub text: Arc<str>,
}

/// A place in a source file (byte span), or just the file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub source: Arc<Source>,
    /// Byte range (start, end) in the source text.
    pub span: Option<(usize, usize)>,
}

impl Loc {
    pub fn new(source: &Arc<Source>, span: Option<std::ops::Range<usize>>) -> Self {
        Loc {
            source: source.clone(),
            span: span.map(|s| (s.start, s.end)),
        }
    }

    /// The place `offset` bytes into the string `value` written at this
    /// location (as a string, or inside an array): exact when the file
    /// spells the string without escapes, else this location.
    pub fn inside_string(&self, value: &str, offset: usize) -> Loc {
        let Some((start, end)) = self.span else {
            return self.clone();
        };
        let written = self.source.text.get(start..end).unwrap_or_default();
        let at = ['"', '\'']
            .iter()
            .find_map(|q| written.find(&format!("{q}{value}{q}")))
            .map(|quote| start + quote + 1 + offset.min(value.len()));
        match at {
            Some(at) => Loc {
                source: self.source.clone(),
                span: Some((at, at)),
            },
            None => self.clone(),
        }
    }

    /// 1-based (line, column) of the span's start.
    pub fn line_col(&self) -> (usize, usize) {
        let offset = self.span.map_or(0, |s| s.0).min(self.source.text.len());
        let before = &self.source.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, col) = self.line_col();
        write!(f, "{}:{line}:{col}", self.source.path.display())
    }
}

/// One bad-input error.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// `None` for errors about a path that could not be read at all.
    pub loc: Option<Loc>,
    pub path: Option<PathBuf>,
    pub message: String,
}

impl Diagnostic {
    pub fn at(loc: &Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            loc: Some(loc.clone()),
            path: None,
            message: message.into(),
        }
    }
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            loc: None,
            path: Some(path.to_owned()),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.loc, &self.path) {
            (Some(loc), _) => write!(f, "{loc}: {}", self.message),
            (None, Some(path)) => write!(f, "{}: {}", path.display(), self.message),
            (None, None) => write!(f, "{}", self.message),
        }
    }
}

/// Every bad-input error of a run, deduplicated and sorted by place. The CLI
/// maps it to exit code 2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub BTreeSet<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.insert(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Err(self)` if any error was collected.
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "error: {d}")?;
        }
        write!(f, "{} error(s); nothing was run or written", self.0.len())
    }
}

impl std::error::Error for Diagnostics {}

/// Turns a toml/serde error into a diagnostic at its span.
pub fn from_toml_error(source: &Arc<Source>, err: &toml::de::Error) -> Diagnostic {
    Diagnostic::at(
        &Loc::new(source, err.span()),
        err.message().trim().to_string(),
    )
}
