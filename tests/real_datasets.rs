//! The real-dataset loaders on small fixture files in each published layout
//! (tests/fixtures/real/, malformed rows included; the gzip and parquet
//! fixtures are written by the tests).
use std::io::Write;
use std::path::{Path, PathBuf};

use cwpo::data::PreferencePair;
use cwpo::data::hf_tokenizer::HfTokenizer;
use cwpo::data::real::inspect::inspect_dataset;
use cwpo::data::real::{DatasetFormat, LengthFilter, LoadOptions, OnBadRow, load_union};
use polars::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name)
}

fn skip() -> LoadOptions<'static> {
    LoadOptions {
        on_bad_row: OnBadRow::Skip,
        length_filter: None,
    }
}

/// A real (HF `tokenizers`) word-level tokenizer: one token per word or
/// punctuation run, so lengths in tests are easy to count by eye.
fn word_tokenizer() -> HfTokenizer {
    let json = r#"{
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "the": 1}, "unk_token": "[UNK]"}
    }"#;
    HfTokenizer::new(json.parse().unwrap(), 0, 0)
}

#[test]
fn hh_rlhf_prompt_is_the_prefix_up_to_the_last_assistant_turn() {
    let loaded = DatasetFormat::HhRlhf
        .load(&fixture("hh-rlhf.jsonl"), &skip())
        .unwrap();
    assert_eq!(loaded.report.kept, 3);
    assert_eq!(loaded.report.bad_rows, 2);
    let joke = &loaded.pairs[1];
    assert_eq!(
        joke.prompt,
        "\n\nHuman: Tell me a joke.\n\nAssistant: Sure, what kind?\n\nHuman: About cats.\n\nAssistant:"
    );
    assert_eq!(joke.rejected, " No.");
    assert!(joke.chosen.starts_with(" Why did the cat"));
    // The skipped rows are reported with file, line and field.
    let examples = loaded.report.bad_row_examples.join("\n");
    assert!(
        examples.contains("line 3: field `rejected`: missing"),
        "{examples}"
    );
    assert!(examples.contains("line 4: field `<json>`"), "{examples}");
}

#[test]
fn bad_row_is_an_error_naming_file_line_and_field_by_default() {
    let err = DatasetFormat::HhRlhf
        .load(&fixture("hh-rlhf.jsonl"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hh-rlhf.jsonl: line 3: field `rejected`"),
        "{err}"
    );
    assert!(err.contains("on_bad_row = \"skip\""), "{err}");
}

#[test]
fn hh_rlhf_gzip_reads_like_plain_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("train.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_path).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&std::fs::read(fixture("hh-rlhf.jsonl")).unwrap())
        .unwrap();
    gz.finish().unwrap();
    let plain = DatasetFormat::HhRlhf
        .load(&fixture("hh-rlhf.jsonl"), &skip())
        .unwrap();
    let zipped = DatasetFormat::HhRlhf.load(&gz_path, &skip()).unwrap();
    assert_eq!(plain.pairs, zipped.pairs);
    assert_eq!(zipped.report.bad_rows, 2);

    // The union of two subset files is both, in order, with a report per file.
    let (union, reports) = load_union(
        DatasetFormat::HhRlhf,
        &[fixture("hh-rlhf.jsonl"), gz_path.clone()],
        &skip(),
    )
    .unwrap();
    assert_eq!(union.len(), 6);
    assert_eq!(union[3..], plain.pairs[..]);
    assert_eq!(reports[1].file, gz_path);
}

#[test]
fn length_filter_drops_and_counts_pairs_over_the_limit() {
    let tokenizer = word_tokenizer();
    let options = LoadOptions {
        on_bad_row: OnBadRow::Skip,
        length_filter: Some(LengthFilter {
            tokenizer: &tokenizer,
            max_tokens: DatasetFormat::HhRlhf.max_tokens(),
        }),
    };
    let loaded = DatasetFormat::HhRlhf
        .load(&fixture("hh-rlhf.jsonl"), &options)
        .unwrap();
    // The harmful answer repeats an 8-word sentence 80 times: 640 > 512 tokens.
    assert_eq!(loaded.report.filtered_too_long, 1);
    assert_eq!(loaded.report.kept, 2);
    assert!(loaded.pairs.iter().all(|p| !p.prompt.contains("hurt")));
}

#[test]
fn tldr_comparisons_follow_choice_and_build_the_tldr_prompt() {
    let loaded = DatasetFormat::Tldr
        .load(&fixture("tldr-comparisons.json"), &skip())
        .unwrap();
    assert_eq!((loaded.report.kept, loaded.report.bad_rows), (2, 1));
    assert_eq!(
        loaded.pairs[0].prompt,
        "SUBREDDIT: r/relationships\nTITLE: New city, no friends\nPOST: I moved to a new city and I do not know anyone. How do I make friends?\nTL;DR:"
    );
    assert_eq!(loaded.pairs[0].rejected, " city");
    // choice = 1 picks the second summary; a missing leading space is added.
    assert!(loaded.pairs[1].chosen.starts_with(" Landlord keeps"));
    assert_eq!(loaded.pairs[1].rejected, " landlord");
    assert!(
        loaded.report.bad_row_examples[0]
            .contains("line 3: field `choice`: expected 0 or 1, found 2")
    );
}

#[test]
fn shp_labels_pick_the_preferred_comment() {
    let loaded = DatasetFormat::Shp
        .load(&fixture("shp.jsonl"), &skip())
        .unwrap();
    assert_eq!((loaded.report.kept, loaded.report.bad_rows), (2, 1));
    assert_eq!(
        loaded.pairs[0].chosen,
        " Yes, they will reply when they can."
    );
    assert_eq!(
        loaded.pairs[1].chosen,
        " The oven door was probably opened too early."
    );
    assert_eq!(loaded.pairs[1].rejected, " Magic.");
    assert_eq!(
        loaded.pairs[1].prompt,
        "POST: Why did my cake sink?\n\nResponse:"
    );
    assert!(loaded.report.bad_row_examples[0].contains("line 3: field `labels`"));
}

#[test]
fn json_array_layout_reads_records_like_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shp.json");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(fixture("shp.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    std::fs::write(&path, serde_json::to_string(&records).unwrap()).unwrap();
    let loaded = DatasetFormat::Shp.load(&path, &skip()).unwrap();
    assert_eq!(loaded.report.kept, 2);
    assert!(loaded.report.bad_row_examples[0].contains("record 3: field `labels`"));
}

/// One message list column value: `[{content, role}, …]`.
fn messages(turns: &[(&str, &str)]) -> Series {
    let content = Series::new(
        "content".into(),
        turns.iter().map(|t| t.1).collect::<Vec<_>>(),
    );
    let role = Series::new("role".into(), turns.iter().map(|t| t.0).collect::<Vec<_>>());
    StructChunked::from_series("message".into(), turns.len(), [content, role].iter())
        .unwrap()
        .into_series()
}

fn write_ultrafeedback_parquet(path: &Path) {
    let prompts = ["What is 2+2?", "Name a colour.", "Say hi."];
    let chosen: ListChunked = [
        vec![("user", "What is 2+2?"), ("assistant", "4")],
        vec![("user", "Name a colour."), ("assistant", "Blue.")],
        vec![("user", "Say hi."), ("assistant", "Hi!")],
    ]
    .iter()
    .map(|turns| Some(messages(turns)))
    .collect();
    let rejected: ListChunked = [
        vec![("user", "What is 2+2?"), ("assistant", "5")],
        vec![("user", "Name a colour.")], // row 2: no assistant turn
        vec![("user", "Say hi."), ("assistant", "Bye.")],
    ]
    .iter()
    .map(|turns| Some(messages(turns)))
    .collect();
    let mut frame = DataFrame::new(vec![
        Column::new("prompt".into(), prompts),
        chosen.with_name("chosen".into()).into_series().into(),
        rejected.with_name("rejected".into()).into_series().into(),
        Column::new("score_chosen".into(), [9.0f64, 8.0, 2.0]),
        Column::new("score_rejected".into(), [3.0f64, 1.0, 6.0]), // row 3: chosen scored lower
    ])
    .unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap())
        .finish(&mut frame)
        .unwrap();
}

#[test]
fn ultrafeedback_parquet_takes_the_last_assistant_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train_prefs-00000-of-00001.parquet");
    write_ultrafeedback_parquet(&path);
    let loaded = DatasetFormat::UltraFeedback.load(&path, &skip()).unwrap();
    assert_eq!(
        loaded.pairs,
        vec![PreferencePair {
            prompt: "What is 2+2?".into(),
            chosen: "4".into(),
            rejected: "5".into(),
        }]
    );
    assert_eq!(loaded.report.bad_rows, 2);
    let examples = loaded.report.bad_row_examples.join("\n");
    assert!(
        examples.contains("row 2: field `rejected`: no assistant message"),
        "{examples}"
    );
    assert!(
        examples.contains("row 3: field `score_chosen`"),
        "{examples}"
    );
}

#[test]
fn inspect_counts_rows_and_shows_two_examples() {
    let tokenizer = word_tokenizer();
    let inspection =
        inspect_dataset("harmless-base", &fixture("hh-rlhf.jsonl"), Some(&tokenizer)).unwrap();
    assert_eq!(inspection.report.kept, 2);
    assert_eq!(inspection.report.filtered_too_long, 1);
    assert_eq!(inspection.report.bad_rows, 2);
    assert_eq!(inspection.max_tokens, Some(512));
    let lengths = inspection.lengths.as_ref().unwrap();
    assert_eq!(lengths.unit, "tokens");
    assert!(lengths.p50 <= lengths.p90 && lengths.p90 <= lengths.max);
    assert_eq!(inspection.examples.len(), 2);
    let shown = inspection.to_string();
    assert!(shown.contains("bad rows 2"), "{shown}");
    assert!(shown.contains("--- example 2 ---"), "{shown}");

    let err = inspect_dataset("reddit", &fixture("shp.jsonl"), None).unwrap_err();
    assert!(err.to_string().contains("known datasets: hh-rlhf"), "{err}");
}
