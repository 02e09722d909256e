//! Implicit one-step methods inside training (paper 002): backward Euler, the trapezoid rule and
//! Radau IIA of orders 3 and 5, discretize-then-optimize, with gradients from the implicit
//! function theorem instead of backpropagation through the Newton iterations.
//!
//! # Use
//!
//! [`Implicit`] is a [`Stepper`], so it goes wherever [`crate::diffsolve::ExplicitRk`] goes:
//!
//! ```ignore
//! use odeflash_training::diffsolve::implicit::{Implicit, ImplicitMethod, NewtonOptions};
//! let stepper = Implicit::new(ImplicitMethod::RadauIIA5); // or ::with_options(method, opts)
//! let xs = integrate_fixed(&field, &stepper, x0, &drive, dt, samples, grid, None)?;
//! let stats = stepper.stats(); // Newton iterations, step halvings, ... since the last reset
//! ```
//!
//! The field must provide its exact Jacobian, [`VectorField::linearize`] (the neural-ODE field of
//! [`crate::model::NeuralOde`], the memristor surrogates of [`crate::surrogate`] and
//! [`crate::diffsolve::PerRowTime`] do; a net-based field gets it from
//! [`crate::nn::Mlp::forward_jacobian`] with detached parameters). Without it a step fails with
//! [`SolveError::NoJacobian`].
//!
//! # One step
//!
//! With stage increments `Z_i = Y_i - y0` the stage system of tableau `(A, b, c)` is
//! `G(Z) = Z - h (A ⊗ I) F(y0 + Z) = 0` (paper 002 eq. 16-17 for backward Euler and the
//! trapezoid rule; Hairer-Wanner IV.8 for Radau IIA). The trapezoid rule's first stage is the
//! step start (`Z_0 = 0`, `F_0 = f0`) and is not an unknown.
//!
//! 1. Newton's method on values without gradient, in f64 on the host (thousands of systems of
//!    `stages × n ≤ 24` unknowns per batch): each iteration evaluates `f` and its Jacobian at
//!    every stage, factors `M = I - h (A ⊗ J)` (the exact `∂G/∂Z`, stage Jacobians evaluated at
//!    their own stages) per row by LU with partial pivoting and solves for the increment. It
//!    stops when every row's increment, scaled by `atol + rtol |Y|` (RMS), is at most 1.
//! 2. The differentiable output (paper 002 eq. 18-19): with `Z*` the last iterate and `M` its
//!    factored Jacobian, both constants, `Z_out = Z* - M⁻¹ G(Z*, y0, θ)` is recorded as tensor
//!    ops. Its value is one more Newton step from `Z*` (the root to Newton tolerance) and its
//!    derivative w.r.t. `y0` and `θ` is `-M⁻¹ ∂G/∂(y0, θ)`, the implicit-function-theorem
//!    gradient. `M⁻¹` is applied by forward and back substitution with the LU factors, never as
//!    an explicit inverse.
//! 3. All four methods are stiffly accurate (the trapezoid's last row of `A` is `b`), so
//!    `y1 = y0 + Z_out,last`.
//!
//! A step whose Newton iteration does not converge, meets a singular matrix or non-finite values
//! is redone as 2, 4, ... sub-steps (up to [`NewtonOptions::max_halvings`] halvings); if even the
//! smallest sub-steps fail, the solve returns [`SolveError::Newton`] with the step index, its
//! time and the residual, never a NaN state.

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use odeflash_runtime::implicit::{
    add_identity, subtract_stage_jacobian, ImplicitTableau, BACKWARD_EULER, RADAU_IIA3, RADAU_IIA5,
    TRAPEZOID,
};

use crate::diffsolve::{host_values, NewtonFailure, SolveError, Stepper, VectorField};
use odeflash_reference::stiff::linalg::Lu;

/// Which implicit method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImplicitMethod {
    /// Backward Euler, order 1, L-stable.
    BackwardEuler,
    /// Trapezoid rule (Crank-Nicolson), order 2, A-stable but not L-stable.
    Trapezoid,
    /// Radau IIA with two stages, order 3, L-stable.
    RadauIIA3,
    /// Radau IIA with three stages, order 5, L-stable.
    RadauIIA5,
}

impl ImplicitMethod {
    /// Every method, lowest order first.
    pub const ALL: [ImplicitMethod; 4] = [
        ImplicitMethod::BackwardEuler,
        ImplicitMethod::Trapezoid,
        ImplicitMethod::RadauIIA3,
        ImplicitMethod::RadauIIA5,
    ];

    /// The runtime's tableau, shared with the device.
    pub fn tableau(self) -> &'static ImplicitTableau {
        match self {
            ImplicitMethod::BackwardEuler => &BACKWARD_EULER,
            ImplicitMethod::Trapezoid => &TRAPEZOID,
            ImplicitMethod::RadauIIA3 => &RADAU_IIA3,
            ImplicitMethod::RadauIIA5 => &RADAU_IIA5,
        }
    }

    /// Classical order.
    pub fn order(self) -> u8 {
        self.tableau().order
    }

    /// Name on the command line and in configs.
    pub fn cli_name(self) -> &'static str {
        match self {
            ImplicitMethod::BackwardEuler => "backward-euler",
            ImplicitMethod::Trapezoid => "trapezoid",
            ImplicitMethod::RadauIIA3 => "radau3",
            ImplicitMethod::RadauIIA5 => "radau5",
        }
    }

    /// The trainer's method for one of the runtime's implicit solvers (same tableau, so a model
    /// trained with it steps the same way on the device).
    pub fn of_solver(solver: odeflash_runtime::Solver) -> Option<Self> {
        use odeflash_runtime::Solver::*;
        match solver {
            BackwardEuler => Some(ImplicitMethod::BackwardEuler),
            Trapezoid => Some(ImplicitMethod::Trapezoid),
            Radau3 => Some(ImplicitMethod::RadauIIA3),
            Radau5 => Some(ImplicitMethod::RadauIIA5),
            _ => None,
        }
    }

    /// The method named `name` (see [`ImplicitMethod::cli_name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.cli_name() == name)
    }
}

/// Newton tolerances and limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonOptions {
    /// Relative tolerance of the increment. The field runs in f32, whose rounding puts a floor
    /// of a few 1e-7 relative under the increments: tolerances much below 1e-6 cannot be met.
    pub rtol: f64,
    /// Absolute tolerance of the increment.
    pub atol: f64,
    /// Newton iterations per attempt.
    pub max_iter: usize,
    /// How often a failing step is halved (into 2, 4, ... sub-steps) before the solve fails.
    pub max_halvings: usize,
}

impl Default for NewtonOptions {
    fn default() -> Self {
        NewtonOptions {
            rtol: 1e-5,
            atol: 1e-6,
            max_iter: 10,
            max_halvings: 3,
        }
    }
}

/// Newton statistics of an [`Implicit`] stepper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewtonStats {
    /// Steps asked for (calls of [`Stepper::step`]).
    pub steps: usize,
    /// Newton systems solved, sub-steps included (failed attempts too).
    pub solves: usize,
    /// Newton iterations over all attempts (each evaluates `f` and `∂f/∂x` at every stage).
    iterations: usize,
    /// Most iterations any successful solve took.
    pub max_iterations: usize,
    /// Step halvings (a step redone as twice as many sub-steps counts once).
    pub halvings: usize,
    /// Steps that failed even after all halvings.
    pub failures: usize,
}

#[derive(Debug, Default)]
struct Counters {
    steps: AtomicUsize,
    solves: AtomicUsize,
    iterations: AtomicUsize,
    max_iterations: AtomicUsize,
    halvings: AtomicUsize,
    failures: AtomicUsize,
}

/// An implicit one-step method for [`crate::diffsolve::integrate_fixed`] and friends; see the module
/// docs. Statistics accumulate across calls (atomics, so the stepper can be shared) until
/// [`Implicit::reset_stats`].
#[derive(Debug)]
pub struct Implicit {
    /// The method.
    pub method: ImplicitMethod,
    /// Newton tolerances and limits.
    pub newton: NewtonOptions,
    counters: Counters,
}

impl Clone for Implicit {
    fn clone(&self) -> Self {
        let c = Implicit::with_options(self.method, self.newton);
        let s = self.stats();
        c.counters.steps.store(s.steps, Ordering::Relaxed);
        c.counters.solves.store(s.solves, Ordering::Relaxed);
        c.counters.iterations.store(s.iterations, Ordering::Relaxed);
        c.counters
            .max_iterations
            .store(s.max_iterations, Ordering::Relaxed);
        c.counters.halvings.store(s.halvings, Ordering::Relaxed);
        c.counters.failures.store(s.failures, Ordering::Relaxed);
        c
    }
}

impl Implicit {
    /// The method with default Newton options.
    pub fn new(method: ImplicitMethod) -> Self {
        Self::with_options(method, NewtonOptions::default())
    }

    /// The method with the given Newton options.
    pub fn with_options(method: ImplicitMethod, newton: NewtonOptions) -> Self {
        Implicit {
            method,
            newton,
            counters: Counters::default(),
        }
    }

    /// Statistics since construction or the last [`Implicit::reset_stats`].
    pub fn stats(&self) -> NewtonStats {
        let c = &self.counters;
        NewtonStats {
            steps: c.steps.load(Ordering::Relaxed),
            solves: c.solves.load(Ordering::Relaxed),
            iterations: c.iterations.load(Ordering::Relaxed),
            max_iterations: c.max_iterations.load(Ordering::Relaxed),
            halvings: c.halvings.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
        }
    }

    /// Zeroes the statistics.
    pub fn reset_stats(&self) {
        let c = &self.counters;
        for a in [
            &c.steps,
            &c.solves,
            &c.iterations,
            &c.max_iterations,
            &c.halvings,
            &c.failures,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

/// One implicit step's stage system over a batch, host side: `batch` rows of `n` states, the
/// step start `y0` and its derivative `f0` (`[batch * n]` each).
struct StageSystem<'a> {
    tab: &'a ImplicitTableau,
    h: f64,
    batch: usize,
    n: usize,
    y0: &'a [f64],
    f0: &'a [f64],
}

/// A converged Newton solve: the last iterate `Z*` (`[batch, m * n]`, implicit stages only),
/// the LU factors of `∂G/∂Z` there, the Newton increment `-M⁻¹ G(Z*)` from it (which the
/// differentiable output applies as tensor ops) and the iterations it took.
struct Converged {
    z: Vec<f64>,
    lu: Vec<Lu>,
    #[cfg_attr(not(test), allow(dead_code))]
    dz: Vec<f64>,
    iterations: usize,
}

/// A failed Newton solve.
#[derive(Debug)]
enum Failed {
    /// The iteration failed (retrying with smaller steps may help).
    Newton {
        reason: NewtonFailure,
        iterations: usize,
        residual: f64,
        increment: f64,
    },
    /// The field cannot be linearized (or another error no smaller step cures).
    Fatal(SolveError),
}

/// Evaluates `(f, ∂f/∂x)` at implicit stage `k` (`0..m`) for states `y` (`[batch * n]`):
/// `([batch * n], [batch * n * n])`.
type StageEval<'e> = dyn FnMut(usize, &[f64]) -> Result<(Vec<f64>, Vec<f64>), SolveError> + 'e;

/// Newton's method on `G(Z) = Z - h (A ⊗ I) F(y0 + Z)` from `Z = 0`.
fn newton(
    sys: &StageSystem<'_>,
    opts: &NewtonOptions,
    eval: &mut StageEval<'_>,
) -> Result<Converged, Failed> {
    let tab = sys.tab;
    let (batch, n) = (sys.batch, sys.n);
    let fi = tab.first_implicit;
    let m = tab.stages - fi;
    let big_n = m * n;
    let mut z = vec![0.0f64; batch * big_n];
    let mut last_increment = f64::INFINITY;
    let mut residual = f64::INFINITY;
    let fail = |reason, iterations, residual, increment| {
        Err(Failed::Newton {
            reason,
            iterations,
            residual,
            increment,
        })
    };
    for iter in 1..=opts.max_iter {
        // f and J at every implicit stage.
        let mut fs = Vec::with_capacity(m);
        let mut js = Vec::with_capacity(m);
        for k in 0..m {
            let y: Vec<f64> = (0..batch * n)
                .map(|idx| {
                    let (b, r) = (idx / n, idx % n);
                    sys.y0[idx] + z[b * big_n + k * n + r]
                })
                .collect();
            let (f, j) = eval(k, &y).map_err(Failed::Fatal)?;
            if f.iter().chain(&j).any(|v| !v.is_finite()) {
                return fail(NewtonFailure::NonFinite, iter, residual, last_increment);
            }
            fs.push(f);
            js.push(j);
        }
        let mut lus = Vec::with_capacity(batch);
        let mut increment = 0.0f64;
        let mut res = 0.0f64;
        let mut dz_all = vec![0.0f64; batch * big_n];
        for b in 0..batch {
            // G(Z) for this row.
            let mut g = vec![0.0f64; big_n];
            for k in 0..m {
                let i = fi + k;
                for r in 0..n {
                    let mut s = 0.0;
                    for j in 0..tab.stages {
                        let a = tab.a[i][j];
                        if a != 0.0 {
                            let fj = if j < fi {
                                sys.f0[b * n + r]
                            } else {
                                fs[j - fi][b * n + r]
                            };
                            s += a * fj;
                        }
                    }
                    g[k * n + r] = z[b * big_n + k * n + r] - sys.h * s;
                }
            }
            let rms_g = (g.iter().map(|v| v * v).sum::<f64>() / big_n as f64).sqrt();
            res = res.max(rms_g);
            // M = I - h (A ⊗ J), stage Jacobians at their own stages.
            let mut mat = vec![0.0f64; big_n * big_n];
            for (l, jl) in js.iter().enumerate() {
                subtract_stage_jacobian(
                    &mut mat,
                    tab,
                    n,
                    sys.h,
                    l,
                    &jl[b * n * n..(b + 1) * n * n],
                );
            }
            add_identity(&mut mat, big_n);
            let lu = match Lu::factor_rel(big_n, mat, 1e-13) {
                Ok(lu) => lu,
                Err(reason) => return fail(reason, iter, res, last_increment),
            };
            let mut dz = g.clone();
            lu.solve(&mut dz);
            let mut s2 = 0.0;
            for (q, d) in dz.iter().enumerate() {
                let (k, r) = (q / n, q % n);
                let y = sys.y0[b * n + r] + z[b * big_n + k * n + r];
                let sc = opts.atol + opts.rtol * y.abs().max(sys.y0[b * n + r].abs());
                s2 += (d / sc).powi(2);
                dz_all[b * big_n + q] = -d;
            }
            increment = increment.max((s2 / big_n as f64).sqrt());
            lus.push(lu);
        }
        residual = res;
        if !increment.is_finite() {
            return fail(NewtonFailure::NonFinite, iter, residual, increment);
        }
        if increment <= 1.0 {
            // Z (where M was factored) is the linearization point; the differentiable output
            // applies the increment once more as tensor ops.
            return Ok(Converged {
                z,
                lu: lus,
                dz: dz_all,
                iterations: iter,
            });
        }
        // Diverging: the increments grow although the iteration should contract.
        if iter >= 3 && increment > 2.0 * last_increment {
            return fail(NewtonFailure::NotConverged, iter, residual, increment);
        }
        last_increment = increment;
        for (zv, d) in z.iter_mut().zip(&dz_all) {
            *zv += d;
        }
    }
    fail(
        NewtonFailure::NotConverged,
        opts.max_iter,
        residual,
        last_increment,
    )
}

fn host64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    host_values(t).into_iter().map(f64::from).collect()
}

fn upload<B: Backend, const D: usize>(
    v: &[f64],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// `M⁻¹ r` for every row as tensor ops on the (gradient-carrying) right-hand side `r: [batch, N]`,
/// with the LU factors as constants: a row permutation, then column-oriented forward and back
/// substitution (three or four ops per unknown, independent of the batch).
fn lu_solve_tensor<B: Backend>(lus: &[Lu], r: Tensor<B, 2>) -> Tensor<B, 2> {
    let [batch, big_n] = r.dims();
    let device = r.device();
    let perm: Vec<i64> = lus
        .iter()
        .flat_map(|lu| lu.perm().into_iter().map(|p| p as i64))
        .collect();
    let perm = Tensor::<B, 2, Int>::from_data(TensorData::new(perm, [batch, big_n]), &device);
    // Column i of L (rows below i) and of U (rows above i), column-major per row.
    let mut lc = vec![0.0f64; batch * big_n * big_n];
    let mut uc = vec![0.0f64; batch * big_n * big_n];
    let mut inv_diag = vec![0.0f64; batch * big_n];
    for (b, lu) in lus.iter().enumerate() {
        for i in 0..big_n {
            for row in 0..big_n {
                let v = lu.factors()[row * big_n + i];
                let slot = b * big_n * big_n + i * big_n + row;
                if row > i {
                    lc[slot] = v;
                } else if row < i {
                    uc[slot] = v;
                }
            }
            inv_diag[b * big_n + i] = 1.0 / lu.factors()[i * big_n + i];
        }
    }
    let lc = upload::<B, 2>(&lc, [batch, big_n * big_n], &device);
    let uc = upload::<B, 2>(&uc, [batch, big_n * big_n], &device);
    let inv_diag = upload::<B, 2>(&inv_diag, [batch, big_n], &device);
    let mut y = r.gather(1, perm);
    for i in 0..big_n.saturating_sub(1) {
        let yi = y.clone().narrow(1, i, 1);
        y = y - lc.clone().narrow(1, i * big_n, big_n) * yi;
    }
    for i in (1..big_n).rev() {
        let xi = y.clone().narrow(1, i, 1) * inv_diag.clone().narrow(1, i, 1);
        y = y - uc.clone().narrow(1, i * big_n, big_n) * xi;
    }
    y * inv_diag
}

impl Implicit {
    /// One attempt at one step of size `h`: Newton, then the differentiable output.
    fn attempt<B: Backend>(
        &self,
        field: &dyn VectorField<B>,
        x: Tensor<B, 2>,
        f0: Tensor<B, 2>,
        h: f64,
        drive: &dyn Fn(f64) -> Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>, Failed> {
        let tab = self.method.tableau();
        let [batch, n] = x.dims();
        let device = x.device();
        let fi = tab.first_implicit;
        let m = tab.stages - fi;
        let u: Vec<Tensor<B, 2>> = (fi..tab.stages).map(|i| drive(tab.c[i])).collect();
        let y0 = host64(x.clone());
        let f0h = host64(f0.clone());
        let sys = StageSystem {
            tab,
            h,
            batch,
            n,
            y0: &y0,
            f0: &f0h,
        };
        let mut eval = |k: usize, y: &[f64]| -> Result<(Vec<f64>, Vec<f64>), SolveError> {
            let yt = upload::<B, 2>(y, [batch, n], &device);
            let (f, j) = field
                .linearize(yt, u[k].clone())
                .ok_or(SolveError::NoJacobian)?;
            Ok((host64(f), host64(j)))
        };
        self.counters.solves.fetch_add(1, Ordering::Relaxed);
        let result = newton(&sys, &self.newton, &mut eval);
        let iterations = match &result {
            Ok(c) => c.iterations,
            Err(Failed::Newton { iterations, .. }) => *iterations,
            Err(Failed::Fatal(_)) => 0,
        };
        self.counters
            .iterations
            .fetch_add(iterations, Ordering::Relaxed);
        let conv = result?;
        self.counters
            .max_iterations
            .fetch_max(conv.iterations, Ordering::Relaxed);
        // Differentiable output: Z_out = Z* - M⁻¹ G(Z*, y0, θ).
        let big_n = m * n;
        let z = upload::<B, 2>(&conv.z, [batch, big_n], &device);
        let mut fs: Vec<Tensor<B, 2>> = vec![f0; fi];
        for (k, uk) in u.iter().enumerate() {
            let y = x.clone() + z.clone().narrow(1, k * n, n);
            fs.push(field.eval(y, uk.clone()));
        }
        let g: Vec<Tensor<B, 2>> = (0..m)
            .map(|k| {
                let mut gk = z.clone().narrow(1, k * n, n);
                for (j, fj) in fs.iter().enumerate() {
                    let a = tab.a[fi + k][j];
                    if a != 0.0 {
                        gk = gk - fj.clone() * (h * a);
                    }
                }
                gk
            })
            .collect();
        let delta = lu_solve_tensor(&conv.lu, Tensor::cat(g, 1));
        let last = (m - 1) * n;
        Ok(x + z.narrow(1, last, n) - delta.narrow(1, last, n))
    }
}

impl<B: Backend> Stepper<B> for Implicit {
    fn step(
        &self,
        field: &dyn VectorField<B>,
        x: Tensor<B, 2>,
        f0: Tensor<B, 2>,
        h: f64,
        drive: &dyn Fn(f64) -> Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>, SolveError> {
        let step = self.counters.steps.fetch_add(1, Ordering::Relaxed);
        let mut halvings = 0usize;
        loop {
            let parts = 1usize << halvings;
            let sub_h = h / parts as f64;
            let mut xk = x.clone();
            let mut outcome = Ok(());
            for k in 0..parts {
                let fk = if k == 0 {
                    f0.clone()
                } else {
                    field.eval(xk.clone(), drive(k as f64 / parts as f64))
                };
                let d = |c: f64| drive((k as f64 + c) / parts as f64);
                match self.attempt(field, xk.clone(), fk, sub_h, &d) {
                    Ok(next) => xk = next,
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            match outcome {
                Ok(()) => return Ok(xk),
                Err(Failed::Fatal(e)) => return Err(e),
                Err(Failed::Newton {
                    reason,
                    iterations,
                    residual,
                    increment,
                }) => {
                    if halvings >= self.newton.max_halvings {
                        self.counters.failures.fetch_add(1, Ordering::Relaxed);
                        return Err(SolveError::Newton {
                            step,
                            t: f64::NAN,
                            halvings,
                            reason,
                            iterations,
                            residual,
                            increment,
                        });
                    }
                    halvings += 1;
                    self.counters.halvings.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuAd};
    use crate::diffsolve::{integrate_fixed, Drive, ExplicitRk, FixedGrid};
    use crate::model::{NeuralOde, TrainModel};
    use crate::nn::MlpDef;
    use burn::tensor::backend::AutodiffBackend;
    use odeflash_reference::rng::Rng;
    use odeflash_runtime::{Activation, Solver};

    fn t2<B: Backend>(v: &[f32], shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
    }

    use odeflash_runtime::convergence::{check_orders, observed_order, TestProblem, TEST_PROBLEMS};

    /// `y' = y^2`: `y = y0 / (1 - y0 t)`; its backward-Euler step has no root when `4 h y > 1`.
    struct Square;

    impl<B: Backend> VectorField<B> for Square {
        fn eval(&self, x: Tensor<B, 2>, _u: Tensor<B, 2>) -> Tensor<B, 2> {
            x.clone() * x
        }

        fn linearize(
            &self,
            x: Tensor<B, 2>,
            _u: Tensor<B, 2>,
        ) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
            let x = x.detach();
            Some((x.clone() * x.clone(), (x * 2.0).unsqueeze_dim::<3>(2)))
        }
    }

    /// `(x, y)' = (x² + y²) (-y, x)`: rotation at angular speed `r²`, so from `(2, 0)` the exact
    /// solution is `2 (cos 4t, sin 4t)`. Nonlinear, with a full Jacobian.
    fn rotation(x: f64, y: f64) -> ([f64; 2], [f64; 4]) {
        let s = x * x + y * y;
        (
            [-s * y, s * x],
            [-2.0 * x * y, -s - 2.0 * y * y, s + 2.0 * x * x, 2.0 * x * y],
        )
    }

    struct Rotation;

    impl<B: Backend> VectorField<B> for Rotation {
        fn eval(&self, v: Tensor<B, 2>, _u: Tensor<B, 2>) -> Tensor<B, 2> {
            let x = v.clone().narrow(1, 0, 1);
            let y = v.clone().narrow(1, 1, 1);
            let s = v.powi_scalar(2).sum_dim(1);
            Tensor::cat(vec![y.neg() * s.clone(), x * s], 1)
        }

        fn linearize(
            &self,
            v: Tensor<B, 2>,
            _u: Tensor<B, 2>,
        ) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
            let batch = v.dims()[0];
            let host = host64(v.clone());
            let (mut f, mut j) = (Vec::new(), Vec::new());
            for b in 0..batch {
                let (fb, jb) = rotation(host[2 * b], host[2 * b + 1]);
                f.extend(fb);
                j.extend(jb);
            }
            let device = v.device();
            Some((
                upload::<B, 2>(&f, [batch, 2], &device),
                upload::<B, 3>(&j, [batch, 2, 2], &device),
            ))
        }
    }

    const ROT_END: f64 = 1.0;

    /// Distance from the exact state of [`Rotation`] (radius 2, four radians by `ROT_END`).
    fn rotation_error(x: f64, y: f64) -> f64 {
        let a = 4.0 * ROT_END;
        ((x - 2.0 * a.cos()).powi(2) + (y - 2.0 * a.sin()).powi(2)).sqrt()
    }

    /// Step counts per method over `[0, 1]`: in the asymptotic range, and for the f32 path with
    /// errors well above f32 rounding (it accumulates to ~1e-7 over a few hundred steps).
    fn step_counts(method: ImplicitMethod, f64_range: bool) -> Vec<usize> {
        match (method.order(), f64_range) {
            (1, true) => vec![128, 256, 512, 1024],
            (1, false) => vec![16, 32, 64, 128],
            (2, true) => vec![32, 64, 128, 256],
            (2, false) => vec![4, 8, 16, 32],
            (3, true) => vec![16, 32, 64, 128],
            (3, false) => vec![4, 6, 8, 12],
            (_, true) => vec![8, 16, 32, 64],
            (_, false) => vec![4, 6, 8, 12],
        }
    }

    /// The step logic in f64 end to end on the workspace's test problems: host Newton with the
    /// exact Jacobian, `y1` from the last stage plus the final Newton increment (the
    /// differentiable form's value). Free of f32 rounding, so the orders show over a wide step
    /// range.
    #[test]
    fn orders_in_f64() {
        let opts = NewtonOptions {
            rtol: 1e-12,
            atol: 1e-13,
            max_iter: 30,
            max_halvings: 0,
        };
        for method in ImplicitMethod::ALL {
            let tab = method.tableau();
            let (fi, m) = (tab.first_implicit, tab.stages - tab.first_implicit);
            let steps = step_counts(method, true);
            check_orders(
                &format!("{method:?}"),
                method.order() as f64,
                0.2,
                &TEST_PROBLEMS,
                &steps,
                |p, k| {
                    let n = p.y0.len();
                    let h = p.t_end / k as f64;
                    let mut y = p.y0.to_vec();
                    for step in 0..k {
                        let t0 = step as f64 * h;
                        let mut f0 = vec![0.0; n];
                        (p.f)(t0, &y, &mut f0);
                        let sys = StageSystem {
                            tab,
                            h,
                            batch: 1,
                            n,
                            y0: &y,
                            f0: &f0,
                        };
                        let mut eval = |stage: usize, v: &[f64]| {
                            let t = t0 + tab.c[fi + stage] * h;
                            let (mut f, mut j) = (vec![0.0; n], vec![0.0; n * n]);
                            p.eval(t, v, &mut f, Some(&mut j));
                            Ok((f, j))
                        };
                        let c = newton(&sys, &opts, &mut eval).unwrap();
                        for (r, yr) in y.iter_mut().enumerate() {
                            *yr += c.z[(m - 1) * n + r] + c.dz[(m - 1) * n + r];
                        }
                    }
                    p.error(p.t_end, &y)
                },
            );
        }
    }

    /// A test problem of the workspace's set as a batch vector field, evaluated on the host; the
    /// drive carries the time (`u = t`, exact under linear interpolation).
    struct ProblemField<'a>(&'a TestProblem);

    impl ProblemField<'_> {
        fn rows<B: Backend>(
            &self,
            v: Tensor<B, 2>,
            u: Tensor<B, 2>,
        ) -> (Tensor<B, 2>, Tensor<B, 3>) {
            let [batch, n] = v.dims();
            let (x, t) = (host64(v.clone()), host64(u));
            let (mut f, mut j) = (vec![0.0; batch * n], vec![0.0; batch * n * n]);
            for b in 0..batch {
                self.0.eval(
                    t[b],
                    &x[b * n..(b + 1) * n],
                    &mut f[b * n..(b + 1) * n],
                    Some(&mut j[b * n * n..(b + 1) * n * n]),
                );
            }
            let device = v.device();
            (
                upload::<B, 2>(&f, [batch, n], &device),
                upload::<B, 3>(&j, [batch, n, n], &device),
            )
        }
    }

    impl<B: Backend> VectorField<B> for ProblemField<'_> {
        fn eval(&self, v: Tensor<B, 2>, u: Tensor<B, 2>) -> Tensor<B, 2> {
            self.rows(v, u).0
        }

        fn linearize(
            &self,
            v: Tensor<B, 2>,
            u: Tensor<B, 2>,
        ) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
            Some(self.rows(v, u))
        }
    }

    /// The tensor path (f32 field values, `integrate_fixed`) keeps each method's order on the
    /// workspace's test problems where f32 rounding does not dominate. Radau IIA 5's errors on
    /// them reach f32 rounding (~1e-7) from two steps on (measured: logistic 9e-8, 5e-9, 1e-8 at
    /// 2, 3, 4 steps), so its order is checked on [`Rotation`], whose radius 2 and four radians
    /// keep the errors larger.
    #[test]
    fn orders_through_integrate_fixed() {
        for method in ImplicitMethod::ALL {
            let stepper = Implicit::new(method);
            let steps = step_counts(method, false);
            let name = format!("{method:?} f32");
            let want = method.order() as f64;
            if method.order() < 5 {
                check_orders(&name, want, 0.3, &TEST_PROBLEMS, &steps, |p, k| {
                    let n = p.y0.len();
                    let dt = p.t_end / k as f64;
                    let y0: Vec<f32> = p.y0.iter().map(|&v| v as f32).collect();
                    let times = Drive {
                        rows: vec![(0..=k).map(|s| (s as f64 * dt) as f32).collect()],
                    };
                    let out = integrate_fixed::<Cpu>(
                        &ProblemField(p),
                        &stepper,
                        t2(&y0, [1, n]),
                        &times,
                        dt,
                        k + 1,
                        FixedGrid::PER_SAMPLE,
                        None,
                    )
                    .unwrap();
                    let v: Vec<f64> = host64(out);
                    p.error(p.t_end, &v[n * k..n * (k + 1)])
                });
            } else {
                let (mut hs, mut errs) = (Vec::new(), Vec::new());
                for &k in &steps {
                    let dt = ROT_END / k as f64;
                    let out = integrate_fixed::<Cpu>(
                        &Rotation,
                        &stepper,
                        t2(&[2.0, 0.0], [1, 2]),
                        &Drive::zeros(1, k + 1),
                        dt,
                        k + 1,
                        FixedGrid::PER_SAMPLE,
                        None,
                    )
                    .unwrap();
                    let v = host_values(out);
                    hs.push(dt);
                    errs.push(rotation_error(v[2 * k] as f64, v[2 * k + 1] as f64));
                }
                let p = observed_order(&hs, &errs);
                println!("{name}: order {p:.3}, errors {errs:?}");
                assert!(
                    (p - want).abs() < 0.3,
                    "{method:?}: order {p:.2}, want {want} (errors {errs:?})"
                );
            }
            let s = stepper.stats();
            assert_eq!(s.halvings, 0, "{method:?}: {s:?}");
            assert!(s.max_iterations <= 6, "{method:?}: {s:?}");
        }
    }

    /// `y' = λ (y - cos t) - sin t` with `t` as the drive.
    struct StiffCos(f32);

    impl<B: Backend> VectorField<B> for StiffCos {
        fn eval(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Tensor<B, 2> {
            (x - u.clone().cos()) * self.0 - u.sin()
        }

        fn linearize(
            &self,
            x: Tensor<B, 2>,
            u: Tensor<B, 2>,
        ) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
            let f = self.eval(x.detach(), u.detach());
            let j = f.ones_like().unsqueeze_dim::<3>(2) * self.0;
            Some((f, j))
        }
    }

    #[test]
    fn stiff_problem_stays_on_the_slow_manifold() {
        let lambda = -1e4f32;
        let dt = 0.1; // |h λ| = 1000
        let samples = 51;
        let drive = Drive {
            rows: vec![(0..samples).map(|s| (s as f64 * dt) as f32).collect()],
        };
        let run = |stepper: &dyn Stepper<Cpu>| {
            integrate_fixed::<Cpu>(
                &StiffCos(lambda),
                stepper,
                t2(&[1.0], [1, 1]),
                &drive,
                dt,
                samples,
                FixedGrid::PER_SAMPLE,
                None,
            )
            .map(host_values)
        };
        for method in ImplicitMethod::ALL {
            let stepper = Implicit::new(method);
            let v = run(&stepper).unwrap();
            let err = v
                .iter()
                .enumerate()
                .map(|(s, y)| (*y as f64 - (s as f64 * dt).cos()).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-3, "{method:?}: max error {err}");
            assert_eq!(stepper.stats().halvings, 0);
        }
        let rk4 = run(&ExplicitRk(Solver::Rk4)).unwrap();
        let last = *rk4.last().unwrap();
        assert!(
            !last.is_finite() || last.abs() > 1e6,
            "RK4 should blow up at |h λ| = 1000, got {last}"
        );
    }

    /// `y' = y^2` has no backward-Euler step from `y0` when `4 h y0 > 1`.
    #[test]
    fn newton_failure_is_a_typed_error() {
        let opts = NewtonOptions {
            max_halvings: 3,
            ..NewtonOptions::default()
        };
        let stepper = Implicit::with_options(ImplicitMethod::BackwardEuler, opts);
        let x = t2::<Cpu>(&[1.0], [1, 1]);
        let f0 = x.clone() * x.clone();
        let zero = |_c: f64| t2::<Cpu>(&[0.0], [1, 1]);
        // h = 4, 2, 1, 0.5: no real root at any of them.
        let err = stepper.step(&Square, x, f0, 4.0, &zero).unwrap_err();
        match err {
            SolveError::Newton {
                step: 0,
                halvings: 3,
                residual,
                ..
            } => assert!(residual.is_finite() && residual > 0.0, "{err}"),
            other => panic!("unexpected {other:?}"),
        }
        let s = stepper.stats();
        assert_eq!((s.failures, s.halvings), (1, 3), "{s:?}");
        // Inside a solve: from 0.2 the first unit step exists (root 0.276), the second does not,
        // and the error names step 1 at t = 1.
        let solve = |max_halvings| {
            let st = Implicit::with_options(
                ImplicitMethod::BackwardEuler,
                NewtonOptions {
                    max_halvings,
                    ..NewtonOptions::default()
                },
            );
            let r = integrate_fixed::<Cpu>(
                &Square,
                &st,
                t2(&[0.2], [1, 1]),
                &Drive::zeros(1, 3),
                1.0,
                3,
                FixedGrid::PER_SAMPLE,
                None,
            );
            (r, st.stats())
        };
        match solve(0).0 {
            Err(SolveError::Newton { step: 1, t, .. }) => assert_eq!(t, 1.0),
            other => panic!("unexpected {other:?}"),
        }
        // With halvings the same solve succeeds, on sub-steps, and stays finite.
        let (ok, stats) = solve(3);
        let v = host_values(ok.unwrap());
        assert!(v.iter().all(|y| y.is_finite()), "{v:?}");
        assert!(stats.halvings >= 1, "{stats:?}");
        // A field without a Jacobian is refused, not differenced.
        let plain = |x: Tensor<Cpu, 2>, _u: Tensor<Cpu, 2>| x;
        let x = t2::<Cpu>(&[1.0], [1, 1]);
        let err = Implicit::new(ImplicitMethod::RadauIIA5)
            .step(&plain, x.clone(), x, 0.1, &zero)
            .unwrap_err();
        assert_eq!(err, SolveError::NoJacobian);
    }

    /// A two-state neural ODE with its weights scaled up, so the stage systems of steps of 0.3
    /// are genuinely nonlinear.
    fn net() -> (NeuralOde, Vec<Vec<f32>>) {
        let model = NeuralOde {
            f: MlpDef::new(3, vec![(8, Activation::Tanh), (2, Activation::Identity)]),
            x0: vec![0.0, 0.0],
            name: "t".into(),
        };
        let mut values = model.f.init(&mut Rng::new(11));
        for (i, v) in values.iter_mut().enumerate() {
            let mut rng = Rng::new(100 + i as u64);
            for w in v.iter_mut() {
                *w = *w * 1.5 + 0.1 * (rng.uniform() as f32 - 0.5);
            }
        }
        (model, values)
    }

    const X0: [f32; 4] = [0.5, -0.3, -0.8, 0.4];

    fn net_drive(samples: usize) -> Drive {
        Drive {
            rows: (0..2)
                .map(|b| {
                    (0..samples)
                        .map(|s| (0.7 * s as f32 + b as f32).sin())
                        .collect()
                })
                .collect(),
        }
    }

    fn tight() -> NewtonOptions {
        NewtonOptions {
            rtol: 1e-6,
            atol: 1e-7,
            ..NewtonOptions::default()
        }
    }

    /// Loss of an implicit solve of the net: `Σ x_s · w_s` over samples with fixed weights.
    fn net_loss<B: Backend>(
        method: ImplicitMethod,
        params: &[Tensor<B, 2>],
        x0: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        let (model, _) = net();
        let samples = 6;
        let device = Default::default();
        let field = model.field(params, None, &device);
        let stepper = Implicit::with_options(method, tight());
        let out = integrate_fixed(
            field.as_ref(),
            &stepper,
            x0,
            &net_drive(samples),
            0.3,
            samples,
            FixedGrid::PER_SAMPLE,
            None,
        )
        .unwrap();
        let w: Vec<f32> = (0..samples * 4)
            .map(|i| ((i as f32) * 0.37).cos())
            .collect();
        let w = Tensor::<B, 3>::from_data(TensorData::new(w, [samples, 2, 2]), &device);
        (out * w).sum()
    }

    fn to_tensors<B: Backend>(model: &NeuralOde, values: &[Vec<f32>]) -> Vec<Tensor<B, 2>> {
        crate::nn::upload(values, &model.f.param_shapes(), &Default::default())
    }

    fn ad_grads(
        method: ImplicitMethod,
        loss_fn: impl Fn(&[Tensor<CpuAd, 2>], Tensor<CpuAd, 2>) -> Tensor<CpuAd, 1>,
    ) -> (Vec<Vec<f32>>, Vec<f32>) {
        let _ = method;
        let (model, values) = net();
        // One autodiff leaf for the parameters and the initial state, as training does
        // (`crate::leaf`): several leaves make burn-autodiff 0.21 merge graphs in hash-map order.
        let mut inner = to_tensors::<Cpu>(&model, &values);
        inner.push(t2::<Cpu>(&X0, [2, 2]));
        let (leaf, mut views) = crate::leaf::Leaf::<CpuAd>::new(&inner);
        let x0 = views.pop().expect("x0 view");
        let loss = loss_fn(&views, x0);
        let mut g: Vec<Vec<f32>> = leaf
            .grads(&loss.backward())
            .into_iter()
            .map(host_values)
            .collect();
        let gx = g.pop().expect("x0 grad");
        let gp = g;
        (gp, gx)
    }

    /// Gradients w.r.t. every parameter and the initial states through five implicit steps
    /// against central differences of the loss, along random directions.
    #[test]
    fn implicit_gradients_match_finite_differences() {
        let (model, values) = net();
        for method in ImplicitMethod::ALL {
            let (gp, gx) = ad_grads(method, |p, x0| net_loss(method, p, x0));
            let loss_at = |vals: &[Vec<f32>], x0: &[f32]| -> f64 {
                let p = to_tensors::<Cpu>(&model, vals);
                host_values(net_loss(method, &p, t2::<Cpu>(x0, [2, 2])))[0] as f64
            };
            let mut rng = Rng::new(7);
            let dirs: Vec<Vec<f32>> = values
                .iter()
                .map(|v| v.iter().map(|_| rng.normal() as f32).collect())
                .collect();
            let dx: Vec<f32> = X0.iter().map(|_| rng.normal() as f32).collect();
            let eps = 3e-3f32;
            let shifted = |s: f32| {
                let vals: Vec<Vec<f32>> = values
                    .iter()
                    .zip(&dirs)
                    .map(|(v, d)| v.iter().zip(d).map(|(a, b)| a + s * b).collect())
                    .collect();
                loss_at(&vals, &X0)
            };
            let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
            let ad: f64 = gp
                .iter()
                .zip(&dirs)
                .flat_map(|(g, d)| g.iter().zip(d).map(|(a, b)| *a as f64 * *b as f64))
                .sum();
            println!("{method:?} params: autodiff {ad:.6} differences {fd:.6}");
            assert!(
                (ad - fd).abs() < 5e-4 * (1.0 + fd.abs()),
                "{method:?} params: autodiff {ad} vs differences {fd}"
            );
            let shifted_x = |s: f32| {
                let x: Vec<f32> = X0.iter().zip(&dx).map(|(a, b)| a + s * b).collect();
                loss_at(&values, &x)
            };
            let fd = (shifted_x(eps) - shifted_x(-eps)) / (2.0 * eps as f64);
            let ad: f64 = gx.iter().zip(&dx).map(|(a, b)| *a as f64 * *b as f64).sum();
            println!("{method:?} x0: autodiff {ad:.6} differences {fd:.6}");
            assert!(
                (ad - fd).abs() < 5e-4 * (1.0 + fd.abs()),
                "{method:?} x0: autodiff {ad} vs differences {fd}"
            );
        }
    }

    /// One step with the stage system solved by 80 unrolled chord-Newton iterations (constant
    /// iteration matrix at the step start, inverted on the host: a test reference only), all
    /// recorded by autodiff; at convergence its gradient is the implicit-function-theorem one.
    fn unrolled_step<B: AutodiffBackend>(
        method: ImplicitMethod,
        params: &[Tensor<B, 2>],
        x: Tensor<B, 2>,
        h: f64,
    ) -> Tensor<B, 2> {
        let (model, _) = net();
        let device = Default::default();
        let field = model.field(params, None, &device);
        let tab = method.tableau();
        let [batch, n] = x.dims();
        let fi = tab.first_implicit;
        let m = tab.stages - fi;
        let big_n = m * n;
        let u = t2::<B>(&vec![0.0; batch], [batch, 1]);
        let (_, j0) = field.linearize(x.clone(), u.clone()).unwrap();
        let j0 = host64(j0);
        let mut minv = vec![0.0f64; batch * big_n * big_n];
        for b in 0..batch {
            let mut mat = vec![0.0f64; big_n * big_n];
            for l in 0..m {
                subtract_stage_jacobian(&mut mat, tab, n, h, l, &j0[b * n * n..(b + 1) * n * n]);
            }
            add_identity(&mut mat, big_n);
            let lu = Lu::factor(big_n, mat).unwrap();
            for col in 0..big_n {
                let mut x = vec![0.0; big_n];
                x[col] = 1.0;
                lu.solve(&mut x);
                for row in 0..big_n {
                    minv[b * big_n * big_n + row * big_n + col] = x[row];
                }
            }
        }
        let minv = upload::<B, 3>(&minv, [batch, big_n, big_n], &device);
        let f0 = field.eval(x.clone(), u.clone());
        let mut z = x.zeros_like().repeat_dim(1, m);
        for _ in 0..80 {
            let mut fs = vec![f0.clone(); fi];
            for k in 0..m {
                fs.push(field.eval(x.clone() + z.clone().narrow(1, k * n, n), u.clone()));
            }
            let g: Vec<Tensor<B, 2>> = (0..m)
                .map(|k| {
                    let mut gk = z.clone().narrow(1, k * n, n);
                    for (j, fj) in fs.iter().enumerate() {
                        gk = gk - fj.clone() * (h * tab.a[fi + k][j]);
                    }
                    gk
                })
                .collect();
            let g = Tensor::cat(g, 1).reshape([batch, big_n, 1]);
            z = z - minv.clone().matmul(g).reshape([batch, big_n]);
        }
        x + z.narrow(1, (m - 1) * n, n)
    }

    #[test]
    fn ift_gradient_equals_unrolled_newton_gradient() {
        let h = 0.2;
        for method in ImplicitMethod::ALL {
            let weights = t2::<CpuAd>(&[0.3, -1.1, 0.7, 0.5], [2, 2]);
            let ift = ad_grads(method, |p, x0| {
                let (model, _) = net();
                let field = model.field(p, None, &Default::default());
                let u = t2::<CpuAd>(&[0.0, 0.0], [2, 1]);
                let f0 = field.eval(x0.clone(), u.clone());
                let st = Implicit::with_options(method, tight());
                let y = st.step(field.as_ref(), x0, f0, h, &|_c| u.clone()).unwrap();
                (y * weights.clone()).sum()
            });
            let unrolled = ad_grads(method, |p, x0| {
                (unrolled_step(method, p, x0, h) * weights.clone()).sum()
            });
            let all = |g: &(Vec<Vec<f32>>, Vec<f32>)| -> Vec<f32> {
                g.0.iter().flatten().chain(&g.1).copied().collect()
            };
            let (a, b) = (all(&ift), all(&unrolled));
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = a
                .iter()
                .zip(&b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            println!("{method:?}: largest |IFT - unrolled| {worst:.2e}, largest entry {scale:.3}");
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() < 2e-6 * scale.max(1.0),
                    "{method:?} entry {i}: IFT {x} vs unrolled {y}"
                );
            }
        }
    }

    /// Rows at different sample intervals share one batch: the scaled field's Jacobian is scaled
    /// per row, and implicit steps in sample units match steps in physical time.
    #[test]
    fn per_row_time_scales_the_jacobian() {
        let dt = t2::<Cpu>(&[0.5, 2.0], [2, 1]);
        let scaled = crate::diffsolve::PerRowTime {
            field: &Rotation,
            dt: dt.clone(),
        };
        let x = t2::<Cpu>(&[1.0, 0.5, -0.3, 0.8], [2, 2]);
        let u = t2::<Cpu>(&[0.0, 0.0], [2, 1]);
        let (f, j) = scaled.linearize(x.clone(), u.clone()).unwrap();
        let (f1, j1) = Rotation.linearize(x.clone(), u.clone()).unwrap();
        let (f, j, f1, j1) = (host64(f), host64(j), host64(f1), host64(j1));
        for b in 0..2 {
            let s = [0.5, 2.0][b];
            for i in 0..2 {
                assert!((f[b * 2 + i] - s * f1[b * 2 + i]).abs() < 1e-6);
            }
            for i in 0..4 {
                assert!((j[b * 4 + i] - s * j1[b * 4 + i]).abs() < 1e-6);
            }
        }
        // One radau5 step of one sample unit equals a step of dt in physical time.
        let st = Implicit::new(ImplicitMethod::RadauIIA5);
        let f0 = scaled.eval(x.clone(), u.clone());
        let y = host_values(
            st.step(&scaled, x.clone(), f0, 1.0, &|_c| u.clone())
                .unwrap(),
        );
        for (b, h) in [0.5, 2.0].into_iter().enumerate() {
            let xb = x.clone().narrow(0, b, 1);
            let ub = u.clone().narrow(0, b, 1);
            let f0 = Rotation.eval(xb.clone(), ub.clone());
            let want = host_values(st.step(&Rotation, xb, f0, h, &|_c| ub.clone()).unwrap());
            for i in 0..2 {
                assert!((y[b * 2 + i] - want[i]).abs() < 1e-5, "row {b}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for m in ImplicitMethod::ALL {
            assert_eq!(ImplicitMethod::from_name(m.cli_name()), Some(m));
        }
        assert_eq!(ImplicitMethod::from_name("radau"), None);
    }

    /// Seconds per step of each implicit method and of RK4 on a 2-state MLP field (3-32-32-2,
    /// tanh) at batch 256: forward only (Cpu) and forward plus backward (CpuAd).
    /// `cargo test --release -p odeflash-training implicit_step_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn implicit_step_timing() {
        use std::time::Instant;
        let model = NeuralOde {
            f: MlpDef::new(
                3,
                vec![
                    (32, Activation::Tanh),
                    (32, Activation::Tanh),
                    (2, Activation::Identity),
                ],
            ),
            x0: vec![0.0, 0.0],
            name: "t".into(),
        };
        let values = model.f.init(&mut Rng::new(1));
        let batch = 256;
        let steps = 20;
        let x0: Vec<f32> = (0..batch * 2).map(|i| (i as f32 * 0.01).sin()).collect();
        let drive = Drive {
            rows: (0..batch)
                .map(|b| (0..=steps).map(|s| ((s + b) as f32 * 0.1).sin()).collect())
                .collect(),
        };
        fn time<B: Backend>(
            model: &NeuralOde,
            values: &[Vec<f32>],
            x0: &[f32],
            drive: &Drive,
            steps: usize,
            stepper: &dyn Stepper<B>,
            backward: &dyn Fn(Tensor<B, 1>),
        ) -> f64 {
            let device = Default::default();
            let p = crate::nn::upload::<B>(values, &model.f.param_shapes(), &device);
            let field = model.field(&p, None, &device);
            let x = Tensor::from_data(TensorData::new(x0.to_vec(), [x0.len() / 2, 2]), &device);
            let start = Instant::now();
            let out = integrate_fixed(
                field.as_ref(),
                stepper,
                x,
                drive,
                0.1,
                steps + 1,
                FixedGrid::PER_SAMPLE,
                None,
            )
            .unwrap();
            backward(out.powi_scalar(2).sum());
            start.elapsed().as_secs_f64() / steps as f64
        }
        let fwd = |t: Tensor<Cpu, 1>| {
            let _ = host_values(t);
        };
        let bwd = |t: Tensor<CpuAd, 1>| {
            let _ = t.backward();
        };
        let rk4 = ExplicitRk(Solver::Rk4);
        println!("batch {batch}, MLP 3-32-32-2 tanh, {steps} steps of 0.1");
        println!("method            forward ms/step   fwd+bwd ms/step   Newton it/solve");
        for _ in 0..2 {
            let f = time::<Cpu>(&model, &values, &x0, &drive, steps, &rk4, &fwd);
            let b = time::<CpuAd>(&model, &values, &x0, &drive, steps, &rk4, &bwd);
            println!("rk4               {:>15.3} {:>17.3}", f * 1e3, b * 1e3);
            for method in ImplicitMethod::ALL {
                let st = Implicit::new(method);
                let f = time::<Cpu>(&model, &values, &x0, &drive, steps, &st, &fwd);
                let b = time::<CpuAd>(&model, &values, &x0, &drive, steps, &st, &bwd);
                let s = st.stats();
                println!(
                    "{:<17} {:>15.3} {:>17.3} {:>17.2}",
                    method.cli_name(),
                    f * 1e3,
                    b * 1e3,
                    s.iterations as f64 / s.solves.max(1) as f64
                );
            }
        }
    }
}
