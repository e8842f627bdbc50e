//! Which pairs the strong model is fine-tuned and aligned on (`train_on`):
//! D_U (the paper's setting: the weak annotator labels what it was not
//! trained on), D_L only, or every pair, D_L ∪ D_U. The last two exist for
//! human labels only: the baselines "DPO on 100% of the human labels"
//! (Table 3, Figure 1) and "DPO on D_L only" (Figure 3 right).
use serde::{Deserialize, Serialize};

use super::names::manifest_names;

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

manifest_names!(TrainOn {
    Unlabeled => "unlabeled",
    Labeled => "labeled",
    All => "all",
});

impl TrainOn {
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
