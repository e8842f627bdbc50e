//! What every kernel shares: borrowing a storage as a contiguous slice,
//! running the f32 or f64 instance of a generic loop, and wrapping an output
//! `Vec` as a candle storage.
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, Shape, WithDType};

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

/// A kernel's output vector as a candle storage of `shape`.
pub(crate) fn owned<T: WithDType>(v: Vec<T>, shape: &Shape) -> (CpuStorage, Shape) {
    (T::to_cpu_storage_owned(v), shape.clone())
}
