//! The MMS and GMMS compact models in the series-resistor circuit (paper 000 eq. 10-15).
//!
//! ```text
//! G(x)   = x / R_on + (1 - x) / R_off                                   (10)
//! dx/dt  = (f_on(v) (1 - x) - f_off(v) x) / tau                         (11)
//! f_on   = sigmoid(beta (v - V_on)),   f_off = 1 - sigmoid(beta (v - V_off))   (12, 13)
//! beta   = q / (k T)
//! MMS:   i = G(x) v
//! GMMS:  i = eta G(x) v + (1 - eta) (alpha_f e^{beta_f v} - alpha_r e^{-beta_r v})   (14)
//! circuit: v_s = R_s i + v                                               (15)
//! ```
//!
//! Eq. 12 is printed in the paper as `sigmoid(-beta (v - V_on))`, which would switch the device
//! on at *low* voltage and hold it on at rest; the MMS of its references (Molter & Nugent 2016,
//! Minati et al. 2020) has `f_on = 1 / (1 + exp(-beta (v - V_on)))`, the form used here.
//!
//! The circuit is a DAE: for MMS `v = v_s / (1 + R_s G(x))` in closed form; for GMMS the
//! algebraic equation `v + R_s i(x, v) = v_s` is solved by safeguarded Newton at every stage
//! (its left side is strictly increasing in `v`, so the root is unique). The state is integrated
//! with a fixed step: by default TR-BDF2 at the sample step (second order, L-stable, so a time
//! constant `tau` far below the sample interval, as published for SDC devices, is handled
//! without sub-steps; each implicit stage is a scalar Newton solve with the exact derivative
//! through the circuit), or classical RK4 with a chosen number of sub-steps. The supply voltage
//! between samples is interpolated linearly. The state is clamped to [0, 1].

use serde::{Deserialize, Serialize};

/// Boltzmann constant over elementary charge, V/K.
pub const K_OVER_Q: f64 = 1.380_649e-23 / 1.602_176_634e-19;

/// Which compact model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineKind {
    /// Mean metastable switch (paper 000 eq. 10-13).
    Mms,
    /// Generalized MMS: MMS in parallel with a Schottky pair (eq. 14).
    Gmms,
}

impl BaselineKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineKind::Mms => "mms",
            BaselineKind::Gmms => "gmms",
        }
    }
}

/// Physical parameters of MMS or GMMS (for MMS: `eta = 1`, no Schottky current).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompactModel {
    /// Which model.
    pub kind: BaselineKind,
    /// `R_on`, ohm.
    pub r_on: f64,
    /// `R_off`, ohm.
    pub r_off: f64,
    /// `tau`, s.
    pub tau: f64,
    /// `V_on`, V.
    pub v_on: f64,
    /// `V_off`, V.
    pub v_off: f64,
    /// Temperature `T` of `beta = q / (k T)`, K.
    pub temperature: f64,
    /// State at the start of the warm-up.
    pub x0: f64,
    /// GMMS: fraction of the memory-dependent current `eta` (1 for MMS).
    pub eta: f64,
    /// GMMS: Schottky forward `alpha_f`, A.
    pub alpha_f: f64,
    /// GMMS: Schottky forward `beta_f`, 1/V.
    pub beta_f: f64,
    /// GMMS: Schottky reverse `alpha_r`, A.
    pub alpha_r: f64,
    /// GMMS: Schottky reverse `beta_r`, 1/V.
    pub beta_r: f64,
}

/// How a compact model integrates its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Integrator {
    /// TR-BDF2, one step per sample.
    TrBdf2,
    /// Classical RK4 with `substeps` steps per sample.
    Rk4 {
        /// Steps per sample interval.
        substeps: u32,
    },
}

/// Simulation settings shared by fitting and evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimOptions {
    /// Supply periods replayed before the record (the first period of the measured `v_s`,
    /// repeated), starting from `x0`: the state at the start of a record is unknown.
    pub warmup_periods: f64,
    /// State integrator.
    pub integrator: Integrator,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            warmup_periods: 1.0,
            integrator: Integrator::TrBdf2,
        }
    }
}

/// The predicted response to one supply-voltage record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prediction {
    /// Memristor voltage, V.
    pub v: Vec<f64>,
    /// Current, A.
    pub i: Vec<f64>,
    /// State.
    pub x: Vec<f64>,
}

#[inline]
fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

/// Result of the algebraic solve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CircuitPoint {
    /// Memristor voltage, V.
    pub v: f64,
    /// Current, A.
    pub i: f64,
    /// `di/dv` at fixed state, S.
    pub di_dv: f64,
    /// `di/dx` at fixed voltage, A.
    pub di_dx: f64,
    /// Residual `v + R_s i - v_s`, V.
    pub residual: f64,
    /// Newton iterations used.
    pub iterations: u32,
}

impl CompactModel {
    /// `beta = q / (k T)`, 1/V.
    pub fn beta(&self) -> f64 {
        1.0 / (K_OVER_Q * self.temperature)
    }

    /// Memductance `G(x)`, S, and `dG/dx`.
    #[inline]
    pub fn memductance(&self, x: f64) -> (f64, f64) {
        let (gon, goff) = (1.0 / self.r_on, 1.0 / self.r_off);
        (x * gon + (1.0 - x) * goff, gon - goff)
    }

    /// Device current at state `x` and voltage `v`, with `di/dv` and `di/dx`.
    #[inline]
    pub fn current(&self, x: f64, v: f64) -> (f64, f64, f64) {
        let (g, dg) = self.memductance(x);
        match self.kind {
            BaselineKind::Mms => (g * v, g, dg * v),
            BaselineKind::Gmms if self.eta >= 1.0 => (g * v, g, dg * v),
            BaselineKind::Gmms => {
                let ef = self.alpha_f * (self.beta_f * v).exp();
                let er = self.alpha_r * (-self.beta_r * v).exp();
                let d = 1.0 - self.eta;
                (
                    self.eta * g * v + d * (ef - er),
                    self.eta * g + d * (self.beta_f * ef + self.beta_r * er),
                    self.eta * dg * v,
                )
            }
        }
    }

    /// Solves the circuit `v + R_s i(x, v) = v_s` for `v`; `guess` starts the Newton iteration
    /// (GMMS). Converges to machine precision; the residual is reported.
    pub fn solve_v(&self, x: f64, v_s: f64, r_s: f64, guess: f64) -> CircuitPoint {
        let point = |v: f64, iterations| {
            let (i, di_dv, di_dx) = self.current(x, v);
            CircuitPoint {
                v,
                i,
                di_dv,
                di_dx,
                residual: v + r_s * i - v_s,
                iterations,
            }
        };
        if self.kind == BaselineKind::Mms {
            let (g, _) = self.memductance(x);
            return point(v_s / (1.0 + r_s * g), 0);
        }
        let (v, it) = super::super::circuit::solve_divider(v_s, r_s, guess, None, |v| {
            let (i, di, _) = self.current(x, v);
            (i, di)
        });
        point(v, it)
    }

    /// `dx/dt` (eq. 11) and its partial derivatives in `x` and `v`.
    #[inline]
    pub fn rate(&self, x: f64, v: f64) -> (f64, f64, f64) {
        let beta = self.beta();
        let f_on = sigmoid(beta * (v - self.v_on));
        let f_off = sigmoid(-beta * (v - self.v_off));
        let inv_tau = 1.0 / self.tau;
        let f = (f_on * (1.0 - x) - f_off * x) * inv_tau;
        let f_x = -(f_on + f_off) * inv_tau;
        let f_v = beta * (f_on * (1.0 - f_on) * (1.0 - x) + f_off * (1.0 - f_off) * x) * inv_tau;
        (f, f_x, f_v)
    }

    /// `dx/dt` along the circuit at supply `v_s`, its total derivative in `x`, and the circuit
    /// solution.
    #[inline]
    fn total_rate(&self, x: f64, v_s: f64, r_s: f64, guess: f64) -> (f64, f64, CircuitPoint) {
        let c = self.solve_v(x, v_s, r_s, guess);
        let (f, f_x, f_v) = self.rate(x, c.v);
        let dv_dx = -r_s * c.di_dx / (1.0 + r_s * c.di_dv);
        (f, f_x + f_v * dv_dx, c)
    }

    /// Solves `y = c + w F(y, v_s)` for the state (one implicit stage) by Newton from `y0`,
    /// safeguarded by bisection on [-1, 2]; returns `y` and the circuit voltage there.
    fn implicit_stage(&self, c: f64, w: f64, v_s: f64, r_s: f64, y0: f64, v0: f64) -> (f64, f64) {
        let (mut lo, mut hi) = (-1.0, 2.0);
        let mut y = y0.clamp(lo, hi);
        let mut v = v0;
        for _ in 0..100 {
            let (f, df, cp) = self.total_rate(y, v_s, r_s, v);
            v = cp.v;
            let r = y - c - w * f;
            if r > 0.0 {
                hi = y;
            } else {
                lo = y;
            }
            let dr = 1.0 - w * df;
            let newton = if dr > 0.0 { y - r / dr } else { f64::NAN };
            if (newton - y).abs() <= 1e-15 {
                y = newton;
                break;
            }
            y = if newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
            if hi - lo <= 1e-15 {
                break;
            }
        }
        (y, v)
    }

    /// Simulates the response to the supply record `v_s` (sample interval `dt`, series resistor
    /// `r_s`, `samples_per_period` samples per supply period for the warm-up).
    pub fn simulate(
        &self,
        v_s: &[f32],
        dt: f64,
        r_s: f64,
        samples_per_period: f64,
        options: &SimOptions,
    ) -> Prediction {
        let n = v_s.len();
        let mut out = Prediction {
            v: Vec::with_capacity(n),
            i: Vec::with_capacity(n),
            x: Vec::with_capacity(n),
        };
        if n == 0 {
            return out;
        }
        // The warm-up replays the first period of the record.
        let period = (samples_per_period.round() as usize).clamp(1, n);
        let warmup = (options.warmup_periods.max(0.0) * period as f64).round() as usize;
        let input = |j: usize| -> f64 {
            if j < warmup {
                f64::from(v_s[j % period])
            } else {
                f64::from(v_s[j - warmup])
            }
        };
        let total = warmup + n;
        let mut x = self.x0.clamp(0.0, 1.0);
        let mut x_last = x;
        let mut v_prev = 0.0;
        let gamma = 2.0 - std::f64::consts::SQRT_2;
        for j in 0..total {
            let u0 = input(j);
            let (f0, _, cp) = self.total_rate(x, u0, r_s, v_prev);
            v_prev = cp.v;
            if j >= warmup {
                out.v.push(cp.v);
                out.i.push(cp.i);
                out.x.push(x);
            }
            if j + 1 == total {
                break;
            }
            let u1 = input(j + 1);
            x = match options.integrator {
                Integrator::TrBdf2 => {
                    let h = dt;
                    let ug = u0 + gamma * (u1 - u0);
                    // Trapezoidal stage to t + gamma h.
                    // Predictor: the line through the last two states (explicit Euler
                    // overshoots when tau is far below the step).
                    let (y, vy) = self.implicit_stage(
                        x + 0.5 * gamma * h * f0,
                        0.5 * gamma * h,
                        ug,
                        r_s,
                        x + gamma * (x - x_last),
                        v_prev,
                    );
                    // BDF2 stage to t + h.
                    let a = 1.0 / (gamma * (2.0 - gamma));
                    let b = (1.0 - gamma) * (1.0 - gamma) / (gamma * (2.0 - gamma));
                    let w = (1.0 - gamma) / (2.0 - gamma) * h;
                    let c = a * y - b * x;
                    let pred = x + (y - x) / gamma;
                    let (z, vz) = self.implicit_stage(c, w, u1, r_s, pred, vy);
                    v_prev = vz;
                    x_last = x;
                    z
                }
                Integrator::Rk4 { substeps } => {
                    let m = substeps.max(1);
                    let h = dt / f64::from(m);
                    let mut xs = x;
                    let mut guess = v_prev;
                    let at = |s: f64| u0 + (u1 - u0) * s;
                    for k in 0..m {
                        let s0 = f64::from(k) / f64::from(m);
                        let sh = (f64::from(k) + 0.5) / f64::from(m);
                        let s1 = f64::from(k + 1) / f64::from(m);
                        let k1 = self.total_rate(xs, at(s0), r_s, guess);
                        guess = k1.2.v;
                        let k2 = self.total_rate(xs + 0.5 * h * k1.0, at(sh), r_s, guess).0;
                        let k3 = self.total_rate(xs + 0.5 * h * k2, at(sh), r_s, guess).0;
                        let k4 = self.total_rate(xs + h * k3, at(s1), r_s, guess).0;
                        xs = (xs + h / 6.0 * (k1.0 + 2.0 * k2 + 2.0 * k3 + k4)).clamp(0.0, 1.0);
                    }
                    xs
                }
            }
            .clamp(0.0, 1.0);
            if !x.is_finite() {
                x = 0.5;
                v_prev = 0.0;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gmms() -> CompactModel {
        CompactModel {
            kind: BaselineKind::Gmms,
            r_on: 13e3,
            r_off: 200e3,
            tau: 1e-4,
            v_on: 0.27,
            v_off: -0.27,
            temperature: 298.5,
            x0: 0.0,
            eta: 0.88,
            alpha_f: 1e-7,
            beta_f: 8.0,
            alpha_r: 1e-7,
            beta_r: 8.0,
        }
    }

    #[test]
    fn mms_closed_form_matches_the_circuit() {
        let mut m = gmms();
        m.kind = BaselineKind::Mms;
        let c = m.solve_v(0.3, 1.2, 1e4, 0.0);
        assert!(c.residual.abs() < 1e-14);
    }

    #[test]
    fn rate_derivatives_match_differences() {
        let m = gmms();
        let (x, v, h) = (0.3, 0.25, 1e-7);
        let (_, fx, fv) = m.rate(x, v);
        let dx = (m.rate(x + h, v).0 - m.rate(x - h, v).0) / (2.0 * h);
        let dv = (m.rate(x, v + h).0 - m.rate(x, v - h).0) / (2.0 * h);
        assert!((fx - dx).abs() <= 1e-6 * dx.abs().max(1.0), "{fx} {dx}");
        assert!((fv - dv).abs() <= 1e-6 * dv.abs().max(1.0), "{fv} {dv}");
    }
}
