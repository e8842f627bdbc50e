//! Seeded parameter initialisation.
//!
//! candle's CPU random generator cannot be seeded, so every random weight is
//! drawn here from a `ChaCha8Rng`. Each tensor gets its own stream, seeded
//! from `(seed, tensor name)`: the values of `model.layers.0.mlp.up_proj.weight`
//! do not depend on which other tensors were created before it, so adding a
//! LoRA adapter or a reward head never changes the base weights.
//!
//! [`SeededInit`] is a candle-nn `SimpleBackend`: build layers with an ordinary
//! `VarBuilder` and the backend answers each `get_with_hints` call from the
//! hint (`Init::Randn`, `Init::Const`, `Init::Uniform`). It can sit on top of
//! another backend (`over`), in which case tensors the inner backend holds are
//! loaded from it and only the missing ones (a fresh LoRA adapter, a fresh
//! reward head) are initialised.
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Standard deviation of GPT-2 style weight initialisation.
pub const INIT_STD: f64 = 0.02;

/// The initialisation of a fresh weight matrix: N(0, [`INIT_STD`]).
pub const WEIGHT_INIT: Init = Init::Randn {
    mean: 0.0,
    stdev: INIT_STD,
};

/// A `VarBuilder` backend that draws missing tensors from seeded ChaCha8 streams.
pub struct SeededInit {
    seed: u64,
    inner: Option<Box<dyn SimpleBackend>>,
}

impl SeededInit {
    /// Every tensor is initialised from its hint.
    pub fn new(seed: u64) -> Self {
        Self { seed, inner: None }
    }

    /// Tensors present in `inner` are loaded from it; the others are initialised.
    pub fn over(seed: u64, inner: Box<dyn SimpleBackend>) -> Self {
        Self {
            seed,
            inner: Some(inner),
        }
    }
}

/// A `VarBuilder` whose every tensor is initialised from `seed` and its hint.
pub fn seeded_varbuilder(seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(SeededInit::new(seed)), dtype, device.clone())
}

/// The ChaCha8 stream of one named tensor.
pub fn tensor_rng(seed: u64, name: &str) -> ChaCha8Rng {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_bytes());
    ChaCha8Rng::from_seed(bytes)
}

/// One standard-normal draw (Box–Muller; `rand_distr` is not a dependency).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // u1 in (0, 1] so that ln(u1) is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Values of a tensor of `shape` drawn according to `init`.
pub fn init_values(seed: u64, name: &str, shape: &Shape, init: Init) -> Result<Vec<f32>> {
    let n = shape.elem_count();
    let mut rng = tensor_rng(seed, name);
    let values = match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Randn { mean, stdev } => (0..n)
            .map(|_| (mean + stdev * standard_normal(&mut rng)) as f32)
            .collect(),
        Init::Uniform { lo, up } => (0..n)
            .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
            .collect(),
        Init::Kaiming { .. } => candle_core::bail!(
            "seeded init of `{name}`: Kaiming hints are not supported, use Init::Randn or Init::Uniform"
        ),
    };
    Ok(values)
}

impl SimpleBackend for SeededInit {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Some(inner) = &self.inner
            && inner.contains_tensor(name)
        {
            return inner.get(s, name, h, dtype, dev);
        }
        let values = init_values(self.seed, name, &s, h)?;
        Tensor::from_vec(values, s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        match &self.inner {
            Some(inner) if inner.contains_tensor(name) => inner.get_unchecked(name, dtype, dev),
            _ => candle_core::bail!(
                "seeded init of `{name}`: the shape is unknown, call `get` with a shape"
            ),
        }
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_name_give_same_values_and_names_are_independent() -> Result<()> {
        let shape = Shape::from((4, 8));
        let init = Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        };
        let a = init_values(7, "w", &shape, init)?;
        assert_eq!(a, init_values(7, "w", &shape, init)?);
        assert_ne!(a, init_values(8, "w", &shape, init)?);
        assert_ne!(a, init_values(7, "v", &shape, init)?);
        Ok(())
    }

    #[test]
    fn randn_has_the_requested_spread() -> Result<()> {
        let v = init_values(
            1,
            "w",
            &Shape::from(20_000),
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let std = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((std - 0.02).abs() < 1e-3, "std {std}");
        Ok(())
    }

    #[test]
    fn inner_backend_wins_over_initialisation() -> Result<()> {
        let dev = Device::Cpu;
        let mut known = std::collections::HashMap::new();
        known.insert("a".to_string(), Tensor::new(&[1f32, 2., 3.], &dev)?);
        let vb = VarBuilder::from_backend(
            Box::new(SeededInit::over(3, Box::new(known))),
            DType::F32,
            dev.clone(),
        );
        let a = vb.get_with_hints(3, "a", Init::Const(0.0))?;
        assert_eq!(a.to_vec1::<f32>()?, vec![1., 2., 3.]);
        let b = vb.get_with_hints(3, "b", Init::Const(5.0))?;
        assert_eq!(b.to_vec1::<f32>()?, vec![5., 5., 5.]);
        Ok(())
    }
}
