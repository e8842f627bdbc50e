//! Manifests as the user wrote them: TOML files parsed with serde (unknown
//! keys denied, spans kept for `file:line:col` errors), `extends` chains
//! merged, per-stage blocks flattened into `block.key` settings. Only
//! [`resolve`] looks at the result; nothing downstream sees raw TOML.
//!
//! ```toml
//! extends = "base.toml"                 # optional; relative to this file
//! [experiment]
//! name = "table1"
//! title = "GRA of CW-DPO vs human-label DPO"
//! until = "split"                       # optional: stop the pipeline after this stage kind
//! [axes]                                # cartesian product
//! dataset = ["hh-rlhf", "tldr"]
//! annotation = ["human", "cw"]
//! "align.beta" = [0.1, 0.5]             # any setting can be an axis
//! exclude = [{ dataset = "tldr", annotation = "human" }]
//! include = [{ dataset = "ufb", annotation = "cw" }]
//! [defaults]                            # cell settings (and blocks as sub-tables)
//! objective = "dpo"
//! [align]                               # per-stage blocks: world weak sft align generate metric
//! beta = 0.1
//! [report]                              # see `report::TableSpec`
//! rows = ["dataset"]
//! columns = ["annotation"]
//! value = "gra"
//! ```
pub mod resolve;
/// Kept at their old paths: they are part of the shared vocabulary now.
pub use crate::spec::{diagnostic, settings};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::report::TableSpec;
use diagnostic::{Diagnostic, Diagnostics, Loc, Source, from_toml_error};
use settings::BLOCKS;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: toml::Value,
    pub loc: Loc,
}

/// `[experiment]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub name: String,
    pub title: String,
    pub until: Option<Entry>,
    pub loc: Loc,
}

/// One manifest file with its `extends` chain merged (the file's own keys win).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub source: Arc<Source>,
    /// `None` for a base file that only holds shared settings.
    pub experiment: Option<Header>,
    /// Axis name → its list of values (include / exclude are not axes).
    pub axes: BTreeMap<String, Entry>,
    pub include: Vec<Entry>,
    pub exclude: Vec<Entry>,
    /// Setting name (`dataset`, `align.beta`, `world.noise`, …) → value.
    pub settings: BTreeMap<String, Entry>,
    /// The `[report]` block, in the report module's own schema.
    pub report: Option<(TableSpec, Loc)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    extends: Option<Spanned<String>>,
    experiment: Option<Spanned<RawExperiment>>,
    #[serde(default)]
    axes: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    defaults: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    world: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    weak: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    sft: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    align: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    generate: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    metric: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    online: BTreeMap<String, Spanned<toml::Value>>,
    report: Option<Spanned<TableSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: String,
    #[serde(default)]
    title: String,
    until: Option<Spanned<String>>,
}

/// Directories a recursive search does not enter (they are read when named).
const SKIPPED_DIRS: [&str; 3] = ["profiles", "paper", "ablations"];

/// Every `*.toml` manifest under `paths` (files as given, directories
/// recursively, sorted; `profiles/`, `paper/` and `ablations/` directories,
/// which hold profiles, the paper's published numbers and experiments
/// beyond the paper's tables, are skipped unless named themselves).
pub fn collect_files(paths: &[PathBuf], errors: &mut Diagnostics) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Diagnostics) {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                return errors.push(Diagnostic::file(dir, format!("cannot read directory: {e}")));
            }
        };
        entries.sort();
        for p in entries {
            if p.is_dir() {
                if p.file_name()
                    .is_some_and(|n| !SKIPPED_DIRS.iter().any(|s| n == *s))
                {
                    walk(&p, out, errors);
                }
            } else if p.extension().is_some_and(|e| e == "toml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out, errors);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            errors.push(Diagnostic::file(
                p,
                "no such file or directory; give manifest files or directories",
            ));
        }
    }
    out
}

/// Loads every manifest under `paths`; errors of all files are collected.
/// [`resolve::resolve`] then binds them to a profile as typed cells:
///
/// ```
/// use cwpo::manifest::{load_all, resolve::resolve};
/// use cwpo::profile::Profile;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("beta.toml");
/// std::fs::write(&path, r#"
/// [experiment]
/// name = "beta"
/// [axes]
/// "align.beta" = [0.1, 0.5]
/// [defaults]
/// dataset = "tldr"
/// pair = "opt"
/// objective = "dpo"
/// annotation = "cw"
/// "#)?;
/// let manifests = load_all(&[path.clone()])?;
/// let experiments = resolve(&manifests, &Profile::load("tiny")?, cwpo::stage::KINDS)?;
/// let betas: Vec<f64> = experiments[0].cells.iter().map(|c| c.settings.align.beta).collect();
/// assert_eq!(betas, [0.1, 0.5]);
///
/// // A bad value is an error at its place in the file.
/// std::fs::write(&path, "[experiment]\nname = \"b\"\n[defaults]\ndataset = \"tldr\"\n\
///     pair = \"opt\"\nobjective = \"dpo\"\nannotation = \"cw\"\n[align]\nbeta = -1.0\n")?;
/// let manifests = load_all(&[path.clone()])?;
/// let err = resolve(&manifests, &Profile::load("tiny")?, cwpo::stage::KINDS).unwrap_err();
/// assert!(err.to_string().contains("beta.toml:9:8: `align.beta`"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Manifest>, Diagnostics> {
    let mut errors = Diagnostics::default();
    let files = collect_files(paths, &mut errors);
    let mut manifests = Vec::new();
    for file in files {
        match load(&file, &mut Vec::new()) {
            Ok(m) => manifests.push(m),
            Err(e) => errors.0.extend(e.0),
        }
    }
    errors.into_result()?;
    Ok(manifests)
}

/// Loads `path` and its `extends` chain. `chain` holds the files being
/// loaded above this one, to report loops.
pub fn load(path: &Path, chain: &mut Vec<PathBuf>) -> Result<Manifest, Diagnostics> {
    let mut errors = Diagnostics::default();
    let bytes = std::fs::read(path).map_err(|e| {
        let mut d = Diagnostics::default();
        d.push(Diagnostic::file(path, format!("cannot read manifest: {e}")));
        d
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        // Located at the first bad byte (found by tests/reliability_fuzz.rs).
        let at = e.utf8_error().valid_up_to();
        let source = Arc::new(Source {
            path: path.to_owned(),
            text: String::from_utf8_lossy(e.as_bytes()).into_owned().into(),
        });
        // The bad byte became U+FFFD (3 bytes) in the lossy text.
        let loc = Loc::new(&source, Some(at..at + '\u{FFFD}'.len_utf8()));
        let mut d = Diagnostics::default();
        d.push(Diagnostic::at(
            &loc,
            "not UTF-8 text (a manifest must be UTF-8 TOML)",
        ));
        d
    })?;
    let source = Arc::new(Source {
        path: path.to_owned(),
        text: text.into(),
    });
    let raw: RawFile = toml::from_str(&source.text).map_err(|e| {
        let mut d = Diagnostics::default();
        d.push(from_toml_error(&source, &e));
        d
    })?;
    let loc = |span: std::ops::Range<usize>| Loc::new(&source, Some(span));

    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    chain.push(canonical);
    let mut manifest = match &raw.extends {
        Some(base) => {
            let base_path = path.parent().unwrap_or(Path::new(".")).join(base.get_ref());
            let base_canonical = base_path
                .canonicalize()
                .unwrap_or_else(|_| base_path.clone());
            if chain.contains(&base_canonical) {
                let cycle: Vec<String> = chain
                    .iter()
                    .chain([&base_canonical])
                    .map(|p| p.display().to_string())
                    .collect();
                errors.push(Diagnostic::at(
                    &loc(base.span()),
                    format!(
                        "`extends` loop: {}; remove one of the `extends` keys",
                        cycle.join(" -> ")
                    ),
                ));
                None
            } else {
                match load(&base_path, chain) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        if e.0.iter().all(|d| d.loc.is_none()) {
                            errors.push(Diagnostic::at(
                                &loc(base.span()),
                                format!(
                                    "`extends = \"{}\"`: cannot read {}",
                                    base.get_ref(),
                                    base_path.display()
                                ),
                            ));
                        } else {
                            errors.0.extend(e.0);
                        }
                        None
                    }
                }
            }
        }
        None => None,
    };
    chain.pop();
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut m = manifest.take().unwrap_or_else(|| Manifest {
        source: source.clone(),
        experiment: None,
        axes: BTreeMap::new(),
        include: Vec::new(),
        exclude: Vec::new(),
        settings: BTreeMap::new(),
        report: None,
    });
    m.source = source.clone();
    // An experiment header is never inherited: a base file defines no experiment.
    m.experiment = raw.experiment.map(|e| {
        let span = e.span();
        let e = e.into_inner();
        Header {
            title: if e.title.is_empty() {
                e.name.clone()
            } else {
                e.title
            },
            name: e.name,
            until: e.until.map(|u| Entry {
                value: toml::Value::String(u.get_ref().clone()),
                loc: loc(u.span()),
            }),
            loc: loc(span),
        }
    });
    for (key, value) in raw.axes {
        let entry = Entry {
            loc: loc(value.span()),
            value: value.into_inner(),
        };
        match key.as_str() {
            "include" | "exclude" => {
                let list = if key == "include" {
                    &mut m.include
                } else {
                    &mut m.exclude
                };
                list.clear();
                match &entry.value {
                    toml::Value::Array(items) => list.extend(items.iter().map(|v| Entry { value: v.clone(), loc: entry.loc.clone() })),
                    _ => errors.push(Diagnostic::at(&entry.loc, format!("`axes.{key}` must be an array of tables, e.g. [{{ annotation = \"human\" }}]"))),
                }
            }
            _ => {
                m.axes.insert(key, entry);
            }
        }
    }
    for (key, value) in raw.defaults {
        flatten_into(&mut m.settings, None, key, value, &source);
    }
    let blocks = [
        raw.world,
        raw.weak,
        raw.sft,
        raw.align,
        raw.generate,
        raw.metric,
        raw.online,
    ];
    for (block, entries) in BLOCKS.iter().zip(blocks) {
        for (key, value) in entries {
            flatten_into(&mut m.settings, Some(*block), key, value, &source);
        }
    }
    if let Some(report) = raw.report {
        let l = loc(report.span());
        m.report = Some((report.into_inner(), l));
    }
    errors.into_result()?;
    Ok(m)
}

/// Inserts `key = value` as a setting; a block name holding a table (in
/// `[defaults]`) is flattened one level into `block.key` settings.
fn flatten_into(
    settings: &mut BTreeMap<String, Entry>,
    block: Option<&str>,
    key: String,
    value: Spanned<toml::Value>,
    source: &Arc<Source>,
) {
    let loc = Loc::new(source, Some(value.span()));
    let value = value.into_inner();
    match (block, value) {
        (Some(block), value) => {
            settings.insert(format!("{block}.{key}"), Entry { value, loc });
        }
        (None, toml::Value::Table(table)) if BLOCKS.contains(&key.as_str()) => {
            for (sub, v) in table {
                settings.insert(
                    format!("{key}.{sub}"),
                    Entry {
                        value: v,
                        loc: loc.clone(),
                    },
                );
            }
        }
        (None, value) => {
            settings.insert(key, Entry { value, loc });
        }
    }
}

/// A profile's `[defaults]` as settings located at the profile file.
pub fn profile_defaults(profile: &crate::profile::Profile) -> BTreeMap<String, Entry> {
    let source = Arc::new(Source {
        path: PathBuf::from(format!("<profile {}>", profile.name)),
        text: "".into(),
    });
    let mut settings = BTreeMap::new();
    for (key, value) in &profile.defaults {
        flatten_into(
            &mut settings,
            None,
            key.clone(),
            Spanned::new(0..0, value.clone()),
            &source,
        );
    }
    settings
}
