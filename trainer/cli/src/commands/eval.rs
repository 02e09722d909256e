//! `odeflash eval`: memristor models (runs, model files, baseline fits) on a rig dataset, as
//! paper 000's Tables I and II and Fig. 6-8; see [`crate::paper000::eval`].

use std::io::Write;
use std::path::Path;

use odeflash_reference::dataset::Dataset;
use odeflash_reference::memristor::data::MemristorDataset;
use odeflash_reference::memristor::MemristorTrajectory;
use odeflash_runtime::Solver;

use crate::args::EvalArgs;
use crate::paper000::check_warmup;
use crate::paper000::eval::{
    self as ev, Candidate, EvalReport, Host, LoadOptions, Warmup, WarmupMode,
};
use crate::Error;

/// Runs `odeflash eval`.
pub fn run(args: &EvalArgs, out: &mut dyn Write) -> Result<(), Error> {
    let warmup = warmup(args);
    let host = Host {
        threads: args.threads,
        fma: args.fma,
    };
    // The same warm-up samples as training's validation (`memristor::data::training_view`).
    let (ds, as_trained) =
        odeflash_reference::memristor::data::training_view(&args.data, args.warmup_periods)?;
    let scored = ScoredFrom {
        mode: warmup.mode,
        as_trained,
    };
    // Replay scores every sample, and a record has at least two.
    if warmup.mode == WarmupMode::Skip {
        check_warmup(&scored.as_trained, &ds, args.warmup_periods)?;
    }
    let plotted = plotted(args, &ds)?;
    let cands = load_candidates(args, &ds)?;
    odeflash_reference::files::claim_dir(&args.out, "eval", args.force)?;

    let order = ev::table_order(&ds);
    let (models, responses) = score(&cands, &ds, &order, (&warmup, &host), &scored)?;
    let mut report = EvalReport {
        data: ds.dir.clone(),
        warmup,
        warmup_text: warmup.describe(),
        host,
        simulation_text: host.describe(),
        trajectories: trajectory_rows(&ds, &order, &scored),
        models,
        plotted: plotted.name.clone(),
        figures: Vec::new(),
    };
    write_figures(args, &mut report, &cands, &responses, &ds, plotted, &scored)?;

    let json = serde_json::to_string_pretty(&report).map_err(Error::Serialize)?;
    odeflash_reference::files::write_atomic(&args.out.join("report.json"), json.as_bytes())?;
    odeflash_reference::files::write_atomic(
        &args.out.join("report.md"),
        ev::markdown(&report).as_bytes(),
    )?;
    print_summary(out, &report, &args.out)
}

/// `--warmup` and `--warmup-periods` (checked where parsed).
fn warmup(args: &EvalArgs) -> Warmup {
    Warmup {
        mode: args.warmup,
        periods: args.warmup_periods,
    }
}

/// Where scoring starts in each trajectory: after the warm-up samples training's validation
/// leaves out (`skip`), or at its first sample (`replay`).
struct ScoredFrom {
    mode: WarmupMode,
    /// The dataset as training sees it, with each trajectory's warm-up samples.
    as_trained: Dataset,
}

impl ScoredFrom {
    /// The first scored sample of `t`.
    fn of(&self, t: &MemristorTrajectory) -> usize {
        match self.mode {
            WarmupMode::Replay => 0,
            WarmupMode::Skip => self
                .as_trained
                .train
                .iter()
                .chain(&self.as_trained.validation)
                .find(|x| x.path == t.path)
                .map_or(0, |x| x.warmup),
        }
    }
}

/// The trajectory of Fig. 6 and 7: `--trajectory`, else the first validation trajectory.
fn plotted<'a>(
    args: &EvalArgs,
    ds: &'a MemristorDataset,
) -> Result<&'a MemristorTrajectory, Error> {
    match &args.trajectory {
        Some(name) => ds.get(name).ok_or_else(|| {
            Error::Usage(format!(
                "--trajectory {name}: no such trajectory in {}",
                ds.dir
                    .join(odeflash_reference::memristor::data::MANIFEST)
                    .display()
            ))
        }),
        None => {
            ds.validation().first().copied().ok_or_else(|| {
                Error::Input(format!("{}: no validation trajectory", ds.dir.display()))
            })
        }
    }
}

/// Every model given, loaded and labelled.
fn load_candidates(args: &EvalArgs, ds: &MemristorDataset) -> Result<Vec<Candidate>, Error> {
    let opts = LoadOptions {
        last: args.last,
        solver: Solver::from(args.solver),
        substeps: args.substeps,
        allow_other_data: args.allow_other_data,
    };
    let mut cands: Vec<Candidate> = args
        .models
        .iter()
        .map(|p| ev::load(p, ds, &opts))
        .collect::<Result<_, _>>()?;
    ev::assign_labels(&mut cands);
    Ok(cands)
}

/// Simulates and scores every model on every trajectory: the models' reports (scores in table
/// `order`) and their responses (dataset order).
fn score(
    cands: &[Candidate],
    ds: &MemristorDataset,
    order: &[usize],
    (warmup, host): (&Warmup, &Host),
    scored: &ScoredFrom,
) -> Result<(Vec<ev::ModelReport>, Vec<Vec<ev::Response>>), Error> {
    let mut responses = Vec::with_capacity(cands.len());
    let mut models = Vec::with_capacity(cands.len());
    for c in cands {
        let (resp, secs) = ev::simulate(c, ds, warmup, host)?;
        let scores: Vec<ev::Score> = order
            .iter()
            .map(|&k| {
                ev::score(
                    &ds.trajectories[k],
                    &resp[k],
                    scored.of(&ds.trajectories[k]),
                )
            })
            .collect();
        models.push(ev::ModelReport {
            label: c.label.clone(),
            kind: c.kind.clone(),
            origin: c.origin,
            source: c.source.clone(),
            method: c.engine.describe(),
            epoch: c.epoch,
            epochs_trained: c.epochs_trained,
            training_seconds: c.training_seconds,
            generation_seconds: secs,
            lb: ev::summarize(&scores),
            scores,
            notes: c.notes.clone(),
        });
        responses.push(resp);
    }
    Ok((models, responses))
}

/// The trajectories' table rows, in table order.
fn trajectory_rows(
    ds: &MemristorDataset,
    order: &[usize],
    scored: &ScoredFrom,
) -> Vec<ev::TrajectoryRow> {
    order
        .iter()
        .enumerate()
        .map(|(row, &k)| {
            let t = &ds.trajectories[k];
            ev::TrajectoryRow {
                row: row + 1,
                name: t.name.clone(),
                amplitude: t.amplitude,
                frequency: t.frequency,
                series_resistance: t.r_s,
                split: t.split,
                samples: t.len(),
                scored_from: scored.of(t),
            }
        })
        .collect()
}

/// Fig. 6 of every run, Fig. 7 and Fig. 8 into `--out`, their names into `report.figures`.
fn write_figures(
    args: &EvalArgs,
    report: &mut EvalReport,
    cands: &[Candidate],
    responses: &[Vec<ev::Response>],
    ds: &MemristorDataset,
    plotted: &MemristorTrajectory,
    scored: &ScoredFrom,
) -> Result<(), Error> {
    let (warmup, host) = (report.warmup, report.host);
    let k_plot = ds
        .trajectories
        .iter()
        .position(|t| t.path == plotted.path)
        .unwrap_or(0);
    let skip = scored.of(plotted);
    let mut used_names: Vec<String> = Vec::new();
    for c in cands {
        let Some(ctx) = &c.run else { continue };
        let saved = ev::saved_parameters(&ctx.dir)?;
        let epochs = ev::fig6_epochs(&ctx.dir, &saved, args.fig6_epochs.as_deref())?;
        let mut name = format!("fig6_{}.png", ev::slug(&c.label));
        while used_names.contains(&name) {
            name = format!("fig6_{}_{}.png", ev::slug(&c.label), used_names.len());
        }
        ev::figure_6(
            &args.out.join(&name),
            c,
            ctx,
            &epochs,
            &saved,
            plotted,
            skip,
            &warmup,
            &host,
        )?;
        used_names.push(name.clone());
        report.figures.push(name);
    }
    let shown: Vec<(String, &ev::Response)> = cands
        .iter()
        .zip(responses)
        .map(|(c, r)| (c.label.clone(), &r[k_plot]))
        .collect();
    ev::figure_7(&args.out.join("fig7.png"), plotted, skip, &shown)?;
    report.figures.push("fig7.png".into());
    ev::figure_8(&args.out.join("fig8.png"), report)?;
    report.figures.push("fig8.png".into());
    Ok(())
}

/// The summary on standard output: warm-up, simulation, one line per model, what was written.
fn print_summary(out: &mut dyn Write, report: &EvalReport, dir: &Path) -> Result<(), Error> {
    let w = |e| Error::Stdout(e);
    writeln!(out, "warm-up: {}", report.warmup_text).map_err(w)?;
    writeln!(out, "simulation: {}", report.simulation_text).map_err(w)?;
    writeln!(
        out,
        "{:<32} {:>11} {:>11} {:>11} {:>12} {:>12}",
        "model", "L_b valid.", "L_b train", "L_b all", "training", "generation"
    )
    .map_err(w)?;
    for m in &report.models {
        writeln!(
            out,
            "{:<32} {:>11.4e} {:>11.4e} {:>11.4e} {:>12} {:>12}",
            m.label,
            m.lb.validation,
            m.lb.train,
            m.lb.all,
            m.training_seconds
                .map_or_else(|| "n/a".into(), |s| format!("{s:.2} s")),
            format!("{:.3} s", m.generation_seconds)
        )
        .map_err(w)?;
        for n in &m.notes {
            writeln!(out, "  note: {n}").map_err(w)?;
        }
    }
    writeln!(
        out,
        "wrote report.md, report.json and {} figure(s) to {}",
        report.figures.len(),
        dir.display()
    )
    .map_err(w)
}
