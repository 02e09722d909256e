//! Fixed-step solvers in f64: the runtime's explicit Runge-Kutta tableaux, and the implicit
//! methods of paper 002 (backward Euler, trapezoid, Radau IIA 3 and 5) with full Newton.
//!
//! These answer "what does method M do at step size h" — the question behind paper 002's
//! comparisons (RK4 blowing up on stiff van der Pol, the implicit methods' convergence order) —
//! where [`super::solve_adaptive`] answers "what is the solution".

use std::convert::Infallible;

use odeflash_runtime::implicit::{
    add_identity, subtract_stage_jacobian, ImplicitTableau, BACKWARD_EULER, RADAU_IIA3, RADAU_IIA5,
    TRAPEZOID,
};
use odeflash_runtime::solver::rk_step;
use odeflash_runtime::Solver;

use super::linalg::Lu;
use super::problems::OdeSystem;
use super::{check_request, Solution, Stats, StiffError};

/// A fixed-step method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FixedMethod {
    /// An explicit Runge-Kutta method from the runtime.
    Explicit(Solver),
    /// An implicit Runge-Kutta method from `odeflash_runtime::implicit`, solved by full Newton.
    Implicit(&'static ImplicitTableau),
}

impl FixedMethod {
    /// Every CLI name [`FixedMethod::from_name`] accepts.
    pub const NAMES: &'static [&'static str] = &[
        "euler",
        "heun",
        "rk4",
        "rk5",
        "tsit5",
        "dopri5",
        "backward-euler",
        "trapezoid",
        "radau3",
        "radau5-fixed",
    ];

    /// Parses a CLI name (see [`FixedMethod::NAMES`]). `radau5-fixed` is Radau IIA 5 at a fixed
    /// step; plain `radau5` is the adaptive solver, which the CLI handles itself.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "backward-euler" => FixedMethod::Implicit(&BACKWARD_EULER),
            "trapezoid" => FixedMethod::Implicit(&TRAPEZOID),
            "radau3" => FixedMethod::Implicit(&RADAU_IIA3),
            "radau5-fixed" => FixedMethod::Implicit(&RADAU_IIA5),
            other => FixedMethod::Explicit(Solver::from_name(other)?),
        })
    }

    /// Name as in the literature.
    pub fn name(&self) -> &'static str {
        match self {
            FixedMethod::Explicit(s) => s.tableau().name,
            FixedMethod::Implicit(t) => t.name,
        }
    }

    /// Classical order.
    pub fn order(&self) -> u8 {
        match self {
            FixedMethod::Explicit(s) => s.tableau().order,
            FixedMethod::Implicit(t) => t.order,
        }
    }
}

/// Most Newton iterations per implicit step.
const NEWTON_MAX_ITER: usize = 25;
/// Newton stops when every stage update is below `ATOL + RTOL |stage|`: near f64 rounding, so
/// the fixed-step solution is the method's, not the iteration's.
const NEWTON_RTOL: f64 = 1e-12;
const NEWTON_ATOL: f64 = 1e-14;

/// Integrates `y' = f(t, y)` from `y(t0) = y0` with `method` at step sizes of at most `dt`,
/// returning the solution at every time in `t_out` (non-decreasing, none before `t0`). Each
/// interval between consecutive output times is split into equal steps, as few as keep them at
/// most `dt`, so every output time is hit exactly (no interpolation) and outputs on a grid of `dt`
/// give exactly steps of `dt`.
pub fn solve_fixed<S: OdeSystem + ?Sized>(
    system: &S,
    method: FixedMethod,
    y0: &[f64],
    t0: f64,
    t_out: &[f64],
    dt: f64,
) -> Result<Solution, StiffError> {
    check_request(&Erased(system), y0, t0, t_out)?;
    if !(dt > 0.0 && dt.is_finite()) {
        return Err(StiffError::InvalidInput(format!(
            "step size must be positive and finite (got {dt})"
        )));
    }
    let n = y0.len();
    let mut stats = Stats::default();
    let mut ws = Workspace::new(n, method);
    let mut t = t0;
    let mut y = y0.to_vec();
    let mut y_next = vec![0.0; n];
    let mut ys = Vec::with_capacity(t_out.len());
    for &t_target in t_out {
        let span = t_target - t;
        if span > 0.0 {
            let steps = ((span / dt) * (1.0 - 1e-12)).ceil().max(1.0) as usize;
            let h = span / steps as f64;
            for k in 0..steps {
                let t_step = t + k as f64 * h;
                match method {
                    FixedMethod::Explicit(s) => {
                        let tab = s.tableau();
                        rk_step(
                            tab,
                            h,
                            &y,
                            &mut ws.k,
                            &mut ws.tmp,
                            &mut y_next,
                            |c, x, dx| -> Result<(), Infallible> {
                                system.rhs(t_step + c * h, x, dx);
                                Ok(())
                            },
                        )
                        .unwrap_or_else(|e| match e {});
                        stats.rhs_evals += tab.stages;
                    }
                    FixedMethod::Implicit(tab) => {
                        implicit_step(
                            system,
                            tab,
                            t_step,
                            h,
                            &y,
                            &mut y_next,
                            &mut ws,
                            &mut stats,
                        )?;
                    }
                }
                stats.steps += 1;
                if y_next.iter().any(|v| !v.is_finite()) {
                    return Err(StiffError::NonFinite { t: t_step + h });
                }
                std::mem::swap(&mut y, &mut y_next);
            }
            t = t_target;
        }
        ys.push(y.clone());
    }
    Ok(Solution {
        t: t_out.to_vec(),
        y: ys,
        stats,
    })
}

/// Lets the `?Sized` generic call `check_request`, which takes a trait object.
struct Erased<'a, S: ?Sized>(&'a S);

impl<S: OdeSystem + ?Sized> OdeSystem for Erased<'_, S> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        self.0.rhs(t, y, dy)
    }
}

/// Scratch space reused across steps.
struct Workspace {
    /// Explicit stages.
    k: Vec<f64>,
    tmp: Vec<f64>,
    /// Implicit: stage increments `Z_i = Y_i - y0` and derivatives `F_i`, stage after stage.
    z: Vec<f64>,
    f: Vec<f64>,
    jac: Vec<f64>,
    ys: Vec<f64>,
}

impl Workspace {
    fn new(n: usize, method: FixedMethod) -> Self {
        let stages = match method {
            FixedMethod::Explicit(s) => s.stages(),
            FixedMethod::Implicit(t) => t.stages,
        };
        Workspace {
            k: vec![0.0; stages * n],
            tmp: vec![0.0; n],
            z: vec![0.0; stages * n],
            f: vec![0.0; stages * n],
            jac: vec![0.0; stages * n * n],
            ys: vec![0.0; n],
        }
    }
}

/// One implicit Runge-Kutta step by full Newton on the stage increments: solves
/// `Z_i = h Σ_j a_ij f(t + c_j h, y0 + Z_j)` for the implicit stages (an explicit first stage,
/// as in the trapezoid rule, is `y0`), with a fresh Jacobian at every stage and iteration.
/// All four tableaux are stiffly accurate, so `y1` is the last stage: no `h f` multiplication
/// that would amplify the stiff components' Newton residual.
#[allow(clippy::too_many_arguments)]
fn implicit_step<S: OdeSystem + ?Sized>(
    system: &S,
    tab: &ImplicitTableau,
    t: f64,
    h: f64,
    y0: &[f64],
    y1: &mut [f64],
    ws: &mut Workspace,
    stats: &mut Stats,
) -> Result<(), StiffError> {
    let n = y0.len();
    let s = tab.stages;
    let fi = tab.first_implicit;
    let m = (s - fi) * n;
    ws.z.fill(0.0);
    for i in 0..fi {
        // Explicit stages sit at the step start (their row of `a` is zero).
        system.rhs(t + tab.c[i] * h, y0, &mut ws.f[i * n..(i + 1) * n]);
        stats.rhs_evals += 1;
    }
    let mut mat = vec![0.0; m * m];
    let mut rhs = vec![0.0; m];
    for _ in 0..NEWTON_MAX_ITER {
        stats.newton_iterations += 1;
        for i in fi..s {
            for ((v, &y), &z) in ws.ys.iter_mut().zip(y0).zip(&ws.z[i * n..(i + 1) * n]) {
                *v = y + z;
            }
            let ti = t + tab.c[i] * h;
            system.rhs(ti, &ws.ys, &mut ws.f[i * n..(i + 1) * n]);
            system.jacobian(ti, &ws.ys, &mut ws.jac[i * n * n..(i + 1) * n * n]);
            stats.rhs_evals += 1;
            stats.jacobians += 1;
        }
        if ws.f.iter().any(|v| !v.is_finite()) {
            return Err(StiffError::NonFinite { t });
        }
        // Residual -G_i = h Σ_j a_ij F_j - Z_i; matrix δ_ij I - h a_ij J_j.
        for i in fi..s {
            let r = (i - fi) * n;
            for k in 0..n {
                let mut g = -ws.z[i * n + k];
                for j in 0..s {
                    g += h * tab.a[i][j] * ws.f[j * n + k];
                }
                rhs[r + k] = g;
            }
        }
        mat.fill(0.0);
        for j in fi..s {
            subtract_stage_jacobian(
                &mut mat,
                tab,
                n,
                h,
                j - fi,
                &ws.jac[j * n * n..(j + 1) * n * n],
            );
        }
        add_identity(&mut mat, m);
        stats.lu_decompositions += 1;
        let lu = Lu::factor(m, mat.clone()).map_err(|_| StiffError::SingularMatrix { t, h })?;
        lu.solve(&mut rhs);
        let mut converged = true;
        for i in fi..s {
            for k in 0..n {
                let dz = rhs[(i - fi) * n + k];
                let zn = ws.z[i * n + k] + dz;
                ws.z[i * n + k] = zn;
                if dz.is_nan() || dz.abs() > NEWTON_ATOL + NEWTON_RTOL * (y0[k] + zn).abs() {
                    converged = false;
                }
            }
        }
        if converged {
            for k in 0..n {
                y1[k] = y0[k] + ws.z[(s - 1) * n + k];
            }
            return Ok(());
        }
    }
    Err(StiffError::NewtonFailure { t, h })
}
