//! Which pairs the strong model is fine-tuned and aligned on (`train_on`):
//! D_U (the paper's setting: the weak annotator labels what it was not
//! trained on), D_L only, or every pair, D_L ∪ D_U. The last two exist for
//! human labels only: the baselines "DPO on 100% of the human labels"
//! (Table 3, Figure 1) and "DPO on D_L only" (Figure 3 right).
use serde::{Deserialize, Serialize};

/// The strong model's training pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainOn {
    /// D_U, labelled by the cell's annotation (human or weak).
    #[default]
    Unlabeled,
    /// D_L with its human labels.
    Labeled,
    /// D_L ∪ D_U with their human labels: every pair of the dataset.
    All,
}

impl TrainOn {
    pub const ALL: [TrainOn; 3] = [TrainOn::Unlabeled, TrainOn::Labeled, TrainOn::All];
    /// Their names, as a manifest writes them.
    pub const NAMES: &'static [&'static str] = &["unlabeled", "labeled", "all"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// `None` for a name that is not a choice.
    pub fn parse(name: &str) -> Option<TrainOn> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The default: stage params leave it out, so the cache keys of every
    /// cell written before `train_on` existed are unchanged.
    pub fn is_unlabeled(&self) -> bool {
        *self == TrainOn::Unlabeled
    }

    /// Whether training reads D_L's labels, which only humans give: the weak
    /// annotator is trained on D_L, so its labels there are not annotations.
    pub fn needs_human_labels(self) -> bool {
        self != TrainOn::Unlabeled
    }
}

impl std::fmt::Display for TrainOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for t in TrainOn::ALL {
            assert_eq!(TrainOn::parse(t.name()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
        }
        assert_eq!(TrainOn::parse("both"), None);
        assert_eq!(TrainOn::default(), TrainOn::Unlabeled);
    }
}
