//! Evaluation: gold scorers, Gold Reward Accuracy, weak-annotator accuracy.
pub mod bootstrap;
pub mod gold;
pub mod gra;
pub mod judge;
pub mod learned;
pub mod real_gold;
pub mod test_subsets;

/// A judge that scores responses to prompts: the synthetic world's true
/// reward, a learned reward model, or a real gold RM in the paper profile.
pub trait GoldScorer: Send + Sync {
    /// One score per (prompt, response); higher is better.
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>>;
}

pub use crate::spec::GoldSpec;

#[cfg(test)]
mod tests {
    use super::GoldSpec;

    #[test]
    fn gold_specs_read_as_profiles_write_them() {
        let t: GoldSpec = serde_json::from_str(r#"{"kind": "true_reward"}"#).unwrap();
        assert_eq!(t, GoldSpec::TrueReward);
        // The cache keys of every existing `score` stage hold this exact JSON.
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"kind":"true_reward"}"#
        );
        let rm: GoldSpec = toml::from_str("kind = \"reward_model\"\npath = \"/m/sky\"").unwrap();
        assert_eq!(rm.path(), Some(std::path::Path::new("/m/sky")));
        let err = toml::from_str::<GoldSpec>("kind = \"gpt4\"").unwrap_err();
        assert!(err.to_string().contains("true_reward"), "{err}");
    }
}
