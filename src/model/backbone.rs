//! What a [`Policy`](super::Policy) and a [`RewardModel`](super::RewardModel)
//! share: the decoder, its named parameters and its LoRA state.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use candle_core::{Device, Tensor, Var};

use super::config::DecoderConfig;
use super::decoder::Decoder;
use super::lora::{ADAPTERS_FILE, DropoutState, LoraConfig, LoraContext};
use super::params::{ParamBuilder, ParamStore};
use super::precision::Precision;

/// The constructors and accessors of a model that is a [`Backbone`] plus a
/// head tensor ([`Policy`](super::Policy), [`RewardModel`](super::RewardModel)),
/// written once. `backbone_model!(Policy, lm_head)` needs a struct `Policy
/// { backbone: Backbone, lm_head: Tensor }` and an inherent
/// `fn new_head(pb: &ParamBuilder, decoder: &Decoder, lora) ->
/// candle_core::Result<Tensor>` that loads or initialises the head (and
/// marks it trainable or not).
macro_rules! backbone_model {
    ($model:ident, $head:ident) => {
        impl $model {
            /// Builds the decoder, then the head, from `pb`.
            fn build(
                cfg: &DecoderConfig,
                pb: $crate::model::params::ParamBuilder,
                lora: Option<&LoraConfig>,
            ) -> anyhow::Result<Self> {
                let (backbone, $head) =
                    $crate::model::backbone::Backbone::build(cfg, pb, lora, |pb, decoder| {
                        Self::new_head(pb, decoder, lora)
                    })?;
                Ok(Self { backbone, $head })
            }

            /// [`Self::from_varbuilder`] in `precision`: trainable tensors
            /// are read into its master dtype, frozen ones into its compute
            /// dtype.
            pub fn from_varbuilder_in(
                cfg: &DecoderConfig,
                vb: candle_nn::VarBuilder,
                lora: Option<&LoraConfig>,
                precision: Precision,
            ) -> anyhow::Result<Self> {
                let pb = $crate::model::params::ParamBuilder::with_precision(vb, precision);
                Self::build(cfg, pb, lora)
            }

            /// A freshly initialised model with f32 parameters (in the
            /// device's default [`Precision`]): N(0, 0.02) weights, zero
            /// biases, unit norms, every tensor from its own ChaCha8 stream
            /// of `seed`.
            pub fn new_random(
                cfg: &DecoderConfig,
                lora: Option<&LoraConfig>,
                seed: u64,
                device: &candle_core::Device,
            ) -> anyhow::Result<Self> {
                let vb =
                    $crate::model::init::seeded_varbuilder(seed, candle_core::DType::F32, device);
                let precision = Precision::for_device(device, candle_core::DType::F32);
                let model = Self::from_varbuilder_in(cfg, vb, lora, precision)?;
                model.backbone.set_dropout_seed(seed);
                Ok(model)
            }

            /// Loads (or, with a seeded backend, initialises) every tensor
            /// from `vb` by HF name, in `vb`'s dtype. With `lora`, the
            /// adapters are read from `vb` too: use a
            /// [`SeededInit`]($crate::model::init::SeededInit) backend for
            /// fresh ones.
            pub fn from_varbuilder(
                cfg: &DecoderConfig,
                vb: candle_nn::VarBuilder,
                lora: Option<&LoraConfig>,
            ) -> anyhow::Result<Self> {
                let precision = Precision::uniform(vb.dtype());
                Self::from_varbuilder_in(cfg, vb, lora, precision)
            }

            /// A model of `like`'s config, precision and device whose
            /// tensors are `tensors`, and whose tensors missing from them
            /// (fresh LoRA adapters, a fresh head) and dropout are seeded by
            /// `seed`.
            fn seeded_over(
                tensors: std::collections::HashMap<String, candle_core::Tensor>,
                like: &$crate::model::backbone::Backbone,
                lora: Option<&LoraConfig>,
                seed: u64,
            ) -> anyhow::Result<Self> {
                let init = $crate::model::init::SeededInit::over(seed, Box::new(tensors));
                let precision = like.precision();
                let vb = candle_nn::VarBuilder::from_backend(
                    Box::new(init),
                    precision.master,
                    like.device().clone(),
                );
                let model = Self::from_varbuilder_in(like.config(), vb, lora, precision)?;
                model.backbone.set_dropout_seed(seed);
                Ok(model)
            }

            pub fn backbone(&self) -> &$crate::model::backbone::Backbone {
                &self.backbone
            }

            pub fn backbone_mut(&mut self) -> &mut $crate::model::backbone::Backbone {
                &mut self.backbone
            }

            pub fn config(&self) -> &DecoderConfig {
                self.backbone.config()
            }

            pub fn lora_config(&self) -> Option<&LoraConfig> {
                self.backbone.lora_config()
            }
        }
    };
}
pub(crate) use backbone_model;

/// Not `Clone`: a copy would share (and silently co-train) the variables.
#[derive(Debug)]
pub struct Backbone {
    pub(crate) decoder: Decoder,
    pub(crate) params: ParamStore,
    pub(crate) lora: Option<LoraConfig>,
    pub(crate) dropout: Arc<DropoutState>,
    pub(crate) precision: Precision,
}

impl Backbone {
    /// Builds the decoder from `pb` (loading or initialising every tensor in
    /// the dtype its precision gives it), then lets `head` load the model's
    /// head from the same builder.
    /// `head` gets the builder and the decoder; it must mark its own
    /// parameters trainable.
    pub(crate) fn build<H>(
        cfg: &DecoderConfig,
        pb: ParamBuilder,
        lora: Option<&LoraConfig>,
        head: impl FnOnce(&ParamBuilder, &Decoder) -> candle_core::Result<H>,
    ) -> anyhow::Result<(Self, H)> {
        cfg.validate()?;
        if let Some(l) = lora {
            l.validate()?;
        }
        let dropout = DropoutState::new(0);
        let ctx = lora.map(|config| LoraContext {
            config: config.clone(),
            dropout: dropout.clone(),
        });
        let precision = pb.precision();
        let decoder = Decoder::load(&pb, cfg, ctx.as_ref()).context("building the decoder")?;
        let head = head(&pb, &decoder).context("building the model head")?;
        let params = pb.into_store();
        Ok((
            Self {
                decoder,
                params,
                lora: lora.cloned(),
                dropout,
                precision,
            },
            head,
        ))
    }

    pub fn config(&self) -> &DecoderConfig {
        self.decoder.config()
    }

    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The dtypes of the trainable parameters (master) and of the compute.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn device(&self) -> &Device {
        self.decoder.embed_tokens().device()
    }

    /// Training mode turns LoRA dropout on; eval mode (the default) turns it off.
    pub fn set_training(&self, training: bool) {
        self.dropout.set_training(training);
    }

    /// Restarts the LoRA dropout stream (models start from seed 0).
    pub fn set_dropout_seed(&self, seed: u64) {
        self.dropout.reseed(seed);
    }

    pub fn trainable_vars(&self) -> Vec<Var> {
        self.params.trainable_vars()
    }

    /// The LoRA dropout stream (a training checkpoint saves its position).
    pub fn dropout_state(&self) -> Arc<DropoutState> {
        self.dropout.clone()
    }

    /// Folds every LoRA adapter into its base weight; afterwards the model
    /// has no adapters and computes the same function with fewer ops.
    pub fn merge_lora(&mut self) -> anyhow::Result<()> {
        for linear in self.decoder.linears_mut() {
            linear.merge_lora(&mut self.params)?;
        }
        self.lora = None;
        Ok(())
    }

    /// Every parameter's value with adapters folded in and adapter tensors
    /// left out, as independent copies: the weights of an equivalent model
    /// without LoRA.
    pub fn merged_tensors(&self) -> anyhow::Result<HashMap<String, Tensor>> {
        let mut tensors = self.params.tensors();
        for linear in self.decoder.linears() {
            for name in linear.adapter_names() {
                tensors.remove(&name);
            }
            tensors.insert(linear.weight_name().to_string(), linear.effective_weight()?);
        }
        tensors
            .into_iter()
            .map(|(k, t)| Ok((k, t.copy()?)))
            .collect()
    }

    /// Names of the LoRA adapter tensors.
    fn adapter_names(&self) -> Vec<String> {
        self.decoder
            .linears()
            .iter()
            .flat_map(|l| l.adapter_names())
            .collect()
    }

    /// Writes the LoRA adapters alone to `dir/adapters.safetensors`.
    pub fn save_adapters(&self, dir: &Path) -> anyhow::Result<()> {
        let names = self.adapter_names();
        anyhow::ensure!(
            !names.is_empty(),
            "save_adapters: this model has no LoRA adapters"
        );
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let all = self.params.tensors();
        let adapters: HashMap<String, Tensor> = names
            .into_iter()
            .map(|n| (n.clone(), all[&n].clone()))
            .collect();
        let path = dir.join(ADAPTERS_FILE);
        candle_core::safetensors::save(&adapters, &path)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Overwrites the LoRA adapters from `dir/adapters.safetensors` (written by
    /// `save_adapters` from a model of the same config and LoRA targets).
    pub fn load_adapters(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(ADAPTERS_FILE);
        let loaded = candle_core::safetensors::load(&path, self.device())
            .with_context(|| format!("reading LoRA adapters from {}", path.display()))?;
        let names = self.adapter_names();
        anyhow::ensure!(
            !names.is_empty(),
            "load_adapters: this model has no LoRA adapters to load into"
        );
        for name in names {
            let t = loaded.get(&name).with_context(|| {
                format!(
                    "{} has no tensor `{name}`: it was saved from a model with other LoRA targets or layers",
                    path.display()
                )
            })?;
            let var = self
                .params
                .get(&name)
                .expect("adapter names come from the store");
            anyhow::ensure!(
                t.shape() == var.shape(),
                "{}: `{name}` has shape {:?}, this model expects {:?} (different LoRA rank?)",
                path.display(),
                t.dims(),
                var.dims()
            );
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }
}
