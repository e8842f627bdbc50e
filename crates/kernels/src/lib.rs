//! sweep's fused CPU kernels: the in-place AdamW update ([`adamw`]) and the
//! gradient passes of clipping ([`grad`]), bit-identical to candle's
//! composed ops.
//!
//! A crate of its own so that debug builds (`cargo test`) compile it
//! optimised too: the workspace sets
//! `[profile.dev.package.cwpo-kernels] opt-level = 3`. Generic code is
//! compiled in the crate that instantiates it, so every public entry point
//! here is a concrete (non-generic) function.
mod plumbing;

pub mod adamw;
pub mod grad;
