//! Adam and AdamW, as `torch.optim.Adam` and `torch.optim.AdamW` (without `amsgrad`).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::slots::Slots;
use super::{check, check_lr, pow_step, OptimError, Optimizer, OptimizerState};

pub(crate) const ADAM: &str = "adam";
pub(crate) const ADAMW: &str = "adamw";
const BUFFERS: &[&str] = &["exp_avg", "exp_avg_sq"];

/// Hyperparameters of [`Adam`]; defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// Decay of the first moment, `beta1` (default 0.9).
    pub beta1: f64,
    /// Decay of the second moment, `beta2` (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default `1e-8`, as PyTorch; burn's Adam uses `1e-5`).
    pub eps: f64,
    /// L2 penalty added to the gradient, `lambda` (default 0).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// Checks the ranges PyTorch's constructor checks.
    ///
    /// # Errors
    ///
    /// [`OptimError::InvalidConfig`] naming the setting out of range.
    pub fn validate(&self) -> Result<(), OptimError> {
        validate(ADAM, self.beta1, self.beta2, self.eps, self.weight_decay)
    }
}

/// Hyperparameters of [`AdamW`]; defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Decay of the first moment, `beta1` (default 0.9).
    pub beta1: f64,
    /// Decay of the second moment, `beta2` (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default `1e-8`).
    pub eps: f64,
    /// Decoupled weight decay, `lambda` (default `1e-2`).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

impl AdamWConfig {
    /// Checks the ranges PyTorch's constructor checks.
    ///
    /// # Errors
    ///
    /// [`OptimError::InvalidConfig`] naming the setting out of range.
    pub fn validate(&self) -> Result<(), OptimError> {
        validate(ADAMW, self.beta1, self.beta2, self.eps, self.weight_decay)
    }
}

fn validate(name: &'static str, b1: f64, b2: f64, eps: f64, wd: f64) -> Result<(), OptimError> {
    check::beta(name, "beta1", b1)?;
    check::beta(name, "beta2", b2)?;
    check::positive(name, "eps", eps)?;
    check::non_negative(name, "weight_decay", wd)
}

/// Adam (Kingma & Ba, 2015) exactly as `torch.optim.Adam` defines it (`amsgrad=False`,
/// `maximize=False`). With learning rate `gamma_t` given to each step, for `t = 1, 2, ...`:
///
/// ```text
/// g_t = grad + lambda * theta_{t-1}                    (if weight_decay lambda != 0)
/// m_t = beta1 * m_{t-1} + (1 - beta1) * g_t            (exp_avg, m_0 = 0)
/// v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2          (exp_avg_sq, v_0 = 0)
/// theta_t = theta_{t-1} - gamma_t / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// The last line is PyTorch's implementation of `m_hat_t / (sqrt(v_hat_t) + eps)`
/// (`step_size = lr / bias_correction1`, `denom = sqrt(v) / sqrt(bias_correction2) + eps`).
/// Buffers: `exp_avg`, `exp_avg_sq`.
pub struct Adam<B: Backend> {
    config: AdamConfig,
    slots: Slots<B>,
}

impl<B: Backend> Adam<B> {
    /// An Adam optimizer with empty state.
    ///
    /// # Errors
    ///
    /// If `config` is out of range ([`AdamConfig::validate`]).
    pub fn new(config: AdamConfig) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Self {
            config,
            slots: Slots::new(ADAM, BUFFERS),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }
}

/// AdamW (Loshchilov & Hutter, 2019) exactly as `torch.optim.AdamW` defines it
/// (`amsgrad=False`): the parameters first decay, then take Adam's step on the raw gradient:
///
/// ```text
/// theta_{t-1}' = theta_{t-1} * (1 - gamma_t * lambda)
/// m_t, v_t and the update of theta_{t-1}' as in [`Adam`], without the L2 term
/// ```
///
/// Buffers: `exp_avg`, `exp_avg_sq`.
pub struct AdamW<B: Backend> {
    config: AdamWConfig,
    slots: Slots<B>,
}

impl<B: Backend> AdamW<B> {
    /// An AdamW optimizer with empty state.
    ///
    /// # Errors
    ///
    /// If `config` is out of range ([`AdamWConfig::validate`]).
    pub fn new(config: AdamWConfig) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Self {
            config,
            slots: Slots::new(ADAMW, BUFFERS),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }
}

/// How the weight decay enters.
#[derive(Clone, Copy)]
enum Decay {
    /// Added to the gradient (Adam's L2).
    L2(f64),
    /// Shrinks the parameter before the update (AdamW).
    Decoupled(f64),
}

#[allow(clippy::too_many_arguments)]
fn adam_step<B: Backend>(
    slots: &mut Slots<B>,
    name: &str,
    lr: f64,
    params: &mut [Tensor<B, 2>],
    grads: &[Tensor<B, 2>],
    beta1: f64,
    beta2: f64,
    eps: f64,
    decay: Decay,
) {
    check_lr(name, lr);
    let t = slots.begin_step(params, grads);
    let bias_correction1 = 1.0 - pow_step(beta1, t);
    let bias_correction2 = 1.0 - pow_step(beta2, t);
    let step_size = lr / bias_correction1;
    let bias_correction2_sqrt = bias_correction2.sqrt();
    slots.update_each::<2>(params, grads, |mut p, mut g, [m, v]| {
        match decay {
            Decay::L2(wd) if wd != 0.0 => g = g.add(p.clone().mul_scalar(wd)),
            Decay::Decoupled(wd) if wd != 0.0 => p = p.mul_scalar(1.0 - lr * wd),
            _ => {}
        }
        let m = m.mul_scalar(beta1).add(g.clone().mul_scalar(1.0 - beta1));
        let v = v
            .mul_scalar(beta2)
            .add(g.clone().mul(g).mul_scalar(1.0 - beta2));
        let denom = v
            .clone()
            .sqrt()
            .div_scalar(bias_correction2_sqrt)
            .add_scalar(eps);
        let p = p.sub(m.clone().div(denom).mul_scalar(step_size));
        (p, [m, v])
    });
}

impl<B: Backend> Optimizer<B> for Adam<B> {
    fn name(&self) -> &'static str {
        ADAM
    }

    fn step(&mut self, lr: f64, params: &mut [Tensor<B, 2>], grads: &[Tensor<B, 2>]) {
        let c = &self.config;
        adam_step(
            &mut self.slots,
            ADAM,
            lr,
            params,
            grads,
            c.beta1,
            c.beta2,
            c.eps,
            Decay::L2(c.weight_decay),
        );
    }

    fn state(&self) -> OptimizerState {
        self.slots.export()
    }

    fn load_state(&mut self, state: OptimizerState, device: &B::Device) -> Result<(), OptimError> {
        self.slots.import(state, device)
    }
}

impl<B: Backend> Optimizer<B> for AdamW<B> {
    fn name(&self) -> &'static str {
        ADAMW
    }

    fn step(&mut self, lr: f64, params: &mut [Tensor<B, 2>], grads: &[Tensor<B, 2>]) {
        let c = &self.config;
        adam_step(
            &mut self.slots,
            ADAMW,
            lr,
            params,
            grads,
            c.beta1,
            c.beta2,
            c.eps,
            Decay::Decoupled(c.weight_decay),
        );
    }

    fn state(&self) -> OptimizerState {
        self.slots.export()
    }

    fn load_state(&mut self, state: OptimizerState, device: &B::Device) -> Result<(), OptimError> {
        self.slots.import(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_support::{
        assert_matches_reference, assert_minimizes_quadratic, assert_resume_is_bit_exact,
        Reference, Tb,
    };
    use crate::optim::OptimizerConfig;

    /// Adam / AdamW in f64, straight from the `torch.optim.Adam` / `AdamW` pseudo-code.
    struct RefAdam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
        t: i32,
        m: Vec<f64>,
        v: Vec<f64>,
    }

    impl RefAdam {
        fn new(beta1: f64, beta2: f64, eps: f64, weight_decay: f64, decoupled: bool) -> Self {
            Self {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
                t: 0,
                m: Vec::new(),
                v: Vec::new(),
            }
        }
    }

    impl Reference for RefAdam {
        fn step(&mut self, lr: f64, p: &mut [f64], g: &[f64]) {
            if self.m.is_empty() {
                self.m = vec![0.0; p.len()];
                self.v = vec![0.0; p.len()];
            }
            self.t += 1;
            for i in 0..p.len() {
                let mut gi = g[i];
                if self.decoupled {
                    p[i] *= 1.0 - lr * self.weight_decay;
                } else {
                    gi += self.weight_decay * p[i];
                }
                self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * gi;
                self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * gi * gi;
                let m_hat = self.m[i] / (1.0 - self.beta1.powi(self.t));
                let v_hat = self.v[i] / (1.0 - self.beta2.powi(self.t));
                p[i] -= lr * m_hat / (v_hat.sqrt() + self.eps);
            }
        }
    }

    #[test]
    fn adam_matches_reference() {
        let mut opt = Adam::<Tb>::new(AdamConfig::default()).unwrap();
        let mut r = RefAdam::new(0.9, 0.999, 1e-8, 0.0, false);
        assert_matches_reference(&mut opt, &mut r, 1);
        assert_eq!(Optimizer::<Tb>::state(&opt).step, 20);
    }

    #[test]
    fn adam_with_l2_matches_reference() {
        let config = AdamConfig {
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.1,
        };
        let mut opt = Adam::<Tb>::new(config).unwrap();
        let mut r = RefAdam::new(0.8, 0.99, 1e-6, 0.1, false);
        assert_matches_reference(&mut opt, &mut r, 2);
    }

    #[test]
    fn adamw_matches_reference() {
        let mut opt = AdamW::<Tb>::new(AdamWConfig::default()).unwrap();
        let mut r = RefAdam::new(0.9, 0.999, 1e-8, 1e-2, true);
        assert_matches_reference(&mut opt, &mut r, 3);
        let config = AdamWConfig {
            weight_decay: 0.5,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::<Tb>::new(config).unwrap();
        let mut r = RefAdam::new(0.9, 0.999, 1e-8, 0.5, true);
        assert_matches_reference(&mut opt, &mut r, 4);
    }

    #[test]
    fn adam_minimizes_quadratic() {
        let mut opt = Adam::<Tb>::new(AdamConfig::default()).unwrap();
        assert_minimizes_quadratic(&mut opt, 0.05, 300);
        let mut opt = AdamW::<Tb>::new(AdamWConfig::default()).unwrap();
        assert_minimizes_quadratic(&mut opt, 0.05, 300);
    }

    #[test]
    fn adam_resume_is_bit_exact() {
        assert_resume_is_bit_exact(&OptimizerConfig::Adam(AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::default()
        }));
        assert_resume_is_bit_exact(&OptimizerConfig::AdamW(AdamWConfig::default()));
    }

    #[test]
    fn defaults_are_pytorch_defaults() {
        let adam = AdamConfig::default();
        assert_eq!((adam.beta1, adam.beta2), (0.9, 0.999));
        assert_eq!(adam.eps, 1e-8);
        assert_eq!(adam.weight_decay, 0.0);
        assert_eq!(AdamWConfig::default().weight_decay, 1e-2);
        assert!(AdamConfig {
            beta1: 1.0,
            ..AdamConfig::default()
        }
        .validate()
        .is_err());
        assert!(AdamWConfig {
            eps: -1.0,
            ..AdamWConfig::default()
        }
        .validate()
        .is_err());
    }
}
