//! The preference objectives a cell can align with, by name, and the
//! defaults of their knobs. The loss itself (`train::PreferenceObjective`,
//! its formula and its range checks) lives in `train/losses.rs`, a `custom`
//! loss (an expression in `align.loss`) in `train/custom_loss.rs`; a
//! manifest and every default read the numbers here, so each is defined once.
use serde::{Deserialize, Serialize};

use super::names::manifest_names;

/// β of DPO and rDPO (PAPER.md).
pub const DEFAULT_BETA: f64 = 0.5;
/// τ of IPO. TRL's IPO uses its one `beta` as τ, and the paper's
/// hyper-parameter table gives one bare 0.5: τ = β = 0.5 (docs/world.md,
/// "IPO's τ").
pub const DEFAULT_TAU: f64 = 0.5;
/// rDPO's assumed label-flip rate ε.
pub const DEFAULT_EPSILON: f64 = 0.1;

/// The alignment objective a manifest's `objective` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Direct preference optimisation (β).
    Dpo,
    /// Identity preference optimisation (τ).
    Ipo,
    /// Robust DPO under label noise (β, ε).
    Rdpo,
    /// A loss written in the manifest (`align.loss`; README: Writing a loss).
    Custom,
}

// Every objective: the paper's, in the order its tables list them, then `custom`.
manifest_names!(Objective {
    Dpo => "dpo",
    Ipo => "ipo",
    Rdpo => "rdpo",
    Custom => "custom",
});
