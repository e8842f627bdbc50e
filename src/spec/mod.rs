//! The shared vocabulary: what a sweep cell is made of, as every layer
//! names it. Manifests resolve into these types, profiles bind slot names to
//! them, the planner puts them into stage params (their serialised form is
//! the cache key), and stages read them back.
//!
//! - [`model`]: the concrete model behind a profile slot ([`ModelSpec`]).
//! - [`dataset`]: where the pairs come from ([`DatasetSource`], [`DatasetFormat`]).
//! - [`gold`]: the judge of generations ([`GoldSpec`]).
//! - [`settings`]: a cell's settings and the manifest blocks they come from.
//! - [`objective`]: the alignment objectives by name and their default knobs.
//! - [`names`]: the enums a manifest names by string, listed once.
//! - [`train_on`]: which pairs the strong model trains on ([`TrainOn`]).
//! - [`mixture`]: D_L / D_U drawn from several datasets, and poisoned D_L ([`SplitMixture`]).
//! - [`node`]: one stage of the plan, as the planner, cache and executor see it.
//! - [`diagnostic`]: user-input errors located at `file:line:col`.
//!
//! This module is a leaf: it imports nothing else from the crate, so any
//! layer may use it without a cycle. Behaviour that needs the rest of the
//! crate (loading a dataset format, building a decoder from a tiny spec, the
//! loss of an objective) is implemented where that layer lives.
pub mod dataset;
pub mod diagnostic;
pub mod gold;
pub mod mixture;
pub mod model;
pub mod names;
pub mod node;
pub mod objective;
pub mod settings;
pub mod train_on;

pub use dataset::{DatasetFormat, DatasetSource};
pub use diagnostic::{Diagnostic, Diagnostics, Loc, Source};
pub use gold::GoldSpec;
pub use mixture::{Mixture, Poison, PoolPart, SplitMixture};
pub use model::{Arch, ModelSpec, TinyModelSpec};
pub use objective::{DEFAULT_BETA, DEFAULT_EPSILON, DEFAULT_TAU, Objective};
pub use settings::{
    AlignBlock, Annotation, CellKeys, DEFAULT_LORA_DROPOUT, DEFAULT_WEAK_BETA, GenerateBlock,
    LrDecay, MetricBlock, OnlineBlock, Regime, Settings, TieRule, TrainBlock, TrainSettings,
};
pub use train_on::TrainOn;
