//! Optimizers, global gradient clipping and a plateau learning-rate scheduler for the trainer.
//!
//! The trainer keeps every trainable parameter as a rank-2 tensor on the inner (non-autodiff)
//! backend (weights `[in, out]`, biases `[1, out]`, scalars `[1, 1]`, per-window initial states
//! `[n, states]`). Each iteration it obtains one gradient per parameter, of the same shape, and
//! hands both to an [`Optimizer`], which updates the parameters in place.
//!
//! Everything here follows PyTorch's definitions (`torch.optim`, `torch.nn.utils.clip_grad_norm_`,
//! `torch.optim.lr_scheduler.ReduceLROnPlateau`) rather than burn's own optimizers, whose defaults
//! differ (burn's Adam uses `eps = 1e-5`, its gradient clipping works per tensor) and whose state
//! is tied to burn modules. AdaBelief follows its paper (Zhuang et al., NeurIPS 2020).
//!
//! The learning rate is an argument of every [`Optimizer::step`], so schedulers (such as
//! [`ReduceLrOnPlateau`]) stay outside the optimizer, and an optimizer's moment buffers never
//! depend on past learning rates (as in PyTorch).
//!
//! # Resuming
//!
//! [`Optimizer::state`] exports the step count and every buffer as plain `f32` data;
//! [`Optimizer::load_state`] restores it. On a deterministic backend (the CPU backend `Flex`),
//! running 5 steps, exporting, loading into a fresh optimizer built from the same configuration
//! and running 5 more gives the same bits as 10 uninterrupted steps. The values are stored as
//! `f32`: a backend computing in `f64` resumes from rounded moments.
//!
//! # Typical loop
//!
//! ```ignore
//! let mut opt = config.build::<B>();
//! let mut plateau = ReduceLrOnPlateau::new(plateau_config, lr0)?;
//! loop {
//!     let mut grads = compute_grads(&params);
//!     let norm = clip_global_norm(&mut grads, 1.0);
//!     if norm.is_finite() {
//!         opt.step(plateau.lr(), &mut params, &grads);
//!     }
//!     // once per epoch:
//!     plateau.step(validation_loss);
//! }
//! ```

mod adabelief;
mod adam;
mod clip;
mod nadam;
mod plateau;
mod sgd;
mod slots;
#[cfg(test)]
mod test_support;

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use adabelief::{AdaBelief, AdaBeliefConfig};
pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use clip::clip_global_norm;
pub use nadam::{Nadam, NadamConfig};
pub use plateau::{PlateauMode, ReduceLrOnPlateau, ReduceLrOnPlateauConfig, ThresholdMode};
pub use sgd::{Sgd, SgdConfig};

/// A first-order optimizer over a fixed list of rank-2 parameters.
///
/// The list (its length, order and shapes) is fixed by the first [`step`](Self::step) or by
/// [`load_state`](Self::load_state); later steps must pass the same list.
pub trait Optimizer<B: Backend>: Send {
    /// The optimizer's name as in [`OptimizerConfig`] and [`OptimizerState::optimizer`]
    /// (`"adam"`, `"adamw"`, `"sgd"`, `"nadam"`, `"adabelief"`).
    fn name(&self) -> &'static str;

    /// Updates `params` in place from `grads` (one gradient per parameter, same shape), with
    /// learning rate `lr`. The first step creates the optimizer's buffers (zeros, or as the
    /// algorithm defines them) and fixes the parameter list.
    ///
    /// # Panics
    ///
    /// If `lr` is negative or not finite, if `params` and `grads` differ in length or in any
    /// shape, or if the parameter list differs from the one the state was created for.
    fn step(&mut self, lr: f64, params: &mut [Tensor<B, 2>], grads: &[Tensor<B, 2>]);

    /// Exports the number of steps taken and every buffer as plain data.
    fn state(&self) -> OptimizerState;

    /// Replaces the optimizer's state with `state` (as exported by [`state`](Self::state) of an
    /// optimizer of the same kind), creating its buffers on `device`. A state with `step == 0`
    /// and no buffers resets the optimizer.
    ///
    /// # Errors
    ///
    /// If `state` belongs to another optimizer, lacks or has extra buffers, or its buffers are
    /// inconsistent (a value count that does not match its shape, differing parameter counts or
    /// shapes between buffers, buffers with `step == 0`). On error the optimizer is unchanged.
    fn load_state(&mut self, state: OptimizerState, device: &B::Device) -> Result<(), OptimError>;
}

/// An optimizer's state as plain data, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerState {
    /// Which optimizer wrote it (see [`Optimizer::name`]).
    pub optimizer: String,
    /// Number of steps taken.
    pub step: u64,
    /// Buffers by name (for example `exp_avg` and `exp_avg_sq` for Adam), each holding one entry
    /// per parameter, in parameter order. Empty lists before the first step.
    pub buffers: BTreeMap<String, Vec<ParamBuffer>>,
}

/// One buffer of one parameter: a row-major `[rows, cols]` matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamBuffer {
    /// `[rows, cols]`, as the parameter's shape.
    pub shape: [usize; 2],
    /// `rows * cols` values, row-major.
    pub values: Vec<f32>,
}

/// Why a configuration or a state was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OptimError {
    /// A hyperparameter is out of its range.
    #[error("invalid {optimizer} setting: {message}")]
    InvalidConfig {
        /// The optimizer or scheduler concerned.
        optimizer: &'static str,
        /// The setting's name in its configuration (`beta1`).
        field: String,
        /// Which setting, and why.
        message: String,
    },
    /// A state written by another optimizer.
    #[error("optimizer state was written by `{found}`, cannot load it into `{expected}`")]
    WrongOptimizer {
        /// The optimizer loading the state.
        expected: &'static str,
        /// The optimizer named in the state.
        found: String,
    },
    /// A state whose buffers are missing, extra or inconsistent.
    #[error("invalid {optimizer} state: {message}")]
    InvalidState {
        /// The optimizer loading the state.
        optimizer: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Which optimizer to build and its hyperparameters (the learning rate is given to each step).
///
/// Serialized with a `name` tag, for example `{"name": "adamw", "weight_decay": 0.01}`; omitted
/// hyperparameters take PyTorch's defaults, unknown ones are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// [`Adam`]: Adam with L2 weight decay added to the gradient.
    Adam(AdamConfig),
    /// [`AdamW`]: Adam with decoupled weight decay.
    #[serde(rename = "adamw")]
    AdamW(AdamWConfig),
    /// [`Sgd`]: stochastic gradient descent with optional (Nesterov) momentum.
    Sgd(SgdConfig),
    /// [`Nadam`]: Adam with Nesterov momentum (PyTorch's NAdam).
    Nadam(NadamConfig),
    /// [`AdaBelief`]: Adam adapting to the belief in the gradient, `(g - m)^2`.
    #[serde(rename = "adabelief")]
    AdaBelief(AdaBeliefConfig),
}

impl Default for OptimizerConfig {
    /// Adam with PyTorch's defaults.
    fn default() -> Self {
        Self::Adam(AdamConfig::default())
    }
}

impl OptimizerConfig {
    /// The optimizer's name (the serialized `name` tag).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Adam(_) => adam::ADAM,
            Self::AdamW(_) => adam::ADAMW,
            Self::Sgd(_) => sgd::NAME,
            Self::Nadam(_) => nadam::NAME,
            Self::AdaBelief(_) => adabelief::NAME,
        }
    }

    /// Checks every hyperparameter's range (as PyTorch's constructors do).
    ///
    /// # Errors
    ///
    /// [`OptimError::InvalidConfig`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), OptimError> {
        match self {
            Self::Adam(c) => c.validate(),
            Self::AdamW(c) => c.validate(),
            Self::Sgd(c) => c.validate(),
            Self::Nadam(c) => c.validate(),
            Self::AdaBelief(c) => c.validate(),
        }
    }

    /// Builds the optimizer, with empty state.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn try_build<B: Backend>(&self) -> Result<Box<dyn Optimizer<B>>, OptimError> {
        Ok(match self {
            Self::Adam(c) => Box::new(Adam::new(c.clone())?),
            Self::AdamW(c) => Box::new(AdamW::new(c.clone())?),
            Self::Sgd(c) => Box::new(Sgd::new(c.clone())?),
            Self::Nadam(c) => Box::new(Nadam::new(c.clone())?),
            Self::AdaBelief(c) => Box::new(AdaBelief::new(c.clone())?),
        })
    }

    /// Builds the optimizer, with empty state.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid: call [`validate`](Self::validate) first on
    /// configurations read from users, or use [`try_build`](Self::try_build).
    pub fn build<B: Backend>(&self) -> Box<dyn Optimizer<B>> {
        match self.try_build() {
            Ok(opt) => opt,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Range checks shared by the configurations: the optimizers' own messages over the ranges of
/// [`crate::config::rules`], the one source of each rule.
pub(crate) mod check {
    use super::OptimError;
    use crate::config::rules;

    fn err(optimizer: &'static str, field: &str, message: String) -> OptimError {
        OptimError::InvalidConfig {
            optimizer,
            field: field.to_owned(),
            message,
        }
    }

    /// `0 <= value < 1` (a moment's decay).
    pub(crate) fn beta(optimizer: &'static str, name: &str, value: f64) -> Result<(), OptimError> {
        require(optimizer, name, rules::decay(value).is_ok(), || {
            format!("{name} must be in [0, 1), got {value}")
        })
    }

    /// `value >= 0` and finite.
    pub(crate) fn non_negative(
        optimizer: &'static str,
        name: &str,
        value: f64,
    ) -> Result<(), OptimError> {
        require(optimizer, name, rules::non_negative(value).is_ok(), || {
            format!("{name} must be finite and >= 0, got {value}")
        })
    }

    /// `value > 0` and finite: a denominator's guard (`eps`), where 0 divides a zero gradient
    /// by zero.
    pub(crate) fn positive(
        optimizer: &'static str,
        name: &str,
        value: f64,
    ) -> Result<(), OptimError> {
        require(optimizer, name, rules::positive(value).is_ok(), || {
            format!("{name} must be finite and above 0, got {value}")
        })
    }

    /// A free-form condition on the setting `field`.
    pub(crate) fn require(
        optimizer: &'static str,
        field: &str,
        ok: bool,
        message: impl FnOnce() -> String,
    ) -> Result<(), OptimError> {
        if ok {
            Ok(())
        } else {
            Err(err(optimizer, field, message()))
        }
    }
}

/// `base^t` as Python's `base ** t` computes it (`pow` on doubles), for bias corrections.
pub(crate) fn pow_step(base: f64, t: u64) -> f64 {
    // Step counts stay far below 2^53, so the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    base.powf(t as f64)
}

/// Panics unless `lr` is a usable learning rate.
pub(crate) fn check_lr(optimizer: &str, lr: f64) {
    assert!(
        lr.is_finite() && lr >= 0.0,
        "{optimizer}: learning rate must be finite and >= 0, got {lr}"
    );
}

#[cfg(test)]
mod tests {
    use super::test_support::{tensor, Tb};
    use super::*;

    fn all_configs() -> Vec<OptimizerConfig> {
        vec![
            OptimizerConfig::Adam(AdamConfig::default()),
            OptimizerConfig::AdamW(AdamWConfig::default()),
            OptimizerConfig::Sgd(SgdConfig {
                momentum: 0.9,
                ..SgdConfig::default()
            }),
            OptimizerConfig::Nadam(NadamConfig::default()),
            OptimizerConfig::AdaBelief(AdaBeliefConfig::default()),
        ]
    }

    fn params() -> Vec<Tensor<Tb, 2>> {
        vec![
            tensor(&[1.0, 2.0, 3.0, 4.0], [2, 2]),
            tensor(&[0.5, -0.5], [1, 2]),
        ]
    }

    #[test]
    fn config_serde_uses_name_tags_and_defaults() {
        let names: Vec<&str> = all_configs().iter().map(OptimizerConfig::name).collect();
        assert_eq!(names, ["adam", "adamw", "sgd", "nadam", "adabelief"]);
        for config in all_configs() {
            let json = serde_json::to_value(&config).unwrap();
            assert_eq!(json["name"], config.name());
            let back: OptimizerConfig = serde_json::from_value(json).unwrap();
            assert_eq!(back, config);
            let opt = config.build::<Tb>();
            assert_eq!(opt.name(), config.name());
        }
        let parsed: OptimizerConfig = serde_json::from_str(r#"{"name": "adamw"}"#).unwrap();
        assert_eq!(parsed, OptimizerConfig::AdamW(AdamWConfig::default()));
        let parsed: OptimizerConfig =
            serde_json::from_str(r#"{"name": "sgd", "momentum": 0.9, "nesterov": true}"#).unwrap();
        assert_eq!(
            parsed,
            OptimizerConfig::Sgd(SgdConfig {
                momentum: 0.9,
                nesterov: true,
                ..SgdConfig::default()
            })
        );
        let parsed: OptimizerConfig =
            serde_json::from_str(r#"{"name": "adabelief", "rectify": true}"#).unwrap();
        assert_eq!(
            parsed,
            OptimizerConfig::AdaBelief(AdaBeliefConfig {
                rectify: true,
                ..AdaBeliefConfig::default()
            })
        );
        assert!(
            serde_json::from_str::<OptimizerConfig>(r#"{"name": "adam", "beta_1": 0.5}"#).is_err()
        );
        assert!(serde_json::from_str::<OptimizerConfig>(r#"{"name": "lamb"}"#).is_err());
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = OptimizerConfig::Nadam(NadamConfig {
            beta2: 1.5,
            ..NadamConfig::default()
        });
        let err = bad.validate().unwrap_err();
        assert!(err.to_string().contains("beta2"), "{err}");
        assert!(bad.try_build::<Tb>().is_err());
    }

    #[test]
    fn fresh_state_is_empty_and_loads() {
        let device = Default::default();
        for config in all_configs() {
            let mut opt = config.build::<Tb>();
            let s = opt.state();
            assert_eq!(s.step, 0);
            assert!(s.buffers.values().all(Vec::is_empty));
            opt.load_state(s, &device).unwrap();
        }
    }

    #[test]
    fn state_names_buffers_per_parameter() {
        let mut opt = Adam::<Tb>::new(AdamConfig::default()).unwrap();
        let mut p = params();
        let g = params();
        opt.step(0.1, &mut p, &g);
        let s = opt.state();
        assert_eq!(s.optimizer, "adam");
        assert_eq!(s.step, 1);
        let names: Vec<&str> = s.buffers.keys().map(String::as_str).collect();
        assert_eq!(names, ["exp_avg", "exp_avg_sq"]);
        let m = &s.buffers["exp_avg"];
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].shape, [2, 2]);
        assert_eq!(m[1].shape, [1, 2]);
        // m_1 = 0.1 * g.
        assert!((m[0].values[3] - 0.4).abs() < 1e-7);
    }

    #[test]
    fn bad_states_are_refused_and_leave_the_optimizer_unchanged() {
        let device = Default::default();
        let mut adam = Adam::<Tb>::new(AdamConfig::default()).unwrap();
        let mut p = params();
        let g = params();
        Optimizer::<Tb>::step(&mut adam, 0.1, &mut p, &g);
        let good = Optimizer::<Tb>::state(&adam);

        let mut sgd = Sgd::<Tb>::new(SgdConfig::default()).unwrap();
        assert!(matches!(
            sgd.load_state(good.clone(), &device),
            Err(OptimError::WrongOptimizer { .. })
        ));

        let mut missing = good.clone();
        missing.buffers.remove("exp_avg_sq");
        let mut extra = good.clone();
        extra.buffers.insert("max_exp_avg_sq".into(), Vec::new());
        let mut short = good.clone();
        short.buffers.get_mut("exp_avg").unwrap()[0].values.pop();
        let mut reshaped = good.clone();
        reshaped.buffers.get_mut("exp_avg").unwrap()[0].shape = [4, 1];
        let mut fewer = good.clone();
        fewer.buffers.get_mut("exp_avg").unwrap().pop();
        let mut zero_step = good.clone();
        zero_step.step = 0;
        for bad in [missing, extra, short, reshaped, fewer, zero_step] {
            let err = adam.load_state(bad, &device).unwrap_err();
            assert!(matches!(err, OptimError::InvalidState { .. }), "{err}");
        }
        assert_eq!(Optimizer::<Tb>::state(&adam), good);
    }

    #[test]
    #[should_panic(expected = "has shape [2, 2] but its gradient [1, 2]")]
    fn step_checks_gradient_shapes() {
        let mut opt = Adam::<Tb>::new(AdamConfig::default()).unwrap();
        let mut p = params();
        let g = vec![params()[1].clone(), params()[1].clone()];
        opt.step(0.1, &mut p, &g);
    }

    #[test]
    #[should_panic(expected = "state is for 2 parameters, step got 1")]
    fn step_checks_the_parameter_list_against_the_state() {
        let mut opt = Sgd::<Tb>::new(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        })
        .unwrap();
        let mut p = params();
        let g = params();
        opt.step(0.1, &mut p, &g);
        opt.step(0.1, &mut p[..1], &g[..1]);
    }

    #[test]
    #[should_panic(expected = "learning rate must be finite")]
    fn step_checks_the_learning_rate() {
        let mut opt = AdamW::<Tb>::new(AdamWConfig::default()).unwrap();
        let mut p = params();
        let g = params();
        opt.step(f64::NAN, &mut p, &g);
    }
}
