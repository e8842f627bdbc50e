//! The named parameters of a model.
//!
//! Every weight lives in a [`ParamStore`] as a `Var` under its Hugging Face
//! name (`model.layers.0.self_attn.q_proj.weight`), so that checkpoints are
//! saved and loaded by name and an optimiser sees exactly the trainable ones.
//! Layers hold plain `Tensor` handles that share storage with those vars:
//! a trainable weight is the var's own tensor (gradients flow to it), a frozen
//! one is a detached view (no gradient is computed for it, yet an optimiser
//! or `merge` writing the var is seen by the layer).
//!
//! A [`Precision`] decides each parameter's dtype: trainable ones in its
//! master dtype (f32), frozen ones in its compute dtype (bf16 on a GPU),
//! converted as they are read from the source.
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use candle_core::{Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use super::precision::Precision;

/// All parameters of one model, by full name.
#[derive(Debug, Clone, Default)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    trainable: BTreeSet<String>,
}

impl ParamStore {
    /// Every parameter, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The variable called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// Whether the optimiser updates `name`.
    pub fn is_trainable(&self, name: &str) -> bool {
        self.trainable.contains(name)
    }

    /// The variables an optimiser should update, sorted by name.
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.trainable
            .iter()
            .map(|n| self.vars[n].clone())
            .collect()
    }

    /// Number of scalar parameters (all, trainable).
    pub fn num_params(&self) -> (usize, usize) {
        let count = |it: &mut dyn Iterator<Item = &Var>| it.map(|v| v.elem_count()).sum();
        let all = count(&mut self.vars.values());
        let trainable = count(&mut self.trainable.iter().map(|n| &self.vars[n]));
        (all, trainable)
    }

    /// Copies of every parameter's current value, by name (for saving).
    pub fn tensors(&self) -> std::collections::HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect()
    }

    /// Drops the parameter `name` (used when LoRA adapters are merged away).
    pub(crate) fn remove(&mut self, name: &str) {
        self.vars.remove(name);
        self.trainable.remove(name);
    }

    fn insert(&mut self, name: String, var: Var, trainable: bool) -> Result<()> {
        if self.vars.contains_key(&name) {
            candle_core::bail!("parameter `{name}` is created twice: two layers share one name");
        }
        if trainable {
            self.trainable.insert(name.clone());
        }
        self.vars.insert(name, var);
        Ok(())
    }
}

/// A `VarBuilder` that records every tensor it hands out in a [`ParamStore`].
#[derive(Clone)]
pub struct ParamBuilder<'a> {
    vb: VarBuilder<'a>,
    precision: Precision,
    /// Every parameter frozen, whatever the layer asks (an inference-only model).
    frozen: bool,
    store: Rc<RefCell<ParamStore>>,
}

impl<'a> ParamBuilder<'a> {
    /// Parameters in `vb`'s dtype throughout.
    pub fn new(vb: VarBuilder<'a>) -> Self {
        let precision = Precision::uniform(vb.dtype());
        Self::with_precision(vb, precision)
    }

    /// Trainable parameters in `precision.master`, frozen ones in `precision.compute`.
    pub fn with_precision(vb: VarBuilder<'a>, precision: Precision) -> Self {
        Self {
            vb,
            precision,
            frozen: false,
            store: Rc::new(RefCell::new(ParamStore::default())),
        }
    }

    /// Every parameter this builder creates is frozen (stored in the compute
    /// dtype, no gradient): a model used for inference only.
    pub fn frozen(mut self) -> Self {
        self.frozen = true;
        self
    }

    /// The builder for the sub-module `name` (`vb.pp(name)`).
    pub fn pp(&self, name: impl ToString) -> Self {
        Self {
            vb: self.vb.pp(name),
            precision: self.precision,
            frozen: self.frozen,
            store: self.store.clone(),
        }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn device(&self) -> &candle_core::Device {
        self.vb.device()
    }

    /// The dtype activations are computed in.
    pub fn compute_dtype(&self) -> candle_core::DType {
        self.precision.compute
    }

    /// The full name of `name` under the current prefix.
    pub fn full_name(&self, name: &str) -> String {
        let prefix = self.vb.prefix();
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    }

    /// Whether the underlying source holds `name` (always true for seeded init).
    pub fn contains(&self, name: &str) -> bool {
        self.vb.contains_tensor(name)
    }

    /// Loads (or initialises, per `init`) the parameter `name` in its
    /// storage dtype, registers it and returns the handle a layer should
    /// keep: tracked when `trainable`, a detached view of the same storage
    /// otherwise.
    pub fn param(
        &self,
        shape: impl Into<Shape>,
        name: &str,
        init: Init,
        trainable: bool,
    ) -> Result<Tensor> {
        let trainable = trainable && !self.frozen;
        let vb = self.vb.to_dtype(self.precision.storage(trainable));
        let loaded = vb.get_with_hints(shape, name, init)?;
        // Always copy: the source may be another model's live variable.
        let var = Var::from_tensor(&loaded.detach())?;
        let handle = if trainable {
            var.as_tensor().clone()
        } else {
            var.as_tensor().detach()
        };
        self.store
            .borrow_mut()
            .insert(self.full_name(name), var, trainable)?;
        Ok(handle)
    }

    /// The collected parameters. Call once, after the model is built.
    pub fn into_store(self) -> ParamStore {
        match Rc::try_unwrap(self.store) {
            Ok(cell) => cell.into_inner(),
            Err(shared) => shared.borrow().clone(),
        }
    }
}
