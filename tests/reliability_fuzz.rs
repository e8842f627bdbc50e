//! Fuzzed manifests: mutations of the shipped manifests and random TOML
//! go through the library path `sweep validate` and `sweep plan` take
//! ([`cwpo::plan::compile_with`]: load, stage limit, resolve, build the
//! DAG). No input may panic, and every rejection must be a
//! [`Diagnostics`] (exit 2 in the CLI) whose every error has a
//! `file:line:col`.
//!
//! CI runs 5,000 cases of each property (`SWEEP_FUZZ_CASES` sets another
//! count). Inputs it ever found are kept in `tests/fixtures/fuzz/` and
//! replayed by `found_cases_stay_clean_errors`.
mod common;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use cwpo::manifest::diagnostic::Diagnostics;
use cwpo::plan::compile_with;
use cwpo::profile::Profile;

/// A copy of the shipped manifests (so `extends` between them resolves),
/// where each case is written as `fuzz-case.toml`.
struct Workspace {
    dir: tempfile::TempDir,
    shipped: Vec<String>,
    profile: Profile,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let mut shipped = Vec::new();
        for e in std::fs::read_dir(common::repo().join("experiments")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                std::fs::write(dir.path().join(p.file_name().unwrap()), &text).unwrap();
                shipped.push(text);
            }
        }
        shipped.sort();
        Workspace {
            dir,
            shipped,
            profile: Profile::load("tiny").unwrap(),
        }
    }

    fn case_path(&self) -> PathBuf {
        self.dir.path().join("fuzz-case.toml")
    }

    /// Validates and plans `text`; `Err` describes a broken promise.
    fn check(&self, text: &[u8]) -> Result<(), String> {
        let path = self.case_path();
        std::fs::write(&path, text).unwrap();
        check_file(&path, &self.profile)
    }
}

fn check_file(path: &Path, profile: &Profile) -> Result<(), String> {
    let Err(err) = compile_with(&[path.to_path_buf()], profile, 20_000) else {
        return Ok(());
    };
    let Some(diagnostics) = err.downcast_ref::<Diagnostics>() else {
        return Err(format!(
            "a rejection that is not a located input error: {err:#}"
        ));
    };
    for d in &diagnostics.0 {
        if d.loc.is_none() {
            return Err(format!("an error without file:line:col: {d}"));
        }
    }
    Ok(())
}

/// Fragments a mutation inserts: TOML syntax, the manifest vocabulary, and
/// the values most likely to break something.
const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "=",
    "\"",
    "'",
    ",",
    "\n",
    "#",
    ".",
    "[[axes]]\n",
    "[axes]\n",
    "[experiment]\n",
    "[report]\n",
    "[report.figure]\n",
    "[align]\n",
    "[world]\n",
    "[defaults]\n",
    "seed = [0, 1]\n",
    "seed = []\n",
    "seed = [-1]\n",
    "seed = 1e999\n",
    "seed = [9223372036854775807]\n",
    "-0",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "0.0",
    "1.5",
    "name = \"../x\"\n",
    "name = \"\"\n",
    "name = \"a\\u0000b\"\n",
    "until = \"metric\"\n",
    "until = \"nope\"\n",
    "extends = \"base.toml\"\n",
    "extends = \"fuzz-case.toml\"\n",
    "extends = \"/dev/null\"\n",
    "extends = \"missing.toml\"\n",
    "exclude = [{}]\n",
    "include = [{ dataset = \"tldr\" }]\n",
    "include = [1]\n",
    "annotation = \"top0\"\n",
    "annotation = \"top101\"\n",
    "annotation = \"top\"\n",
    "labeled_fraction = 1.0\n",
    "labeled_fraction = 0\n",
    "weighting = \"2*sigmoid(s_c - s_r) - 1\"\n",
    "weighting = \"s_c / 0\"\n",
    "weighting = \"((((\"\n",
    "samples = 0\n",
    "max_new_tokens = 0\n",
    "temperature = -1.0\n",
    "batch_size = 0\n",
    "epochs = 0\n",
    "lora_rank = 0\n",
    "beta = 0\n",
    "tau = -1\n",
    "eps = 0.5\n",
    "gold = \"learned\"\n",
    "gold = \"true\"\n",
    "tie_margin = nan\n",
    "rows = []\n",
    "columns = []\n",
    "value = \"\"\n",
    "series = []\n",
    "kind = \"line\"\n",
    "x = \"seed\"\n",
    "paper = \"table99\"\n",
    "claims = [\"a > \"]\n",
    "scale = 0\n",
    "n_pairs = 0\n",
    "n_test_prompts = 0\n",
    "flip = 2.0\n",
    "\u{feff}",
    "é",
    "\u{1F600}",
    "\r\n",
    "\t",
];

/// One edit of a manifest's bytes.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    Replace(usize, usize, usize),
    DuplicateLine(usize),
    DropLine(usize),
    SpliceLineFrom(usize, usize, usize),
    FlipByte(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, f)| Edit::Insert(a, f)),
        (any::<usize>(), 1..40usize).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 1..12usize, any::<usize>()).prop_map(|(a, n, f)| Edit::Replace(a, n, f)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DropLine),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(m, l, at)| Edit::SpliceLineFrom(m, l, at)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::FlipByte(a, b)),
    ]
}

fn apply(text: &mut Vec<u8>, edit: &Edit, shipped: &[String]) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    let lines =
        |t: &[u8]| -> Vec<Vec<u8>> { t.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect() };
    match *edit {
        Edit::Insert(i, f) => {
            let i = at(i, text.len());
            let frag = FRAGMENTS[f % FRAGMENTS.len()].as_bytes();
            text.splice(i..i, frag.iter().copied());
        }
        Edit::Delete(i, n) => {
            let i = at(i, text.len());
            let end = (i + n).min(text.len());
            text.drain(i..end);
        }
        Edit::Replace(i, n, f) => {
            let i = at(i, text.len());
            let end = (i + n).min(text.len());
            let frag = FRAGMENTS[f % FRAGMENTS.len()].as_bytes();
            text.splice(i..end, frag.iter().copied());
        }
        Edit::DuplicateLine(l) | Edit::DropLine(l) => {
            let mut ls = lines(text);
            let l = l % ls.len();
            if matches!(edit, Edit::DuplicateLine(_)) {
                ls.insert(l, ls[l].clone());
            } else {
                ls.remove(l);
            }
            *text = ls.join(&b'\n');
        }
        Edit::SpliceLineFrom(m, l, to) => {
            let from = lines(shipped[m % shipped.len()].as_bytes());
            let mut ls = lines(text);
            let to = to % (ls.len() + 1);
            ls.insert(to, from[l % from.len()].clone());
            *text = ls.join(&b'\n');
        }
        Edit::FlipByte(i, b) => {
            if !text.is_empty() {
                let i = i % text.len();
                text[i] ^= b;
            }
        }
    }
}

/// Random TOML documents over the manifest's own keys and other ones.
fn toml_value(depth: u32) -> BoxedStrategy<toml::Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(toml::Value::Boolean),
        any::<i64>().prop_map(toml::Value::Integer),
        prop_oneof![Just(0i64), Just(1), Just(2), Just(-1), Just(3)].prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        word().prop_map(toml::Value::String),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(toml_value(depth - 1), 0..4).prop_map(toml::Value::Array),
        1 => prop::collection::btree_map(word(), toml_value(depth - 1), 0..4)
            .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
    ]
    .boxed()
}

const WORDS: &[&str] = &[
    "experiment",
    "name",
    "title",
    "until",
    "axes",
    "defaults",
    "world",
    "weak",
    "sft",
    "align",
    "generate",
    "metric",
    "report",
    "figure",
    "extends",
    "include",
    "exclude",
    "dataset",
    "pair",
    "objective",
    "annotation",
    "seed",
    "labeled_fraction",
    "beta",
    "tau",
    "eps",
    "weighting",
    "weak_objective",
    "weak_model",
    "strong_model",
    "rows",
    "columns",
    "value",
    "series",
    "panel",
    "kind",
    "x",
    "paper",
    "claims",
    "order",
    "avg_row",
    "scale",
    "extra_values",
    "over",
    "hh-rlhf",
    "tldr",
    "ufb",
    "opt",
    "qwen",
    "dpo",
    "ipo",
    "rdpo",
    "human",
    "ws",
    "cw",
    "weak",
    "top30",
    "bt",
    "gra",
    "grouped_bars",
    "line",
    "split",
    "metric",
    "align.beta",
    "sft.epochs",
    "world.flip",
    "temperature",
    "samples",
    "gold",
    "learned",
    "true",
    "..",
    "/",
    "a/b",
    "",
    "cache",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => prop::collection::vec(any::<char>(), 0..12).prop_map(|v| v.into_iter().collect()),
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::btree_map(word(), toml_value(3), 0..6).prop_map(|m| {
        let table: toml::Table = m.into_iter().collect();
        toml::to_string(&table).unwrap_or_default()
    })
}

fn cases() -> u32 {
    std::env::var("SWEEP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

thread_local! {
    static WORKSPACE: Workspace = Workspace::new();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_shipped_manifests_never_panic_and_fail_with_a_location(
        which in any::<usize>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        WORKSPACE.with(|ws| {
            let mut text = ws.shipped[which % ws.shipped.len()].clone().into_bytes();
            for e in &edits {
                apply(&mut text, e, &ws.shipped);
            }
            ws.check(&text).map_err(|e| {
                TestCaseError::fail(format!("{e}\n--- input ---\n{}", String::from_utf8_lossy(&text)))
            })
        })?;
    }

    #[test]
    fn random_toml_never_panics_and_fails_with_a_location(doc in document()) {
        WORKSPACE.with(|ws| {
            ws.check(doc.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{e}\n--- input ---\n{doc}")))
        })?;
    }
}

/// Every input the fuzzer ever found, kept as a file.
#[test]
fn found_cases_stay_clean_errors() {
    let profile = Profile::load("tiny").unwrap();
    let dir = common::repo().join("tests/fixtures/fuzz");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            if let Err(e) = check_file(&path, &profile) {
                panic!("{}: {e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "the regression cases are in {}", dir.display());
}
