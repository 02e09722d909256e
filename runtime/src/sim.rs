//! Fixed-step simulation: a streaming API for a rig loop and a whole-trajectory API for the host.
//!
//! Between two samples the supply voltage is interpolated linearly, the rig knows the waveform
//! it drives. Every sample advances the state by `substeps` steps of the chosen solver (or one
//! map evaluation for an iterator net), clamps it into the model's bounds and checks it is finite.

use crate::error::SimError;
#[cfg(feature = "implicit")]
use crate::implicit::{implicit_step, NewtonFailure};

/// Why an implicit solver is refused by a build without the `implicit` feature.
#[cfg(not(feature = "implicit"))]
const IMPLICIT_FEATURE: &str = "solver (implicit: build with the `implicit` feature)";
use crate::limits::{MAX_NEWTON_ITERS, MAX_STATES, MAX_SUBSTEPS};
use crate::model::{Dynamics, IteratorForm, Model, Readout};
use crate::solver::{rk_step, Solver};

/// Scratch an explicit solver needs, in f32 elements: two ping-pong activation buffers, the
/// state, the next state, a stage temporary and the stage derivatives.
pub const fn scratch_len(max_width: usize, n_states: usize, stages: usize) -> usize {
    2 * max_width + (3 + stages) * n_states
}

/// Scratch an implicit solver needs, in f32 elements: the buffers of [`scratch_len`] without the
/// stage derivatives, the Newton workspace ([`crate::implicit::implicit_scratch_len`]: the
/// augmented `N x (N + 1)` Newton matrix, `N` = implicit stages times states, dominates), the
/// nets' Jacobian work (`jac_work`, [`Model::jacobian_work_len`]) and the Jacobian of the net
/// in all its inputs, `n x (n + 1)`.
pub const fn implicit_scratch_len(
    max_width: usize,
    n_states: usize,
    stages: usize,
    implicit: usize,
    jac_work: usize,
) -> usize {
    2 * max_width
        + 3 * n_states
        + crate::implicit::implicit_scratch_len(n_states, stages, implicit)
        + jac_work
        + n_states * (n_states + 1)
}

/// How to run a model.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SimConfig {
    /// Sample interval, seconds.
    pub dt: f32,
    /// Fixed-step method (ignored by iterator nets).
    pub solver: Solver,
    /// Solver steps per sample interval (1 for iterator nets).
    pub substeps: u16,
    /// Full Newton iterations per implicit step, 1 to [`MAX_NEWTON_ITERS`]; a fixed count, so a
    /// step costs the same every time (ignored by explicit solvers and iterator nets).
    pub newton_iters: u8,
}

impl SimConfig {
    /// Newton iterations unless asked otherwise: four. On a smooth field full Newton's error
    /// shrinks by a factor `O(h)` or better per iteration from the zero start, below the method's
    /// own error by the second or third (`tests/implicit.rs` checks the orders with this count).
    /// On paper 002's stiff van der Pol (mu = 1000, t in [0, 2000], h = 1e-3), measured per step
    /// against 30 iterations to 1e-7: of 2e6 steps all but 250 to 500 need one iteration; with
    /// four, Radau IIA 3 and 5 converge on every step, backward Euler and the trapezoid rule on
    /// all but 6 and 4 steps of the relaxation jump. At much larger steps across such a jump
    /// no fixed count suffices (undamped Newton), so the step size has to resolve it.
    pub const DEFAULT_NEWTON_ITERS: u8 = 4;

    /// A configuration with [`SimConfig::DEFAULT_NEWTON_ITERS`].
    pub const fn new(dt: f32, solver: Solver, substeps: u16) -> Self {
        SimConfig {
            dt,
            solver,
            substeps,
            newton_iters: Self::DEFAULT_NEWTON_ITERS,
        }
    }
}

/// The electrical observation at one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Sample {
    /// Memristor voltage, volts (the drive itself for models without a readout).
    pub v: f32,
    /// Current, amperes (0 for models without a readout).
    pub i: f32,
    /// Memductance, siemens (0 for models without a readout).
    pub g: f32,
}

/// Memductance at state `x`, or `None` for models without a readout.
fn conductance(model: &Model<'_>, a: &mut [f32], b: &mut [f32], x: &[f32]) -> Option<f32> {
    match &model.readout {
        Readout::None => None,
        Readout::Linear { r_on, r_off } => {
            let s = x.first().copied().unwrap_or(0.0);
            Some(s / r_on + (1.0 - s) / r_off)
        }
        Readout::Net { g, g_min, g_max } => {
            let mut y = [0.0f32; 1];
            g.eval(x, a, b, &mut y);
            Some(g_min + (g_max - g_min) * y[0])
        }
    }
}

/// The electrical observation at state `x` under supply voltage `vs`.
fn observe(model: &Model<'_>, a: &mut [f32], b: &mut [f32], x: &[f32], vs: f32) -> Sample {
    match conductance(model, a, b, x) {
        None => Sample {
            v: vs,
            i: 0.0,
            g: 0.0,
        },
        Some(g) => {
            let v = match model.circuit {
                Some(c) => vs / (1.0 + c.series_resistance * g),
                None => vs,
            };
            Sample { v, i: g * v, g }
        }
    }
}

/// The vector field (or map) at state `x` under supply voltage `vs`, as a solver stage sees it;
/// `a` and `b` hold [`Model::max_width`] values each.
pub fn field(model: &Model<'_>, a: &mut [f32], b: &mut [f32], x: &[f32], vs: f32, out: &mut [f32]) {
    eval_net(model, a, b, x, vs, out);
}

/// Evaluates the state net at `[x.., u]`, `u` the memristor voltage (or the drive).
fn eval_net(model: &Model<'_>, a: &mut [f32], b: &mut [f32], x: &[f32], vs: f32, out: &mut [f32]) {
    let u = observe(model, a, b, x, vs).v;
    let n = x.len().min(MAX_STATES);
    let mut input = [0.0f32; MAX_STATES + 1];
    input[..n].copy_from_slice(&x[..n]);
    input[n] = u;
    model.dynamics.eval(&input[..=n], a, b, out);
}

/// Evaluates the vector field at `x` under supply `vs` into `out` and its Jacobian `∂f/∂x` into
/// `jac` (`n x n`, row-major), by forward tangents. Behind a series resistor the net's drive is
/// the memristor voltage `u = v_s / (1 + R_s G(x))`, so the chain rule adds
/// `∂f/∂u · ∂u/∂x` with `∂u/∂x = -v_s R_s ∇G / (1 + R_s G)^2`. `work` holds
/// [`Model::jacobian_work_len`] values and `jfull` `n (n + 1)`.
///
/// Public so tests and host tools can check it against finite differences: `a` and `b` hold
/// [`Model::max_width`] values each.
#[cfg(feature = "implicit")]
#[allow(clippy::too_many_arguments)]
pub fn field_jacobian(
    model: &Model<'_>,
    a: &mut [f32],
    b: &mut [f32],
    work: &mut [f32],
    jfull: &mut [f32],
    x: &[f32],
    vs: f32,
    out: &mut [f32],
    jac: &mut [f32],
) {
    let n = x.len().min(MAX_STATES);
    let mut dudx = [0.0f32; MAX_STATES];
    let dep = model.drive_depends_on_state();
    let u = match (dep, model.circuit) {
        (true, Some(c)) => {
            let mut dg = [0.0f32; MAX_STATES];
            let g = match &model.readout {
                Readout::Linear { r_on, r_off } => {
                    let s = x.first().copied().unwrap_or(0.0);
                    dg[0] = 1.0 / r_on - 1.0 / r_off;
                    s / r_on + (1.0 - s) / r_off
                }
                Readout::Net { g, g_min, g_max } => {
                    let mut y = [0.0f32; 1];
                    g.eval_jacobian(x, a, b, work, &mut y, &mut dg[..n], n);
                    for d in &mut dg[..n] {
                        *d *= g_max - g_min;
                    }
                    g_min + (g_max - g_min) * y[0]
                }
                Readout::None => 0.0,
            };
            let den = 1.0 + c.series_resistance * g;
            let k = -vs * c.series_resistance / (den * den);
            for (d, &gq) in dudx.iter_mut().zip(&dg[..n]) {
                *d = k * gq;
            }
            vs / den
        }
        _ => observe(model, a, b, x, vs).v,
    };
    let mut input = [0.0f32; MAX_STATES + 1];
    input[..n].copy_from_slice(&x[..n]);
    input[n] = u;
    let dirs = if dep { n + 1 } else { n };
    let Some(jf) = jfull.get_mut(..n * dirs) else {
        return;
    };
    model
        .dynamics
        .eval_jacobian(&input[..=n], a, b, work, out, jf, dirs);
    for (p, row) in jac.chunks_exact_mut(n).take(n).enumerate() {
        let du = if dep { jf[p * dirs + n] } else { 0.0 };
        for (q, j) in row.iter_mut().enumerate() {
            *j = jf[p * dirs + q] + du * dudx[q];
        }
    }
}

/// A model running sample by sample over caller-owned scratch memory.
pub struct Simulator<'m, 'a, 's> {
    model: &'m Model<'a>,
    config: SimConfig,
    a: &'s mut [f32],
    b: &'s mut [f32],
    x: &'s mut [f32],
    x_next: &'s mut [f32],
    tmp: &'s mut [f32],
    k: &'s mut [f32],
    /// Newton workspace, Jacobian work and the full Jacobian (empty for explicit solvers).
    #[cfg_attr(not(feature = "implicit"), allow(dead_code))]
    newton: &'s mut [f32],
    #[cfg_attr(not(feature = "implicit"), allow(dead_code))]
    jac_work: &'s mut [f32],
    #[cfg_attr(not(feature = "implicit"), allow(dead_code))]
    jfull: &'s mut [f32],
    step: u32,
    clamped: u32,
}

fn take<'s>(rest: &mut &'s mut [f32], n: usize) -> &'s mut [f32] {
    let (head, tail) = core::mem::take(rest).split_at_mut(n);
    *rest = tail;
    head
}

impl<'m, 'a, 's> Simulator<'m, 'a, 's> {
    /// Checks the configuration and carves the scratch; the state starts at the model's `x0`.
    pub fn new(
        model: &'m Model<'a>,
        config: SimConfig,
        scratch: &'s mut [f32],
    ) -> Result<Self, SimError> {
        if !(config.dt.is_finite() && config.dt > 0.0) {
            return Err(SimError::InvalidConfig { what: "dt" });
        }
        if config.substeps == 0 || config.substeps > MAX_SUBSTEPS {
            return Err(SimError::InvalidConfig { what: "substeps" });
        }
        let continuous = model.dynamics.is_continuous();
        if let Dynamics::Iterator { dt, .. } = model.dynamics {
            if config.substeps != 1 {
                return Err(SimError::InvalidConfig {
                    what: "substeps (iterator nets take one step per sample)",
                });
            }
            if (config.dt - dt).abs() > 1e-6 * dt {
                return Err(SimError::SampleIntervalMismatch {
                    model_dt: dt,
                    requested_dt: config.dt,
                });
            }
        }
        let implicit = match config.solver.implicit_tableau() {
            Some(t) if continuous => Some(t),
            _ => None,
        };
        #[cfg(not(feature = "implicit"))]
        if implicit.is_some() {
            return Err(SimError::InvalidConfig {
                what: IMPLICIT_FEATURE,
            });
        }
        if implicit.is_some()
            && (config.newton_iters == 0 || config.newton_iters > MAX_NEWTON_ITERS)
        {
            return Err(SimError::InvalidConfig {
                what: "newton_iters (1 to 16 for an implicit solver)",
            });
        }
        let n = model.n_states();
        if n == 0 {
            return Err(SimError::InvalidConfig {
                what: "model (no states: not decoded)",
            });
        }
        let w = model.max_width();
        let needed = match implicit {
            Some(t) => implicit_scratch_len(
                w,
                n,
                t.stages,
                t.implicit_stages(),
                model.jacobian_work_len(),
            ),
            None if continuous => scratch_len(w, n, config.solver.stages()),
            None => scratch_len(w, n, 1),
        };
        if scratch.len() < needed {
            return Err(SimError::ScratchTooSmall {
                needed: needed as u32,
                available: scratch.len() as u32,
            });
        }
        let mut rest = scratch;
        let a = take(&mut rest, w);
        let b = take(&mut rest, w);
        let x = take(&mut rest, n);
        let x_next = take(&mut rest, n);
        let tmp = take(&mut rest, n);
        let (k, newton, jac_work, jfull) = match implicit {
            Some(t) => {
                let m = t.implicit_stages();
                let k = take(&mut rest, 0);
                let newton = take(
                    &mut rest,
                    crate::implicit::implicit_scratch_len(n, t.stages, m),
                );
                let jw = take(&mut rest, model.jacobian_work_len());
                let jf = take(&mut rest, n * (n + 1));
                (k, newton, jw, jf)
            }
            None => {
                let stages = if continuous {
                    config.solver.stages()
                } else {
                    1
                };
                let k = take(&mut rest, stages * n);
                (
                    k,
                    take(&mut rest, 0),
                    take(&mut rest, 0),
                    take(&mut rest, 0),
                )
            }
        };
        let mut sim = Simulator {
            model,
            config,
            a,
            b,
            x,
            x_next,
            tmp,
            k,
            newton,
            jac_work,
            jfull,
            step: 0,
            clamped: 0,
        };
        sim.reset(None)?;
        Ok(sim)
    }

    /// Restarts at `x0` (the model's own if `None`) and zeroes the counters.
    pub fn reset(&mut self, x0: Option<&[f32]>) -> Result<(), SimError> {
        let x0 = x0.unwrap_or(self.model.x0);
        if x0.len() != self.x.len() || x0.iter().any(|v| !v.is_finite()) {
            return Err(SimError::BadInitialState);
        }
        self.x.copy_from_slice(x0);
        self.step = 0;
        self.clamped = 0;
        self.clamp();
        Ok(())
    }

    /// The current state.
    pub fn state(&self) -> &[f32] {
        self.x
    }

    /// Samples advanced since the last reset.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// State components clamped into their bounds since the last reset.
    pub fn clamp_count(&self) -> u32 {
        self.clamped
    }

    /// The configuration.
    pub fn config(&self) -> SimConfig {
        self.config
    }

    /// Voltage, current and memductance at the current state under supply voltage `vs`.
    pub fn observe(&mut self, vs: f32) -> Result<Sample, SimError> {
        if !vs.is_finite() {
            return Err(SimError::NonFiniteInput { step: self.step });
        }
        Ok(observe(self.model, self.a, self.b, self.x, vs))
    }

    /// Advances one sample interval while the supply goes from `vs_now` to `vs_next`, and returns
    /// the observation at the new sample (under `vs_next`).
    pub fn step(&mut self, vs_now: f32, vs_next: f32) -> Result<Sample, SimError> {
        if !(vs_now.is_finite() && vs_next.is_finite()) {
            return Err(SimError::NonFiniteInput { step: self.step });
        }
        let model = self.model;
        match &model.dynamics {
            Dynamics::Iterator { form, .. } => {
                eval_net(model, self.a, self.b, self.x, vs_now, self.tmp);
                match form {
                    IteratorForm::Residual => {
                        for (x, d) in self.x.iter_mut().zip(self.tmp.iter()) {
                            *x += d;
                        }
                    }
                    IteratorForm::Direct => self.x.copy_from_slice(self.tmp),
                }
                self.clamp();
            }
            // Ode, and PolyOde with the `poly` feature: continuous time.
            _ => {
                let m = self.config.substeps;
                let h = self.config.dt / m as f32;
                let dvs = vs_next - vs_now;
                if let Some(tab) = self.config.solver.explicit_tableau_f32() {
                    for s in 0..m {
                        let (a, b) = (&mut *self.a, &mut *self.b);
                        let _ = rk_step::<f32, ()>(
                            tab,
                            h,
                            self.x,
                            self.k,
                            self.tmp,
                            self.x_next,
                            |c, xs, dx| {
                                let frac = (s as f32 + c) / m as f32;
                                eval_net(model, a, b, xs, vs_now + frac * dvs, dx);
                                Ok(())
                            },
                        );
                        self.x.copy_from_slice(self.x_next);
                        self.clamp();
                    }
                } else {
                    self.step_implicit(vs_now, dvs)?;
                }
            }
        }
        if self.x.iter().any(|v| !v.is_finite()) {
            return Err(SimError::NonFiniteState { step: self.step });
        }
        self.step += 1;
        Ok(observe(self.model, self.a, self.b, self.x, vs_next))
    }

    /// Runs a whole trajectory from the current state: row 0 is the observation before any step,
    /// row `n` the one after `n` steps. `x_out` holds `vs.len() * n_states` values, row-major.
    pub fn run(
        &mut self,
        vs: &[f32],
        v_out: &mut [f32],
        i_out: &mut [f32],
        x_out: &mut [f32],
    ) -> Result<(), SimError> {
        let n = self.x.len();
        let len = vs.len();
        for (buf, need) in [
            (v_out.len(), len),
            (i_out.len(), len),
            (x_out.len(), len * n),
        ] {
            if buf != need {
                return Err(SimError::OutputLength {
                    needed: need as u32,
                    available: buf as u32,
                });
            }
        }
        let Some(&first) = vs.first() else {
            return Ok(());
        };
        let mut obs = self.observe(first)?;
        let rows = v_out
            .iter_mut()
            .zip(i_out.iter_mut())
            .zip(x_out.chunks_exact_mut(n));
        for (idx, ((v, i), xr)) in rows.enumerate() {
            if idx > 0 {
                obs = self.step(vs[idx - 1], vs[idx])?;
            }
            *v = obs.v;
            *i = obs.i;
            xr.copy_from_slice(self.x);
        }
        Ok(())
    }

    /// `substeps` implicit steps over one sample interval (see [`implicit_step`]).
    #[cfg(feature = "implicit")]
    fn step_implicit(&mut self, vs_now: f32, dvs: f32) -> Result<(), SimError> {
        let Some(tab) = self.config.solver.implicit_tableau_f32() else {
            return Err(SimError::InvalidConfig { what: "solver" });
        };
        let model = self.model;
        let m = self.config.substeps;
        let h = self.config.dt / m as f32;
        let iters = self.config.newton_iters;
        for s in 0..m {
            let (a, b) = (&mut *self.a, &mut *self.b);
            let (work, jfull) = (&mut *self.jac_work, &mut *self.jfull);
            implicit_step::<f32, NewtonFailure>(
                tab,
                h,
                iters,
                self.x,
                self.newton,
                self.x_next,
                |c, xs, dx, jac| {
                    let frac = (s as f32 + c) / m as f32;
                    let v = vs_now + frac * dvs;
                    match jac {
                        Some(j) => field_jacobian(model, a, b, work, jfull, xs, v, dx, j),
                        None => eval_net(model, a, b, xs, v, dx),
                    }
                    Ok(())
                },
            )
            .map_err(|reason| SimError::NewtonFailed {
                step: self.step,
                reason,
            })?;
            self.x.copy_from_slice(self.x_next);
            self.clamp();
        }
        Ok(())
    }

    /// Without the `implicit` feature [`Simulator::new`] refuses implicit solvers.
    #[cfg(not(feature = "implicit"))]
    fn step_implicit(&mut self, _vs_now: f32, _dvs: f32) -> Result<(), SimError> {
        Err(SimError::InvalidConfig {
            what: IMPLICIT_FEATURE,
        })
    }

    fn clamp(&mut self) {
        let m = self.model;
        for ((x, &lo), &hi) in self.x.iter_mut().zip(m.lower).zip(m.upper) {
            if *x < lo {
                *x = lo;
                self.clamped = self.clamped.saturating_add(1);
            } else if *x > hi {
                *x = hi;
                self.clamped = self.clamped.saturating_add(1);
            }
        }
    }
}
