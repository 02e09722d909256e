//! A synthetic "measured" SDC memristor rig: `odeflash data synth-memristor`.
//!
//! The generator plays the part of the paper's rig (paper 000 Fig. 1: an arbitrary waveform
//! generator drives a memristor through a series resistor `R_s`; a DAQ records the voltages) with
//! a device model that lies **outside every model family fitted to it**: not MMS (one state,
//! sigmoid rates, linear memductance), not GMMS (MMS plus a temperature-independent Schottky
//! pair), and not an MLP. It has three internal states, two of them with very different
//! kinetics, thermally activated rates driven by its own Joule heating, a state- and
//! temperature-dependent filament conductance, a parallel thermionic (Schottky) path, slow
//! cycle-to-cycle drift of the switching thresholds, and a DAQ that adds noise and quantizes to
//! 16 bits. The full description, with the source of every number, is in
//! `docs/synthetic-memristor.md`; in short:
//!
//! ```text
//! circuit      v_s(t) = V sin(2 pi f t) = v + R_s i                (solved for v by Newton)
//! current      i = G(x1, x2, T) v + i_sch(v, T)
//! memductance  G = 1/R_off + x1 (1/R_on - 1/R_off) (1 - k_g + 2 k_g x2) / (1 + a_R (T - T_amb))
//! Schottky     i_sch = I_f(T) (exp(v / (n_f V_T)) - 1) - I_r(T) (exp(-v / (n_r V_T)) - 1),
//!              I(T) = I_0 (T/T_amb)^2 exp(phi_B/k_B (1/T_amb - 1/T)),  V_T = k_B T / q
//! filament     dx1/dt = A(E_set) r_set sp((v - V_on - d)/V_w) (1 - x1) (1 - k_s + 2 k_s x2)
//!                     - A(E_rst) r_rst sp((V_off - d - v)/V_w) x1 (1 + k_s - 2 k_s x2)
//!              sp(u) = ln(1 + e^u),  A(E) = exp(E/k_B (1/T_amb - 1/T))
//! ions         dx2/dt = A(E_ion) (sigmoid(v / V_ion) - x2) / tau_ion
//! heat         dT/dt = (T_amb + R_th v i - T) / tau_th
//! drift        d: threshold offset, an AR(1) sequence, one value per supply period
//! DAQ          every channel: + N(0, sigma^2), then a 16-bit +-10 V ADC (current through a
//!              1e4 V/A transimpedance stage)
//! ```
//!
//! The states are integrated in f64 with classical RK4, several sub-steps per sample: the
//! number is chosen per sample from the local stiffness (the fastest rate of the state equations
//! including the filament's coupling through the circuit), so that `h * lambda <= 0.5`. The
//! record starts after `warmup_periods` supply periods from a pristine device (`x1 = 0`,
//! `x2 = 1/2`, `T = T_amb`), as a rig engineer records a settled device.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::data::{write_manifest, ManifestEntry, Split};
use crate::rng::Rng;
use crate::Error;

/// Boltzmann constant, J/K.
pub const K_B: f64 = 1.380_649e-23;
/// Elementary charge, C.
pub const Q_E: f64 = 1.602_176_634e-19;

/// The supply amplitudes of the paper's grid, V.
pub const PAPER_AMPLITUDES: [f64; 3] = [0.5, 1.0, 1.5];
/// The supply frequencies of the paper's grid, Hz.
pub const PAPER_FREQUENCIES: [f64; 6] = [1.0, 5.0, 10.0, 20.0, 50.0, 100.0];
/// The paper's validation trajectories (amplitude V, frequency Hz).
pub const PAPER_VALIDATION: [(f64, f64); 4] = [(1.5, 5.0), (1.0, 1.0), (1.0, 100.0), (0.5, 5.0)];
/// Series resistor of the synthetic rig, ohm: the geometric mean of the paper's admissible
/// memristor resistances (500 ohm .. 200 kohm), where the divider `v/v_s = 1/(1 + R_s G)` is
/// most sensitive to log G over that range. The paper does not state its value.
pub const SYNTH_SERIES_RESISTANCE: f64 = 10_000.0;

/// The device: parameters of the equations in the module documentation. The defaults, their
/// physical meaning and their sources are tabulated in `docs/synthetic-memristor.md`; rates,
/// time constants and activation energies not pinned by a published SDC value are chosen so that
/// the loops switch fully at 1-10 Hz and only partly at 50-100 Hz on the paper's grid.
#[derive(Clone, Debug, PartialEq)]
pub struct SdcDevice {
    /// Filament fully formed: `R_on`, ohm. 3 kohm: SDC on-resistances are kilo-ohms (Molter &
    /// Nugent 2016 fit 13 kohm for a Knowm W-SDC device), kept well inside paper 000's G < 2 mS.
    pub r_on: f64,
    /// No filament: `R_off`, ohm. 120 kohm: Molter & Nugent fit 460 kohm; paper 000 bounds
    /// `R_off` < 200 kohm (G > 5 uS).
    pub r_off: f64,
    /// Modulation of the filament conductance by the ion state, `k_g` (G factor in
    /// `[1 - k_g, 1 + k_g]`).
    pub k_g: f64,
    /// Filament temperature coefficient of resistance `a_R`, 1/K. 2e-3: metallic nanofilament,
    /// below bulk silver's 3.8e-3.
    pub tcr: f64,
    /// Set threshold `V_on`, V. 0.27 V, Molter & Nugent's W-SDC value.
    pub v_on: f64,
    /// Reset threshold `V_off`, V (negative). -0.20 V: between Molter & Nugent's 0.27 V magnitude
    /// and the smaller reset voltages measured on SDC devices (Ostrovskii et al. 2022).
    pub v_off: f64,
    /// Softness of the thresholds `V_w`, V. 20 mV, of the order of `kT/q` like MMS's `1/beta`.
    pub v_w: f64,
    /// Set rate scale `r_set` at `T_amb`, 1/s.
    pub r_set: f64,
    /// Reset rate scale `r_rst` at `T_amb`, 1/s.
    pub r_rst: f64,
    /// Saturation of the filament rates: the overdrive term `sp(u)` is limited to about
    /// `s_max` (`sp / (1 + sp / s_max)`), the supply-limited drift of the ions.
    pub s_max: f64,
    /// Gating of the filament rates by the ion state, `k_s`.
    pub k_s: f64,
    /// Activation energy of the set rate, eV.
    pub e_set: f64,
    /// Activation energy of the reset rate, eV.
    pub e_rst: f64,
    /// Ion redistribution time constant `tau_ion` at `T_amb`, s.
    pub tau_ion: f64,
    /// Voltage scale of the ion equilibrium `V_ion`, V.
    pub v_ion: f64,
    /// Activation energy of ion redistribution, eV.
    pub e_ion: f64,
    /// Schottky forward saturation current `I_f0` at `T_amb`, A. 1 nA with `n_f` = 6: a few uA at
    /// 1 V, near Molter & Nugent's GMMS Schottky term (alpha 1e-7 A, beta 8 1/V).
    pub i_f0: f64,
    /// Schottky forward ideality `n_f`.
    pub n_f: f64,
    /// Schottky reverse saturation current `I_r0` at `T_amb`, A.
    pub i_r0: f64,
    /// Schottky reverse ideality `n_r`.
    pub n_r: f64,
    /// Schottky barrier height `phi_B`, eV.
    pub phi_b: f64,
    /// Thermal resistance `R_th`, K/W. 4e5: filamentary RRAM models use 1e5..1e7.
    pub r_th: f64,
    /// Thermal time constant `tau_th`, s. 2 ms: a lumped constant for the device stack and its
    /// surroundings (the filament alone settles in nanoseconds), so heating lags at 50-100 Hz.
    pub tau_th: f64,
    /// Ambient temperature `T_amb`, K.
    pub t_amb: f64,
    /// Standard deviation of the threshold drift `d`, V.
    pub drift_sigma: f64,
    /// Period-to-period correlation of the threshold drift.
    pub drift_rho: f64,
}

impl Default for SdcDevice {
    fn default() -> Self {
        SdcDevice {
            r_on: 3_000.0,
            r_off: 120_000.0,
            k_g: 0.2,
            tcr: 2.0e-3,
            v_on: 0.27,
            v_off: -0.20,
            v_w: 0.02,
            r_set: 40.0,
            r_rst: 60.0,
            s_max: 3.5,
            k_s: 0.6,
            e_set: 0.25,
            e_rst: 0.45,
            tau_ion: 0.03,
            v_ion: 0.1,
            e_ion: 0.35,
            i_f0: 1.0e-9,
            n_f: 6.0,
            i_r0: 5.0e-10,
            n_r: 7.0,
            phi_b: 0.4,
            r_th: 4.0e5,
            tau_th: 2.0e-3,
            t_amb: 296.15,
            drift_sigma: 0.003,
            drift_rho: 0.9,
        }
    }
}

/// The data-acquisition chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Daq {
    /// ADC full scale: inputs span `[-range, range]`, V.
    pub range: f64,
    /// ADC resolution, bits.
    pub bits: u32,
    /// Input-referred noise of each voltage channel (rms), V.
    pub voltage_noise: f64,
    /// Transimpedance of the current channel, V/A.
    pub transimpedance: f64,
    /// Noise at the transimpedance output (rms), V.
    pub current_noise: f64,
}

impl Default for Daq {
    fn default() -> Self {
        Daq {
            range: 10.0,
            bits: 16,
            voltage_noise: 3.0e-4,
            transimpedance: 1.0e4,
            current_noise: 3.0e-4,
        }
    }
}

impl Daq {
    /// One ADC conversion of `x` volts: clipped to the range and rounded to the nearest code.
    pub fn quantize(&self, x: f64) -> f64 {
        let levels = (1u64 << self.bits) as f64;
        let lsb = 2.0 * self.range / levels;
        let code = ((x + self.range) / lsb).round().clamp(0.0, levels - 1.0);
        code * lsb - self.range
    }

    /// The least significant bit, V.
    pub fn lsb(&self) -> f64 {
        2.0 * self.range / (1u64 << self.bits) as f64
    }
}

/// The device's internal state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceState {
    /// Filament (fast), in [0, 1].
    pub x1: f64,
    /// Ion distribution (slow), in [0, 1].
    pub x2: f64,
    /// Temperature, K.
    pub temp: f64,
}

#[inline]
fn softplus(u: f64) -> f64 {
    if u > 35.0 {
        u
    } else if u < -35.0 {
        u.exp()
    } else {
        u.exp().ln_1p()
    }
}

/// The saturated overdrive `sp / (1 + sp / s_max)` and its derivative in `u`.
#[inline]
fn overdrive(u: f64, s_max: f64) -> (f64, f64) {
    let sp = softplus(u);
    let d = 1.0 + sp / s_max;
    (sp / d, sigmoid(u) / (d * d))
}

#[inline]
fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

/// Temperature-dependent coefficients, computed once per state evaluation.
struct Thermal {
    g: f64,
    dg_dx1: f64,
    i_f: f64,
    a_f: f64,
    i_r: f64,
    a_r: f64,
    arr_set: f64,
    arr_rst: f64,
    arr_ion: f64,
}

impl SdcDevice {
    fn thermal(&self, s: &DeviceState) -> Thermal {
        let t = s.temp.max(1.0);
        let inv = 1.0 / self.t_amb - 1.0 / t;
        let arr = |e_ev: f64| (e_ev * Q_E / K_B * inv).exp();
        let vt = K_B * t / Q_E;
        let sat = (t / self.t_amb).powi(2) * arr(self.phi_b);
        let span = 1.0 / self.r_on - 1.0 / self.r_off;
        let mod_g = (1.0 - self.k_g + 2.0 * self.k_g * s.x2) / (1.0 + self.tcr * (t - self.t_amb));
        Thermal {
            g: 1.0 / self.r_off + s.x1 * span * mod_g,
            dg_dx1: span * mod_g,
            i_f: self.i_f0 * sat,
            a_f: 1.0 / (self.n_f * vt),
            i_r: self.i_r0 * sat,
            a_r: 1.0 / (self.n_r * vt),
            arr_set: arr(self.e_set),
            arr_rst: arr(self.e_rst),
            arr_ion: arr(self.e_ion),
        }
    }

    /// Device current and its derivative in `v` at fixed state.
    #[inline]
    fn current(th: &Thermal, v: f64) -> (f64, f64) {
        let ef = (th.a_f * v).exp();
        let er = (-th.a_r * v).exp();
        let i = th.g * v + th.i_f * (ef - 1.0) - th.i_r * (er - 1.0);
        let di = th.g + th.i_f * th.a_f * ef + th.i_r * th.a_r * er;
        (i, di)
    }

    /// Solves `v + R_s i(v) = v_s` for the memristor voltage (safeguarded Newton, bracketed by 0
    /// and `v_s`, since `i` is increasing and has the sign of `v`). Returns `(v, i, di/dv)`.
    fn solve_v(th: &Thermal, r_s: f64, v_s: f64, guess: f64) -> (f64, f64, f64) {
        let bracket = if v_s >= 0.0 { (0.0, v_s) } else { (v_s, 0.0) };
        let (v, _) =
            super::circuit::solve_divider(v_s, r_s, guess, Some(bracket), |v| Self::current(th, v));
        let (i, di) = Self::current(th, v);
        (v, i, di)
    }

    /// State derivative at supply voltage `v_s` with threshold offset `d`; returns the
    /// derivative, the memristor voltage and current, and the local stiffness estimate (1/s).
    fn rhs(
        &self,
        s: &DeviceState,
        r_s: f64,
        v_s: f64,
        d: f64,
        v_guess: f64,
    ) -> (DeviceState, f64, f64, f64) {
        let th = self.thermal(s);
        let (v, i, di_dv) = Self::solve_v(&th, r_s, v_s, v_guess);
        let u_set = (v - self.v_on - d) / self.v_w;
        let u_rst = (self.v_off - d - v) / self.v_w;
        let gate_set = 1.0 - self.k_s + 2.0 * self.k_s * s.x2;
        let gate_rst = 1.0 + self.k_s - 2.0 * self.k_s * s.x2;
        let (o_set, do_set) = overdrive(u_set, self.s_max);
        let (o_rst, do_rst) = overdrive(u_rst, self.s_max);
        let k_set = th.arr_set * self.r_set * o_set * gate_set;
        let k_rst = th.arr_rst * self.r_rst * o_rst * gate_rst;
        let dx1 = k_set * (1.0 - s.x1) - k_rst * s.x1;
        let x2_inf = sigmoid(v / self.v_ion);
        let dx2 = th.arr_ion * (x2_inf - s.x2) / self.tau_ion;
        let dtemp = (self.t_amb + self.r_th * v * i - s.temp) / self.tau_th;
        // Stiffness: d(dx1/dt)/dx1 through the state and through v(x1).
        let dk_set_dv = th.arr_set * self.r_set * do_set * gate_set / self.v_w;
        let dk_rst_dv = -th.arr_rst * self.r_rst * do_rst * gate_rst / self.v_w;
        let dv_dx1 = -r_s * th.dg_dx1 * v / (1.0 + r_s * di_dv);
        let coupling = ((dk_set_dv * (1.0 - s.x1) - dk_rst_dv * s.x1) * dv_dx1).abs();
        let lambda = k_set + k_rst + coupling + th.arr_ion / self.tau_ion + 1.0 / self.tau_th;
        (
            DeviceState {
                x1: dx1,
                x2: dx2,
                temp: dtemp,
            },
            v,
            i,
            lambda,
        )
    }
}

/// A noiseless simulated trace (the truth behind a synthetic file).
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Sample times from the start of the record, s.
    pub t: Vec<f64>,
    /// Supply voltage, V.
    pub v_s: Vec<f64>,
    /// Memristor voltage, V.
    pub v: Vec<f64>,
    /// Current, A.
    pub i: Vec<f64>,
    /// Internal state per sample.
    pub state: Vec<DeviceState>,
    /// Total RK4 sub-steps taken (warm-up included).
    pub substeps: u64,
}

/// How a trace is simulated.
#[derive(Clone, Debug, PartialEq)]
pub struct SimSettings {
    /// Supply amplitude, V.
    pub amplitude: f64,
    /// Supply frequency, Hz.
    pub frequency: f64,
    /// Series resistor, ohm.
    pub r_s: f64,
    /// Recorded periods.
    pub periods: usize,
    /// Samples per period.
    pub samples_per_period: usize,
    /// Periods simulated before the record starts.
    pub warmup_periods: usize,
    /// Multiplies the number of sub-steps the stiffness rule picks (1 = default), for
    /// convergence checks.
    pub substep_factor: f64,
}

impl SdcDevice {
    /// Simulates the rig for `settings`; `rng` draws the threshold drift.
    pub fn simulate(&self, settings: &SimSettings, rng: &mut Rng) -> Trace {
        let SimSettings {
            amplitude,
            frequency,
            r_s,
            periods,
            samples_per_period,
            warmup_periods,
            substep_factor,
        } = *settings;
        let spp = samples_per_period.max(1);
        let dt = 1.0 / (frequency * spp as f64);
        let omega = 2.0 * PI * frequency;
        let total = (warmup_periods + periods) * spp;
        let record_from = warmup_periods * spp;
        let n = periods * spp;
        let mut trace = Trace {
            t: Vec::with_capacity(n),
            v_s: Vec::with_capacity(n),
            v: Vec::with_capacity(n),
            i: Vec::with_capacity(n),
            state: Vec::with_capacity(n),
            substeps: 0,
        };
        let mut s = DeviceState {
            x1: 0.0,
            x2: 0.5,
            temp: self.t_amb,
        };
        let stationary = (1.0 - self.drift_rho * self.drift_rho).max(0.0).sqrt();
        let mut drift = self.drift_sigma * rng.normal();
        let mut v_guess = 0.0;
        let add = |s: &DeviceState, k: &DeviceState, c: f64| DeviceState {
            x1: s.x1 + c * k.x1,
            x2: s.x2 + c * k.x2,
            temp: s.temp + c * k.temp,
        };
        for k in 0..total {
            let t = k as f64 * dt;
            let v_s = amplitude * (omega * t).sin();
            let (ds, v, i, lambda) = self.rhs(&s, r_s, v_s, drift, v_guess);
            v_guess = v;
            if k >= record_from {
                // Exact quotient of integers: prints as the short decimal it is (0.0006, not
                // 0.0006000000000000001).
                trace
                    .t
                    .push((k - record_from) as f64 / (frequency * spp as f64));
                trace.v_s.push(v_s);
                trace.v.push(v);
                trace.i.push(i);
                trace.state.push(s);
            }
            if k + 1 == total {
                break;
            }
            if k > 0 && k % spp == 0 {
                drift = self.drift_rho * drift + stationary * self.drift_sigma * rng.normal();
            }
            let m = ((2.0 * dt * lambda * substep_factor).ceil() as usize).clamp(1, 100_000);
            let h = dt / m as f64;
            let mut k1 = ds;
            for j in 0..m {
                let tj = t + j as f64 * h;
                let vs = |tt: f64| amplitude * (omega * tt).sin();
                if j > 0 {
                    k1 = self.rhs(&s, r_s, vs(tj), drift, v_guess).0;
                }
                let k2 = self
                    .rhs(
                        &add(&s, &k1, h / 2.0),
                        r_s,
                        vs(tj + h / 2.0),
                        drift,
                        v_guess,
                    )
                    .0;
                let k3 = self
                    .rhs(
                        &add(&s, &k2, h / 2.0),
                        r_s,
                        vs(tj + h / 2.0),
                        drift,
                        v_guess,
                    )
                    .0;
                let k4 = self
                    .rhs(&add(&s, &k3, h), r_s, vs(tj + h), drift, v_guess)
                    .0;
                s = DeviceState {
                    x1: (s.x1 + h / 6.0 * (k1.x1 + 2.0 * k2.x1 + 2.0 * k3.x1 + k4.x1))
                        .clamp(0.0, 1.0),
                    x2: (s.x2 + h / 6.0 * (k1.x2 + 2.0 * k2.x2 + 2.0 * k3.x2 + k4.x2))
                        .clamp(0.0, 1.0),
                    temp: s.temp + h / 6.0 * (k1.temp + 2.0 * k2.temp + 2.0 * k3.temp + k4.temp),
                };
            }
            trace.substeps += m as u64;
        }
        trace
    }
}

/// One trajectory of a synthetic dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct GridPoint {
    /// Supply amplitude, V.
    pub amplitude: f64,
    /// Supply frequency, Hz.
    pub frequency: f64,
    /// Split.
    pub split: Split,
}

/// The paper's 18-trajectory grid with its validation split.
pub fn paper_grid() -> Vec<GridPoint> {
    let mut grid = Vec::new();
    for &amplitude in &PAPER_AMPLITUDES {
        for &frequency in &PAPER_FREQUENCIES {
            let split = if PAPER_VALIDATION.contains(&(amplitude, frequency)) {
                Split::Validation
            } else {
                Split::Train
            };
            grid.push(GridPoint {
                amplitude,
                frequency,
                split,
            });
        }
    }
    grid
}

/// Everything `synth-memristor` needs.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// The device.
    pub device: SdcDevice,
    /// The DAQ.
    pub daq: Daq,
    /// Series resistor, ohm.
    pub r_s: f64,
    /// Trajectories.
    pub grid: Vec<GridPoint>,
    /// Recorded periods per trajectory.
    pub periods: usize,
    /// Samples per period.
    pub samples_per_period: usize,
    /// Periods simulated before recording.
    pub warmup_periods: usize,
    /// Seed of the DAQ noise and the threshold drift.
    pub seed: u64,
    /// Worker threads (0: all cores).
    pub threads: usize,
}

impl SynthConfig {
    /// The paper's grid and rig with the default device.
    pub fn paper(periods: usize, samples_per_period: usize, seed: u64) -> Self {
        SynthConfig {
            device: SdcDevice::default(),
            daq: Daq::default(),
            r_s: SYNTH_SERIES_RESISTANCE,
            grid: paper_grid(),
            periods,
            samples_per_period,
            warmup_periods: 5,
            seed,
            threads: 0,
        }
    }
}

/// One worker's outcome: the file, its samples and RK4 sub-steps.
type WorkerResult = Result<(PathBuf, usize, u64), Error>;

/// What [`write_synthetic`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthReport {
    /// The CSV files, in manifest order.
    pub files: Vec<PathBuf>,
    /// The manifest.
    pub manifest: PathBuf,
    /// Samples written, all files together.
    pub samples: usize,
    /// RK4 sub-steps taken, all files together (warm-up included).
    pub substeps: u64,
    /// Wall time of simulation and writing, s.
    pub seconds: f64,
}

/// File name of a grid point, e.g. `sdc_1.5V_005Hz.csv`.
pub fn file_name(p: &GridPoint) -> String {
    let f = if p.frequency.fract() == 0.0 {
        format!("{:03}", p.frequency as u64)
    } else {
        format!("{}", p.frequency)
    };
    format!("sdc_{:.1}V_{f}Hz.csv", p.amplitude)
}

/// The measured CSV text of `trace`: `t, v_s, v` in volts and `i` in microamperes, each channel
/// noisy and quantized by `daq`.
pub fn measured_csv(trace: &Trace, daq: &Daq, rng: &mut Rng, header: &str) -> String {
    let mut s = String::with_capacity(trace.t.len() * 44 + header.len() + 64);
    for l in header.lines() {
        s.push_str("# ");
        s.push_str(l);
        s.push('\n');
    }
    s.push_str("t,v_s,v,i\n");
    use std::fmt::Write as _;
    for k in 0..trace.t.len() {
        let vs = daq.quantize(trace.v_s[k] + daq.voltage_noise * rng.normal());
        let v = daq.quantize(trace.v[k] + daq.voltage_noise * rng.normal());
        let i_out =
            daq.quantize(daq.transimpedance * trace.i[k] + daq.current_noise * rng.normal());
        let i_ua = i_out / daq.transimpedance * 1e6;
        let _ = writeln!(s, "{},{vs:.7},{v:.7},{i_ua:.6}", trace.t[k]);
    }
    s
}

/// Writes the paper's grid (see [`SynthConfig::paper`]) to `out_dir`: one CSV per trajectory
/// and `manifest.toml`.
pub fn write_synthetic(
    out_dir: &Path,
    periods: usize,
    samples_per_period: usize,
    seed: u64,
) -> Result<SynthReport, Error> {
    write_synthetic_with(
        out_dir,
        &SynthConfig::paper(periods, samples_per_period, seed),
    )
}

/// Writes the dataset `config` describes to `out_dir`.
pub fn write_synthetic_with(out_dir: &Path, config: &SynthConfig) -> Result<SynthReport, Error> {
    if config.periods == 0 || config.samples_per_period < 2 {
        return Err(Error::Usage(format!(
            "synth-memristor: need at least 1 period and 2 samples per period (got {} and {})",
            config.periods, config.samples_per_period
        )));
    }
    let start = Instant::now();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::write(out_dir, e))?;
    // One seed per trajectory, drawn in grid order: results do not depend on thread timing.
    let mut master = Rng::new(config.seed);
    let seeds: Vec<u64> = config.grid.iter().map(|_| master.next_u64()).collect();
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(config.grid.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<WorkerResult>>> =
        Mutex::new((0..config.grid.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = config.grid.get(k) else { break };
                let mut rng = Rng::new(seeds[k]);
                let settings = SimSettings {
                    amplitude: p.amplitude,
                    frequency: p.frequency,
                    r_s: config.r_s,
                    periods: config.periods,
                    samples_per_period: config.samples_per_period,
                    warmup_periods: config.warmup_periods,
                    substep_factor: 1.0,
                };
                let trace = config.device.simulate(&settings, &mut rng);
                let header = format!(
                    "synthetic SDC memristor (odeflash data synth-memristor, seed {}): \
                     amplitude {} V, frequency {} Hz, R_s {} ohm, {} periods x {} samples\n\
                     v_s, v: volts; i: microamperes (16-bit +-10 V DAQ, 1e4 V/A transimpedance)",
                    config.seed,
                    p.amplitude,
                    p.frequency,
                    config.r_s,
                    config.periods,
                    config.samples_per_period
                );
                let text = measured_csv(&trace, &config.daq, &mut rng, &header);
                let path = out_dir.join(file_name(p));
                let r = crate::files::write_atomic(&path, text.as_bytes())
                    .map(|()| (path, trace.t.len(), trace.substeps));
                if let Ok(mut g) = results.lock() {
                    g[k] = Some(r);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| Error::Input("synth-memristor: worker panicked".into()))?;
    let mut files = Vec::new();
    let (mut samples, mut substeps) = (0, 0);
    for r in results {
        let (path, n, m) =
            r.ok_or_else(|| Error::Input("synth-memristor: a worker did not finish".into()))??;
        files.push(path);
        samples += n;
        substeps += m;
    }
    let entries: Vec<ManifestEntry> = config
        .grid
        .iter()
        .map(|p| ManifestEntry {
            file: file_name(p),
            amplitude: p.amplitude,
            frequency: p.frequency,
            series_resistance: config.r_s,
            split: p.split,
            current_unit: Some("uA".into()),
            time_unit: None,
        })
        .collect();
    let comment = format!(
        "Synthetic SDC memristor rig written by `odeflash data synth-memristor --seed {}`.\n\
         Device equations and parameters: docs/synthetic-memristor.md. {} periods of {} samples \
         per trajectory,\nrecorded after {} warm-up periods; validation split as in paper 000.",
        config.seed, config.periods, config.samples_per_period, config.warmup_periods
    );
    write_manifest(out_dir, &comment, &entries)?;
    Ok(SynthReport {
        files,
        manifest: out_dir.join(super::data::MANIFEST),
        samples,
        substeps,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newton_solves_the_divider() {
        let d = SdcDevice::default();
        let s = DeviceState {
            x1: 0.4,
            x2: 0.7,
            temp: 310.0,
        };
        let th = d.thermal(&s);
        for &vs in &[-1.5, -0.3, 0.0, 0.2, 1.5] {
            let (v, i, _) = SdcDevice::solve_v(&th, 1e4, vs, 0.0);
            assert!((v + 1e4 * i - vs).abs() < 1e-12, "vs {vs}");
        }
    }

    #[test]
    fn quantizer() {
        let daq = Daq::default();
        assert!((daq.lsb() - 20.0 / 65536.0).abs() < 1e-15);
        assert_eq!(daq.quantize(0.0), 0.0);
        assert_eq!(daq.quantize(20.0), 10.0 - daq.lsb());
        assert!((daq.quantize(0.1234) - 0.1234).abs() <= daq.lsb() / 2.0);
    }

    #[test]
    fn grid_matches_the_paper() {
        let g = paper_grid();
        assert_eq!(g.len(), 18);
        assert_eq!(g.iter().filter(|p| p.split == Split::Validation).count(), 4);
        assert_eq!(file_name(&g[1]), "sdc_0.5V_005Hz.csv");
    }
}
