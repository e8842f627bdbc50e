//! sweep's fused CPU kernels.
//!
//! A training step of the sweep's small decoders is dominated by chains of
//! element-wise ops whose backward candle runs node by node, each node a
//! fresh tensor and a full pass; and candle-nn's AdamW builds ~15 temporaries
//! per parameter. Each kernel here replaces such a chain with one
//! rayon-parallel pass forward and one backward, as a candle `CustomOp`
//! whose `bwd` candle's autograd calls, or updates tensors in place:
//!
//! | module | computes | replaces |
//! |---|---|---|
//! | [`rms_norm`] | x · rsqrt(mean(x²) + ε) · w | ≈ 8 ops |
//! | [`softmax`] | softmax(x), softmax(scores + mask) | ≈ 5 ops |
//! | [`swiglu`] | silu(g) · u | ≈ 5 ops |
//! | [`rope`] | rotate-half RoPE | ≈ 6 ops |
//! | [`token_logprobs`] | log softmax(logits)[target] | ≈ 6 ops + the [N, V] log-softmax |
//! | [`adamw`] | AdamW's update of θ, m, v in place | ≈ 15 temporaries per parameter |
//! | [`grad`] | squared norm and in-place scaling (clipping) | 3 temporaries per gradient |
//! | [`exp`] | eˣ in f64, vectorised (softmax, sigmoid, log-softmax use it) | libm's `exp`, one call per value |
//!
//! The custom ops take contiguous f32/f64 CPU tensors; the caller
//! (`cwpo::model::fused`) picks the composed ops elsewhere (CUDA, half
//! types). Forward kernels accumulate in f64. A kernel's file holds only its
//! loops and its backward: each op implements `plumbing::Kernel` (the loop,
//! generic over the float type) and writes `cpu_forward!(arity, name)` in its
//! `CustomOpN` impl, which borrows the inputs, picks f32 or f64 and wraps
//! the output.
//!
//! They are a crate of their own so that debug builds (`cargo test`) compile
//! them optimised too: the workspace sets
//! `[profile.dev.package.cwpo-kernels] opt-level = 3`, which costs little
//! build time for a crate this small while the main crate stays at
//! opt-level 0. Generic code is compiled in the crate that instantiates it,
//! so every public entry point here is a concrete (non-generic) function.
mod plumbing;

/// The kernels' numerics: bumped whenever a change makes any kernel return
/// other bits for some input. Every stage key includes it (`cwpo::plan::key`):
/// a last-bit difference early in a long training run grows into other
/// weights, samples and scores, so a result cached under other numerics
/// must not be reused as this code's.
///
/// 1: the kernels as of session 9. 2: eˣ by [`exp::exp`] instead of libm's
/// (within 1 ulp; of the 6,126 stages of `sweep run experiments/` one
/// 1,500-step pretraining run and its 18 downstream chains moved).
pub const NUMERICS_VERSION: u32 = 2;

pub mod adamw;
pub mod exp;
pub mod grad;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod swiglu;
pub mod token_logprobs;
