//! One stage of the plan as the planner, the cache and the executor all see
//! it: its kind, version, parameters and inputs, which together make its key.
use std::collections::BTreeMap;

use serde::Serialize;

/// Hex stage key (128 bits of blake3: short enough for paths, collision-free
/// in practice); `plan::key::stage_key` computes it.
pub type Key = String;

/// One stage to run (or found in the cache).
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub kind: String,
    pub version: u32,
    /// The kind's `Params`, serialised.
    pub params: serde_json::Value,
    /// Role → input key.
    pub inputs: BTreeMap<String, Key>,
    pub key: Key,
    pub name: String,
}
