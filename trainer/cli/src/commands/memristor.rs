//! The memristor commands: `odeflash data synth-memristor` and `odeflash baseline mms|gmms`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::Error;
use odeflash_reference::memristor::baseline::{
    self, BaselineKind, FitConfig, Integrator, SimOptions,
};
use odeflash_reference::memristor::data::MemristorDataset;
use odeflash_reference::memristor::synth;

/// `odeflash data synth-memristor`.
#[derive(Debug, Args)]
pub struct SynthMemristorArgs {
    /// Output directory (gets one CSV per trajectory and `manifest.toml`).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Recorded supply periods per trajectory.
    #[arg(long, default_value_t = 100)]
    pub periods: usize,
    /// Samples per supply period.
    #[arg(long, default_value_t = 1000)]
    pub samples_per_period: usize,
    /// Seed of the DAQ noise and the threshold drift.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs `synth-memristor`.
pub fn run_synth(args: &SynthMemristorArgs, out: &mut dyn Write) -> Result<(), Error> {
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

/// `odeflash baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Which compact model.
    #[arg(value_enum)]
    pub kind: BaselineKind,
    /// Dataset directory (with `manifest.toml`).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Output directory (gets `fit.json` and plots).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed of the differential evolution.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// DE generations.
    #[arg(long, default_value_t = 150)]
    pub generations: usize,
    /// DE population.
    #[arg(long, default_value_t = 40)]
    pub population: usize,
    /// L-BFGS-B iterations.
    #[arg(long, default_value_t = 100)]
    pub lbfgs_iterations: usize,
    /// Supply periods of each training trajectory used by the DE stage (0: all).
    #[arg(long, default_value_t = 10.0)]
    pub de_periods: f64,
    /// Supply periods of each training trajectory used by the L-BFGS-B stage (0: all).
    #[arg(long, default_value_t = 20.0)]
    pub refine_periods: f64,
    /// Supply periods replayed before each record to settle the state.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_periods: f64,
    /// State integrator: `trbdf2` (one implicit step per sample) or `rk4:N` (N sub-steps).
    #[arg(long, default_value = "trbdf2", value_parser = parse_integrator)]
    pub integrator: Integrator,
    /// Validation trajectory to plot (its manifest `file`; default: the first).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<String>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Parses `trbdf2` or `rk4:N`.
pub fn parse_integrator(s: &str) -> Result<Integrator, String> {
    match s {
        "trbdf2" | "tr-bdf2" => Ok(Integrator::TrBdf2),
        "rk4" => Ok(Integrator::Rk4 { substeps: 1 }),
        _ => s
            .strip_prefix("rk4:")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&n| (1..=10_000).contains(&n))
            .map(|substeps| Integrator::Rk4 { substeps })
            .ok_or_else(|| format!("unknown integrator `{s}` (trbdf2, rk4, rk4:N)")),
    }
}

/// Runs `baseline`.
pub fn run_baseline(args: &BaselineArgs, out: &mut dyn Write) -> Result<(), Error> {
    let dataset = MemristorDataset::load(&args.data)?;
    let mut config = FitConfig::new(args.kind);
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
    std::fs::create_dir_all(&args.out).map_err(|e| Error::write(&args.out, e))?;
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
    let label = args.kind.as_str().to_uppercase();
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
