//! `cwpo`: the library behind the `sweep` binary.
//!
//! Dependencies point one way:
//! `exec → plan → stage → {train, eval, data, model}`; `model` knows nothing
//! of stages; `report` reads only the cache. `spec`, the shared vocabulary
//! (model / dataset / gold specs, cell settings, diagnostics), is a leaf
//! every layer may use.
pub mod cache;
pub mod commands;
pub mod data;
pub mod device;
pub mod eval;
pub mod exec;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod profile;
pub mod report;
pub mod safe_name;
pub mod spec;
pub mod stage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod train;
