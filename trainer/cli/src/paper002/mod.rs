//! `odeflash stiff-train` and `odeflash stiff-experiment`, paper 002's experiments with Π-net
//! polynomial neural ODEs on stiff problems: the command side here (runs, printed equations,
//! `equations.md`, `results.json`, the plots); the training data in [`data`], one trained method
//! compared with the truth in [`train`], the learned equations as a simulator in [`rollout`].
//! The setup, example commands and measured results: `docs/paper002/README.md`.

pub mod data;
pub mod rollout;
pub mod train;

use std::io::Write;
use std::path::Path;

use self::data::{case, Case};
use self::rollout::rollout_text;
use self::train::{outcome_text, run_one, stepper_for, RunResult};
use crate::args::{StiffExperimentArgs, StiffTrainArgs};
use crate::Error;
use odeflash_reference::files::{claim_dir, write_atomic};
use odeflash_reference::plot::{plot_series_with, PlotOptions, Series};
use odeflash_training::poly::expand::format_coef;

fn write_text(path: &Path, text: &str) -> Result<(), Error> {
    write_atomic(path, text.as_bytes())
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
    claim_dir(&c.out, "stiff-train", c.force)?;
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
    claim_dir(&c.out, "stiff-experiment", c.force)?;
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
