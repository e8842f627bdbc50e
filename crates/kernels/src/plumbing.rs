//! What every kernel shares: borrowing a storage as a contiguous slice,
//! running the f32 or f64 instance of a generic loop, and wrapping an output
//! `Vec` as a candle storage.
//!
//! A custom op's forward is a [`Kernel`]: its loop, generic over the float
//! type, reading its inputs as slices from [`Inputs`]. [`cpu_forward!`]
//! writes the op's `name` and `cpu_fwd` from it, so a kernel's file holds
//! only its loops and its backward:
//!
//! ```ignore
//! impl Kernel for SwiGlu {
//!     fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
//!         let [g, u] = inputs.slices::<T, 2>()?;
//!         // … the loop …
//!     }
//! }
//! impl CustomOp2 for SwiGlu {
//!     cpu_forward!(2, "fused-swiglu");
//!     fn bwd(/* … */) { /* … */ }
//! }
//! ```
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, Shape, WithDType};

/// A custom op's inputs (storage and layout each), in the op's order.
pub(crate) struct Inputs<'a>(&'a [(&'a CpuStorage, &'a Layout)]);

impl<'a> Inputs<'a> {
    /// Input `i` as a contiguous slice of `U` (the kernel's float type, or
    /// `u32` for token ids).
    pub(crate) fn slice<U: WithDType>(&self, i: usize) -> Result<&'a [U]> {
        let (storage, layout) = self.0[i];
        contiguous_slice(storage, layout)
    }

    /// The first `N` inputs, all of type `U`, as contiguous slices.
    pub(crate) fn slices<U: WithDType, const N: usize>(&self) -> Result<[&'a [U]; N]> {
        let mut out = [&[][..]; N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.slice::<U>(i)?;
        }
        Ok(out)
    }

    /// The shape of input `i`.
    pub(crate) fn shape(&self, i: usize) -> &'a Shape {
        self.0[i].1.shape()
    }
}

/// The forward loop of a custom op, generic over its float type.
pub(crate) trait Kernel {
    /// The output's elements and shape for inputs of float type `T`
    /// (f32 or f64, the dtype of the first input).
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)>;
}

/// A custom op's `cpu_fwd`: `kernel`'s f32 or f64 loop, by the dtype of
/// the first input, its output wrapped as a candle storage.
pub(crate) fn cpu_fwd<K: Kernel>(
    kernel: &K,
    inputs: &[(&CpuStorage, &Layout)],
) -> Result<(CpuStorage, Shape)> {
    fn run<T: WithDType, K: Kernel>(kernel: &K, inputs: &Inputs) -> Result<(CpuStorage, Shape)> {
        let (out, shape) = kernel.run::<T>(inputs)?;
        Ok((T::to_cpu_storage_owned(out), shape))
    }
    let inputs = Inputs(inputs);
    match inputs.0[0].0 {
        CpuStorage::F32(_) => run::<f32, K>(kernel, &inputs),
        CpuStorage::F64(_) => run::<f64, K>(kernel, &inputs),
        _ => candle_core::bail!("fused kernel: only f32 and f64 are supported"),
    }
}

/// The `name` and `cpu_fwd` of a `CustomOp1`, `CustomOp2` or `CustomOp3`
/// (the arity) whose forward is the type's [`Kernel`].
macro_rules! cpu_forward {
    (1, $name:literal) => {
        $crate::plumbing::cpu_forward!(@with $name; s1 l1);
    };
    (2, $name:literal) => {
        $crate::plumbing::cpu_forward!(@with $name; s1 l1, s2 l2);
    };
    (3, $name:literal) => {
        $crate::plumbing::cpu_forward!(@with $name; s1 l1, s2 l2, s3 l3);
    };
    (@with $name:literal; $($s:ident $l:ident),+) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn cpu_fwd(
            &self,
            $($s: &candle_core::CpuStorage, $l: &candle_core::Layout),+
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            $crate::plumbing::cpu_fwd(self, &[$(($s, $l)),+])
        }
    };
}
pub(crate) use cpu_forward;

/// The elements `l` addresses in `s`, which must be contiguous.
pub(crate) fn contiguous_slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused kernel: input must be contiguous"),
    }
}

/// Float types whose CPU storage a kernel may write in place.
pub(crate) trait InPlace: WithDType {
    fn storage_as_mut_slice(s: &mut CpuStorage) -> Option<&mut [Self]>;
}

impl InPlace for f32 {
    fn storage_as_mut_slice(s: &mut CpuStorage) -> Option<&mut [f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl InPlace for f64 {
    fn storage_as_mut_slice(s: &mut CpuStorage) -> Option<&mut [f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// [`contiguous_slice`], writable: for in-place ops.
pub(crate) fn contiguous_slice_mut<'a, T: InPlace>(
    s: &'a mut CpuStorage,
    l: &Layout,
) -> Result<&'a mut [T]> {
    let dtype = s.dtype();
    let Some(data) = T::storage_as_mut_slice(s) else {
        candle_core::bail!("fused kernel: expected {:?}, got {dtype:?}", T::DTYPE)
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => candle_core::bail!("fused kernel: in-place target must be contiguous"),
    }
}

/// Runs `$f::<T>` for the storage's dtype (f32 or f64).
macro_rules! dispatch {
    ($storage:expr, $f:ident ( $($arg:expr),* )) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => $f::<f32>($($arg),*),
            candle_core::CpuStorage::F64(_) => $f::<f64>($($arg),*),
            _ => candle_core::bail!("fused kernel: only f32 and f64 are supported"),
        }
    };
}
pub(crate) use dispatch;
