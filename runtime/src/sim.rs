//! Fixed-step simulation: a streaming API for a rig loop and a whole-trajectory API for the host.
//!
//! Between two samples the supply voltage is interpolated linearly, the rig knows the waveform
//! it drives. Every sample advances the state by `substeps` steps of the chosen solver (or one
//! map evaluation for an iterator net), clamps it into the model's bounds and checks it is finite.

use crate::error::SimError;
use crate::limits::{MAX_STATES, MAX_SUBSTEPS};
use crate::model::{Dynamics, IteratorForm, Model, Readout};
use crate::solver::{rk_step, Solver};

/// Scratch needed, in f32 elements: two ping-pong activation buffers, the state, the next state,
/// a stage temporary and the stage derivatives.
pub const fn scratch_len(max_width: usize, n_states: usize, stages: usize) -> usize {
    2 * max_width + (3 + stages) * n_states
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

/// Evaluates the state net at `[x.., u]`, `u` the memristor voltage (or the drive).
fn eval_net(model: &Model<'_>, a: &mut [f32], b: &mut [f32], x: &[f32], vs: f32, out: &mut [f32]) {
    let u = observe(model, a, b, x, vs).v;
    let n = x.len().min(MAX_STATES);
    let mut input = [0.0f32; MAX_STATES + 1];
    input[..n].copy_from_slice(&x[..n]);
    input[n] = u;
    model.dynamics.net().eval(&input[..=n], a, b, out);
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
        let stages = match model.dynamics {
            Dynamics::Ode { .. } => config.solver.stages(),
            Dynamics::Iterator { dt, .. } => {
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
                1
            }
        };
        let n = model.n_states();
        if n == 0 {
            return Err(SimError::InvalidConfig {
                what: "model (no states: not decoded)",
            });
        }
        let w = model.max_width();
        let needed = scratch_len(w, n, stages);
        if scratch.len() < needed {
            return Err(SimError::ScratchTooSmall {
                needed: needed as u32,
                available: scratch.len() as u32,
            });
        }
        let mut rest = scratch;
        let mut sim = Simulator {
            model,
            config,
            a: take(&mut rest, w),
            b: take(&mut rest, w),
            x: take(&mut rest, n),
            x_next: take(&mut rest, n),
            tmp: take(&mut rest, n),
            k: take(&mut rest, stages * n),
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
            Dynamics::Ode { .. } => {
                let m = self.config.substeps;
                let h = self.config.dt / m as f32;
                let tab = self.config.solver.tableau_f32();
                let dvs = vs_next - vs_now;
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
            }
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
