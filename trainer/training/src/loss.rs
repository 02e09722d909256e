//! The objective of paper 000 (sec. II-A): normalized MSE of the observed channels (L_b), of
//! their first and second time derivatives (L_v, L_c, eq. 6-7), each sequence divided by its own
//! trajectory's standard deviation (eq. 3-4); the sigmoid constraint loss (eq. 8); and the
//! adaptive weights of Algorithm 1 (geometric mean, epsilon, clamped), recomputed every step from
//! the current values of the terms, which are not differentiated through.
//!
//! Derivatives are finite differences in sample units: with per-trajectory normalization the
//! sample interval cancels, so trajectories at different sample rates share one batch.

use burn::tensor::{activation::sigmoid, backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// Which terms and weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Include L_v and L_c; `false` is the paper's "base loss only" ablation.
    pub derivatives: bool,
    /// Algorithm 1's adaptive weights; `false` weighs every term 1.
    pub adaptive: bool,
    /// Algorithm 1's epsilon.
    pub eps: f64,
    /// Algorithm 1's lower clamp.
    pub lambda_min: f64,
    /// Algorithm 1's upper clamp.
    pub lambda_max: f64,
    /// Steepness of the constraint loss (eq. 8; the paper's Fig. 2 uses 0.0025).
    pub gamma: f64,
    /// Weight of the constraint loss.
    pub constraint_weight: f64,
    /// Samples between the points of the finite differences behind L_v and L_c. At 1000
    /// samples per period, differences of neighbouring samples of a measured record are mostly
    /// DAQ noise; over a few samples they are the response's slope and curvature.
    #[serde(skip_serializing_if = "is_one")]
    pub derivative_stride: usize,
}

/// The default stride stays out of resolved configs, so their resume hashes do not change.
fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            derivatives: false,
            adaptive: true,
            eps: 1e-8,
            lambda_min: 0.1,
            lambda_max: 10.0,
            gamma: 0.0025,
            constraint_weight: 1.0,
            derivative_stride: 1,
        }
    }
}

impl LossConfig {
    /// The paper's full objective.
    pub fn paper() -> Self {
        LossConfig {
            derivatives: true,
            ..Default::default()
        }
    }
}

/// Algorithm 1: weights that pull the three terms towards their geometric mean.
pub fn adaptive_weights(terms: [f64; 3], eps: f64, lo: f64, hi: f64) -> [f64; 3] {
    let mean = ((terms[0] + eps).ln() + (terms[1] + eps).ln() + (terms[2] + eps).ln()) / 3.0;
    let g = mean.exp();
    terms.map(|t| (g / (t + eps)).clamp(lo, hi))
}

/// Eq. 8 over every element of `x`: `E[sigma((a - x)/gamma)(a - x)^2 + sigma((x - b)/gamma)(x - b)^2]`.
pub fn constraint<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    gamma: f64,
) -> Tensor<B, 1> {
    let below = a - x.clone();
    let above = x - b;
    let lo = sigmoid(below.clone() / gamma) * below.powi_scalar(2);
    let hi = sigmoid(above.clone() / gamma) * above.powi_scalar(2);
    (lo + hi).mean()
}

/// Differences along time (dimension 0) over `s` samples.
fn diff<B: Backend>(x: Tensor<B, 3>, s: usize) -> Tensor<B, 3> {
    let [l, b, c] = x.dims();
    x.clone().slice([s..l, 0..b, 0..c]) - x.slice([0..l - s, 0..b, 0..c])
}

/// The values of the terms after a step, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Terms {
    /// L_b.
    pub base: f64,
    /// L_v.
    pub velocity: f64,
    /// L_c.
    pub curvature: f64,
    /// Constraint loss.
    pub constraint: f64,
}

/// Normalized MSE of `pred` against `target` (`[samples, batch, channels]`) with inverse
/// variances `w: [3][1, batch, channels]` for values, first and second differences.
pub fn objective<B: Backend>(
    pred: Tensor<B, 3>,
    target: Tensor<B, 3>,
    w: [Tensor<B, 3>; 3],
    constraint: Option<Tensor<B, 1>>,
    cfg: &LossConfig,
) -> (Tensor<B, 1>, Terms) {
    let value = |t: &Tensor<B, 1>| {
        t.clone()
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(f64::NAN)
    };
    // Mean over samples and batch, summed over channels (eq. 5: NMSE(v) + NMSE(i)).
    let channels = pred.dims()[2] as f64;
    let nmse = |p: Tensor<B, 3>, t: Tensor<B, 3>, w: Tensor<B, 3>| {
        ((p - t).powi_scalar(2) * w).mean() * channels
    };
    let [w0, w1, w2] = w;
    let base = nmse(pred.clone(), target.clone(), w0);
    let mut terms = Terms {
        base: value(&base),
        ..Terms::default()
    };
    let s = cfg.derivative_stride.max(1);
    let mut loss = if cfg.derivatives && pred.dims()[0] > 2 * s {
        let (dp, dt) = (diff(pred, s), diff(target, s));
        let vel = nmse(dp.clone(), dt.clone(), w1);
        let curv = nmse(diff(dp, s), diff(dt, s), w2);
        terms.velocity = value(&vel);
        terms.curvature = value(&curv);
        let lambda = if cfg.adaptive {
            adaptive_weights(
                [terms.base, terms.velocity, terms.curvature],
                cfg.eps,
                cfg.lambda_min,
                cfg.lambda_max,
            )
        } else {
            [1.0; 3]
        };
        base * lambda[0] + vel * lambda[1] + curv * lambda[2]
    } else {
        base
    };
    if let Some(c) = constraint {
        terms.constraint = value(&c);
        loss = loss + c * cfg.constraint_weight;
    }
    (loss, terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::tensor::TensorData;

    #[test]
    fn algorithm_1_balances_and_clamps() {
        let w = adaptive_weights([1e-2, 1e-1, 1.0], 0.0, 0.1, 10.0);
        // Geometric mean 0.1: weights 10, 1, 0.1.
        assert!(
            (w[0] - 10.0).abs() < 1e-9 && (w[1] - 1.0).abs() < 1e-9 && (w[2] - 0.1).abs() < 1e-9
        );
        let w = adaptive_weights([1e-6, 1.0, 1.0], 0.0, 0.1, 10.0);
        assert_eq!(w[0], 10.0, "clamped above");
        assert_eq!(w[1], 0.1, "clamped below");
    }

    #[test]
    fn constraint_is_small_inside_and_quadratic_outside() {
        let d = Default::default();
        let t = |v: f32| Tensor::<Cpu, 1>::from_data(TensorData::new(vec![v], [1]), &d);
        let c = |x: f32| {
            constraint(t(x), t(0.0), t(1.0), 0.0025)
                .into_data()
                .into_vec::<f32>()
                .unwrap()[0]
        };
        assert!(c(0.5) < 1e-30);
        assert!((c(1.5) - 0.25).abs() < 1e-6, "{}", c(1.5));
        assert!((c(-0.5) - 0.25).abs() < 1e-6);
        assert!(c(1.001) > 0.0 && c(1.001) < 1e-6);
    }

    #[test]
    fn base_term_is_the_papers_nmse() {
        let d = Default::default();
        // One trajectory, two channels, 3 samples; variances 4 and 1.
        let pred = Tensor::<Cpu, 3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 2.0, 0.0, 3.0, 0.0], [3, 1, 2]),
            &d,
        );
        let target = Tensor::<Cpu, 3>::from_data(
            TensorData::new(vec![0.0f32, 1.0, 0.0, 1.0, 0.0, 1.0], [3, 1, 2]),
            &d,
        );
        let w = |a: f32, b: f32| {
            Tensor::<Cpu, 3>::from_data(TensorData::new(vec![a, b], [1, 1, 2]), &d)
        };
        let (_, terms) = objective(
            pred,
            target,
            [w(0.25, 1.0), w(1.0, 1.0), w(1.0, 1.0)],
            None,
            &LossConfig::default(),
        );
        // NMSE(ch0) = mean([1, 4, 9]) / 4 = 14/12; NMSE(ch1) = 1.
        assert!(
            (terms.base - (14.0 / 12.0 + 1.0)).abs() < 1e-6,
            "{}",
            terms.base
        );
    }
}
