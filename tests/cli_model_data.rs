//! `sweep data inspect` and `sweep model logprob|generate` as a user runs them.
mod common;
use std::path::PathBuf;

#[test]
fn data_inspect_counts_kept_and_bad_rows_of_an_hh_file() {
    let report = common::sweep_json(
        common::repo(),
        &[
            "data",
            "inspect",
            "--dataset",
            "hh-rlhf",
            "--path",
            "tests/fixtures/real/hh-rlhf.jsonl",
            "--json",
        ],
    );
    let text = report.to_string();
    // The fixture holds 3 good rows and 2 malformed ones (a missing field, broken JSON).
    assert!(text.contains("\"kept\":3"), "{text}");
    assert!(text.contains("\"bad_rows\":2"), "{text}");
}

#[test]
fn data_inspect_of_a_missing_file_names_it() {
    let out = common::sweep(
        common::repo(),
        &[
            "data",
            "inspect",
            "--dataset",
            "hh-rlhf",
            "--path",
            "no/such.jsonl",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such.jsonl"));
}

/// Runs on the real SmolLM2 when `scripts/fetch-smollm2.sh` has fetched it.
#[test]
fn model_logprob_and_generate_on_smollm2() {
    let Some(gguf) = cwpo::testing::input_file(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "run scripts/fetch-smollm2.sh",
    ) else {
        return;
    };
    let model = gguf.to_str().unwrap();
    let report = common::sweep_json(
        common::repo(),
        &[
            "model",
            "logprob",
            "--model",
            model,
            "--text",
            "The capital of France is",
            "--json",
        ],
    );
    assert_eq!(report["token_ids"].as_array().unwrap().len(), 5);
    assert_eq!(report["top_next"][0]["token"], "\u{120}Paris");
    let out = common::sweep_ok(
        common::repo(),
        &[
            "model",
            "generate",
            "--model",
            model,
            "--prompt",
            "The capital of France is",
            "--max-new-tokens",
            "3",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(" Paris"));
}
