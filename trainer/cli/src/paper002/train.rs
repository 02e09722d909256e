//! One Π-net trained with one method on one case of paper 002 ([`run_one`]), its learned
//! equation compared with the truth: the stiff coefficient, every true term, spurious terms and
//! the rollout.

use std::collections::BTreeMap;
use std::io::Write;

use odeflash_runtime::Solver;
use serde::Serialize;

use super::data::Case;
use super::rollout::{rollout, Rollout};
use crate::args::StiffCommon;
use crate::Error;
use odeflash_reference::rng::Rng;
use odeflash_training::backend::CpuAd;
use odeflash_training::diffsolve::implicit::{Implicit, ImplicitMethod};
use odeflash_training::diffsolve::{ExplicitRk, Stepper};
use odeflash_training::poly::expand::{expand, Equations};
use odeflash_training::poly::fit::{fit, FitConfig, FitReport, Intervals, Outcome};
use odeflash_training::poly::PiNetDef;

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

pub(super) fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Completed => "completed".into(),
        Outcome::Halted { epoch, reason } => format!("HALTED at epoch {epoch}: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::paper002::data::case;

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
            force: false,
        }
    }

    /// The target: Radau5 recovers the stiff coefficient of `y' = -1000 y + 3000 - 2000
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
