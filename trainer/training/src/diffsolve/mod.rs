//! Differentiable solvers, discretize-then-optimize: every solver step is a handful of tensor ops
//! that burn's autodiff records, so gradients are exact for the discrete solution.
//!
//! - Fixed-step explicit RK (the runtime's tableaux): a step may span several samples
//!   (`stride`), with the output at the sample times from cubic Hermite interpolation of the step
//!   ends and their derivatives, or a sample may hold several steps (`substeps`), as on the device.
//! - Adaptive Tsit5 / Dopri5 with rtol/atol step control (Hairer-Norsett-Wanner norm and
//!   controller); step sizes are chosen from values without gradient, as in torchdiffeq and
//!   Diffrax, and the output at sample times is again Hermite-interpolated.
//! - [`Stepper`] is the seam for other one-step methods: the implicit steps of
//!   [`crate::diffsolve::implicit`] (Newton iterations, implicit-function-theorem gradients) plug in here and
//!   need the field's exact Jacobian, [`VectorField::linearize`].
//!
//! The drive (supply voltage) is given per batch element as samples and interpolated linearly
//! between them, exactly as the runtime does on the device.

pub mod implicit;

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use odeflash_runtime::Solver;

/// A vector field `dx/dt = f(x, u)` over a batch: `x: [batch, n]`, `u: [batch, 1]`.
pub trait VectorField<B: Backend> {
    /// The derivative.
    fn eval(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Tensor<B, 2>;

    /// The derivative and its exact Jacobian `∂f/∂x` (`[batch, n, n]`, `J[b][r][c] = ∂f_r/∂x_c`)
    /// as constants: no gradient flows through them, and on an autodiff backend nothing may be
    /// recorded (evaluate with detached parameters), because implicit steps call this inside
    /// every Newton iteration.
    ///
    /// `None` (the default) means the field cannot differentiate itself and implicit steps report
    /// [`SolveError::NoJacobian`]: a black-box `eval` admits no exact Jacobian except by finite
    /// differences, which would also corrupt the implicit-function-theorem gradient, and an
    /// autodiff pass inside the forward solve would disturb the training graph. Fields built from
    /// [`crate::nn::Mlp`] implement it with [`crate::nn::Mlp::forward_jacobian`].
    fn linearize(
        &self,
        _x: Tensor<B, 2>,
        _u: Tensor<B, 2>,
    ) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
        None
    }
}

impl<B: Backend, F: Fn(Tensor<B, 2>, Tensor<B, 2>) -> Tensor<B, 2>> VectorField<B> for F {
    fn eval(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Tensor<B, 2> {
        self(x, u)
    }
}

/// Drive samples, one row per batch element, all of the same length, uniformly spaced.
#[derive(Clone, Debug, PartialEq)]
pub struct Drive {
    /// `rows[b][s]`: drive of batch element `b` at sample `s`.
    pub rows: Vec<Vec<f32>>,
}

impl Drive {
    /// A drive of zeros (autonomous systems).
    pub fn zeros(batch: usize, samples: usize) -> Self {
        Drive {
            rows: vec![vec![0.0; samples]; batch],
        }
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.rows.len()
    }

    /// Linear interpolation at fractional sample position `p` (clamped to the table), computed
    /// like the runtime: `u[i] + frac * (u[i+1] - u[i])`.
    pub fn at(&self, b: usize, p: f64) -> f32 {
        let row = &self.rows[b];
        let last = row.len().saturating_sub(1);
        let p = p.clamp(0.0, last as f64);
        let i = (p.floor() as usize).min(last.saturating_sub(1));
        let frac = (p - i as f64) as f32;
        if last == 0 {
            return row[0];
        }
        row[i] + frac * (row[i + 1] - row[i])
    }

    /// The drive at position `p` for the whole batch, as a `[batch, 1]` tensor.
    pub fn column<B: Backend>(&self, p: f64, device: &B::Device) -> Tensor<B, 2> {
        let v: Vec<f32> = (0..self.batch()).map(|b| self.at(b, p)).collect();
        Tensor::from_data(TensorData::new(v, [self.batch(), 1]), device)
    }

    /// All samples as a `[samples, batch]` tensor.
    pub fn table<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let samples = self.rows.first().map_or(0, Vec::len);
        let mut v = Vec::with_capacity(samples * self.batch());
        for s in 0..samples {
            for row in &self.rows {
                v.push(row[s]);
            }
        }
        Tensor::from_data(TensorData::new(v, [samples, self.batch()]), device)
    }
}

/// How a fixed-step solve lays its steps over the samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedGrid {
    /// Samples per solver step (>= 1): larger steps, outputs interpolated.
    pub stride: usize,
    /// Solver steps per sample (>= 1): smaller steps, as the runtime's `substeps`.
    pub substeps: usize,
}

impl FixedGrid {
    /// One step per sample.
    pub const PER_SAMPLE: FixedGrid = FixedGrid {
        stride: 1,
        substeps: 1,
    };
}

/// One step of a one-step method over a batch.
pub trait Stepper<B: Backend> {
    /// Advances `x` (whose derivative `f0` at the step start is given, FSAL-style) by `h` seconds.
    /// `drive(c)` is the drive at fraction `c` of the step. Explicit methods cannot fail; implicit
    /// ones report a Newton iteration that does not converge.
    fn step(
        &self,
        field: &dyn VectorField<B>,
        x: Tensor<B, 2>,
        f0: Tensor<B, 2>,
        h: f64,
        drive: &dyn Fn(f64) -> Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>, SolveError>;
}

/// The stages of an explicit tableau from `x` (derivative `f0` there) and the weighted solution:
/// `(k, x_next)`. Shared by fixed and adaptive stepping.
fn rk_stages<B: Backend>(
    tab: &odeflash_runtime::Tableau,
    field: &dyn VectorField<B>,
    x: Tensor<B, 2>,
    f0: Tensor<B, 2>,
    h: f64,
    drive: &dyn Fn(f64) -> Tensor<B, 2>,
) -> (Vec<Tensor<B, 2>>, Tensor<B, 2>) {
    let mut k: Vec<Tensor<B, 2>> = vec![f0];
    for s in 1..tab.stages {
        let mut xs = x.clone();
        for (j, kj) in k.iter().enumerate() {
            let a = tab.a[s][j];
            if a != 0.0 {
                xs = xs + kj.clone() * (h * a);
            }
        }
        k.push(field.eval(xs, drive(tab.c[s])));
    }
    let mut out = x;
    for (s, ks) in k.iter().enumerate() {
        let b = tab.b[s];
        if b != 0.0 {
            out = out + ks.clone() * (h * b);
        }
    }
    (k, out)
}

/// An explicit Runge-Kutta method from the runtime's tableaux.
#[derive(Clone, Copy, Debug)]
pub struct ExplicitRk(pub Solver);

impl<B: Backend> Stepper<B> for ExplicitRk {
    fn step(
        &self,
        field: &dyn VectorField<B>,
        x: Tensor<B, 2>,
        f0: Tensor<B, 2>,
        h: f64,
        drive: &dyn Fn(f64) -> Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>, SolveError> {
        Ok(rk_stages(self.0.tableau(), field, x, f0, h, drive).1)
    }
}

/// An iterator net's map, one evaluation per step (thesis sec. 3.3.3): the "vector field" is the
/// net, `x[n+1] = x[n] + net(x[n], u[n])` (residual) or `net(x[n], u[n])` (direct).
#[derive(Clone, Copy, Debug)]
pub struct IteratorMap {
    /// Residual (`true`) or direct form.
    pub residual: bool,
}

impl<B: Backend> Stepper<B> for IteratorMap {
    fn step(
        &self,
        _field: &dyn VectorField<B>,
        x: Tensor<B, 2>,
        f0: Tensor<B, 2>,
        _h: f64,
        _drive: &dyn Fn(f64) -> Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>, SolveError> {
        Ok(if self.residual { x + f0 } else { f0 })
    }
}

/// A vector field scaled per batch row: integrating `dt_r f(x, u)` over sample units lets
/// trajectories recorded at different sample rates share one batch and one step size.
pub struct PerRowTime<'a, B: Backend> {
    /// The field in physical time.
    pub field: &'a dyn VectorField<B>,
    /// Each row's sample interval, `[batch, 1]`.
    pub dt: Tensor<B, 2>,
}

impl<B: Backend> VectorField<B> for PerRowTime<'_, B> {
    fn eval(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Tensor<B, 2> {
        self.field.eval(x, u) * self.dt.clone()
    }

    fn linearize(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
        let (f, j) = self.field.linearize(x, u)?;
        let dt = self.dt.clone().detach();
        Some((f * dt.clone(), j * dt.unsqueeze_dim::<3>(2)))
    }
}

/// Cubic Hermite interpolation at fractions `theta` of `n_steps` steps of equal size `h`:
/// `x0, x1, f0, f1: [n_steps, batch, n]`; returns `[n_steps * theta.len(), batch, n]`, step-major.
fn hermite<B: Backend>(
    x0: Tensor<B, 3>,
    x1: Tensor<B, 3>,
    f0: Tensor<B, 3>,
    f1: Tensor<B, 3>,
    h: f64,
    theta: &[f64],
) -> Tensor<B, 3> {
    let [steps, batch, n] = x0.dims();
    let k = theta.len();
    let device = x0.device();
    let basis = |f: fn(f64) -> f64| -> Tensor<B, 4> {
        let v: Vec<f32> = theta.iter().map(|&t| f(t) as f32).collect();
        Tensor::from_data(TensorData::new(v, [1, k, 1, 1]), &device)
    };
    let h00 = basis(|t| (1.0 + 2.0 * t) * (1.0 - t) * (1.0 - t));
    let h10 = basis(|t| t * (1.0 - t) * (1.0 - t));
    let h01 = basis(|t| t * t * (3.0 - 2.0 * t));
    let h11 = basis(|t| t * t * (t - 1.0));
    let u = |t: Tensor<B, 3>| t.unsqueeze_dim::<4>(1);
    let out = u(x0) * h00 + u(f0) * h10 * h + u(x1) * h01 + u(f1) * h11 * h;
    out.reshape([steps * k, batch, n])
}

/// Integrates from `x0: [batch, n]` over `samples` uniformly spaced samples `dt` apart with a
/// fixed-step method, and returns the states at every sample, `[samples, batch, n]`. With
/// `bounds`, every state is clamped into `[lo, hi]` after each step, as the runtime does (the
/// gradient passes straight through the clamp). A failing step (implicit methods only) is
/// reported with its index and start time.
#[allow(clippy::too_many_arguments)]
pub fn integrate_fixed<B: Backend>(
    field: &dyn VectorField<B>,
    stepper: &dyn Stepper<B>,
    x0: Tensor<B, 2>,
    drive: &Drive,
    dt: f64,
    samples: usize,
    grid: FixedGrid,
    bounds: Option<(f32, f32)>,
) -> Result<Tensor<B, 3>, SolveError> {
    // Straight-through clamp: the value is clamped as on the device, the gradient passes as if
    // it were not, so a state pushed against its bound by a bad early model can still be pulled
    // back by the loss (a plain clamp has zero gradient there and training stalls).
    let clamp = |x: Tensor<B, 2>| match bounds {
        Some((lo, hi)) => x.clone() + (x.clone().clamp(lo, hi) - x).detach(),
        None => x,
    };
    let device = x0.device();
    let intervals = samples.saturating_sub(1);
    let stride = grid.stride.max(1);
    let m = grid.substeps.max(1);
    let at = |p: f64| drive.column::<B>(p, &device);
    let mut xs = vec![x0.clone()];
    if stride == 1 {
        let mut x = x0;
        let h = dt / m as f64;
        for s in 0..intervals {
            for j in 0..m {
                let p0 = s as f64 + j as f64 / m as f64;
                let f0 = field.eval(x.clone(), at(p0));
                let d = |c: f64| at(p0 + c / m as f64);
                let next = stepper
                    .step(field, x, f0, h, &d)
                    .map_err(|e| e.at_step(s * m + j, p0 * dt))?;
                x = clamp(next);
            }
            xs.push(x.clone());
        }
        return Ok(Tensor::stack(xs, 0));
    }
    // Steps of `stride` samples; a shorter last step takes the remainder.
    let full = intervals / stride;
    let rem = intervals % stride;
    let mut x = x0;
    let mut fs = Vec::new();
    let mut ends = Vec::new();
    let mut starts = Vec::new();
    for j in 0..full + usize::from(rem > 0) {
        let len = if j < full { stride } else { rem };
        let p0 = (j * stride) as f64;
        let f0 = field.eval(x.clone(), at(p0));
        let d = |c: f64| at(p0 + c * len as f64);
        let next = stepper
            .step(field, x.clone(), f0.clone(), dt * len as f64, &d)
            .map_err(|e| e.at_step(j, p0 * dt))?;
        let next = clamp(next);
        starts.push(x);
        fs.push(f0);
        ends.push(next.clone());
        x = next;
    }
    let f_end = field.eval(x.clone(), at(intervals as f64));
    let mut f1: Vec<Tensor<B, 2>> = fs.iter().skip(1).cloned().collect();
    f1.push(f_end);
    let mut pieces = Vec::new();
    let groups = [
        (0usize, full, stride),
        (full, full + usize::from(rem > 0), rem),
    ];
    for (lo, hi, len) in groups {
        if hi <= lo {
            continue;
        }
        let st = |v: &[Tensor<B, 2>]| Tensor::stack(v[lo..hi].to_vec(), 0);
        let theta: Vec<f64> = (0..len).map(|r| r as f64 / len as f64).collect();
        pieces.push(hermite(
            st(&starts),
            st(&ends),
            st(&fs),
            st(&f1),
            dt * len as f64,
            &theta,
        ));
    }
    pieces.push(x.unsqueeze_dim::<3>(0));
    Ok(Tensor::cat(pieces, 0))
}

/// Tolerances and limits of adaptive stepping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptive {
    /// Tsit5 or Dopri5.
    pub solver: Solver,
    /// Relative tolerance (paper 000: 1e-3).
    pub rtol: f64,
    /// Absolute tolerance (paper 000: 1e-6).
    pub atol: f64,
    /// Step limit per solve.
    pub max_steps: usize,
}

/// Statistics of an adaptive solve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptiveStats {
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
}

/// Why a solve stopped early.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SolveError {
    /// The solver is not an embedded pair.
    #[error("{0:?} has no error estimator; adaptive stepping needs tsit5 or dopri5")]
    NotAdaptive(Solver),
    /// Too many steps: the problem is stiff or the tolerances too tight.
    #[error("adaptive solver gave up after {0} steps (stiff problem or too tight tolerances)")]
    MaxSteps(usize),
    /// The solution stopped being finite.
    #[error("the solution became non-finite at t = {0} s")]
    NonFinite(f64),
    /// An implicit method needs the field's exact Jacobian ([`VectorField::linearize`]).
    #[error(
        "the vector field provides no exact Jacobian (VectorField::linearize), which implicit \
         methods need"
    )]
    NoJacobian,
    /// An implicit step's Newton iteration failed even on the smallest sub-steps.
    #[error(
        "implicit step {step} (t = {t} s) failed after {halvings} step halvings: {reason} \
         (Newton residual {residual:.3e}, increment {increment:.3e} in tolerance units, after \
         {iterations} iterations)"
    )]
    Newton {
        /// Index of the failing step within the solve (steps counted since the stepper's
        /// statistics were reset when the stepper is called directly).
        step: usize,
        /// Start time of the failing step (`NaN` when called outside a solve).
        t: f64,
        /// How many times the step was halved before giving up.
        halvings: usize,
        /// Why the last attempt failed.
        reason: NewtonFailure,
        /// Newton iterations of the last attempt.
        iterations: usize,
        /// Largest row RMS of the stage residual `G(Z)` at the last iterate.
        residual: f64,
        /// Largest row RMS of the last Newton increment, scaled by `atol + rtol |Y|`.
        increment: f64,
    },
}

/// Why a Newton iteration failed: the runtime's type, shared by every Newton solve.
pub use odeflash_runtime::NewtonFailure;

impl SolveError {
    /// The error with the step index and time of the solve it happened in.
    pub fn at_step(self, index: usize, time: f64) -> Self {
        match self {
            SolveError::Newton {
                halvings,
                reason,
                iterations,
                residual,
                increment,
                ..
            } => SolveError::Newton {
                step: index,
                t: time,
                halvings,
                reason,
                iterations,
                residual,
                increment,
            },
            other => other,
        }
    }
}

pub(crate) fn host_values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default()
}

/// An accepted adaptive step: its start time and size, the states and derivatives at its ends.
struct Knot<B: Backend> {
    t: f64,
    h: f64,
    x0: Tensor<B, 2>,
    x1: Tensor<B, 2>,
    f0: Tensor<B, 2>,
    f1: Tensor<B, 2>,
}

/// Integrates adaptively with error control over the samples' span and returns the states at
/// every sample, `[samples, batch, n]`. One step size serves the whole batch (the largest error
/// decides), which keeps the batch a single tensor.
pub fn integrate_adaptive<B: Backend>(
    field: &dyn VectorField<B>,
    x0: Tensor<B, 2>,
    drive: &Drive,
    dt: f64,
    samples: usize,
    opts: Adaptive,
) -> Result<(Tensor<B, 3>, AdaptiveStats), SolveError> {
    let err_coef = opts
        .solver
        .error_estimator()
        .ok_or(SolveError::NotAdaptive(opts.solver))?;
    let tab = opts.solver.tableau();
    let device = x0.device();
    let t_end = samples.saturating_sub(1) as f64 * dt;
    let at = |t: f64| drive.column::<B>(t / dt, &device);
    let norm = |e: &[f32], a: &[f32], b: &[f32]| -> f64 {
        let mut s = 0.0f64;
        for ((&e, &a), &b) in e.iter().zip(a).zip(b) {
            let sc = opts.atol + opts.rtol * (a.abs().max(b.abs()) as f64);
            s += (e as f64 / sc).powi(2);
        }
        (s / e.len().max(1) as f64).sqrt()
    };
    let mut x = x0;
    let mut f = field.eval(x.clone(), at(0.0));
    let mut stats = AdaptiveStats::default();
    // Initial step: Hairer-Norsett-Wanner's heuristic, simplified.
    let (xv, fv) = (host_values(x.clone()), host_values(f.clone()));
    let d0 = norm(&xv, &xv, &xv).max(1e-5);
    let d1 = norm(&fv, &xv, &xv).max(1e-5);
    let mut h = (0.01 * d0 / d1).min(t_end.max(dt)).max(1e-12);
    let mut t = 0.0f64;
    let mut knots: Vec<Knot<B>> = Vec::new();
    while t < t_end * (1.0 - 1e-12) {
        if stats.accepted + stats.rejected >= opts.max_steps {
            return Err(SolveError::MaxSteps(opts.max_steps));
        }
        h = h.min(t_end - t);
        let stage_drive = |c: f64| at(t + c * h);
        let (mut k, next) = rk_stages(tab, field, x.clone(), f.clone(), h, &stage_drive);
        let f_next = field.eval(next.clone(), at(t + h));
        k.push(f_next.clone());
        let mut err = x.zeros_like();
        for (s, ks) in k.iter().enumerate() {
            if err_coef[s] != 0.0 {
                err = err + ks.clone() * (h * err_coef[s]);
            }
        }
        let (ev, av, bv) = (
            host_values(err),
            host_values(x.clone()),
            host_values(next.clone()),
        );
        if bv.iter().any(|v| !v.is_finite()) {
            if h < 1e-14 * t_end.max(1.0) {
                return Err(SolveError::NonFinite(t));
            }
            h *= 0.25;
            stats.rejected += 1;
            continue;
        }
        let e = norm(&ev, &av, &bv);
        let factor = if e == 0.0 {
            5.0
        } else {
            (0.9 * e.powf(-0.2)).clamp(0.2, 5.0)
        };
        if e <= 1.0 {
            knots.push(Knot {
                t,
                h,
                x0: x,
                x1: next.clone(),
                f0: f,
                f1: f_next.clone(),
            });
            t += h;
            x = next;
            f = f_next;
            stats.accepted += 1;
        } else {
            stats.rejected += 1;
        }
        h *= factor;
    }
    // Output at sample times: Hermite interpolation inside the accepted step holding each sample.
    let [batch, n] = x.dims();
    if knots.is_empty() {
        return Ok((x.unsqueeze_dim::<3>(0).expand([samples, batch, n]), stats));
    }
    let mut idx = Vec::with_capacity(samples);
    let mut theta = Vec::with_capacity(samples);
    let mut hs = Vec::with_capacity(samples);
    let mut j = 0usize;
    for s in 0..samples {
        let ts = s as f64 * dt;
        while j + 1 < knots.len() && knots[j].t + knots[j].h < ts {
            j += 1;
        }
        let (t0, hj) = (knots[j].t, knots[j].h);
        idx.push(j as i64);
        theta.push(((ts - t0) / hj).clamp(0.0, 1.0));
        hs.push(hj);
    }
    let st = |sel: fn(&Knot<B>) -> Tensor<B, 2>| {
        Tensor::stack(knots.iter().map(sel).collect::<Vec<_>>(), 0)
    };
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [samples]), &device);
    let pick = |t: Tensor<B, 3>| t.select(0, index.clone());
    let (x0s, x1s) = (pick(st(|k| k.x0.clone())), pick(st(|k| k.x1.clone())));
    let (f0s, f1s) = (pick(st(|k| k.f0.clone())), pick(st(|k| k.f1.clone())));
    let col = |f: &dyn Fn(f64, f64) -> f64| -> Tensor<B, 3> {
        let v: Vec<f32> = theta
            .iter()
            .zip(&hs)
            .map(|(&t, &h)| f(t, h) as f32)
            .collect();
        Tensor::from_data(TensorData::new(v, [samples, 1, 1]), &device)
    };
    let out = x0s * col(&|t, _| (1.0 + 2.0 * t) * (1.0 - t) * (1.0 - t))
        + f0s * col(&|t, h| h * t * (1.0 - t) * (1.0 - t))
        + x1s * col(&|t, _| t * t * (3.0 - 2.0 * t))
        + f1s * col(&|t, h| h * t * t * (t - 1.0));
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuAd};

    fn tensor<B: Backend>(v: &[f32], shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
    }

    /// Damped oscillator with forcing: x'' + 2 zeta w x' + w^2 x = u(t).
    fn oscillator<B: Backend>(
        w: f32,
        zeta: f32,
    ) -> impl Fn(Tensor<B, 2>, Tensor<B, 2>) -> Tensor<B, 2> {
        move |x: Tensor<B, 2>, u: Tensor<B, 2>| {
            let p = x.clone().narrow(1, 0, 1);
            let v = x.narrow(1, 1, 1);
            let a = u - p * (w * w) - v.clone() * (2.0 * zeta * w);
            Tensor::cat(vec![v, a], 1)
        }
    }

    /// Exact solution of the unforced oscillator from (1, 0).
    fn exact(w: f64, zeta: f64, t: f64) -> f64 {
        let wd = w * (1.0 - zeta * zeta).sqrt();
        (-zeta * w * t).exp() * ((wd * t).cos() + zeta * w / wd * (wd * t).sin())
    }

    fn max_err(out: Tensor<Cpu, 3>, dt: f64, w: f64, zeta: f64) -> f64 {
        let [samples, batch, _] = out.dims();
        let v = host_values(out);
        (0..samples)
            .map(|s| (v[s * batch * 2] as f64 - exact(w, zeta, s as f64 * dt)).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn fixed_steps_spanning_samples_keep_their_order() {
        let f = oscillator::<Cpu>(3.0, 0.1);
        let x0 = tensor::<Cpu>(&[1.0, 0.0], [1, 2]);
        let samples = 401;
        let dt = 5e-3;
        let drive = Drive::zeros(1, samples);
        let per_sample = integrate_fixed(
            &f,
            &ExplicitRk(Solver::Rk4),
            x0.clone(),
            &drive,
            dt,
            samples,
            FixedGrid::PER_SAMPLE,
            None,
        )
        .unwrap();
        assert!(max_err(per_sample, dt, 3.0, 0.1) < 1e-5);
        // Ten samples per step (h = 0.05, w h = 0.15): RK4 plus cubic Hermite output.
        let strided = integrate_fixed(
            &f,
            &ExplicitRk(Solver::Rk4),
            x0.clone(),
            &drive,
            dt,
            samples,
            FixedGrid {
                stride: 10,
                substeps: 1,
            },
            None,
        )
        .unwrap();
        assert_eq!(strided.dims(), [samples, 1, 2]);
        let e10 = max_err(strided, dt, 3.0, 0.1);
        assert!(e10 < 3e-4, "stride 10: {e10}");
        // A stride that does not divide the samples: the remainder step.
        let odd = integrate_fixed(
            &f,
            &ExplicitRk(Solver::Rk4),
            x0,
            &drive,
            dt,
            samples,
            FixedGrid {
                stride: 7,
                substeps: 1,
            },
            None,
        )
        .unwrap();
        assert_eq!(odd.dims(), [samples, 1, 2]);
        assert!(max_err(odd, dt, 3.0, 0.1) < 3e-4);
    }

    #[test]
    fn adaptive_error_follows_tolerance() {
        let f = oscillator::<Cpu>(3.0, 0.1);
        let samples = 201;
        let dt = 0.02;
        let drive = Drive::zeros(1, samples);
        for solver in [Solver::Tsit5, Solver::Dopri5] {
            let mut last = f64::INFINITY;
            for tol in [1e-3, 1e-5] {
                let x0 = tensor::<Cpu>(&[1.0, 0.0], [1, 2]);
                let opts = Adaptive {
                    solver,
                    rtol: tol,
                    atol: tol * 1e-3,
                    max_steps: 100_000,
                };
                let (out, stats) = integrate_adaptive(&f, x0, &drive, dt, samples, opts).unwrap();
                let e = max_err(out, dt, 3.0, 0.1);
                assert!(e < 30.0 * tol, "{solver:?} tol {tol}: error {e}, {stats:?}");
                assert!(
                    e < last,
                    "{solver:?}: error did not fall with the tolerance"
                );
                last = e;
            }
        }
    }

    #[test]
    fn drive_is_interpolated_like_the_runtime() {
        // x' = u with u linear in time: exact for every solver and stride.
        let f = |_x: Tensor<Cpu, 2>, u: Tensor<Cpu, 2>| u;
        let samples = 21;
        let dt = 0.1;
        let drive = Drive {
            rows: vec![(0..samples).map(|s| s as f32 * 0.1).collect()],
        };
        for grid in [
            FixedGrid::PER_SAMPLE,
            FixedGrid {
                stride: 4,
                substeps: 1,
            },
            FixedGrid {
                stride: 1,
                substeps: 3,
            },
        ] {
            let out = integrate_fixed(
                &f,
                &ExplicitRk(Solver::Heun),
                tensor::<Cpu>(&[0.0], [1, 1]),
                &drive,
                dt,
                samples,
                grid,
                None,
            )
            .unwrap();
            let v = host_values(out);
            for (s, got) in v.iter().enumerate() {
                let t = s as f64 * dt;
                assert!((*got as f64 - 0.5 * t * t).abs() < 1e-5, "{grid:?} at {s}");
            }
        }
    }

    /// Gradient of a trajectory loss w.r.t. a parameter against central finite differences.
    #[test]
    fn gradients_match_finite_differences() {
        let samples = 41;
        let dt = 0.05;
        let drive = Drive {
            rows: vec![(0..samples).map(|s| (s as f32 * 0.3).sin()).collect(); 2],
        };
        let loss_of = |w: f32, grid: Option<FixedGrid>, solver: Solver| -> (f64, f64) {
            let wt = tensor::<CpuAd>(&[w], [1, 1]).require_grad();
            let f = {
                let wt = wt.clone();
                move |x: Tensor<CpuAd, 2>, u: Tensor<CpuAd, 2>| {
                    let p = x.clone().narrow(1, 0, 1);
                    let v = x.narrow(1, 1, 1);
                    let a = u - p * wt.clone() * wt.clone() - v.clone() * 0.3 * wt.clone();
                    Tensor::cat(vec![v, a], 1)
                }
            };
            let x0 = tensor::<CpuAd>(&[1.0, 0.0, 0.5, -0.5], [2, 2]);
            let out = match grid {
                Some(g) => {
                    integrate_fixed(&f, &ExplicitRk(solver), x0, &drive, dt, samples, g, None)
                        .unwrap()
                }
                None => {
                    integrate_adaptive(
                        &f,
                        x0,
                        &drive,
                        dt,
                        samples,
                        Adaptive {
                            solver,
                            rtol: 1e-6,
                            atol: 1e-9,
                            max_steps: 10_000,
                        },
                    )
                    .unwrap()
                    .0
                }
            };
            let loss = out.powi_scalar(2).mean();
            let value = host_values(loss.clone().inner())[0] as f64;
            let grads = loss.backward();
            let g = host_values(wt.grad(&grads).unwrap())[0] as f64;
            (value, g)
        };
        let cases: Vec<(Option<FixedGrid>, Solver)> = vec![
            (Some(FixedGrid::PER_SAMPLE), Solver::Euler),
            (Some(FixedGrid::PER_SAMPLE), Solver::Heun),
            (Some(FixedGrid::PER_SAMPLE), Solver::Rk4),
            (Some(FixedGrid::PER_SAMPLE), Solver::Tsit5),
            (Some(FixedGrid::PER_SAMPLE), Solver::Dopri5),
            (
                Some(FixedGrid {
                    stride: 4,
                    substeps: 1,
                }),
                Solver::Rk4,
            ),
            (
                Some(FixedGrid {
                    stride: 1,
                    substeps: 2,
                }),
                Solver::Rk4,
            ),
            (None, Solver::Tsit5),
            (None, Solver::Dopri5),
        ];
        for (grid, solver) in cases {
            let w = 2.0f32;
            let (_, g) = loss_of(w, grid, solver);
            let h = 1e-2f32;
            let fd = (loss_of(w + h, grid, solver).0 - loss_of(w - h, grid, solver).0)
                / (2.0 * h as f64);
            assert!(
                (g - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                "{grid:?} {solver:?}: {g} vs {fd}"
            );
        }
    }

    #[test]
    fn hermite_reproduces_cubics() {
        // x(t) = t^3 on one step of size 2: x0=0, x1=8, f0=0, f1=12.
        let mk = |v: f32| {
            Tensor::<Cpu, 3>::from_data(TensorData::new(vec![v], [1, 1, 1]), &Default::default())
        };
        let out = hermite(
            mk(0.0),
            mk(8.0),
            mk(0.0),
            mk(12.0),
            2.0,
            &[0.0, 0.25, 0.5, 0.75],
        );
        let v = host_values(out);
        for (i, got) in v.iter().enumerate() {
            let t = 0.5 * i as f64;
            assert!((*got as f64 - t * t * t).abs() < 1e-5, "{i}: {got}");
        }
    }
}
