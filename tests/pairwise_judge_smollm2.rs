//! The pairwise judge (src/eval/judge.rs) on the real SmolLM2-135M-Instruct
//! GGUF (scripts/fetch-smollm2.sh): hand-made pairs where one response is
//! clearly better (an on-topic correct answer against gibberish, an
//! unrelated sentence or nothing). Prints SKIPPED without the model, and
//! fails under `CI=true`.
//!
//! What 135M parameters can judge, measured (2026-12-03, CPU): nothing. It
//! answers "A" in both orders on every pair (log p(A) − log p(B) of 1.4 to
//! 2.8 whichever response is A; a few-shot prompt moved the bias, not the
//! judgement), so the both-orders rule turns every comparison into a tie:
//! 0 wins, 0 losses, 5 ties. That is the rule doing its job (a one-order
//! judge would have "won" every pair in position A), and what this test
//! pins down; whether the judge prefers the good response needs a capable
//! model (the paper profile's 8B judge), which is not available here.
use candle_core::Device;
use cwpo::eval::judge::{Outcome, PairwiseJudge, Verdict, both_orders, verdict};
use cwpo::testing::smollm2_gguf;

/// (prompt, the good response, the bad one).
const PAIRS: [(&str, &str, &str); 5] = [
    (
        "What is the capital of France?",
        "The capital of France is Paris.",
        "banana purple sky seven",
    ),
    ("How many legs does a dog have?", "A dog has four legs.", ""),
    (
        "What color is the sky on a clear day?",
        "The sky is blue on a clear day.",
        "I like trains. Trains trains trains.",
    ),
    (
        "Name a fruit that is yellow.",
        "A banana is a yellow fruit.",
        "asdf qwerty zxcv",
    ),
    (
        "What is 2 plus 2?",
        "2 plus 2 equals 4.",
        "The weather is nice today.",
    ),
];

#[test]
fn smollm2_judges_in_both_orders_and_its_position_bias_ties() {
    let Some(path) = smollm2_gguf() else { return };
    let judge = PairwiseJudge::load(&path, &Device::Cpu).unwrap();
    // The judge reads the model's own chat format, assistant turn opened.
    let input = judge.input("q?", "a", "b").unwrap();
    assert!(
        input.starts_with("<|im_start|>") && input.ends_with("<|im_start|>assistant\n"),
        "{input:?}"
    );
    let mut picked_good = 0;
    let mut outcomes = Vec::new();
    for (prompt, good, bad) in PAIRS {
        let (a1, b1) = judge.letter_logprobs(prompt, good, bad).unwrap();
        let (a2, b2) = judge.letter_logprobs(prompt, bad, good).unwrap();
        // Log-probs of two distinct tokens: finite, negative, a real distribution.
        for lp in [a1, b1, a2, b2] {
            assert!(lp.is_finite() && lp < 0.0, "{lp}");
        }
        // The model reads the task as an A-or-B question: the two letters
        // take a real share of the next token (0.43 measured in every input).
        for (a, b) in [(a1, b1), (a2, b2)] {
            let mass = a.exp() + b.exp();
            assert!(mass > 0.2 && mass <= 1.0 + 1e-5, "p(A) + p(B) = {mass}");
        }
        let first = verdict(a1, b1);
        let second = verdict(a2, b2);
        picked_good += usize::from(first == Verdict::A) + usize::from(second == Verdict::B);
        let outcome = both_orders(first, second);
        eprintln!(
            "{prompt:?}: good as A: A {a1:.3} B {b1:.3}; good as B: A {a2:.3} B {b2:.3} -> {outcome:?}"
        );
        outcomes.push(outcome);
    }
    // `compare` is the two orders above, and deterministic.
    let (prompt, good, bad) = PAIRS[0];
    assert_eq!(judge.compare(prompt, good, bad).unwrap(), outcomes[0]);
    let wins = outcomes.iter().filter(|o| **o == Outcome::Win).count();
    let losses = outcomes.iter().filter(|o| **o == Outcome::Loss).count();
    eprintln!(
        "good picked in {picked_good}/10 orderings; both orders: {wins} wins, {losses} losses, {} ties",
        PAIRS.len() - wins - losses
    );
    // Never the bad response in both orders.
    assert_eq!(
        losses, 0,
        "the judge preferred the bad response in both orders"
    );
}
