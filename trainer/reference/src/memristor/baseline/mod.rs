//! The classical baselines of paper 000 sec. II-D: MMS and GMMS compact models in the
//! series-resistor circuit, fitted to rig data by differential evolution over bounded
//! parameters and refined by L-BFGS-B (the paper: BlackBoxOptim.jl's adaptive DE, then
//! Optim.jl's L-BFGS-B).
//!
//! - [`model`]: the equations, the DAE solve and the state integrators;
//! - [`crate::optimize`]: the two optimizers (adaptive DE, L-BFGS-B);
//! - this module: the parameter space, the objective (the paper's `L_b`, eq. 3-5, averaged over
//!   the training trajectories), [`fit`], [`evaluate`] and the `fit.json` report.
//!
//! Parameters are searched in a unit cube: each maps linearly or logarithmically (those that
//! span decades) onto its bounds. `R_off` is searched between `R_on` and its upper bound, which
//! keeps the paper's constraint `R_on < R_off` inside a box. Gradients for L-BFGS-B are central
//! finite differences in the unit cube (step [`FitConfig::fd_step`]), evaluated in parallel.

pub mod model;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use model::{BaselineKind, CompactModel, Integrator, Prediction, SimOptions};

use super::data::{MemristorDataset, MemristorTrajectory, Split};
use crate::optimize::{de, lbfgsb};
use crate::Error;

/// One searched parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamDef {
    /// Name, as in the paper.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Lower bound (ignored when `above` is set).
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Searched on a log scale.
    pub log: bool,
    /// The lower bound is the value of this earlier parameter (`R_off > R_on`).
    pub above: Option<usize>,
}

/// The searched parameters of a model, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSpace {
    /// Which model.
    pub kind: BaselineKind,
    /// Parameters.
    pub defs: Vec<ParamDef>,
}

fn def(name: &str, unit: &str, lower: f64, upper: f64, log: bool) -> ParamDef {
    ParamDef {
        name: name.into(),
        unit: unit.into(),
        lower,
        upper,
        log,
        above: None,
    }
}

impl ParamSpace {
    /// The default bounds. `R_on` in (500 ohm, `R_off`), `R_off` in (`R_on`, 200 kohm) are
    /// paper 000's constraints; the others are wide physical ranges (thresholds within the
    /// supply range, `tau` from 1 us to 1 s, an effective temperature from 10 K to 3000 K).
    pub fn new(kind: BaselineKind) -> Self {
        let mut defs = vec![
            def("R_on", "ohm", 500.0, 200e3, true),
            ParamDef {
                above: Some(0),
                ..def("R_off", "ohm", 500.0, 200e3, true)
            },
            def("tau", "s", 1e-6, 1.0, true),
            def("V_on", "V", 0.0, 1.5, false),
            def("V_off", "V", -1.5, 0.0, false),
            def("T", "K", 10.0, 3000.0, true),
            def("x0", "1", 0.0, 1.0, false),
        ];
        if kind == BaselineKind::Gmms {
            defs.extend([
                def("eta", "1", 0.0, 1.0, false),
                def("alpha_f", "A", 1e-12, 1e-3, true),
                def("beta_f", "1/V", 0.1, 30.0, true),
                def("alpha_r", "A", 1e-12, 1e-3, true),
                def("beta_r", "1/V", 0.1, 30.0, true),
            ]);
        }
        ParamSpace { kind, defs }
    }

    /// Number of parameters.
    pub fn dim(&self) -> usize {
        self.defs.len()
    }

    /// Changes the bounds of parameter `name`.
    pub fn set_bounds(&mut self, name: &str, lower: f64, upper: f64) -> Result<(), Error> {
        let d = self
            .defs
            .iter_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| Error::Usage(format!("no parameter `{name}`")))?;
        let ordered = lower.is_finite() && upper.is_finite() && lower < upper;
        if !ordered || (d.log && lower <= 0.0) {
            return Err(Error::Usage(format!(
                "bounds of `{name}`: need lower < upper (and lower > 0 on a log scale)"
            )));
        }
        d.lower = lower;
        d.upper = upper;
        Ok(())
    }

    /// Physical values for a point `u` of the unit cube.
    pub fn to_physical(&self, u: &[f64]) -> Vec<f64> {
        let mut p: Vec<f64> = Vec::with_capacity(self.dim());
        for (k, d) in self.defs.iter().enumerate() {
            let lo = d.above.map_or(d.lower, |j| p[j]);
            let t = u[k].clamp(0.0, 1.0);
            p.push(if d.log {
                (lo.ln() + t * (d.upper.ln() - lo.ln())).exp()
            } else {
                lo + t * (d.upper - lo)
            });
        }
        p
    }

    /// The unit-cube point of physical values `p` (clamped into the bounds).
    pub fn to_unit(&self, p: &[f64]) -> Vec<f64> {
        let mut u = Vec::with_capacity(self.dim());
        let mut phys: Vec<f64> = Vec::with_capacity(self.dim());
        for (k, d) in self.defs.iter().enumerate() {
            let lo = d.above.map_or(d.lower, |j| phys[j]);
            let v = p[k].clamp(lo, d.upper);
            let t = if d.upper <= lo {
                0.0
            } else if d.log {
                (v.ln() - lo.ln()) / (d.upper.ln() - lo.ln())
            } else {
                (v - lo) / (d.upper - lo)
            };
            u.push(t.clamp(0.0, 1.0));
            phys.push(v);
        }
        u
    }

    /// The model with physical values `p` (in `defs` order).
    pub fn model_from_physical(&self, p: &[f64]) -> CompactModel {
        let get = |name: &str, default: f64| {
            self.defs
                .iter()
                .position(|d| d.name == name)
                .map_or(default, |k| p[k])
        };
        let gmms = self.kind == BaselineKind::Gmms;
        CompactModel {
            kind: self.kind,
            r_on: get("R_on", 1e4),
            r_off: get("R_off", 1e5),
            tau: get("tau", 1e-4),
            v_on: get("V_on", 0.27),
            v_off: get("V_off", -0.27),
            temperature: get("T", 298.5),
            x0: get("x0", 0.0),
            eta: if gmms { get("eta", 1.0) } else { 1.0 },
            alpha_f: if gmms { get("alpha_f", 0.0) } else { 0.0 },
            beta_f: if gmms { get("beta_f", 1.0) } else { 1.0 },
            alpha_r: if gmms { get("alpha_r", 0.0) } else { 0.0 },
            beta_r: if gmms { get("beta_r", 1.0) } else { 1.0 },
        }
    }

    /// The model at unit-cube point `u`.
    pub fn model(&self, u: &[f64]) -> CompactModel {
        self.model_from_physical(&self.to_physical(u))
    }

    /// Physical values of `m` in `defs` order.
    pub fn physical_of(&self, m: &CompactModel) -> Vec<f64> {
        self.defs
            .iter()
            .map(|d| match d.name.as_str() {
                "R_on" => m.r_on,
                "R_off" => m.r_off,
                "tau" => m.tau,
                "V_on" => m.v_on,
                "V_off" => m.v_off,
                "T" => m.temperature,
                "x0" => m.x0,
                "eta" => m.eta,
                "alpha_f" => m.alpha_f,
                "beta_f" => m.beta_f,
                "alpha_r" => m.alpha_r,
                "beta_r" => m.beta_r,
                _ => f64::NAN,
            })
            .collect()
    }
}

pub use crate::dataset::{nmse, nmse_with};

/// The response of `model` to trajectory `traj`'s supply record.
pub fn predict(model: &CompactModel, traj: &MemristorTrajectory, opts: &SimOptions) -> Prediction {
    model.simulate(
        &traj.v_s,
        traj.dt,
        traj.r_s,
        traj.samples_per_period(),
        opts,
    )
}

/// A trajectory prepared for the objective: possibly shortened, variances precomputed.
#[derive(Clone, Debug)]
struct FitTrajectory {
    v_s: Vec<f32>,
    v: Vec<f32>,
    i: Vec<f32>,
    var_v: f64,
    var_i: f64,
    dt: f64,
    r_s: f64,
    spp: f64,
}

impl FitTrajectory {
    fn new(t: &MemristorTrajectory, periods: Option<f64>) -> Self {
        let n = periods.map_or(t.len(), |p| {
            ((p * t.samples_per_period()).round() as usize).clamp(2, t.len())
        });
        let t = if n < t.len() {
            t.truncated(n)
        } else {
            t.clone()
        };
        let (var_v, var_i) = t.variances();
        FitTrajectory {
            spp: t.samples_per_period(),
            v_s: t.v_s,
            v: t.v,
            i: t.i,
            var_v,
            var_i,
            dt: t.dt,
            r_s: t.r_s,
        }
    }

    fn loss(&self, m: &CompactModel, opts: &SimOptions) -> f64 {
        let p = m.simulate(&self.v_s, self.dt, self.r_s, self.spp, opts);
        nmse_with(&self.v, &p.v, self.var_v) + nmse_with(&self.i, &p.i, self.var_i)
    }
}

/// The fitting objective: mean `L_b` (eq. 5) over a set of trajectories, as a function of a
/// point of the unit cube.
pub struct Objective {
    space: ParamSpace,
    trajectories: Vec<FitTrajectory>,
    opts: SimOptions,
}

impl Objective {
    /// The objective on `trajectories`, each cut to its first `periods` supply periods when
    /// given.
    pub fn new(
        space: ParamSpace,
        trajectories: &[&MemristorTrajectory],
        periods: Option<f64>,
        opts: SimOptions,
    ) -> Self {
        Objective {
            space,
            trajectories: trajectories
                .iter()
                .map(|t| FitTrajectory::new(t, periods))
                .collect(),
            opts,
        }
    }

    /// Mean `L_b` at `u`, single-threaded.
    pub fn value(&self, u: &[f64]) -> f64 {
        let m = self.space.model(u);
        let n = self.trajectories.len().max(1) as f64;
        self.trajectories
            .iter()
            .map(|t| t.loss(&m, &self.opts))
            .sum::<f64>()
            / n
    }

    /// Mean `L_b` at `u`, trajectories spread over `threads` threads.
    pub fn value_par(&self, u: &[f64], threads: usize) -> f64 {
        let m = self.space.model(u);
        let n = self.trajectories.len().max(1) as f64;
        de::par_map(&self.trajectories, threads, &|t: &FitTrajectory| {
            t.loss(&m, &self.opts)
        })
        .iter()
        .sum::<f64>()
            / n
    }

    /// Samples simulated per evaluation (warm-up excluded).
    pub fn samples(&self) -> usize {
        self.trajectories.iter().map(|t| t.v_s.len()).sum()
    }
}

/// Everything a fit needs.
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// The searched parameters and their bounds.
    pub space: ParamSpace,
    /// Global stage.
    pub de: de::DeConfig,
    /// Local stage.
    pub lbfgsb: lbfgsb::LbfgsbConfig,
    /// Supply periods of each training trajectory used by the global stage (`None`: all).
    /// Rig records are periodic once settled, so a few periods rank candidates as well as all
    /// of them at a fraction of the cost.
    pub de_periods: Option<f64>,
    /// Periods used by the local stage (`None`: all).
    pub refine_periods: Option<f64>,
    /// Simulation settings.
    pub sim: SimOptions,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Finite-difference step in the unit cube.
    pub fd_step: f64,
    /// Unit-cube points injected into the initial DE population.
    pub initial: Vec<Vec<f64>>,
}

impl FitConfig {
    /// Defaults for `kind`.
    pub fn new(kind: BaselineKind) -> Self {
        FitConfig {
            space: ParamSpace::new(kind),
            de: de::DeConfig::default(),
            lbfgsb: lbfgsb::LbfgsbConfig::default(),
            de_periods: Some(10.0),
            refine_periods: Some(20.0),
            sim: SimOptions::default(),
            threads: 0,
            fd_step: 1e-5,
            initial: Vec::new(),
        }
    }
}

/// One fitted parameter in `fit.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedParam {
    /// Name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Fitted value.
    pub value: f64,
    /// Lower bound (for `R_off`: the fitted `R_on`).
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// `"log"` or `"linear"` search scale.
    pub scale: String,
}

/// Per-trajectory score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryScore {
    /// The manifest's `file`.
    pub name: String,
    /// Split.
    pub split: Split,
    /// Supply amplitude, V.
    pub amplitude: f64,
    /// Supply frequency, Hz.
    pub frequency: f64,
    /// Series resistor, ohm.
    pub series_resistance: f64,
    /// `NMSE(v) + NMSE(i)` (the trajectory's term of eq. 5).
    pub lb: f64,
    /// `NMSE(v)`.
    pub nmse_v: f64,
    /// `NMSE(i)`.
    pub nmse_i: f64,
}

/// Mean `L_b` over the splits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LbSummary {
    /// Training trajectories.
    pub train: f64,
    /// Validation trajectories.
    pub validation: f64,
    /// All trajectories.
    pub all: f64,
}

/// A model's scores on a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Per trajectory, in dataset order.
    pub scores: Vec<TrajectoryScore>,
    /// Predictions, in dataset order.
    pub predictions: Vec<Prediction>,
    /// Means.
    pub lb: LbSummary,
    /// Wall time to simulate every trajectory once, one after the other on one thread, s.
    pub generation_seconds: f64,
}

/// Simulates every trajectory of `dataset` with `model` and scores it (eq. 3-5).
pub fn evaluate(model: &CompactModel, dataset: &MemristorDataset, opts: &SimOptions) -> Evaluation {
    let start = Instant::now();
    let predictions: Vec<Prediction> = dataset
        .trajectories
        .iter()
        .map(|t| predict(model, t, opts))
        .collect();
    let generation_seconds = start.elapsed().as_secs_f64();
    let scores: Vec<TrajectoryScore> = dataset
        .trajectories
        .iter()
        .zip(&predictions)
        .map(|(t, p)| {
            let nmse_v = nmse(&t.v, &p.v);
            let nmse_i = nmse(&t.i, &p.i);
            TrajectoryScore {
                name: t.name.clone(),
                split: t.split,
                amplitude: t.amplitude,
                frequency: t.frequency,
                series_resistance: t.r_s,
                lb: nmse_v + nmse_i,
                nmse_v,
                nmse_i,
            }
        })
        .collect();
    let mean = |f: &dyn Fn(&TrajectoryScore) -> bool| {
        let v: Vec<f64> = scores.iter().filter(|s| f(s)).map(|s| s.lb).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let lb = LbSummary {
        train: mean(&|s| s.split == Split::Train),
        validation: mean(&|s| s.split == Split::Validation),
        all: mean(&|_| true),
    };
    Evaluation {
        scores,
        predictions,
        lb,
        generation_seconds,
    }
}

/// The global stage in `fit.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeStage {
    /// Population size.
    pub population: usize,
    /// Generations asked for.
    pub generations: usize,
    /// Generations run.
    pub generations_run: usize,
    /// Donor radius (0: whole population).
    pub radius: usize,
    /// Objective evaluations.
    pub evaluations: usize,
    /// Periods per trajectory (`None`: all).
    pub periods: Option<f64>,
    /// Best objective (on those periods).
    pub loss: f64,
    /// Final adaptive `mu_F`.
    pub mu_f: f64,
    /// Final adaptive `mu_CR`.
    pub mu_cr: f64,
    /// Wall time, s.
    pub seconds: f64,
}

/// The local stage in `fit.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LbfgsbStage {
    /// Iterations.
    pub iterations: usize,
    /// Objective evaluations in line searches.
    pub evaluations: usize,
    /// Gradient evaluations (each `2 n` objective evaluations).
    pub gradients: usize,
    /// Periods per trajectory (`None`: all).
    pub periods: Option<f64>,
    /// Objective at the DE result (on these periods).
    pub loss_start: f64,
    /// Objective at the end.
    pub loss: f64,
    /// Projected-gradient infinity norm at the end (unit cube).
    pub projected_gradient: f64,
    /// Why it stopped.
    pub stop: lbfgsb::StopReason,
    /// Wall time, s.
    pub seconds: f64,
}

/// `fit.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Which model.
    pub model: BaselineKind,
    /// Fitted parameters with names, units and bounds.
    pub parameters: Vec<FittedParam>,
    /// The fitted model (what [`FitReport::compact_model`] returns).
    pub compact_model: CompactModel,
    /// The simulation settings the fit used; evaluate with the same.
    pub sim: SimOptions,
    /// The dataset directory.
    pub data: PathBuf,
    /// Seed.
    pub seed: u64,
    /// Global stage.
    pub de: DeStage,
    /// Local stage.
    pub lbfgsb: LbfgsbStage,
    /// Wall time of the whole fit (both stages), s.
    pub fit_seconds: f64,
    /// Threads used.
    pub threads: usize,
    /// Mean `L_b` per split (full trajectories).
    pub lb: LbSummary,
    /// `L_b` per trajectory (full trajectories).
    pub trajectories: Vec<TrajectoryScore>,
    /// Wall time to simulate all trajectories once (one thread), s.
    pub generation_seconds: f64,
}

impl FitReport {
    /// The fitted model.
    pub fn compact_model(&self) -> &CompactModel {
        &self.compact_model
    }

    /// Reads a `fit.json`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = crate::files::read_limited(path, crate::files::MAX_TEXT_FILE, "fit report")?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Input(format!("{}: not a baseline fit: {e}", path.display())))
    }

    /// Writes it (pretty JSON, atomically).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(Error::Serialize)?;
        crate::files::write_atomic(path, text.as_bytes())
    }
}

fn say(log: &mut dyn Write, s: String) {
    let _ = writeln!(log, "{s}");
    let _ = log.flush();
}

/// Fits `config.space.kind` to the training trajectories of `dataset`; progress lines go to
/// `log`.
pub fn fit(
    dataset: &MemristorDataset,
    config: &FitConfig,
    log: &mut dyn Write,
) -> Result<FitReport, Error> {
    let train = dataset.train();
    if train.is_empty() {
        return Err(Error::Input(format!(
            "{}: no training trajectories",
            dataset.dir.display()
        )));
    }
    let threads = de::worker_threads(config.threads);
    let space = &config.space;
    let kind = space.kind;
    let start = Instant::now();

    let (de_result, de_seconds) = global_stage(config, &train, threads, log);
    let (result, loss_start, lbfgsb_seconds) =
        local_stage(config, &train, threads, &de_result.best, log);
    // Keep the DE point if refinement did not help (it always should).
    let best_u = if result.value <= loss_start {
        result.x.clone()
    } else {
        de_result.best.clone()
    };
    let fit_seconds = start.elapsed().as_secs_f64();

    let physical = space.to_physical(&best_u);
    let model = space.model_from_physical(&physical);
    let eval = evaluate(&model, dataset, &config.sim);
    let parameters = fitted_params(space, &physical);
    say(
        log,
        format!(
            "{}: L_b train {:.4e}, validation {:.4e} ({:.1} s)",
            kind.as_str(),
            eval.lb.train,
            eval.lb.validation,
            fit_seconds
        ),
    );
    Ok(FitReport {
        model: kind,
        parameters,
        compact_model: model,
        sim: config.sim,
        data: dataset.dir.clone(),
        seed: config.de.seed,
        de: DeStage {
            population: config.de.population,
            generations: config.de.generations,
            generations_run: de_result.generations,
            radius: config.de.radius,
            evaluations: de_result.evaluations,
            periods: config.de_periods,
            loss: de_result.best_value,
            mu_f: de_result.mu.0,
            mu_cr: de_result.mu.1,
            seconds: de_seconds,
        },
        lbfgsb: LbfgsbStage {
            iterations: result.iterations,
            evaluations: result.evaluations,
            gradients: result.gradients,
            periods: config.refine_periods,
            loss_start,
            loss: result.value.min(loss_start),
            projected_gradient: result.projected_gradient,
            stop: result.stop,
            seconds: lbfgsb_seconds,
        },
        fit_seconds,
        threads,
        lb: eval.lb,
        trajectories: eval.scores,
        generation_seconds: eval.generation_seconds,
    })
}

/// The global stage: differential evolution over the unit cube on `config.de_periods` of each
/// training record; returns its result and seconds.
fn global_stage(
    config: &FitConfig,
    train: &[&MemristorTrajectory],
    threads: usize,
    log: &mut dyn Write,
) -> (de::DeResult, f64) {
    let space = &config.space;
    let (dim, kind) = (space.dim(), space.kind);
    let global = Objective::new(space.clone(), train, config.de_periods, config.sim);
    say(
        log,
        format!(
            "{}: differential evolution, {} parameters, population {}, {} generations, {} samples \
             per evaluation, {threads} threads",
            kind.as_str(),
            dim,
            config.de.population,
            config.de.generations,
            global.samples()
        ),
    );
    let de_config = de::DeConfig {
        threads,
        ..config.de.clone()
    };
    let every = (config.de.generations / 10).max(1);
    let de_start = Instant::now();
    let de_result = {
        let mut progress = |g: usize, best: f64| {
            if g % every == 0 || g == config.de.generations {
                say(
                    log,
                    format!(
                        "  generation {g:>5}: best L_b {best:.4e} ({:.1} s)",
                        de_start.elapsed().as_secs_f64()
                    ),
                );
            }
        };
        de::minimize(
            &|u: &[f64]| global.value(u),
            dim,
            &de_config,
            &config.initial,
            &mut progress,
        )
    };
    let de_seconds = de_start.elapsed().as_secs_f64();

    (de_result, de_seconds)
}

/// The local stage: L-BFGS-B from the DE point on `config.refine_periods` of each record, with
/// finite-difference gradients; returns its result, the starting loss and seconds.
fn local_stage(
    config: &FitConfig,
    train: &[&MemristorTrajectory],
    threads: usize,
    start: &[f64],
    log: &mut dyn Write,
) -> (lbfgsb::LbfgsbResult, f64, f64) {
    let space = &config.space;
    let (dim, kind) = (space.dim(), space.kind);
    let local = Objective::new(space.clone(), train, config.refine_periods, config.sim);
    let lower = vec![0.0; dim];
    let upper = vec![1.0; dim];
    let lb_start = Instant::now();
    let loss_start = local.value_par(start, threads);
    say(
        log,
        format!(
            "{}: L-BFGS-B from L_b {loss_start:.4e}, {} samples per evaluation",
            kind.as_str(),
            local.samples()
        ),
    );
    let fd_step = config.fd_step;
    let result = {
        let mut f = |u: &[f64]| local.value_par(u, threads);
        let mut g = |u: &[f64], _fu: f64| {
            lbfgsb::fd_gradient(
                &|p: &[f64]| local.value(p),
                u,
                &lower,
                &upper,
                fd_step,
                threads,
            )
        };
        let mut progress = |k: usize, v: f64| {
            say(
                log,
                format!(
                    "  iteration {k:>4}: L_b {v:.4e} ({:.1} s)",
                    lb_start.elapsed().as_secs_f64()
                ),
            );
        };
        lbfgsb::minimize(
            &mut f,
            &mut g,
            start,
            &lower,
            &upper,
            &config.lbfgsb,
            &mut progress,
        )
    };
    let lbfgsb_seconds = lb_start.elapsed().as_secs_f64();
    (result, loss_start, lbfgsb_seconds)
}

/// The fitted parameters in physical units, with their bounds and scales, for `fit.json`.
fn fitted_params(space: &ParamSpace, physical: &[f64]) -> Vec<FittedParam> {
    space
        .defs
        .iter()
        .zip(physical)
        .map(|(d, &value)| FittedParam {
            name: d.name.clone(),
            unit: d.unit.clone(),
            value,
            lower: d.above.map_or(d.lower, |j| physical[j]),
            upper: d.upper,
            scale: if d.log { "log" } else { "linear" }.into(),
        })
        .collect()
}

/// Plots measured (dashed) and predicted (solid) `v`, `i` and the `v-i` loop of `traj` over its
/// last `periods` supply periods into `dir/{prefix}_v.png`, `_i.png`, `_vi.png`; returns the
/// files.
pub fn plot_trajectory(
    dir: &Path,
    prefix: &str,
    label: &str,
    traj: &MemristorTrajectory,
    prediction: &Prediction,
    periods: f64,
) -> Result<Vec<PathBuf>, Error> {
    use crate::plot::{plot_series, Series};
    let n = traj.len();
    let keep = ((periods * traj.samples_per_period()).round() as usize).clamp(2, n);
    let from = n - keep;
    let t: Vec<f64> = (from..n).map(|k| traj.time(k)).collect();
    let f = |x: &[f32]| {
        x[from..]
            .iter()
            .map(|&v| f64::from(v))
            .collect::<Vec<f64>>()
    };
    let (mv, mi) = (f(&traj.v), f(&traj.i));
    let pv = prediction.v[from..].to_vec();
    let pi = prediction.i[from..].to_vec();
    let micro_amps = |x: &[f64]| x.iter().map(|v| v * 1e6).collect::<Vec<f64>>();
    let title = format!(
        "{label}: {} ({} V, {} Hz, R_s {} ohm, {})",
        traj.name,
        traj.amplitude,
        traj.frequency,
        traj.r_s,
        traj.split.as_str()
    );
    let files = vec![
        dir.join(format!("{prefix}_v.png")),
        dir.join(format!("{prefix}_i.png")),
        dir.join(format!("{prefix}_vi.png")),
    ];
    plot_series(
        &files[0],
        &title,
        "t [s]",
        "v [V]",
        &[
            Series::new("measured", t.clone(), mv.clone())
                .dashed()
                .color(0),
            Series::new(label, t.clone(), pv.clone()).color(1),
        ],
    )?;
    plot_series(
        &files[1],
        &title,
        "t [s]",
        "i [uA]",
        &[
            Series::new("measured", t.clone(), micro_amps(&mi))
                .dashed()
                .color(0),
            Series::new(label, t, micro_amps(&pi)).color(1),
        ],
    )?;
    plot_series(
        &files[2],
        &title,
        "v [V]",
        "i [uA]",
        &[
            Series::new("measured", mv, micro_amps(&mi))
                .dashed()
                .color(0),
            Series::new(label, pv, micro_amps(&pi)).color(1),
        ],
    )?;
    Ok(files)
}
