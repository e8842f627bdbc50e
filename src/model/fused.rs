//! Fused CPU kernels, with backward passes, for the element-wise hot spots
//! of training: RMSNorm, softmax, SwiGLU and RoPE.
//!
//! Composed from basic tensor ops (see [`super::ops`]), each of these is a
//! chain of 5–15 candle ops whose backward allocates a zero tensor and an
//! addition per node; the tiny models of the sweep spend most of a step
//! there. Each kernel here is one rayon-parallel pass forward and one
//! backward, as `CustomOp`s whose `bwd` candle's autograd calls.
//!
//! They run on contiguous f32/f64 CPU tensors only ([`usable`]); elsewhere
//! (CUDA, half types) `ops` uses the composed version. The tests check both
//! paths agree, values and gradients.
//!
//! These loops live in this crate, which the dev profile compiles without
//! optimisation; unoptimised they are slower than candle's (optimised)
//! composed ops. So by default they are on only in optimised builds (no
//! `debug_assertions`); [`with_fused`] forces either path on one thread.
use std::cell::Cell;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};
use rayon::prelude::*;

thread_local! {
    static FORCED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Runs `f` with the fused kernels forced on or off for calls made on this
/// thread (tests compare both paths; the bench times both).
pub fn with_fused<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    let previous = FORCED.with(|c| c.replace(Some(enabled)));
    let out = f();
    FORCED.with(|c| c.set(previous));
    out
}

/// Whether the fused kernels run on `x`.
pub fn usable(x: &Tensor) -> bool {
    let enabled = FORCED.with(|c| c.get()).unwrap_or(!cfg!(debug_assertions));
    enabled && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

fn contiguous_slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused kernel: input must be contiguous"),
    }
}

/// Runs `$f::<T>` for the storage's dtype (f32 or f64).
macro_rules! dispatch {
    ($storage:expr, $f:ident ( $($arg:expr),* )) => {
        match $storage {
            CpuStorage::F32(_) => $f::<f32>($($arg),*),
            CpuStorage::F64(_) => $f::<f64>($($arg),*),
            _ => candle_core::bail!("fused kernel: only f32 and f64 are supported"),
        }
    };
}

fn owned<T: WithDType>(v: Vec<T>, shape: &Shape) -> (CpuStorage, Shape) {
    (T::to_cpu_storage_owned(v), shape.clone())
}

// ---------------------------------------------------------------- RMSNorm

/// y = x · rsqrt(mean(x²) + eps) · w over the last dim. x: [..., D], w: [D].
struct RmsNorm {
    eps: f64,
}

/// Backward of [`RmsNorm`]: inputs (x, w, dy); output [rows + 1, D] packing
/// dx (first rows) and dw (last row).
struct RmsNormBackward {
    eps: f64,
}

fn inv_rms<T: WithDType>(row: &[T], eps: f64) -> f64 {
    let ms = row.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>() / row.len() as f64;
    1.0 / (ms + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            op: &RmsNorm,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (x, w) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
            );
            let d = w.len();
            let mut y = vec![T::zero(); x.len()];
            y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(y, x)| {
                let r = inv_rms(x, op.eps);
                for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                    *y = T::from_f64(x.to_f64() * r * w.to_f64());
                }
            });
            Ok(owned(y, l1.shape()))
        }
        dispatch!(s1, run(self, s1, l1, s2, l2))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = w.dim(0)?;
        let rows = x.elem_count() / d;
        let packed =
            x.apply_op3_no_bwd(w, &dy.contiguous()?, &RmsNormBackward { eps: self.eps })?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = packed.get(rows)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "fused-rms-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            eps: f64,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (x, w, dy) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
                contiguous_slice::<T>(s3, l3)?,
            );
            let d = w.len();
            let rows = x.len() / d;
            let mut out = vec![T::zero(); x.len() + d];
            let (dx, _) = out.split_at_mut(x.len());
            // dx = r · (dy·w − x̂ · mean(dy·w·x̂)), x̂ = x·r
            dx.par_chunks_mut(d)
                .zip(x.par_chunks(d))
                .zip(dy.par_chunks(d))
                .for_each(|((dx, x), dy)| {
                    let r = inv_rms(x, eps);
                    let dot = x
                        .iter()
                        .zip(dy)
                        .zip(w)
                        .map(|((x, dy), w)| dy.to_f64() * w.to_f64() * x.to_f64() * r)
                        .sum::<f64>()
                        / d as f64;
                    for (((dx, x), dy), w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
                        *dx = T::from_f64(r * (dy.to_f64() * w.to_f64() - x.to_f64() * r * dot));
                    }
                });
            // dw = Σ_rows dy · x̂
            let mut dw = vec![0f64; d];
            for (x, dy) in x.chunks(d).zip(dy.chunks(d)) {
                let r = inv_rms(x, eps);
                for ((acc, x), dy) in dw.iter_mut().zip(x).zip(dy) {
                    *acc += dy.to_f64() * x.to_f64() * r;
                }
            }
            for (o, v) in out[x.len()..].iter_mut().zip(dw) {
                *o = T::from_f64(v);
            }
            Ok(owned(out, &Shape::from((rows + 1, d))))
        }
        dispatch!(s1, run(self.eps, s1, l1, s2, l2, s3, l3))
    }
}

/// Fused RMSNorm; x: [..., D] (made contiguous), weight: [D].
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps })
}

// ---------------------------------------------------------------- softmax

/// Softmax over the last dim.
struct Softmax;

/// Backward of [`Softmax`]: inputs (y, dy); dx = y · (dy − Σ dy·y).
struct SoftmaxBackward;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let x = contiguous_slice::<T>(s, l)?;
            let d = l.dims()[l.dims().len() - 1];
            let mut y = vec![T::zero(); x.len()];
            y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(y, x)| {
                let max = x
                    .iter()
                    .map(|v| v.to_f64())
                    .fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0f64;
                for (y, x) in y.iter_mut().zip(x) {
                    let e = (x.to_f64() - max).exp();
                    sum += e;
                    *y = T::from_f64(e);
                }
                for y in y.iter_mut() {
                    *y = T::from_f64(y.to_f64() / sum);
                }
            });
            Ok(owned(y, l.shape()))
        }
        dispatch!(s, run(s, l))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&dy.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "fused-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (y, dy) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
            );
            let d = l1.dims()[l1.dims().len() - 1];
            let mut dx = vec![T::zero(); y.len()];
            dx.par_chunks_mut(d)
                .zip(y.par_chunks(d))
                .zip(dy.par_chunks(d))
                .for_each(|((dx, y), dy)| {
                    let dot: f64 = y
                        .iter()
                        .zip(dy)
                        .map(|(y, dy)| y.to_f64() * dy.to_f64())
                        .sum();
                    for ((dx, y), dy) in dx.iter_mut().zip(y).zip(dy) {
                        *dx = T::from_f64(y.to_f64() * (dy.to_f64() - dot));
                    }
                });
            Ok(owned(dx, l1.shape()))
        }
        dispatch!(s1, run(s1, l1, s2, l2))
    }
}

/// Fused softmax over the last dim (x made contiguous).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

// ---------------------------------------------------------------- SwiGLU

/// h = silu(g) · u, element-wise.
struct SwiGlu;

/// Backward of [`SwiGlu`]: inputs (g, u, dh); output [2, ...] packing dg, du.
struct SwiGluBackward;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (g, u) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
            );
            let mut h = vec![T::zero(); g.len()];
            h.par_chunks_mut(4096)
                .zip(g.par_chunks(4096))
                .zip(u.par_chunks(4096))
                .for_each(|((h, g), u)| {
                    for ((h, g), u) in h.iter_mut().zip(g).zip(u) {
                        let g = g.to_f64();
                        *h = T::from_f64(g * sigmoid(g) * u.to_f64());
                    }
                });
            Ok(owned(h, l1.shape()))
        }
        dispatch!(s1, run(s1, l1, s2, l2))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _h: &Tensor,
        dh: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = g.apply_op3_no_bwd(u, &dh.contiguous()?, &SwiGluBackward)?;
        Ok((Some(packed.get(0)?), Some(packed.get(1)?)))
    }
}

impl CustomOp3 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "fused-swiglu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (g, u, dh) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
                contiguous_slice::<T>(s3, l3)?,
            );
            let n = g.len();
            let mut out = vec![T::zero(); 2 * n];
            let (dg, du) = out.split_at_mut(n);
            let chunk = 4096;
            dg.par_chunks_mut(chunk)
                .zip(du.par_chunks_mut(chunk))
                .zip(
                    g.par_chunks(chunk)
                        .zip(u.par_chunks(chunk))
                        .zip(dh.par_chunks(chunk)),
                )
                .for_each(|((dg, du), ((g, u), dh))| {
                    for ((((dg, du), g), u), dh) in dg.iter_mut().zip(du).zip(g).zip(u).zip(dh) {
                        let (g, u, dh) = (g.to_f64(), u.to_f64(), dh.to_f64());
                        let s = sigmoid(g);
                        *dg = T::from_f64(dh * u * s * (1.0 + g * (1.0 - s)));
                        *du = T::from_f64(dh * g * s);
                    }
                });
            let mut dims = vec![2];
            dims.extend_from_slice(l1.dims());
            Ok(owned(out, &Shape::from(dims)))
        }
        dispatch!(s1, run(s1, l1, s2, l2, s3, l3))
    }
}

/// Fused silu(gate) · up (both made contiguous, same shape).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

// ---------------------------------------------------------------- RoPE

/// Rotate-half RoPE on x: [B, S, H, hd] with cos, sin: [B, S, hd].
/// `inverse` rotates by −θ (the backward of the forward rotation).
struct Rope {
    inverse: bool,
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            inverse: bool,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (x, cos, sin) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
                contiguous_slice::<T>(s3, l3)?,
            );
            let (_, _, h, hd) = l1.shape().dims4()?;
            let half = hd / 2;
            let sign = if inverse { -1.0 } else { 1.0 };
            let mut y = vec![T::zero(); x.len()];
            // One chunk per (b, s): H heads sharing one row of angles.
            y.par_chunks_mut(h * hd)
                .zip(x.par_chunks(h * hd))
                .enumerate()
                .for_each(|(bs, (y, x))| {
                    let (c, s) = (&cos[bs * hd..(bs + 1) * hd], &sin[bs * hd..(bs + 1) * hd]);
                    for (y, x) in y.chunks_mut(hd).zip(x.chunks(hd)) {
                        for i in 0..half {
                            let (x1, x2) = (x[i].to_f64(), x[i + half].to_f64());
                            let (c1, s1) = (c[i].to_f64(), sign * s[i].to_f64());
                            let (c2, s2) = (c[i + half].to_f64(), sign * s[i + half].to_f64());
                            y[i] = T::from_f64(x1 * c1 - x2 * s1);
                            y[i + half] = T::from_f64(x2 * c2 + x1 * s2);
                        }
                    }
                });
            Ok(owned(y, l1.shape()))
        }
        dispatch!(s1, run(self.inverse, s1, l1, s2, l2, s3, l3))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = dy.contiguous()?.apply_op3_no_bwd(
            cos,
            sin,
            &Rope {
                inverse: !self.inverse,
            },
        )?;
        Ok((Some(dx), None, None))
    }
}

/// Fused RoPE: x [B, S, H, hd] (made contiguous), cos/sin [B, S, hd] contiguous.
/// No gradient flows to the angles.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&cos.detach(), &sin.detach(), Rope { inverse: false })
}

// ---------------------------------------------------------------- masked softmax

/// softmax(scores + bias) over the last dim; scores: [B, H, S, T], bias:
/// [B, 1, S, T] shared by the heads (0 or −inf). No gradient to the bias.
struct BiasedSoftmax;

impl CustomOp2 for BiasedSoftmax {
    fn name(&self) -> &'static str {
        "fused-biased-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (x, bias) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
            );
            let (_, h, s, t) = l1.shape().dims4()?;
            let mut y = vec![T::zero(); x.len()];
            y.par_chunks_mut(t)
                .zip(x.par_chunks(t))
                .enumerate()
                .for_each(|(row, (y, x))| {
                    let (b, q) = (row / (h * s), row % s);
                    let bias = &bias[(b * s + q) * t..(b * s + q + 1) * t];
                    let mut max = f64::NEG_INFINITY;
                    for (x, m) in x.iter().zip(bias) {
                        max = max.max(x.to_f64() + m.to_f64());
                    }
                    let mut sum = 0f64;
                    for ((y, x), m) in y.iter_mut().zip(x).zip(bias) {
                        let e = (x.to_f64() + m.to_f64() - max).exp();
                        sum += e;
                        *y = T::from_f64(e);
                    }
                    for y in y.iter_mut() {
                        *y = T::from_f64(y.to_f64() / sum);
                    }
                });
            Ok(owned(y, l1.shape()))
        }
        dispatch!(s1, run(s1, l1, s2, l2))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(y.apply_op2_no_bwd(&dy.contiguous()?, &SoftmaxBackward)?),
            None,
        ))
    }
}

/// Fused softmax(scores + bias); scores [B, H, S, T], bias [B, 1, S, T].
pub fn biased_softmax(scores: &Tensor, bias: &Tensor) -> Result<Tensor> {
    scores
        .contiguous()?
        .apply_op2(&bias.detach().contiguous()?, BiasedSoftmax)
}

// ---------------------------------------------------------------- token log-probs

/// log softmax(logits)[target] per row; logits: [N, V], targets: [N] u32 → [N].
struct TokenLogProbs;

/// Backward of [`TokenLogProbs`]: inputs (logits, targets, dy [N]);
/// dlogits = dy · (onehot(target) − softmax(logits)).
struct TokenLogProbsBackward;

fn row_logsumexp<T: WithDType>(x: &[T]) -> f64 {
    let max = x
        .iter()
        .map(|v| v.to_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    max + x.iter().map(|v| (v.to_f64() - max).exp()).sum::<f64>().ln()
}

impl CustomOp2 for TokenLogProbs {
    fn name(&self) -> &'static str {
        "fused-token-logprobs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (x, targets) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<u32>(s2, l2)?,
            );
            let (n, v) = l1.shape().dims2()?;
            let mut out = vec![T::zero(); n];
            out.par_iter_mut()
                .zip(x.par_chunks(v))
                .zip(targets.par_iter())
                .for_each(|((o, x), &t)| {
                    *o = T::from_f64(x[t as usize].to_f64() - row_logsumexp(x));
                });
            Ok(owned(out, &Shape::from(n)))
        }
        dispatch!(s1, run(s1, l1, s2, l2))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = logits.apply_op3_no_bwd(targets, &dy.contiguous()?, &TokenLogProbsBackward)?;
        Ok((Some(dx), None))
    }
}

impl CustomOp3 for TokenLogProbsBackward {
    fn name(&self) -> &'static str {
        "fused-token-logprobs-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (x, targets, dy) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<u32>(s2, l2)?,
                contiguous_slice::<T>(s3, l3)?,
            );
            let (_, v) = l1.shape().dims2()?;
            let mut dx = vec![T::zero(); x.len()];
            dx.par_chunks_mut(v)
                .zip(x.par_chunks(v))
                .zip(targets.par_iter().zip(dy.par_iter()))
                .for_each(|((dx, x), (&t, dy))| {
                    let (lse, dy) = (row_logsumexp(x), dy.to_f64());
                    for (i, (dx, x)) in dx.iter_mut().zip(x).enumerate() {
                        let onehot = if i == t as usize { 1.0 } else { 0.0 };
                        *dx = T::from_f64(dy * (onehot - (x.to_f64() - lse).exp()));
                    }
                });
            Ok(owned(dx, l1.shape()))
        }
        dispatch!(s1, run(s1, l1, s2, l2, s3, l3))
    }
}

/// Fused log-prob of each row's target; logits [N, V], targets [N] u32 → [N].
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, TokenLogProbs)
}
