//! NAdam, as `torch.optim.NAdam`.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::slots::Slots;
use super::{check, check_lr, pow_step, OptimError, Optimizer, OptimizerState};

pub(crate) const NAME: &str = "nadam";
const BUFFERS: &[&str] = &["exp_avg", "exp_avg_sq"];

/// Hyperparameters of [`Nadam`]; defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NadamConfig {
    /// Decay of the first moment, `beta1` (default 0.9).
    pub beta1: f64,
    /// Decay of the second moment, `beta2` (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default `1e-8`).
    pub eps: f64,
    /// Weight decay, `lambda` (default 0).
    pub weight_decay: f64,
    /// Momentum decay, `psi` (default `4e-3`).
    pub momentum_decay: f64,
    /// Decoupled (AdamW-style) weight decay instead of L2 added to the gradient (default false).
    pub decoupled_weight_decay: bool,
}

impl Default for NadamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
        }
    }
}

impl NadamConfig {
    /// Checks the ranges PyTorch's constructor checks.
    ///
    /// # Errors
    ///
    /// [`OptimError::InvalidConfig`] naming the setting out of range.
    pub fn validate(&self) -> Result<(), OptimError> {
        check::beta(NAME, "beta1", self.beta1)?;
        check::beta(NAME, "beta2", self.beta2)?;
        check::positive(NAME, "eps", self.eps)?;
        check::non_negative(NAME, "weight_decay", self.weight_decay)?;
        check::non_negative(NAME, "momentum_decay", self.momentum_decay)
    }

    /// The momentum coefficient of step `t`: `mu_t = beta1 * (1 - 0.5 * 0.96^(t * psi))`.
    fn mu(&self, t: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let exponent = t as f64 * self.momentum_decay;
        self.beta1 * (1.0 - 0.5 * 0.96f64.powf(exponent))
    }

    /// `prod_{i=1..=t} mu_i`, multiplied in step order (the same operations as in [`Nadam`]'s
    /// steps, so a loaded state continues with identical bits).
    fn mu_product(&self, t: u64) -> f64 {
        (1..=t).fold(1.0, |acc, i| acc * self.mu(i))
    }
}

/// NAdam (Dozat, 2016) exactly as `torch.optim.NAdam` defines it (`maximize=False`). With
/// learning rate `gamma_t` given to each step, for `t = 1, 2, ...`:
///
/// ```text
/// theta_{t-1} = theta_{t-1} * (1 - gamma_t * lambda)   (decoupled_weight_decay), or
/// g_t = grad + lambda * theta_{t-1}                    (otherwise, if lambda != 0)
/// mu_t     = beta1 * (1 - 0.5 * 0.96^(t * psi))
/// mu_{t+1} = beta1 * (1 - 0.5 * 0.96^((t + 1) * psi))
/// m_t = beta1 * m_{t-1} + (1 - beta1) * g_t            (exp_avg)
/// v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2          (exp_avg_sq)
/// m_hat_t = mu_{t+1} * m_t / (1 - prod_{i=1..t+1} mu_i) + (1 - mu_t) * g_t / (1 - prod_{i=1..t} mu_i)
/// v_hat_t = v_t / (1 - beta2^t)
/// theta_t = theta_{t-1} - gamma_t * m_hat_t / (sqrt(v_hat_t) + eps)
/// ```
///
/// The product of the `mu_i` (PyTorch's `mu_product`, kept there as an `f32` tensor) is kept
/// here in `f64` and is not part of the exported state: it is a function of the step count and
/// is recomputed, with the same operations, on [`load_state`](Optimizer::load_state).
/// Buffers: `exp_avg`, `exp_avg_sq`.
pub struct Nadam<B: Backend> {
    config: NadamConfig,
    slots: Slots<B>,
    mu_product: f64,
}

impl<B: Backend> Nadam<B> {
    /// A NAdam optimizer with empty state.
    ///
    /// # Errors
    ///
    /// If `config` is out of range ([`NadamConfig::validate`]).
    pub fn new(config: NadamConfig) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Self {
            config,
            slots: Slots::new(NAME, BUFFERS),
            mu_product: 1.0,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &NadamConfig {
        &self.config
    }
}

impl<B: Backend> Optimizer<B> for Nadam<B> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn step(&mut self, lr: f64, params: &mut [Tensor<B, 2>], grads: &[Tensor<B, 2>]) {
        check_lr(NAME, lr);
        let t = self.slots.begin_step(params, grads);
        let c = &self.config;
        let (beta1, beta2, eps, wd) = (c.beta1, c.beta2, c.eps, c.weight_decay);
        let decoupled = c.decoupled_weight_decay;
        let bias_correction2 = 1.0 - pow_step(beta2, t);
        let mu = c.mu(t);
        let mu_next = c.mu(t + 1);
        self.mu_product *= mu;
        let mu_product = self.mu_product;
        let mu_product_next = mu_product * mu_next;
        let grad_coef = lr * (1.0 - mu) / (1.0 - mu_product);
        let avg_coef = lr * mu_next / (1.0 - mu_product_next);
        self.slots
            .update_each::<2>(params, grads, |mut p, mut g, [m, v]| {
                if wd != 0.0 {
                    if decoupled {
                        p = p.mul_scalar(1.0 - lr * wd);
                    } else {
                        g = g.add(p.clone().mul_scalar(wd));
                    }
                }
                let m = m.mul_scalar(beta1).add(g.clone().mul_scalar(1.0 - beta1));
                let v = v
                    .mul_scalar(beta2)
                    .add(g.clone().mul(g.clone()).mul_scalar(1.0 - beta2));
                let denom = v
                    .clone()
                    .div_scalar(bias_correction2)
                    .sqrt()
                    .add_scalar(eps);
                let p = p
                    .sub(g.div(denom.clone()).mul_scalar(grad_coef))
                    .sub(m.clone().div(denom).mul_scalar(avg_coef));
                (p, [m, v])
            });
    }

    fn state(&self) -> OptimizerState {
        self.slots.export()
    }

    fn load_state(&mut self, state: OptimizerState, device: &B::Device) -> Result<(), OptimError> {
        let step = state.step;
        self.slots.import(state, device)?;
        self.mu_product = self.config.mu_product(step);
        Ok(())
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

    /// NAdam in f64, straight from the `torch.optim.NAdam` pseudo-code.
    struct RefNadam {
        c: NadamConfig,
        t: i32,
        mus: Vec<f64>,
        m: Vec<f64>,
        v: Vec<f64>,
    }

    impl RefNadam {
        fn new(c: NadamConfig) -> Self {
            Self {
                c,
                t: 0,
                mus: Vec::new(),
                m: Vec::new(),
                v: Vec::new(),
            }
        }

        fn mu(&self, t: i32) -> f64 {
            self.c.beta1 * (1.0 - 0.5 * 0.96f64.powf(f64::from(t) * self.c.momentum_decay))
        }
    }

    impl Reference for RefNadam {
        fn step(&mut self, lr: f64, p: &mut [f64], g: &[f64]) {
            if self.m.is_empty() {
                self.m = vec![0.0; p.len()];
                self.v = vec![0.0; p.len()];
            }
            self.t += 1;
            let t = self.t;
            let (b1, b2, lambda) = (self.c.beta1, self.c.beta2, self.c.weight_decay);
            let mu_t = self.mu(t);
            let mu_next = self.mu(t + 1);
            self.mus.push(mu_t);
            let prod_t: f64 = self.mus.iter().product();
            let prod_next = prod_t * mu_next;
            for i in 0..p.len() {
                let mut gi = g[i];
                if self.c.decoupled_weight_decay {
                    p[i] *= 1.0 - lr * lambda;
                } else {
                    gi += lambda * p[i];
                }
                self.m[i] = b1 * self.m[i] + (1.0 - b1) * gi;
                self.v[i] = b2 * self.v[i] + (1.0 - b2) * gi * gi;
                let m_hat =
                    mu_next * self.m[i] / (1.0 - prod_next) + (1.0 - mu_t) * gi / (1.0 - prod_t);
                let v_hat = self.v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * m_hat / (v_hat.sqrt() + self.c.eps);
            }
        }
    }

    #[test]
    fn nadam_matches_reference() {
        let c = NadamConfig::default();
        let mut opt = Nadam::<Tb>::new(c.clone()).unwrap();
        assert_matches_reference(&mut opt, &mut RefNadam::new(c), 20);

        let c = NadamConfig {
            weight_decay: 0.1,
            momentum_decay: 0.05,
            ..NadamConfig::default()
        };
        let mut opt = Nadam::<Tb>::new(c.clone()).unwrap();
        assert_matches_reference(&mut opt, &mut RefNadam::new(c), 21);

        let c = NadamConfig {
            weight_decay: 0.1,
            decoupled_weight_decay: true,
            beta2: 0.99,
            ..NadamConfig::default()
        };
        let mut opt = Nadam::<Tb>::new(c.clone()).unwrap();
        assert_matches_reference(&mut opt, &mut RefNadam::new(c), 22);
    }

    #[test]
    fn nadam_minimizes_quadratic() {
        let mut opt = Nadam::<Tb>::new(NadamConfig::default()).unwrap();
        assert_minimizes_quadratic(&mut opt, 0.05, 300);
    }

    #[test]
    fn nadam_resume_is_bit_exact() {
        assert_resume_is_bit_exact(&OptimizerConfig::Nadam(NadamConfig::default()));
        assert_resume_is_bit_exact(&OptimizerConfig::Nadam(NadamConfig {
            weight_decay: 0.01,
            decoupled_weight_decay: true,
            ..NadamConfig::default()
        }));
    }

    #[test]
    fn mu_product_recomputation_matches_incremental() {
        let c = NadamConfig::default();
        let mut incremental = 1.0;
        for t in 1..=50 {
            incremental *= c.mu(t);
            assert_eq!(incremental.to_bits(), c.mu_product(t).to_bits());
        }
    }
}
