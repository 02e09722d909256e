//! Stochastic gradient descent with momentum, as `torch.optim.SGD`.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::slots::Slots;
use super::{check, check_lr, OptimError, Optimizer, OptimizerState};

pub(crate) const NAME: &str = "sgd";
const WITH_MOMENTUM: &[&str] = &["momentum_buffer"];
const WITHOUT_MOMENTUM: &[&str] = &[];

/// Hyperparameters of [`Sgd`]; defaults are PyTorch's (plain gradient descent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Momentum factor, `mu` (default 0: no momentum buffer).
    pub momentum: f64,
    /// Dampening of the gradient in the momentum buffer, `tau` (default 0).
    pub dampening: f64,
    /// Nesterov momentum (default false; needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// L2 penalty added to the gradient, `lambda` (default 0).
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

impl SgdConfig {
    /// Checks the ranges PyTorch's constructor checks.
    ///
    /// # Errors
    ///
    /// [`OptimError::InvalidConfig`] naming the setting out of range.
    pub fn validate(&self) -> Result<(), OptimError> {
        check::non_negative(NAME, "momentum", self.momentum)?;
        check::require(NAME, "dampening", self.dampening.is_finite(), || {
            format!("dampening must be finite, got {}", self.dampening)
        })?;
        check::non_negative(NAME, "weight_decay", self.weight_decay)?;
        check::require(
            NAME,
            "nesterov",
            !self.nesterov || (self.momentum > 0.0 && self.dampening == 0.0),
            || "nesterov momentum requires a momentum and zero dampening".to_owned(),
        )
    }
}

/// SGD exactly as `torch.optim.SGD` defines it (`maximize=False`). With learning rate
/// `gamma_t` given to each step, for `t = 1, 2, ...`:
///
/// ```text
/// g_t = grad + lambda * theta_{t-1}                     (if weight_decay lambda != 0)
/// if mu != 0:
///     b_t = g_t                                         (t = 1)
///     b_t = mu * b_{t-1} + (1 - tau) * g_t              (t > 1)
///     g_t = g_t + mu * b_t   if nesterov,   else g_t = b_t
/// theta_t = theta_{t-1} - gamma_t * g_t
/// ```
///
/// Buffers: `momentum_buffer` (none without momentum).
pub struct Sgd<B: Backend> {
    config: SgdConfig,
    slots: Slots<B>,
}

impl<B: Backend> Sgd<B> {
    /// An SGD optimizer with empty state.
    ///
    /// # Errors
    ///
    /// If `config` is out of range ([`SgdConfig::validate`]).
    pub fn new(config: SgdConfig) -> Result<Self, OptimError> {
        config.validate()?;
        let names = if config.momentum != 0.0 {
            WITH_MOMENTUM
        } else {
            WITHOUT_MOMENTUM
        };
        Ok(Self {
            config,
            slots: Slots::new(NAME, names),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl<B: Backend> Optimizer<B> for Sgd<B> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn step(&mut self, lr: f64, params: &mut [Tensor<B, 2>], grads: &[Tensor<B, 2>]) {
        check_lr(NAME, lr);
        let t = self.slots.begin_step(params, grads);
        let SgdConfig {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } = self.config;
        let decay = |p: &Tensor<B, 2>, g: Tensor<B, 2>| {
            if weight_decay != 0.0 {
                g.add(p.clone().mul_scalar(weight_decay))
            } else {
                g
            }
        };
        if momentum == 0.0 {
            self.slots.update_each::<0>(params, grads, |p, g, []| {
                let g = decay(&p, g);
                (p.sub(g.mul_scalar(lr)), [])
            });
        } else {
            self.slots.update_each::<1>(params, grads, |p, g, [buf]| {
                let g = decay(&p, g);
                let buf = if t == 1 {
                    g.clone()
                } else {
                    buf.mul_scalar(momentum)
                        .add(g.clone().mul_scalar(1.0 - dampening))
                };
                let g = if nesterov {
                    g.add(buf.clone().mul_scalar(momentum))
                } else {
                    buf.clone()
                };
                (p.sub(g.mul_scalar(lr)), [buf])
            });
        }
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

    /// SGD in f64, straight from the `torch.optim.SGD` pseudo-code.
    struct RefSgd {
        c: SgdConfig,
        buf: Option<Vec<f64>>,
    }

    impl Reference for RefSgd {
        fn step(&mut self, lr: f64, p: &mut [f64], g: &[f64]) {
            let c = &self.c;
            let mut g: Vec<f64> = g
                .iter()
                .zip(p.iter())
                .map(|(g, p)| g + c.weight_decay * p)
                .collect();
            if c.momentum != 0.0 {
                let buf = match self.buf.take() {
                    None => g.clone(),
                    Some(b) => b
                        .iter()
                        .zip(&g)
                        .map(|(b, g)| c.momentum * b + (1.0 - c.dampening) * g)
                        .collect(),
                };
                if c.nesterov {
                    for (gi, bi) in g.iter_mut().zip(&buf) {
                        *gi += c.momentum * bi;
                    }
                } else {
                    g.clone_from(&buf);
                }
                self.buf = Some(buf);
            }
            for (pi, gi) in p.iter_mut().zip(&g) {
                *pi -= lr * gi;
            }
        }
    }

    fn check(config: SgdConfig, seed: u64) {
        let mut opt = Sgd::<Tb>::new(config.clone()).unwrap();
        let mut r = RefSgd {
            c: config,
            buf: None,
        };
        assert_matches_reference(&mut opt, &mut r, seed);
    }

    #[test]
    fn sgd_matches_reference() {
        check(SgdConfig::default(), 10);
        check(
            SgdConfig {
                momentum: 0.9,
                ..SgdConfig::default()
            },
            11,
        );
        check(
            SgdConfig {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.05,
                ..SgdConfig::default()
            },
            12,
        );
        check(
            SgdConfig {
                momentum: 0.5,
                dampening: 0.3,
                weight_decay: 0.01,
                ..SgdConfig::default()
            },
            13,
        );
    }

    #[test]
    fn sgd_minimizes_quadratic() {
        let plain = SgdConfig::default();
        let mut opt = Sgd::<Tb>::new(plain).unwrap();
        assert_minimizes_quadratic(&mut opt, 0.1, 100);
        let nesterov = SgdConfig {
            momentum: 0.9,
            nesterov: true,
            ..SgdConfig::default()
        };
        let mut opt = Sgd::<Tb>::new(nesterov).unwrap();
        assert_minimizes_quadratic(&mut opt, 0.02, 200);
    }

    #[test]
    fn sgd_resume_is_bit_exact() {
        assert_resume_is_bit_exact(&OptimizerConfig::Sgd(SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-3,
            ..SgdConfig::default()
        }));
        assert_resume_is_bit_exact(&OptimizerConfig::Sgd(SgdConfig {
            momentum: 0.9,
            dampening: 0.1,
            ..SgdConfig::default()
        }));
        assert_resume_is_bit_exact(&OptimizerConfig::Sgd(SgdConfig::default()));
    }

    #[test]
    fn nesterov_needs_momentum_without_dampening() {
        let bad = SgdConfig {
            nesterov: true,
            ..SgdConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = SgdConfig {
            nesterov: true,
            momentum: 0.9,
            dampening: 0.1,
            ..SgdConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
