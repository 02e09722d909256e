//! AdaBelief (Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
//! Observed Gradients", NeurIPS 2020, arXiv:2010.07468).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::slots::Slots;
use super::{check, check_lr, pow_step, OptimError, Optimizer, OptimizerState};

pub(crate) const NAME: &str = "adabelief";
const BUFFERS: &[&str] = &["exp_avg", "exp_avg_var"];

/// Hyperparameters of [`AdaBelief`]; defaults are those of the authors' `adabelief-pytorch`
/// 0.2, except rectification, which is off by default here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaBeliefConfig {
    /// Decay of the first moment, `beta1` (default 0.9).
    pub beta1: f64,
    /// Decay of the belief `s`, `beta2` (default 0.999).
    pub beta2: f64,
    /// Added to `s` at every step and to the denominator (default `1e-16`; it enters under a
    /// square root, so it plays the role of Adam's `eps^2`).
    pub eps: f64,
    /// Weight decay, `lambda` (default 0).
    pub weight_decay: f64,
    /// Decoupled (AdamW-style) weight decay instead of L2 added to the gradient (default true).
    pub decoupled_weight_decay: bool,
    /// RAdam-style rectification of the step size (default false).
    pub rectify: bool,
    /// With `rectify`, take an SGD-with-momentum step while the variance is intractable
    /// (`rho_t < 5`), rather than no step (default true).
    pub degenerated_to_sgd: bool,
}

impl Default for AdaBeliefConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-16,
            weight_decay: 0.0,
            decoupled_weight_decay: true,
            rectify: false,
            degenerated_to_sgd: true,
        }
    }
}

impl AdaBeliefConfig {
    /// Checks the ranges the reference implementation checks.
    ///
    /// # Errors
    ///
    /// [`OptimError::InvalidConfig`] naming the setting out of range.
    pub fn validate(&self) -> Result<(), OptimError> {
        check::beta(NAME, "beta1", self.beta1)?;
        check::beta(NAME, "beta2", self.beta2)?;
        check::positive(NAME, "eps", self.eps)?;
        check::non_negative(NAME, "weight_decay", self.weight_decay)
    }
}

/// AdaBelief, Algorithm 2 of Zhuang et al. (NeurIPS 2020), with the weight decay and optional
/// rectification of the authors' reference implementation (`adabelief-pytorch` 0.2). With
/// learning rate `alpha_t` given to each step, for `t = 1, 2, ...`:
///
/// ```text
/// theta_{t-1} = theta_{t-1} * (1 - alpha_t * lambda)      (decoupled_weight_decay), or
/// g_t = grad + lambda * theta_{t-1}                       (otherwise, if lambda != 0)
/// m_t = beta1 * m_{t-1} + (1 - beta1) * g_t               (exp_avg)
/// s_t = beta2 * s_{t-1} + (1 - beta2) * (g_t - m_t)^2 + eps   (exp_avg_var)
/// m_hat_t = m_t / (1 - beta1^t),  s_hat_t = s_t / (1 - beta2^t)
/// theta_t = theta_{t-1} - alpha_t * m_hat_t / (sqrt(s_hat_t) + eps)
/// ```
///
/// With `rectify` (off by default), as RAdam and the reference implementation:
/// `rho_inf = 2 / (1 - beta2) - 1`, `rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)`; when
/// `rho_t >= 5` the update is
/// `theta_t = theta_{t-1} - alpha_t * r_t / (1 - beta1^t) * m_t / (sqrt(s_t) + eps)` with
/// `r_t = sqrt((1 - beta2^t) (rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))`,
/// otherwise `theta_t = theta_{t-1} - alpha_t * m_hat_t` (`degenerated_to_sgd`) or no update.
/// Buffers: `exp_avg`, `exp_avg_var`.
pub struct AdaBelief<B: Backend> {
    config: AdaBeliefConfig,
    slots: Slots<B>,
}

impl<B: Backend> AdaBelief<B> {
    /// An AdaBelief optimizer with empty state.
    ///
    /// # Errors
    ///
    /// If `config` is out of range ([`AdaBeliefConfig::validate`]).
    pub fn new(config: AdaBeliefConfig) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Self {
            config,
            slots: Slots::new(NAME, BUFFERS),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdaBeliefConfig {
        &self.config
    }
}

/// How step `t` moves the parameters, given the updated moments.
#[derive(Clone, Copy)]
enum Update {
    /// `theta -= coef * m / (sqrt(s) / sqrt_bc2 + eps)`.
    Adaptive { coef: f64, sqrt_bc2: f64 },
    /// `theta -= coef * m`.
    Momentum { coef: f64 },
    /// No change.
    None,
}

impl AdaBeliefConfig {
    fn update(&self, lr: f64, t: u64) -> Update {
        let beta2_t = pow_step(self.beta2, t);
        let bias_correction1 = 1.0 - pow_step(self.beta1, t);
        let bias_correction2 = 1.0 - beta2_t;
        if !self.rectify {
            return Update::Adaptive {
                coef: lr / bias_correction1,
                sqrt_bc2: bias_correction2.sqrt(),
            };
        }
        let rho_inf = 2.0 / (1.0 - self.beta2) - 1.0;
        #[allow(clippy::cast_precision_loss)]
        let rho_t = rho_inf - 2.0 * t as f64 * beta2_t / bias_correction2;
        if rho_t >= 5.0 {
            let r = ((1.0 - beta2_t) * (rho_t - 4.0) / (rho_inf - 4.0) * (rho_t - 2.0) / rho_t
                * rho_inf
                / (rho_inf - 2.0))
                .sqrt();
            Update::Adaptive {
                coef: lr * r / bias_correction1,
                sqrt_bc2: 1.0,
            }
        } else if self.degenerated_to_sgd {
            Update::Momentum {
                coef: lr / bias_correction1,
            }
        } else {
            Update::None
        }
    }
}

impl<B: Backend> Optimizer<B> for AdaBelief<B> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn step(&mut self, lr: f64, params: &mut [Tensor<B, 2>], grads: &[Tensor<B, 2>]) {
        check_lr(NAME, lr);
        let t = self.slots.begin_step(params, grads);
        let c = &self.config;
        let (beta1, beta2, eps, wd) = (c.beta1, c.beta2, c.eps, c.weight_decay);
        let decoupled = c.decoupled_weight_decay;
        let update = c.update(lr, t);
        self.slots
            .update_each::<2>(params, grads, |mut p, mut g, [m, s]| {
                if wd != 0.0 {
                    if decoupled {
                        p = p.mul_scalar(1.0 - lr * wd);
                    } else {
                        g = g.add(p.clone().mul_scalar(wd));
                    }
                }
                let m = m.mul_scalar(beta1).add(g.clone().mul_scalar(1.0 - beta1));
                let residual = g.sub(m.clone());
                let s = s
                    .mul_scalar(beta2)
                    .add(residual.clone().mul(residual).mul_scalar(1.0 - beta2))
                    .add_scalar(eps);
                let p = match update {
                    Update::Adaptive { coef, sqrt_bc2 } => {
                        let denom = s.clone().sqrt().div_scalar(sqrt_bc2).add_scalar(eps);
                        p.sub(m.clone().div(denom).mul_scalar(coef))
                    }
                    Update::Momentum { coef } => p.sub(m.clone().mul_scalar(coef)),
                    Update::None => p,
                };
                (p, [m, s])
            });
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

    /// AdaBelief in f64, from Algorithm 2 of the paper (plus the reference implementation's
    /// weight decay and rectification).
    struct RefAdaBelief {
        c: AdaBeliefConfig,
        t: i32,
        m: Vec<f64>,
        s: Vec<f64>,
    }

    impl RefAdaBelief {
        fn new(c: AdaBeliefConfig) -> Self {
            Self {
                c,
                t: 0,
                m: Vec::new(),
                s: Vec::new(),
            }
        }
    }

    impl Reference for RefAdaBelief {
        fn step(&mut self, lr: f64, p: &mut [f64], g: &[f64]) {
            if self.m.is_empty() {
                self.m = vec![0.0; p.len()];
                self.s = vec![0.0; p.len()];
            }
            self.t += 1;
            let t = self.t;
            let c = &self.c;
            let (b1, b2, eps) = (c.beta1, c.beta2, c.eps);
            let bc1 = 1.0 - b1.powi(t);
            let bc2 = 1.0 - b2.powi(t);
            let rho_inf = 2.0 / (1.0 - b2) - 1.0;
            let rho_t = rho_inf - 2.0 * f64::from(t) * b2.powi(t) / bc2;
            for i in 0..p.len() {
                let mut gi = g[i];
                if c.decoupled_weight_decay {
                    p[i] *= 1.0 - lr * c.weight_decay;
                } else {
                    gi += c.weight_decay * p[i];
                }
                self.m[i] = b1 * self.m[i] + (1.0 - b1) * gi;
                let r = gi - self.m[i];
                self.s[i] = b2 * self.s[i] + (1.0 - b2) * r * r + eps;
                let m_hat = self.m[i] / bc1;
                let s_hat = self.s[i] / bc2;
                if !c.rectify {
                    p[i] -= lr * m_hat / (s_hat.sqrt() + eps);
                } else if rho_t >= 5.0 {
                    let r_t = (bc2 * (rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                        / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                        .sqrt();
                    p[i] -= lr * r_t * m_hat / (self.s[i].sqrt() + eps);
                } else if c.degenerated_to_sgd {
                    p[i] -= lr * m_hat;
                }
            }
        }
    }

    fn check(c: AdaBeliefConfig, seed: u64) {
        let mut opt = AdaBelief::<Tb>::new(c.clone()).unwrap();
        assert_matches_reference(&mut opt, &mut RefAdaBelief::new(c), seed);
    }

    #[test]
    fn adabelief_matches_reference() {
        check(AdaBeliefConfig::default(), 30);
        check(
            AdaBeliefConfig {
                eps: 1e-8,
                weight_decay: 0.1,
                ..AdaBeliefConfig::default()
            },
            31,
        );
        check(
            AdaBeliefConfig {
                weight_decay: 0.1,
                decoupled_weight_decay: false,
                beta1: 0.8,
                ..AdaBeliefConfig::default()
            },
            32,
        );
    }

    #[test]
    fn adabelief_rectified_matches_reference() {
        // beta2 = 0.9: rho_inf = 19, and rho_t reaches 5 at t = 6, so 20 steps cover both the
        // momentum steps and the rectified ones.
        check(
            AdaBeliefConfig {
                beta2: 0.9,
                rectify: true,
                ..AdaBeliefConfig::default()
            },
            33,
        );
        check(
            AdaBeliefConfig {
                beta2: 0.9,
                rectify: true,
                degenerated_to_sgd: false,
                ..AdaBeliefConfig::default()
            },
            34,
        );
    }

    #[test]
    fn adabelief_minimizes_quadratic() {
        let mut opt = AdaBelief::<Tb>::new(AdaBeliefConfig::default()).unwrap();
        assert_minimizes_quadratic(&mut opt, 0.05, 300);
    }

    #[test]
    fn adabelief_resume_is_bit_exact() {
        assert_resume_is_bit_exact(&OptimizerConfig::AdaBelief(AdaBeliefConfig::default()));
        assert_resume_is_bit_exact(&OptimizerConfig::AdaBelief(AdaBeliefConfig {
            beta2: 0.9,
            rectify: true,
            weight_decay: 0.01,
            ..AdaBeliefConfig::default()
        }));
    }
}
