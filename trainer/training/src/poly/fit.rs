//! Paper 002's training setup (sec. III.1): the observations are cut into initial value problems
//! between consecutive observation times, all of them are advanced in parallel as one batch each
//! epoch (one step of the chosen method per interval, or a fixed number of sub-steps), the loss is
//! the sum of squared residuals against the observation at the interval's end, and Adam updates
//! the Π-net. Any [`Stepper`] works: the explicit RK methods of [`crate::diffsolve`] and the implicit
//! ones with Newton iterations and implicit-function-theorem gradients.
//!
//! Intervals of different lengths (trajectories sampled at different rates) share the batch: each
//! row integrates `h_r f(x, u)` over unit time ([`PerRowTime`]), so one step size fits all.

use std::time::Instant;

use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Tensor, TensorData,
};
use serde::{Deserialize, Serialize};

use super::{PiNet, PiNetDef};
use crate::diffsolve::{PerRowTime, SolveError, Stepper};
use crate::nn::{download, upload};
use crate::optim::{Adam, AdamConfig, Optimizer};

/// One observed trajectory: states `x[k]` (length `n`) at times `t[k]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeSeries {
    /// Observation times, increasing.
    pub t: Vec<f64>,
    /// States at those times.
    pub x: Vec<Vec<f64>>,
}

/// Why the data or the settings were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FitError {
    /// Trajectories without two observations, ragged states, or times not increasing.
    #[error("invalid training data: {0}")]
    Data(String),
    /// A setting out of range.
    #[error("invalid training setting: {0}")]
    Config(String),
}

/// All intervals between consecutive observations, as rows of one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Intervals {
    /// States.
    pub n: usize,
    /// Start states, `[rows, n]` row-major.
    pub start: Vec<f32>,
    /// End states (the targets), `[rows, n]`.
    pub end: Vec<f32>,
    /// Start time of each row.
    pub t0: Vec<f64>,
    /// Length of each row's interval.
    pub h: Vec<f64>,
}

impl Intervals {
    /// Cuts trajectories into intervals.
    pub fn new(trajs: &[TimeSeries]) -> Result<Self, FitError> {
        let n = trajs.first().and_then(|t| t.x.first()).map_or(0, Vec::len);
        if n == 0 {
            return Err(FitError::Data("no trajectory with a state".into()));
        }
        let mut out = Intervals {
            n,
            start: Vec::new(),
            end: Vec::new(),
            t0: Vec::new(),
            h: Vec::new(),
        };
        for (i, tr) in trajs.iter().enumerate() {
            if tr.t.len() != tr.x.len() || tr.t.len() < 2 {
                return Err(FitError::Data(format!(
                    "trajectory {i}: {} times and {} states (need at least two of each, equally many)",
                    tr.t.len(),
                    tr.x.len()
                )));
            }
            for k in 0..tr.t.len() - 1 {
                let h = tr.t[k + 1] - tr.t[k];
                if h.is_nan() || h <= 0.0 || !h.is_finite() {
                    return Err(FitError::Data(format!(
                        "trajectory {i}: times not increasing at observation {k}"
                    )));
                }
                if tr.x[k].len() != n || tr.x[k + 1].len() != n {
                    return Err(FitError::Data(format!(
                        "trajectory {i}: observation {k} does not have {n} states"
                    )));
                }
                out.start.extend(tr.x[k].iter().map(|&v| v as f32));
                out.end.extend(tr.x[k + 1].iter().map(|&v| v as f32));
                out.t0.push(tr.t[k]);
                out.h.push(h);
            }
        }
        if out.start.iter().chain(&out.end).any(|v| !v.is_finite()) {
            return Err(FitError::Data("a state is not finite (in f32)".into()));
        }
        Ok(out)
    }

    /// Number of intervals.
    pub fn rows(&self) -> usize {
        self.h.len()
    }

    /// Per-state output scale for the Π-net: the largest observed slope `|Δx_i / h|`, floored at
    /// a millionth of the largest (so a constant state does not get a zero scale).
    pub fn slope_scale(&self) -> Vec<f64> {
        let mut s = vec![0.0f64; self.n];
        for r in 0..self.rows() {
            for (i, si) in s.iter_mut().enumerate() {
                let d = f64::from(self.end[r * self.n + i] - self.start[r * self.n + i]).abs()
                    / self.h[r];
                *si = si.max(d);
            }
        }
        let top = s.iter().copied().fold(0.0, f64::max).max(1e-12);
        s.iter().map(|&v| v.max(top * 1e-6)).collect()
    }

    /// Per-state magnitude: the largest observed `|x_i|`, floored at a millionth of the largest.
    /// HIRES's species differ by three orders of magnitude; as the Π-net's input scale it makes
    /// every input of order one, and as a loss weight `1 / c_i^2` it makes the small species count.
    pub fn state_scale(&self) -> Vec<f64> {
        let mut s = vec![0.0f64; self.n];
        for (k, v) in self.start.iter().chain(&self.end).enumerate() {
            let i = k % self.n;
            s[i] = s[i].max(f64::from(*v).abs());
        }
        let top = s.iter().copied().fold(0.0, f64::max).max(1e-12);
        s.iter().map(|&v| v.max(top * 1e-6)).collect()
    }
}

/// The drive `u(t)` of a non-autonomous problem; `None` for autonomous ones (`u = 0`).
pub type DriveFn<'a> = Option<&'a (dyn Fn(f64) -> f64 + Sync)>;

/// Training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Epochs (one Adam step per epoch: the whole data set is one batch).
    pub epochs: usize,
    /// Adam learning rate at the first epoch.
    pub lr: f64,
    /// Learning rate at the last epoch: the rate decays exponentially from `lr` to it, so the
    /// large coefficients of stiff problems are reached in few steps and then resolved finely.
    pub lr_final: f64,
    /// Solver steps per interval.
    pub substeps: usize,
    /// Adam's second-moment decay. Below PyTorch's 0.999: the SSR gradient of a stiff fit shrinks
    /// by orders of magnitude once the slow manifold is matched, and a long memory of the early
    /// large gradients then throttles the steps along the weakly determined stiff direction.
    pub beta2: f64,
    /// Per-state weights of the squared residuals (`None`: paper 002's plain SSR, all ones).
    pub weights: Option<Vec<f64>>,
}

impl FitConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), FitError> {
        if self.epochs == 0 || self.substeps == 0 {
            return Err(FitError::Config(
                "epochs and substeps must be at least 1".into(),
            ));
        }
        if let Some(w) = &self.weights {
            if w.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(FitError::Config(format!(
                    "loss weights must be positive and finite, got {w:?}"
                )));
            }
        }
        if !(self.lr > 0.0
            && self.lr.is_finite()
            && self.lr_final > 0.0
            && self.lr_final <= self.lr)
        {
            return Err(FitError::Config(format!(
                "lr {} and lr_final {} must be positive with lr_final <= lr",
                self.lr, self.lr_final
            )));
        }
        Ok(())
    }
}

/// How training ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Every epoch ran.
    Completed,
    /// Training could not go on: the loss exploded (above [`DIVERGED`] times the SSR of
    /// predicting no change) or stopped being finite, a gradient stopped being finite (the
    /// explicit-method failure of paper 002 Fig. 4), or a step failed (Newton did not converge).
    Halted {
        /// The 1-based epoch at which it stopped.
        epoch: usize,
        /// Why.
        reason: String,
    },
}

/// Training halts when the SSR exceeds this multiple of the SSR of predicting "no change" over
/// every interval: predictions a thousand times further off than the whole observed change mean
/// the solver is unstable on the learned field (an explicit step far outside its stability
/// region), and Adam cannot recover from there.
pub const DIVERGED: f64 = 1e6;

/// What a training run returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Parameters with the lowest loss seen (the ones the loss was last finite for, if halted).
    pub params: Vec<Vec<f32>>,
    /// Lowest loss.
    pub best_loss: f64,
    /// SSR loss per epoch completed (before that epoch's update).
    pub losses: Vec<f64>,
    /// Mean wall time per epoch (forward, backward, update), seconds.
    pub seconds_per_epoch: f64,
    /// Epochs whose loss was more than ten times the lowest before them: the unstable training
    /// of an explicit method on a stiffening net shows here before it halts.
    pub spikes: usize,
    /// How it ended.
    pub outcome: Outcome,
}

fn tensor2<B: Backend>(v: Vec<f32>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Constant tensors of the data set on a device.
pub struct Batch<B: Backend> {
    start: Tensor<B, 2>,
    end: Tensor<B, 2>,
    dt: Tensor<B, 2>,
    zeros: Tensor<B, 2>,
    weights: Option<Tensor<B, 2>>,
    t0: Vec<f64>,
    h: Vec<f64>,
}

impl<B: Backend> Batch<B> {
    /// Uploads the intervals.
    pub fn new(data: &Intervals, device: &B::Device) -> Self {
        let m = data.rows();
        Batch {
            start: tensor2(data.start.clone(), [m, data.n], device),
            end: tensor2(data.end.clone(), [m, data.n], device),
            dt: tensor2(data.h.iter().map(|&h| h as f32).collect(), [m, 1], device),
            zeros: Tensor::zeros([m, 1], device),
            weights: None,
            t0: data.t0.clone(),
            h: data.h.clone(),
        }
    }

    /// Weights the squared residual of state `i` by `weights[i]` (one per state).
    pub fn with_weights(mut self, weights: &[f64], device: &B::Device) -> Self {
        let w: Vec<f32> = weights.iter().map(|&v| v as f32).collect();
        let n = w.len();
        self.weights = Some(tensor2(w, [1, n], device));
        self
    }
}

/// The end states predicted for every interval, `[rows, n]`: `substeps` steps of `stepper` on
/// the Π-net field from the observed start states.
pub fn predict<B: Backend>(
    def: &PiNetDef,
    params: &[Tensor<B, 2>],
    batch: &Batch<B>,
    drive: DriveFn<'_>,
    stepper: &dyn Stepper<B>,
    substeps: usize,
    device: &B::Device,
) -> Result<Tensor<B, 2>, SolveError> {
    let net = PiNet::new(def, params, device);
    let field = PerRowTime {
        field: &net,
        dt: batch.dt.clone(),
    };
    let s = substeps.max(1);
    let hs = 1.0 / s as f64;
    let mut x = batch.start.clone();
    for j in 0..s {
        let at = |c: f64| -> Tensor<B, 2> {
            match drive {
                None => batch.zeros.clone(),
                Some(u) => {
                    let v: Vec<f32> = batch
                        .t0
                        .iter()
                        .zip(&batch.h)
                        .map(|(&t0, &h)| u(t0 + h * (j as f64 + c) * hs) as f32)
                        .collect();
                    tensor2(v, [batch.t0.len(), 1], device)
                }
            }
        };
        let f0 = crate::diffsolve::VectorField::eval(&field, x.clone(), at(0.0));
        x = stepper.step(&field, x, f0, hs, &at)?;
    }
    Ok(x)
}

/// The sum of squared residuals of [`predict`] against the observed end states (weighted per
/// state when the batch has weights).
pub fn ssr<B: Backend>(
    def: &PiNetDef,
    params: &[Tensor<B, 2>],
    batch: &Batch<B>,
    drive: DriveFn<'_>,
    stepper: &dyn Stepper<B>,
    substeps: usize,
    device: &B::Device,
) -> Result<Tensor<B, 1>, SolveError> {
    let x = predict(def, params, batch, drive, stepper, substeps, device)?;
    let r2 = (x - batch.end.clone()).powi_scalar(2);
    Ok(match &batch.weights {
        Some(w) => (r2 * w.clone()).sum(),
        None => r2.sum(),
    })
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// The SSR and one gradient per parameter tensor.
pub type LossAndGrad<B> = (f64, Vec<Tensor<<B as AutodiffBackend>::InnerBackend, 2>>);

/// The SSR and its gradient with respect to every parameter (one autodiff leaf for all of them,
/// as [`crate::train`] does, viewed per parameter).
pub fn ssr_and_grad<B: AutodiffBackend>(
    def: &PiNetDef,
    params: &[Tensor<B::InnerBackend, 2>],
    batch: &Batch<B>,
    drive: DriveFn<'_>,
    stepper: &dyn Stepper<B>,
    substeps: usize,
    device: &B::Device,
) -> Result<LossAndGrad<B>, SolveError> {
    let (leaf, ad) = crate::leaf::Leaf::<B>::new(params);
    let loss = ssr(def, &ad, batch, drive, stepper, substeps, device)?;
    let value = scalar(loss.clone().inner());
    if !value.is_finite() {
        return Ok((value, Vec::new()));
    }
    let g = leaf.grads(&loss.backward());
    Ok((value, g))
}

fn all_finite<B: Backend>(g: &[Tensor<B, 2>]) -> bool {
    g.iter().all(|t| {
        t.clone()
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map(|v| v.iter().all(|x| x.is_finite()))
            .unwrap_or(false)
    })
}

/// Trains from `init` with Adam on the SSR of one batch of all intervals. `on_epoch(epoch, loss)`
/// is called after every epoch (1-based), for progress output.
#[allow(clippy::too_many_arguments)]
pub fn fit<B: AutodiffBackend>(
    def: &PiNetDef,
    init: Vec<Vec<f32>>,
    data: &Intervals,
    drive: DriveFn<'_>,
    stepper: &dyn Stepper<B>,
    cfg: &FitConfig,
    device: &B::Device,
    on_epoch: &mut dyn FnMut(usize, f64),
) -> Result<FitReport, FitError> {
    cfg.validate()?;
    def.validate()
        .map_err(|e| FitError::Config(e.to_string()))?;
    def.check_values(&init)
        .map_err(|e| FitError::Config(e.to_string()))?;
    if data.n != def.outputs || def.inputs != data.n + 1 {
        return Err(FitError::Config(format!(
            "the net has {} outputs and {} inputs for {} states (needs n and n + 1)",
            def.outputs, def.inputs, data.n
        )));
    }
    let shapes = def.param_shapes();
    if cfg.weights.as_ref().is_some_and(|w| w.len() != data.n) {
        return Err(FitError::Config(format!(
            "{} loss weights for {} states",
            cfg.weights.as_ref().map_or(0, Vec::len),
            data.n
        )));
    }
    let unit = vec![1.0; data.n];
    let weights = cfg.weights.as_deref().unwrap_or(&unit);
    let batch = match &cfg.weights {
        Some(w) => Batch::<B>::new(data, device).with_weights(w, device),
        None => Batch::<B>::new(data, device),
    };
    let mut params = upload::<B::InnerBackend>(&init, &shapes, device);
    let mut opt: Adam<B::InnerBackend> = Adam::new(AdamConfig {
        beta2: cfg.beta2,
        ..AdamConfig::default()
    })
    .map_err(|e| FitError::Config(e.to_string()))?;
    let mut best = (f64::INFINITY, init);
    let mut losses = Vec::with_capacity(cfg.epochs);
    let mut spikes = 0;
    let mut outcome = Outcome::Completed;
    let baseline: f64 = data
        .start
        .iter()
        .zip(&data.end)
        .enumerate()
        .map(|(k, (a, b))| weights[k % data.n] * f64::from(b - a).powi(2))
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let started = Instant::now();
    for epoch in 1..=cfg.epochs {
        let (loss, grads) =
            match ssr_and_grad::<B>(def, &params, &batch, drive, stepper, cfg.substeps, device) {
                Ok(v) => v,
                Err(e) => {
                    outcome = Outcome::Halted {
                        epoch,
                        reason: format!("the solver failed: {e}"),
                    };
                    break;
                }
            };
        if !loss.is_finite() {
            outcome = Outcome::Halted {
                epoch,
                reason: format!("the SSR loss became {loss}"),
            };
            break;
        }
        if loss > DIVERGED * baseline {
            outcome = Outcome::Halted {
                epoch,
                reason: format!(
                    "the SSR loss exploded to {loss:.3e}, {:.1e} times that of predicting no change \
                     ({baseline:.3e}): the solver is unstable on the learned field",
                    loss / baseline
                ),
            };
            break;
        }
        if !all_finite(&grads) {
            outcome = Outcome::Halted {
                epoch,
                reason: "a gradient stopped being finite".into(),
            };
            break;
        }
        if loss > 10.0 * best.0 {
            spikes += 1;
        }
        if loss < best.0 {
            best = (loss, download(&params));
        }
        losses.push(loss);
        let frac = (epoch - 1) as f64 / (cfg.epochs.max(2) - 1) as f64;
        let lr = cfg.lr * (cfg.lr_final / cfg.lr).powf(frac);
        opt.step(lr, &mut params, &grads);
        on_epoch(epoch, loss);
    }
    let epochs_run = losses.len().max(1);
    Ok(FitReport {
        params: best.1,
        best_loss: best.0,
        losses,
        seconds_per_epoch: started.elapsed().as_secs_f64() / epochs_run as f64,
        spikes,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuAd;
    use crate::diffsolve::ExplicitRk;
    use odeflash_reference::rng::Rng;
    use odeflash_runtime::Solver;

    /// f64 RK4 on the net over every interval with `s` substeps: the SSR weighted per state by
    /// `w`, independently of burn.
    fn ssr_f64(def: &PiNetDef, v: &[Vec<f32>], data: &Intervals, s: usize, w: &[f64]) -> f64 {
        let n = data.n;
        let f = |x: &[f64], h: f64| -> Vec<f64> {
            let mut z = x.to_vec();
            z.push(0.0);
            def.eval_f64(v, &z).iter().map(|d| d * h).collect()
        };
        let mut total = 0.0;
        for r in 0..data.rows() {
            let mut x: Vec<f64> = data.start[r * n..(r + 1) * n]
                .iter()
                .map(|&a| a as f64)
                .collect();
            let hs = 1.0 / s as f64;
            for _ in 0..s {
                let add = |a: &[f64], b: &[f64], k: f64| -> Vec<f64> {
                    a.iter().zip(b).map(|(p, q)| p + k * q).collect()
                };
                let k1 = f(&x, data.h[r]);
                let k2 = f(&add(&x, &k1, hs / 2.0), data.h[r]);
                let k3 = f(&add(&x, &k2, hs / 2.0), data.h[r]);
                let k4 = f(&add(&x, &k3, hs), data.h[r]);
                for (i, xi) in x.iter_mut().enumerate() {
                    *xi += hs / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
                }
            }
            for (i, xi) in x.iter().enumerate() {
                total += w[i] * (xi - data.end[r * n + i] as f64).powi(2);
            }
        }
        total
    }

    /// The autodiff gradient of the (state-weighted, input-scaled) SSR training step against
    /// central finite differences of an f64 re-implementation (RK4 on the f64 net), for every
    /// parameter tensor.
    #[test]
    fn ssr_gradient_matches_finite_differences() {
        let mut def = PiNetDef::new(2, 4, 2).unwrap();
        def.out_scale = vec![3.0, 0.5];
        def.in_scale = vec![2.0, 0.5, 1.0];
        let w = [1.0, 4.0];
        let mut rng = Rng::new(5);
        let mut values = def.init(&mut rng);
        for v in values.iter_mut() {
            for x in v.iter_mut() {
                *x += (rng.normal() * 0.2) as f32;
            }
        }
        let trajs = vec![TimeSeries {
            t: vec![0.0, 0.1, 0.25, 0.4],
            x: vec![
                vec![1.0, 0.5],
                vec![0.8, 0.6],
                vec![0.7, 0.4],
                vec![0.5, 0.45],
            ],
        }];
        let data = Intervals::new(&trajs).unwrap();
        let device = Default::default();
        let batch = Batch::<CpuAd>::new(&data, &device).with_weights(&w, &device);
        let params = upload(&values, &def.param_shapes(), &device);
        let (loss, grads) = ssr_and_grad::<CpuAd>(
            &def,
            &params,
            &batch,
            None,
            &ExplicitRk(Solver::Rk4),
            2,
            &device,
        )
        .unwrap();
        let reference = ssr_f64(&def, &values, &data, 2, &w);
        assert!((loss - reference).abs() <= 1e-5 * reference.max(1e-6));
        let g = download(&grads);
        let eps = 1e-3f32;
        for (p, gp) in g.iter().enumerate() {
            for idx in [0, gp.len() - 1] {
                let mut plus = values.clone();
                plus[p][idx] += eps;
                let mut minus = values.clone();
                minus[p][idx] -= eps;
                let fd = (ssr_f64(&def, &plus, &data, 2, &w) - ssr_f64(&def, &minus, &data, 2, &w))
                    / (2.0 * eps as f64);
                let got = gp[idx] as f64;
                assert!(
                    (got - fd).abs() <= 2e-3 * fd.abs().max(1e-2),
                    "param {p}[{idx}]: autodiff {got} vs finite difference {fd}"
                );
            }
        }
    }

    /// The state scale is the largest magnitude per state, floored relative to the largest.
    #[test]
    fn state_scale_is_the_largest_magnitude() {
        let trajs = vec![TimeSeries {
            t: vec![0.0, 1.0, 2.0],
            x: vec![
                vec![1.0, -3e-3, 0.0],
                vec![0.5, 1e-3, 0.0],
                vec![-2.0, 2e-3, 0.0],
            ],
        }];
        let s = Intervals::new(&trajs).unwrap().state_scale();
        assert_eq!(s[0], 2.0);
        assert!((s[1] - 3e-3).abs() < 1e-9);
        assert!((s[2] - 2e-6).abs() < 1e-12);
    }

    #[test]
    fn refuses_bad_data() {
        let one = TimeSeries {
            t: vec![0.0],
            x: vec![vec![1.0]],
        };
        assert!(Intervals::new(&[one]).is_err());
        let back = TimeSeries {
            t: vec![0.0, 0.0],
            x: vec![vec![1.0], vec![2.0]],
        };
        assert!(Intervals::new(&[back]).is_err());
    }
}
