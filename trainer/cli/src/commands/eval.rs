//! `odeflash eval`: memristor models (runs, model files, baseline fits) on a rig dataset, as
//! paper 000's Tables I and II and Fig. 6-8; see [`crate::paper000::eval`].

use std::io::Write;

use odeflash_runtime::Solver;

use crate::args::EvalArgs;
use crate::paper000::eval::{
    self as ev, Candidate, EvalReport, Host, LoadOptions, Warmup, WarmupMode,
};
use crate::Error;

/// Runs `odeflash eval`.
pub fn run(args: &EvalArgs, out: &mut dyn Write) -> Result<(), Error> {
    if !(args.warmup_periods >= 0.0 && args.warmup_periods.is_finite()) {
        return Err(Error::Usage(format!(
            "--warmup-periods {}: must be a number of periods >= 0",
            args.warmup_periods
        )));
    }
    let warmup = Warmup {
        mode: args.warmup,
        periods: args.warmup_periods,
    };
    let host = Host {
        threads: args.threads,
        fma: args.fma,
    };
    // The same warm-up samples as training's validation (`memristor::data::training_view`).
    let (ds, as_trained) =
        odeflash_reference::memristor::data::training_view(&args.data, args.warmup_periods)?;
    let skip_of = |t: &odeflash_reference::memristor::MemristorTrajectory| -> usize {
        match warmup.mode {
            WarmupMode::Replay => 0,
            WarmupMode::Skip => as_trained
                .train
                .iter()
                .chain(&as_trained.validation)
                .find(|x| x.path == t.path)
                .map_or(0, |x| x.warmup),
        }
    };
    for t in &ds.trajectories {
        if skip_of(t) + 2 > t.len() {
            return Err(Error::Usage(format!(
                "--warmup-periods {}: leaves fewer than two samples of {} to score ({} samples, \
                 {:.1} per period)",
                args.warmup_periods,
                t.path.display(),
                t.len(),
                t.samples_per_period()
            )));
        }
    }
    let plotted = match &args.trajectory {
        Some(name) => ds.get(name).ok_or_else(|| {
            Error::Usage(format!(
                "--trajectory {name}: no such trajectory in {}",
                ds.dir
                    .join(odeflash_reference::memristor::data::MANIFEST)
                    .display()
            ))
        })?,
        None => ds.validation().first().copied().ok_or_else(|| {
            Error::Input(format!("{}: no validation trajectory", ds.dir.display()))
        })?,
    };
    let opts = LoadOptions {
        last: args.last,
        solver: Solver::from(args.solver),
        substeps: args.substeps,
        allow_other_data: args.allow_other_data,
    };
    let mut cands: Vec<Candidate> = args
        .models
        .iter()
        .map(|p| ev::load(p, &ds, &opts))
        .collect::<Result<_, _>>()?;
    ev::assign_labels(&mut cands);
    match std::fs::metadata(&args.out) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::Usage(format!(
                "--out {}: exists and is not a directory",
                args.out.display()
            )))
        }
        _ => std::fs::create_dir_all(&args.out).map_err(|e| Error::write(&args.out, e))?,
    }

    let order = ev::table_order(&ds);
    let mut responses = Vec::with_capacity(cands.len());
    let mut models = Vec::with_capacity(cands.len());
    for c in &cands {
        let (resp, secs) = ev::simulate(c, &ds, &warmup, &host)?;
        let scores: Vec<ev::Score> = order
            .iter()
            .map(|&k| ev::score(&ds.trajectories[k], &resp[k], skip_of(&ds.trajectories[k])))
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
    let trajectories = order
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
                scored_from: skip_of(t),
            }
        })
        .collect();
    let mut report = EvalReport {
        data: ds.dir.clone(),
        warmup,
        warmup_text: warmup.describe(),
        host,
        simulation_text: host.describe(),
        trajectories,
        models,
        plotted: plotted.name.clone(),
        figures: Vec::new(),
    };

    // Figures.
    let k_plot = ds
        .trajectories
        .iter()
        .position(|t| t.path == plotted.path)
        .unwrap_or(0);
    let skip = skip_of(plotted);
    let mut used_names: Vec<String> = Vec::new();
    for c in &cands {
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
        .zip(&responses)
        .map(|(c, r)| (c.label.clone(), &r[k_plot]))
        .collect();
    ev::figure_7(&args.out.join("fig7.png"), plotted, skip, &shown)?;
    report.figures.push("fig7.png".into());
    ev::figure_8(&args.out.join("fig8.png"), &report)?;
    report.figures.push("fig8.png".into());

    let json = serde_json::to_string_pretty(&report).map_err(Error::Serialize)?;
    odeflash_reference::files::write_atomic(&args.out.join("report.json"), json.as_bytes())?;
    odeflash_reference::files::write_atomic(
        &args.out.join("report.md"),
        ev::markdown(&report).as_bytes(),
    )?;

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
        args.out.display()
    )
    .map_err(w)
}
