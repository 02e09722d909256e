//! `odeflash stiff-train` and `odeflash stiff-experiment`, paper 002's experiments with Π-net
//! polynomial neural ODEs on stiff problems: the training data, the training of one method and
//! its comparison with the true equations, the rollout of the learned equations, and the
//! commands' outputs. The setup, example commands and measured results:
//! `docs/paper002/README.md`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::args::{StiffCommon, StiffExperimentArgs, StiffTrainArgs};
use odeflash_runtime::Solver;
use serde::Serialize;

use crate::Error;
use odeflash_reference::files::write_atomic;
use odeflash_reference::plot::{plot_series_with, PlotOptions, Series};
use odeflash_reference::rng::Rng;
use odeflash_reference::stiff::{
    hires_initial_conditions, problem, solve_adaptive, Options, Problem, PROBLEMS,
};
use odeflash_training::backend::CpuAd;
use odeflash_training::diffsolve::implicit::{Implicit, ImplicitMethod};
use odeflash_training::diffsolve::{ExplicitRk, Stepper};
use odeflash_training::poly::expand::{expand, format_coef, Equations, Monomial};
use odeflash_training::poly::fit::{fit, FitConfig, FitReport, Intervals, Outcome, Trajectory};
use odeflash_training::poly::PiNetDef;

/// The training data of one problem: trajectories, the drive, the true coefficients.
pub struct Case {
    /// The problem.
    pub problem: Box<dyn Problem>,
    /// Observed trajectories.
    pub trajectories: Vec<Trajectory>,
    /// `Some` for the linear problem, whose forcing `b e^{-t}` enters as the drive `u = e^{-t}`.
    pub drive: Option<fn(f64) -> f64>,
    /// True right-hand side, one map per state (monomials over `[x.., u]`).
    pub truth: Vec<BTreeMap<Monomial, f64>>,
    /// Variable names `[x.., u]`.
    pub vars: Vec<String>,
}

/// Kaps' problem from off its slow manifold `y1 = y2^2`: from the standard `(1, 1)` the solution
/// `(e^{-2t}, e^{-t})` is the same for every `mu`, so the stiff coefficient cannot be identified;
/// starting off the manifold, the fast decay of `y1 - y2^2` at rate `mu + 2` is in the data.
pub fn kaps_initial_conditions() -> Vec<Vec<f64>> {
    vec![
        vec![1.0, 1.0],
        vec![2.0, 1.0],
        vec![0.2, 0.8],
        vec![1.5, 0.5],
    ]
}

/// `points` observation times in `[0, t_end]`: equally spaced, or with `t_first`, 0 followed by
/// `points - 1` geometrically spaced times from `t_first` to `t_end`.
pub fn observation_times(
    points: usize,
    t_end: f64,
    t_first: Option<f64>,
) -> Result<Vec<f64>, Error> {
    if points < 2 {
        return Err(Error::Usage("--points must be at least 2".into()));
    }
    match t_first {
        None => Ok((0..points)
            .map(|k| t_end * k as f64 / (points - 1) as f64)
            .collect()),
        Some(t1) => {
            if !(t1 > 0.0 && t1 < t_end) || points < 3 {
                return Err(Error::Usage(format!(
                    "--t-first {t1} must lie in (0, {t_end}) with at least 3 points"
                )));
            }
            let ratio = (t_end / t1).ln() / (points - 2) as f64;
            let mut t = vec![0.0];
            t.extend((0..points - 1).map(|k| t1 * (ratio * k as f64).exp()));
            t[points - 1] = t_end;
            Ok(t)
        }
    }
}

fn exp_neg(t: f64) -> f64 {
    (-t).exp()
}

/// Generates `points` equally spaced observations of every trajectory of `name` (HIRES: the 20
/// initial conditions of Table 7) with the adaptive Radau5 at rtol 1e-10, atol 1e-12.
pub fn case(
    name: &str,
    points: usize,
    t_end: Option<f64>,
    t_first: Option<f64>,
) -> Result<Case, Error> {
    let p = problem(name).ok_or_else(|| {
        Error::Usage(format!(
            "unknown problem `{name}`; one of {}",
            PROBLEMS.join(", ")
        ))
    })?;
    if points < 2 {
        return Err(Error::Usage("--points must be at least 2".into()));
    }
    let n = p.dim();
    let t_end = t_end.unwrap_or(p.t_end());
    if !(t_end > 0.0 && t_end.is_finite()) {
        return Err(Error::Usage(format!("--t-end {t_end} must be positive")));
    }
    let t = observation_times(points, t_end, t_first)?;
    let starts: Vec<Vec<f64>> = if name == "hires" {
        hires_initial_conditions()
            .iter()
            .map(|y| y.to_vec())
            .collect()
    } else if name == "toy2d" {
        kaps_initial_conditions()
    } else {
        vec![p.initial()]
    };
    let opts = Options {
        rtol: 1e-10,
        atol: 1e-12,
        max_steps: 10_000_000,
        ..Options::default()
    };
    let mut trajectories = Vec::new();
    for y0 in starts {
        let sol = solve_adaptive(p.as_ref(), &y0, 0.0, &t, &opts)
            .map_err(|e| Error::Train(format!("reference solution of {name}: {e}")))?;
        trajectories.push(Trajectory {
            t: t.clone(),
            x: sol.y,
        });
    }
    let mut truth: Vec<BTreeMap<Monomial, f64>> = p
        .polynomial()
        .iter()
        .map(|terms| {
            terms
                .iter()
                .map(|term| {
                    let mut m: Monomial = term.powers.iter().map(|&e| e as u8).collect();
                    m.push(0);
                    (m, term.coefficient)
                })
                .collect()
        })
        .collect();
    let drive = if name == "linear" {
        // The forcing b e^{-t}: its amplitude is what the forcing adds at t = 0.
        let mut b = vec![0.0; n];
        p.forcing(0.0, &mut b);
        truth[0].insert(vec![0, 1], b[0]);
        Some(exp_neg as fn(f64) -> f64)
    } else {
        None
    };
    let mut vars = p.state_names();
    vars.push("u".into());
    Ok(Case {
        problem: p,
        trajectories,
        drive,
        truth,
        vars,
    })
}

impl Case {
    /// Highest total degree of the true right-hand side.
    pub fn degree(&self) -> usize {
        self.truth
            .iter()
            .flat_map(|r| r.keys())
            .map(|m| m.iter().map(|&e| e as usize).sum::<usize>())
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The stiff coefficient: the largest non-constant true coefficient in magnitude (the first
    /// one on ties), as `(state, monomial, value)`.
    pub fn stiff_term(&self) -> (usize, Monomial, f64) {
        let mut best = (0, Vec::new(), 0.0f64);
        for (i, row) in self.truth.iter().enumerate() {
            for (m, &c) in row {
                let drive = m.last().copied().unwrap_or(0) > 0;
                if !drive && m.iter().any(|&e| e > 0) && c.abs() > best.2.abs() {
                    best = (i, m.clone(), c);
                }
            }
        }
        best
    }
}

/// The stepper called `name`: the explicit RK methods of the runtime, or the implicit ones.
pub fn stepper_for(name: &str) -> Result<Box<dyn Stepper<CpuAd>>, Error> {
    if let Some(m) = ImplicitMethod::from_name(name) {
        return Ok(Box::new(Implicit::new(m)));
    }
    let solver = Solver::from_name(name).ok_or_else(|| {
        Error::Usage(format!(
            "unknown method `{name}`; one of backward-euler, trapezoid, radau3, radau5, euler, heun, rk4, rk5, dopri5"
        ))
    })?;
    if solver.is_implicit() {
        return Err(Error::Usage(format!(
            "method `{name}` has no differentiable stepper"
        )));
    }
    Ok(Box::new(ExplicitRk(solver)))
}

/// One trained model and how it compares with the truth.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Problem name.
    pub problem: String,
    /// Method name.
    pub method: String,
    /// Observation points per trajectory.
    pub points: usize,
    /// Trajectories.
    pub trajectories: usize,
    /// Epochs run.
    pub epochs: usize,
    /// How training ended.
    pub outcome: Outcome,
    /// Lowest SSR.
    pub best_loss: f64,
    /// Mean seconds per epoch.
    pub seconds_per_epoch: f64,
    /// Epochs whose loss jumped above ten times the best before them.
    pub spikes: usize,
    /// The learned equations, printed.
    pub equations: Vec<String>,
    /// Learned coefficients per state (`"y1*y2" -> c`, pruned).
    pub coefficients: Vec<BTreeMap<String, f64>>,
    /// The stiff term's name, true and learned coefficient, relative error.
    pub stiff_term: String,
    /// True stiff coefficient.
    pub stiff_true: f64,
    /// Learned stiff coefficient.
    pub stiff_learned: f64,
    /// `|learned - true| / |true|`.
    pub stiff_rel_error: f64,
    /// Largest relative error over all true terms.
    pub max_rel_error: f64,
    /// Largest learned coefficient of a term absent from the truth (drive terms of autonomous
    /// problems left out).
    pub max_spurious: f64,
    /// The learned equations integrated from every observed start (adaptive Radau5) against the
    /// observations.
    pub rollout: Rollout,
    /// SSR per epoch.
    #[serde(skip)]
    pub losses: Vec<f64>,
    /// Trained parameters.
    #[serde(skip)]
    pub params: Vec<Vec<f32>>,
    /// The net.
    #[serde(skip)]
    pub def: Option<PiNetDef>,
}

/// How well the learned equations reproduce the data as a simulator: each trajectory integrated
/// from its observed start over the whole observed interval (not interval by interval).
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    /// Relative L2 error per state, `||x_pred - x_obs|| / ||x_obs||` over every trajectory and
    /// observation time.
    pub per_state: Vec<f64>,
    /// The same over all states together.
    pub overall: f64,
    /// Why the integration failed (the errors are then infinite).
    pub failed: Option<String>,
}

/// The learned polynomial right-hand side in f64, for the adaptive solver.
struct Learned<'a> {
    eq: &'a Equations,
    drive: Option<fn(f64) -> f64>,
}

impl odeflash_reference::stiff::OdeSystem for Learned<'_> {
    fn dim(&self) -> usize {
        self.eq.rows.len()
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        let mut z = y.to_vec();
        z.push(self.drive.map_or(0.0, |u| u(t)));
        for (d, row) in dy.iter_mut().zip(&self.eq.rows) {
            *d = row.eval(&z);
        }
    }
}

/// Integrates `eq` from the start of every trajectory of `case` (adaptive Radau5, rtol 1e-8) and
/// measures the relative L2 error against the observations.
pub fn rollout(case: &Case, eq: &Equations) -> Rollout {
    let n = eq.rows.len();
    let system = Learned {
        eq,
        drive: case.drive,
    };
    let opts = Options {
        rtol: 1e-8,
        atol: 1e-10,
        max_steps: 200_000,
        ..Options::default()
    };
    let (mut err, mut norm) = (vec![0.0f64; n], vec![0.0f64; n]);
    for (k, tr) in case.trajectories.iter().enumerate() {
        match solve_adaptive(&system, &tr.x[0], tr.t[0], &tr.t, &opts) {
            Ok(sol) => {
                for (p, o) in sol.y.iter().zip(&tr.x) {
                    for i in 0..n {
                        err[i] += (p[i] - o[i]).powi(2);
                        norm[i] += o[i].powi(2);
                    }
                }
            }
            Err(e) => {
                return Rollout {
                    per_state: vec![f64::INFINITY; n],
                    overall: f64::INFINITY,
                    failed: Some(format!("trajectory {}: {e}", k + 1)),
                }
            }
        }
    }
    let rel = |e: f64, r: f64| (e / r.max(f64::MIN_POSITIVE)).sqrt();
    Rollout {
        per_state: err.iter().zip(&norm).map(|(&e, &r)| rel(e, r)).collect(),
        overall: rel(err.iter().sum(), norm.iter().sum()),
        failed: None,
    }
}

fn rollout_text(r: &Rollout) -> String {
    match &r.failed {
        Some(why) => format!("the learned equations could not be integrated: {why}"),
        None => format!(
            "rollout from the observed starts: relative L2 error {:.3e} overall, per state [{}]",
            r.overall,
            r.per_state
                .iter()
                .map(|e| format!("{e:.2e}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Trains one method on one case and compares the learned equation with the truth.
pub fn run_one(
    case: &Case,
    method: &str,
    common: &StiffCommon,
    log: &mut dyn Write,
) -> Result<RunResult, Error> {
    let stepper = stepper_for(method)?;
    let data = Intervals::new(&case.trajectories).map_err(|e| Error::Input(e.to_string()))?;
    let n = data.n;
    let degree = common.degree.unwrap_or_else(|| case.degree());
    let mut def =
        PiNetDef::new(n, common.width(), degree).map_err(|e| Error::Usage(e.to_string()))?;
    def.out_scale = data.slope_scale();
    let scaled = common
        .scale_states
        .unwrap_or(case.problem.name() == "hires");
    let weights = if scaled {
        let c = data.state_scale();
        def.in_scale = c.iter().copied().chain([1.0]).collect();
        Some(c.iter().map(|v| 1.0 / (v * v)).collect())
    } else {
        None
    };
    let init = def.init(&mut Rng::new(common.seed));
    let cfg = FitConfig {
        epochs: common.epochs(),
        lr: common.lr(),
        lr_final: common.lr_final(),
        substeps: common.substeps,
        beta2: common.beta2,
        weights,
    };
    let device = Default::default();
    let every = (common.epochs() / 5).max(1);
    let drive_fn = case.drive;
    let drive_ref: Option<&(dyn Fn(f64) -> f64 + Sync)> =
        drive_fn.as_ref().map(|f| f as &(dyn Fn(f64) -> f64 + Sync));
    let report: FitReport = fit::<CpuAd>(
        &def,
        init,
        &data,
        drive_ref,
        stepper.as_ref(),
        &cfg,
        &device,
        &mut |e, l| {
            if e % every == 0 {
                let _ = writeln!(
                    log,
                    "  {method} N={} epoch {e}: SSR {l:.4e}",
                    case.trajectories[0].t.len()
                );
            }
        },
    )
    .map_err(|e| Error::Usage(e.to_string()))?;
    let eq = expand(&def, &report.params, &case.vars).map_err(|e| Error::Train(e.to_string()))?;
    let u = case.vars.len() - 1;
    let eq: Equations = if case.drive.is_none() {
        eq.without_var(u)
    } else {
        eq
    };
    let (si, sm, sc) = case.stiff_term();
    let learned = eq.rows[si].coef(&sm);
    let mut max_rel: f64 = 0.0;
    let mut spurious: f64 = 0.0;
    for (i, row) in case.truth.iter().enumerate() {
        for (m, &c) in row {
            max_rel = max_rel.max((eq.rows[i].coef(m) - c).abs() / c.abs());
        }
        for (m, &c) in &eq.rows[i].terms {
            if !row.contains_key(m) {
                spurious = spurious.max(c.abs());
            }
        }
    }
    let stiff_name = {
        let names: Vec<String> = sm
            .iter()
            .enumerate()
            .filter(|(_, &e)| e > 0)
            .map(|(k, &e)| {
                if e == 1 {
                    case.vars[k].clone()
                } else {
                    format!("{}^{e}", case.vars[k])
                }
            })
            .collect();
        format!("d{}/dt: {}", case.vars[si], names.join("*"))
    };
    Ok(RunResult {
        problem: case.problem.name().into(),
        method: method.into(),
        points: case.trajectories[0].t.len(),
        trajectories: case.trajectories.len(),
        epochs: report.losses.len(),
        outcome: report.outcome.clone(),
        best_loss: report.best_loss,
        seconds_per_epoch: report.seconds_per_epoch,
        spikes: report.spikes,
        equations: eq.print(common.prune),
        coefficients: (0..n).map(|i| eq.named_terms(i, common.prune)).collect(),
        stiff_term: stiff_name,
        stiff_true: sc,
        stiff_learned: learned,
        stiff_rel_error: (learned - sc).abs() / sc.abs(),
        max_rel_error: max_rel,
        max_spurious: spurious,
        rollout: rollout(case, &eq),
        losses: report.losses,
        params: report.params,
        def: Some(def),
    })
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Completed => "completed".into(),
        Outcome::Halted { epoch, reason } => format!("HALTED at epoch {epoch}: {reason}"),
    }
}

fn write_text(path: &Path, text: &str) -> Result<(), Error> {
    write_atomic(path, text.as_bytes())
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn loss_plot(path: &Path, runs: &[&RunResult]) -> Result<(), Error> {
    let series: Vec<Series> = runs
        .iter()
        .map(|r| {
            Series::new(
                format!("{} N={}", r.method, r.points),
                (1..=r.losses.len()).map(|e| e as f64).collect(),
                r.losses.clone(),
            )
        })
        .collect();
    plot_series_with(
        path,
        "SSR training loss",
        "epoch",
        "SSR",
        &series,
        &PlotOptions {
            log_y: true,
            ..PlotOptions::default()
        },
    )?;
    Ok(())
}

fn markdown(case: &Case, results: &[RunResult]) -> String {
    let mut s = format!("# {}: equations learned\n\n", case.problem.name());
    s.push_str("True equations:\n\n```\n");
    for l in case.problem.true_equations() {
        s.push_str(&l);
        s.push('\n');
    }
    s.push_str("```\n\n");
    s.push_str(
        "| method | N | equation learned | stiff term | rel. error | rollout rel. L2 | s/epoch | outcome |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {} | `{}` | {} = {} (true {}) | {:.3e} | {:.3e} | {:.4} | {} |\n",
            r.method,
            r.points,
            r.equations.join("`<br>`"),
            r.stiff_term,
            format_coef(r.stiff_learned),
            format_coef(r.stiff_true),
            r.stiff_rel_error,
            r.rollout.overall,
            r.seconds_per_epoch,
            outcome_text(&r.outcome)
        ));
    }
    s
}

/// `odeflash stiff-train`.
pub fn run_train(args: &StiffTrainArgs, out: &mut dyn Write) -> Result<(), Error> {
    let c = &args.common;
    let case = case(&c.problem, args.points, c.t_end(), c.t_first)?;
    create_dir(&c.out)?;
    let r = run_one(&case, &args.method, c, out)?;
    writeln!(
        out,
        "{} / {} / N={}: {}",
        r.problem,
        r.method,
        r.points,
        outcome_text(&r.outcome)
    )
    .map_err(Error::Stdout)?;
    for l in &r.equations {
        writeln!(out, "  {l}").map_err(Error::Stdout)?;
    }
    writeln!(
        out,
        "stiff coefficient {}: {} (true {}), relative error {:.3e}; {:.2} ms per epoch",
        r.stiff_term,
        format_coef(r.stiff_learned),
        format_coef(r.stiff_true),
        r.stiff_rel_error,
        r.seconds_per_epoch * 1e3
    )
    .map_err(Error::Stdout)?;
    writeln!(out, "{}", rollout_text(&r.rollout)).map_err(Error::Stdout)?;
    loss_plot(&c.out.join("loss.png"), &[&r])?;
    write_text(
        &c.out.join("equations.md"),
        &markdown(&case, std::slice::from_ref(&r)),
    )?;
    let json = serde_json::to_string_pretty(&r).map_err(Error::Serialize)?;
    write_text(&c.out.join("result.json"), &json)?;
    let losses = serde_json::to_string(&r.losses).map_err(Error::Serialize)?;
    write_text(&c.out.join("losses.json"), &losses)?;
    if let Some(def) = &r.def {
        let x0: Vec<f32> = case.trajectories[0].x[0]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let spec = def.to_spec(&r.params, &format!("pinet-{}", r.problem), x0);
        let json = serde_json::to_string_pretty(&spec).map_err(Error::Serialize)?;
        write_text(&c.out.join("model.json"), &json)?;
    }
    writeln!(out, "wrote {}", c.out.display()).map_err(Error::Stdout)?;
    Ok(())
}

/// `odeflash stiff-experiment`.
pub fn run_experiment(args: &StiffExperimentArgs, out: &mut dyn Write) -> Result<(), Error> {
    let c = &args.common;
    create_dir(&c.out)?;
    for m in &args.methods {
        stepper_for(m)?;
    }
    let mut results = Vec::new();
    let mut cases = Vec::new();
    for &points in &args.points {
        let case = case(&c.problem, points, c.t_end(), c.t_first)?;
        for m in &args.methods {
            let r = run_one(&case, m, c, out)?;
            writeln!(
                out,
                "{} N={points}: {} = {} (true {}), rel. error {:.3e}, {:.2} ms/epoch, {}",
                m,
                r.stiff_term,
                format_coef(r.stiff_learned),
                format_coef(r.stiff_true),
                r.stiff_rel_error,
                r.seconds_per_epoch * 1e3,
                outcome_text(&r.outcome)
            )
            .map_err(Error::Stdout)?;
            for l in &r.equations {
                writeln!(out, "    {l}").map_err(Error::Stdout)?;
            }
            writeln!(out, "    {}", rollout_text(&r.rollout)).map_err(Error::Stdout)?;
            results.push(r);
        }
        cases.push(case);
    }
    let Some(first) = cases.first() else {
        return Err(Error::Usage("--points is empty".into()));
    };
    write_text(&c.out.join("equations.md"), &{
        let mut s = markdown(first, &results);
        s.push_str("\n## Relative error of the stiff coefficient\n\n| method |");
        for p in &args.points {
            s.push_str(&format!(" N={p} |"));
        }
        s.push_str("\n| --- |");
        for _ in &args.points {
            s.push_str(" --- |");
        }
        s.push('\n');
        for m in &args.methods {
            s.push_str(&format!("| {m} |"));
            for p in &args.points {
                if let Some(r) = results.iter().find(|r| &r.method == m && r.points == *p) {
                    s.push_str(&format!(" {:.3e} |", r.stiff_rel_error));
                }
            }
            s.push('\n');
        }
        s.push_str("\n## Training time per epoch\n\n| method | N | trajectories | ms/epoch |\n| --- | --- | --- | --- |\n");
        for r in &results {
            s.push_str(&format!(
                "| {} | {} | {} | {:.3} |\n",
                r.method,
                r.points,
                r.trajectories,
                r.seconds_per_epoch * 1e3
            ));
        }
        s
    })?;
    let json = serde_json::to_string_pretty(&results).map_err(Error::Serialize)?;
    write_text(&c.out.join("results.json"), &json)?;
    let series: Vec<Series> = args
        .methods
        .iter()
        .map(|m| {
            let rs: Vec<&RunResult> = results.iter().filter(|r| &r.method == m).collect();
            Series::new(
                m.clone(),
                rs.iter().map(|r| (r.points as f64).log10()).collect(),
                rs.iter().map(|r| r.stiff_rel_error).collect(),
            )
        })
        .collect();
    plot_series_with(
        &c.out.join("stiff_error.png"),
        &format!("{}: relative error of the stiff coefficient", c.problem),
        "log10(number of points)",
        "relative error",
        &series,
        &PlotOptions {
            log_y: true,
            ..PlotOptions::default()
        },
    )?;
    let refs: Vec<&RunResult> = results.iter().collect();
    loss_plot(&c.out.join("loss.png"), &refs)?;
    writeln!(out, "wrote {}", c.out.display()).map_err(Error::Stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn common(epochs: usize, width: usize, degree: usize, t_end: f64) -> StiffCommon {
        StiffCommon {
            problem: "linear".into(),
            epochs: Some(epochs),
            lr: None,
            lr_final: None,
            beta2: 0.99,
            substeps: 1,
            width: Some(width),
            degree: Some(degree),
            t_end: Some(t_end),
            prune: 1e-3,
            seed: 1,
            scale_states: None,
            t_first: None,
            out: PathBuf::new(),
        }
    }

    /// The issue's target: Radau5 recovers the stiff coefficient of `y' = -1000 y + 3000 - 2000
    /// e^{-t}` to better than 1e-3 relative, from 101 equally spaced points of the reference
    /// solution over [0, 0.1] (the fast transient resolved, `h λ = -1`), one step per interval.
    /// Backward Euler on the same data is far off (its own error, order 1), so the check can fail.
    #[test]
    fn radau5_recovers_the_stiff_linear_coefficient() {
        let case = case("linear", 101, Some(0.1), None).unwrap();
        let c = common(2000, 4, 1, 0.1);
        let mut log = Vec::new();
        let r = run_one(&case, "radau5", &c, &mut log).unwrap();
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(r.stiff_true, -1000.0);
        assert!(
            r.stiff_rel_error < 1e-3,
            "radau5: {} (rel. error {:e}); {:?}",
            r.stiff_learned,
            r.stiff_rel_error,
            r.equations
        );
        assert!(r.max_rel_error < 2e-3, "{:?}", r.equations);
        let be = run_one(&case, "backward-euler", &c, &mut log).unwrap();
        assert!(
            be.stiff_rel_error > 0.1,
            "backward Euler: {}",
            be.stiff_learned
        );
    }

    /// Equally spaced and geometric observation times: both ends, increasing, constant ratio.
    #[test]
    fn observation_times_are_equal_or_geometric() {
        let t = observation_times(5, 2.0, None).unwrap();
        assert_eq!(t, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        let g = observation_times(5, 8.0, Some(1.0)).unwrap();
        assert_eq!(g.len(), 5);
        assert_eq!((g[0], g[1], g[4]), (0.0, 1.0, 8.0));
        assert!(
            (g[2] - 2.0).abs() < 1e-12 && (g[3] - 4.0).abs() < 1e-12,
            "{g:?}"
        );
        assert!(observation_times(5, 8.0, Some(9.0)).is_err());
        assert!(observation_times(2, 8.0, Some(1.0)).is_err());
    }

    /// HIRES's true equations rolled out from Table 7's 20 starts reproduce the reference data.
    #[test]
    fn rollout_of_the_true_hires_reproduces_the_data() {
        let case = case("hires", 11, Some(20.0), None).unwrap();
        assert_eq!(case.trajectories.len(), 20);
        let rows: Vec<odeflash_training::poly::expand::Polynomial> = case
            .truth
            .iter()
            .map(|r| odeflash_training::poly::expand::Polynomial {
                vars: 9,
                terms: r.clone(),
            })
            .collect();
        let eq = Equations {
            vars: case.vars.clone(),
            rows,
        };
        let r = rollout(&case, &eq);
        assert!(r.failed.is_none() && r.overall < 1e-6, "{r:?}");
        assert!(r.per_state.iter().all(|e| *e < 1e-5), "{r:?}");
    }

    /// The rollout of the true equations reproduces the reference data (to the solvers'
    /// tolerances), and a 10% error in one coefficient shows up as a percent-level error.
    #[test]
    fn rollout_of_the_truth_reproduces_the_data() {
        let case = case("toy2d", 21, Some(1.0), None).unwrap();
        assert_eq!(case.trajectories.len(), kaps_initial_conditions().len());
        let rows: Vec<odeflash_training::poly::expand::Polynomial> = case
            .truth
            .iter()
            .map(|r| odeflash_training::poly::expand::Polynomial {
                vars: 3,
                terms: r.clone(),
            })
            .collect();
        let mut eq = Equations {
            vars: case.vars.clone(),
            rows,
        };
        let r = rollout(&case, &eq);
        assert!(r.failed.is_none());
        assert!(r.overall < 1e-6, "{r:?}");
        // y2' = y1 - y2 - y2^2 with the y1 coefficient 10% off.
        eq.rows[1].terms.insert(vec![1, 0, 0], 1.1);
        let r = rollout(&case, &eq);
        assert!(r.per_state[1] > 1e-2 && r.per_state[1] < 0.2, "{r:?}");
    }

    /// Kaps' stiff coefficient `-(mu + 2) = -1002` is identifiable once the trajectories start
    /// off the slow manifold: Radau5 recovers it to 1e-2 from 4 trajectories of 41 equally spaced
    /// points over [0, 0.005] (five time constants of the fast decay, `h (mu + 2) = 0.125`).
    #[test]
    fn radau5_recovers_kaps_mu_off_the_slow_manifold() {
        let case = case("toy2d", 41, Some(5e-3), None).unwrap();
        let mut c = common(1500, 4, 2, 5e-3);
        c.problem = "toy2d".into();
        let mut log = Vec::new();
        let r = run_one(&case, "radau5", &c, &mut log).unwrap();
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(r.stiff_true, -1002.0);
        assert!(
            r.stiff_rel_error < 1e-2,
            "radau5: {} (rel. error {:e}); {:?}",
            r.stiff_learned,
            r.stiff_rel_error,
            r.equations
        );
    }

    /// Paper 002 Fig. 4 from a cold start, with the CLI's vdp defaults (width 8, lr 0.3 decaying
    /// to 1e-4) and 301 points (h = 10): the first Adam step makes the field stiff; RK4 then blows
    /// up and training halts at epoch 2, while Radau5 on the very same first step keeps a finite
    /// loss (a spike, not an explosion), recovers, and goes on to the last epoch.
    #[test]
    fn cold_start_vdp_halts_rk4_but_not_radau5() {
        let case = case("vdp", 301, None, None).unwrap();
        let mut c = common(300, 8, 3, 3000.0);
        c.problem = "vdp".into();
        let mut log = Vec::new();
        let rk4 = run_one(&case, "rk4", &c, &mut log).unwrap();
        match &rk4.outcome {
            Outcome::Halted { epoch, reason } => {
                assert!(*epoch <= 3, "{reason}");
                assert!(
                    reason.contains("unstable") || reason.contains("NaN"),
                    "{reason}"
                );
            }
            o => panic!("RK4 on cold-start vdp should halt, got {o:?}"),
        }
        let r5 = run_one(&case, "radau5", &c, &mut log).unwrap();
        assert_eq!(r5.outcome, Outcome::Completed);
        assert_eq!(r5.losses.len(), 300);
        let first = r5.losses[0];
        assert!(r5.losses.iter().all(|l| l.is_finite() && *l < 1e4 * first));
        let peak = r5.losses.iter().copied().fold(0.0, f64::max);
        assert!(
            peak > 5.0 * first && r5.losses[299] < 1.5 * first,
            "radau5: from {first} up to {peak}, ends at {}",
            r5.losses[299]
        );
    }

    /// Paper 002 Fig. 4: once the net's field is as stiff as van der Pol (mu = 1000), RK4 with
    /// one step per observation interval diverges, and training halts with the reason instead
    /// of panicking. The net starts as the true vdp polynomial (built by hand), the state a cold
    /// start reaches when it develops the stiffness; Radau5 steps the same net stably.
    #[test]
    fn rk4_on_stiff_van_der_pol_halts_and_says_why() {
        let case = case("vdp", 301, Some(300.0), None).unwrap();
        let data = Intervals::new(&case.trajectories).unwrap();
        let def = PiNetDef::new(2, 3, 3).unwrap();
        let mu = 1000.0f32;
        // Channels [y2, y1, y1^2 y2]; U_k are [inputs = (y1, y2, u), width = 3] row-major.
        let init = vec![
            vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            vec![0.0, 0.0, 0.0],
            vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            vec![0.0, 0.0, -1.0],
            vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            vec![0.0, 0.0, -1.0],
            vec![1.0, mu, 0.0, -1.0, 0.0, -mu],
            vec![0.0, 0.0],
            vec![0.0, 0.0],
        ];
        let eq = expand(&def, &init, &case.vars).unwrap().without_var(2);
        for (i, row) in case.truth.iter().enumerate() {
            assert_eq!(
                &eq.rows[i].terms, row,
                "the hand-built net is the vdp polynomial"
            );
        }
        let cfg = FitConfig {
            epochs: 3,
            lr: 1e-3,
            lr_final: 1e-3,
            substeps: 1,
            beta2: 0.99,
            weights: None,
        };
        let device = Default::default();
        let rk4 = stepper_for("rk4").unwrap();
        let r = fit::<CpuAd>(
            &def,
            init.clone(),
            &data,
            None,
            rk4.as_ref(),
            &cfg,
            &device,
            &mut |_, _| {},
        )
        .unwrap();
        match &r.outcome {
            Outcome::Halted { epoch, reason } => {
                assert_eq!(*epoch, 1);
                assert!(reason.contains("unstable"), "{reason}");
            }
            o => panic!("RK4 on stiff vdp should halt, got {o:?}"),
        }
        assert!(outcome_text(&r.outcome).starts_with("HALTED at epoch 1"));
        // The same net one Radau5 step per interval: finite loss, small, because it is the truth.
        let r5 = stepper_for("radau5").unwrap();
        let (loss, _) = odeflash_training::poly::fit::ssr_and_grad::<CpuAd>(
            &def,
            &odeflash_training::nn::upload(&init, &def.param_shapes(), &device),
            &odeflash_training::poly::fit::Batch::new(&data, &device),
            None,
            r5.as_ref(),
            1,
            &device,
        )
        .unwrap();
        assert!(
            loss.is_finite() && loss < 1.0,
            "radau5 SSR of the true net: {loss}"
        );
    }
}
