//! The memristor commands: `odeflash data synth-memristor`, `odeflash data check` and
//! `odeflash baseline mms|gmms`.

use std::io::Write;

use crate::args::{BaselineArgs, DataCheckArgs, SynthMemristorArgs};
use crate::Error;
use odeflash_reference::files::claim_dir;
use odeflash_reference::memristor::baseline::{self, BaselineKind, FitConfig, SimOptions};
use odeflash_reference::memristor::data::{training_view, MemristorDataset};
use odeflash_reference::memristor::synth;

/// Runs `synth-memristor`.
pub fn run_synth(args: &SynthMemristorArgs, out: &mut dyn Write) -> Result<(), Error> {
    claim_dir(&args.out, "data synth-memristor", args.force)?;
    let report =
        synth::write_synthetic(&args.out, args.periods, args.samples_per_period, args.seed)?;
    writeln!(
        out,
        "wrote {} trajectories ({} samples, {} RK4 sub-steps) and {} in {:.2} s",
        report.files.len(),
        report.samples,
        report.substeps,
        report.manifest.display(),
        report.seconds
    )
    .map_err(Error::Stdout)
}

/// Runs `data check`: loads the dataset through [`training_view`], as `train memristor` does,
/// and prints one line per record.
pub fn run_check(args: &DataCheckArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (ds, view) = training_view(&args.data, args.warmup_periods)?;
    let w = |e| Error::Stdout(e);
    writeln!(
        out,
        "{}: {} trajectories ({} train, {} validation)",
        args.data.join("manifest.toml").display(),
        ds.trajectories.len(),
        view.train.len(),
        view.validation.len()
    )
    .map_err(w)?;
    writeln!(
        out,
        "  {:<24} {:<10} {:>6} {:>8} {:>9} {:>8} {:>10} {:>8} {:<12} {:>9} {:>9}",
        "file",
        "split",
        "A (V)",
        "f (Hz)",
        "R_s (ohm)",
        "samples",
        "dt (s)",
        "periods",
        "measured",
        "max |v|",
        "max |i|"
    )
    .map_err(w)?;
    let peak = |x: &[f32]| x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for t in &ds.trajectories {
        let measured = match (t.measured.voltage(), t.measured.current()) {
            (true, true) => "v, i",
            (true, false) => "v (i derived)",
            _ => "i (v derived)",
        };
        writeln!(
            out,
            "  {:<24} {:<10} {:>6} {:>8} {:>9} {:>8} {:>10.3e} {:>8.2} {:<12} {:>9.3e} {:>9.3e}",
            t.name,
            t.split.as_str(),
            t.amplitude,
            t.frequency,
            t.r_s,
            t.len(),
            t.dt,
            t.len() as f64 / t.samples_per_period(),
            measured,
            peak(&t.v),
            peak(&t.i)
        )
        .map_err(w)?;
    }
    Ok(())
}

/// Runs `baseline`.
pub fn run_baseline(args: &BaselineArgs, out: &mut dyn Write) -> Result<(), Error> {
    let dataset = MemristorDataset::load(&args.data)?;
    let mut config = FitConfig::new(args.kind.into());
    config.de.seed = args.seed;
    config.de.generations = args.generations;
    config.de.population = args.population;
    config.lbfgsb.max_iterations = args.lbfgs_iterations;
    let periods = |p: f64| (p > 0.0).then_some(p);
    config.de_periods = periods(args.de_periods);
    config.refine_periods = periods(args.refine_periods);
    config.sim = SimOptions {
        warmup_periods: args.warmup_periods,
        integrator: args.integrator,
    };
    config.threads = args.threads;
    claim_dir(&args.out, "baseline", args.force)?;
    let report = baseline::fit(&dataset, &config, out)?;
    let path = args.out.join("fit.json");
    report.save(&path)?;
    let validation = dataset.validation();
    let traj = match &args.plot {
        Some(name) => dataset.get(name).ok_or_else(|| {
            Error::Usage(format!(
                "--plot {name}: no such trajectory in {}",
                args.data.display()
            ))
        })?,
        None => validation.first().copied().ok_or_else(|| {
            Error::Input(format!("{}: no validation trajectory", args.data.display()))
        })?,
    };
    let prediction = baseline::predict(report.compact_model(), traj, &report.sim);
    let label = BaselineKind::from(args.kind).as_str().to_uppercase();
    let files = baseline::plot_trajectory(&args.out, "validation", &label, traj, &prediction, 2.0)?;
    let w = |e| Error::Stdout(e);
    writeln!(out, "parameters:").map_err(w)?;
    for p in &report.parameters {
        writeln!(
            out,
            "  {:<8} = {:>12.5e} {:<4} (bounds {:.3e} .. {:.3e}, {})",
            p.name, p.value, p.unit, p.lower, p.upper, p.scale
        )
        .map_err(w)?;
    }
    writeln!(out, "L_b per trajectory:").map_err(w)?;
    for s in &report.trajectories {
        writeln!(
            out,
            "  {:<24} {:>4} V {:>6} Hz {:>10}  {:.4e}",
            s.name,
            s.amplitude,
            s.frequency,
            s.split.as_str(),
            s.lb
        )
        .map_err(w)?;
    }
    writeln!(
        out,
        "mean L_b: train {:.4e}, validation {:.4e}, all {:.4e}\nfit {:.1} s (DE {:.1} s, \
         L-BFGS-B {:.1} s, {} threads); generating all {} trajectories {:.3} s\nwrote {} and {}",
        report.lb.train,
        report.lb.validation,
        report.lb.all,
        report.fit_seconds,
        report.de.seconds,
        report.lbfgsb.seconds,
        report.threads,
        report.trajectories.len(),
        report.generation_seconds,
        path.display(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
    .map_err(w)
}
