//! Evaluation: gold scorers, Gold Reward Accuracy, weak-annotator accuracy.
pub mod gold;
pub mod real_gold;

/// A judge that scores responses to prompts: the synthetic world's true
/// reward, a learned reward model, or a real gold RM in the paper profile.
pub trait GoldScorer: Send + Sync {
    /// One score per (prompt, response); higher is better.
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>>;
}
