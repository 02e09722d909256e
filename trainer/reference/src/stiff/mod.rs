//! Reference solvers for stiff ODEs in plain f64, and the stiff test problems of paper 002.
//!
//! The differentiable solvers in [`crate::diffsolve`] run on burn tensors in f32 and are what the
//! trainer backpropagates through. Generating training data and judging a trained model needs
//! something else: a solution accurate to many digits, from a solver whose error is controlled,
//! on problems so stiff that an explicit method would take millions of steps. That is this
//! module:
//!
//! - [`problems`]: the stiff linear equation, two small polynomial systems, HIRES and the stiff van
//!   der Pol oscillator, each with an analytic Jacobian, a citation, and its right-hand side as a
//!   coefficient table ([`problems::Problem::polynomial`]) that a learned polynomial can be
//!   compared with;
//! - [`radau5`]: adaptive Radau IIA of order 5 after Hairer & Wanner's RADAU5, with dense output:
//!   [`solve_adaptive`] is the entry point for reference data;
//! - [`fixed`]: fixed-step explicit (the runtime's tableaux) and implicit (backward Euler,
//!   trapezoid, Radau IIA 3 and 5, full Newton) steppers, for comparisons at a given step size.
//!
//! ```
//! use odeflash_reference::stiff::{problem, solve_adaptive, Options};
//!
//! let hires = problem("hires").unwrap();
//! let t_out: Vec<f64> = (0..=10).map(|k| 32.18122 * k as f64).collect();
//! let sol = solve_adaptive(hires.as_ref(), &hires.initial(), 0.0, &t_out, &Options::default())
//!     .unwrap();
//! assert_eq!(sol.y.len(), t_out.len());
//! assert!((sol.y[10][0] - 7.371312573325668e-4).abs() < 1e-8);
//! ```

pub mod fixed;
pub mod linalg;
pub mod problems;
pub mod radau5;
#[cfg(test)]
mod tests;

pub use fixed::{solve_fixed, FixedMethod};
pub use problems::{
    hires_initial_conditions, problem, OdeSystem, Problem, Term, HIRES_REFERENCE,
    HIRES_REFERENCE_T, PROBLEMS,
};
pub use radau5::solve_adaptive;

/// Why a solve stopped. Every variant carries the time it stopped at, so a caller generating
/// data can report which trajectory and where.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StiffError {
    /// The step size fell below what f64 can resolve at `t` (roughly 10 ulps of `t`): the solution
    /// has a singularity there, or the tolerances cannot be met in f64.
    #[error("step size underflow at t = {t} (h = {h:e})")]
    StepSizeUnderflow {
        /// Time reached.
        t: f64,
        /// Step size attempted.
        h: f64,
    },
    /// More than `Options::max_steps` steps: tolerances too tight for the interval, or the problem
    /// is stiffer than the method can follow.
    #[error("more than {max_steps} steps before t = {t}")]
    TooManySteps {
        /// The limit.
        max_steps: usize,
        /// Time reached.
        t: f64,
    },
    /// Newton's method did not converge even with the step size reduced to its floor (fixed-step
    /// implicit methods: at the given step size). Usually a step size too large for the
    /// nonlinearity, or a Jacobian that does not match the right-hand side.
    #[error("Newton iteration did not converge at t = {t} (h = {h:e})")]
    NewtonFailure {
        /// Time at the start of the failed step.
        t: f64,
        /// Step size of the failed step.
        h: f64,
    },
    /// An iteration matrix `I - h a J` was singular to working precision.
    #[error("singular iteration matrix at t = {t} (h = {h:e})")]
    SingularMatrix {
        /// Time at the start of the step.
        t: f64,
        /// Step size.
        h: f64,
    },
    /// The solution or the right-hand side became NaN or infinite (a fixed-step explicit method
    /// outside its stability region, or a system that blows up).
    #[error("the solution is not finite at t = {t}")]
    NonFinite {
        /// Time of the first non-finite value.
        t: f64,
    },
    /// The request itself is unusable: tolerances not positive, output times not increasing or
    /// before `t0`, an initial state of the wrong length or not finite, a step size not positive.
    #[error("{0}")]
    InvalidInput(String),
}

/// Settings of the adaptive solver. `Default` gives rtol 1e-6, atol 1e-9: far tighter than any
/// training data needs, and cheap for the problems here (HIRES: ~100 steps).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Relative tolerance of the local error, per component.
    pub rtol: f64,
    /// Absolute tolerance of the local error, per component (the error is measured against
    /// `atol + rtol |y|`).
    pub atol: f64,
    /// First step size; `None` chooses one from the derivatives at the start (Hairer, Nørsett &
    /// Wanner I, sec. II.4).
    pub h0: Option<f64>,
    /// Largest step size; `None` for no limit but the interval.
    pub h_max: Option<f64>,
    /// Most accepted plus rejected steps before giving up.
    pub max_steps: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rtol: 1e-6,
            atol: 1e-9,
            h0: None,
            h_max: None,
            max_steps: 100_000,
        }
    }
}

/// What a solve cost. LU decompositions count the pair (real and complex system) of Radau5 as one,
/// as Hairer's RADAU5 does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (error too large or Newton not converging).
    pub rejected: usize,
    /// Right-hand-side evaluations (not counting those inside finite-difference Jacobians).
    pub rhs_evals: usize,
    /// Jacobian evaluations.
    pub jacobians: usize,
    /// LU decompositions.
    pub lu_decompositions: usize,
    /// Newton iterations, all steps together.
    pub newton_iterations: usize,
}

/// A solution at the requested output times.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    /// Output times, as requested.
    pub t: Vec<f64>,
    /// `y[k]` is the state at `t[k]`.
    pub y: Vec<Vec<f64>>,
    /// What it cost.
    pub stats: Stats,
}

/// Weighted root-mean-square norm `sqrt(mean((v_i / scale_i)^2))`, the error norm of Hairer's
/// codes: a value of 1 means "exactly at tolerance".
pub(crate) fn rms_norm(v: &[f64], scale: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let s: f64 = v.iter().zip(scale).map(|(x, s)| (x / s) * (x / s)).sum();
    (s / v.len() as f64).sqrt()
}

/// Checks what every solver needs of its inputs.
pub(crate) fn check_request(
    system: &dyn OdeSystem,
    y0: &[f64],
    t0: f64,
    t_out: &[f64],
) -> Result<(), StiffError> {
    let n = system.dim();
    if y0.len() != n {
        return Err(StiffError::InvalidInput(format!(
            "initial state has {} values, the system has {n} states",
            y0.len()
        )));
    }
    if let Some(i) = y0.iter().position(|v| !v.is_finite()) {
        return Err(StiffError::InvalidInput(format!(
            "initial state y{} is not finite",
            i + 1
        )));
    }
    if !t0.is_finite() {
        return Err(StiffError::InvalidInput("t0 is not finite".into()));
    }
    if t_out.is_empty() {
        return Err(StiffError::InvalidInput("no output times".into()));
    }
    let mut prev = t0;
    for (k, &t) in t_out.iter().enumerate() {
        if !t.is_finite() || t < prev {
            return Err(StiffError::InvalidInput(format!(
                "output time {k} ({t}) is not finite or comes before {prev}"
            )));
        }
        prev = t;
    }
    Ok(())
}
