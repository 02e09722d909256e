//! Arguments of paper 000's memristor evaluation: `odeflash baseline` (compact-model fits) and
//! `odeflash eval` (every kind of model scored on a rig dataset).

use std::path::PathBuf;

use clap::Args;
use clap::ValueEnum;
use odeflash_reference::memristor::baseline::{BaselineKind, Integrator};

use super::{checked, substeps_parser, SolverArg};
use odeflash_training::config::rules;

/// More worker threads than any workstation has cores is a typo.
const MAX_THREADS: usize = 1024;
use crate::paper000::eval::WarmupMode;

/// `odeflash baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Which compact model.
    #[arg(value_enum)]
    pub kind: BaselineKindArg,
    /// Dataset directory (with `manifest.toml`).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Output directory (gets `fit.json` and plots).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
    /// Seed of the differential evolution.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// DE generations.
    #[arg(long, default_value_t = 150, value_parser = checked::<usize>(|n| rules::in_range(n, 0, 1_000_000)))]
    pub generations: usize,
    /// DE population (at least 4: each trial mixes three others).
    #[arg(long, default_value_t = 40, value_parser = checked::<usize>(|n| rules::in_range(n, 4, 100_000)))]
    pub population: usize,
    /// L-BFGS-B iterations.
    #[arg(long, default_value_t = 100, value_parser = checked::<usize>(|n| rules::in_range(n, 0, 1_000_000)))]
    pub lbfgs_iterations: usize,
    /// Supply periods of each training trajectory used by the DE stage (0: all).
    #[arg(long, default_value_t = 10.0, value_parser = checked::<f64>(rules::non_negative))]
    pub de_periods: f64,
    /// Supply periods of each training trajectory used by the L-BFGS-B stage (0: all).
    #[arg(long, default_value_t = 20.0, value_parser = checked::<f64>(rules::non_negative))]
    pub refine_periods: f64,
    /// Supply periods replayed before each record to settle the state.
    #[arg(long, default_value_t = 1.0, value_parser = checked::<f64>(rules::non_negative))]
    pub warmup_periods: f64,
    /// State integrator: `trbdf2` (one implicit step per sample) or `rk4:N` (N sub-steps).
    #[arg(long, default_value = "trbdf2", value_parser = parse_integrator)]
    pub integrator: Integrator,
    /// Validation trajectory to plot (its manifest `file`; default: the first).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<String>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0, value_parser = checked::<usize>(|n| rules::in_range(n, 0, MAX_THREADS)))]
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

/// `odeflash eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Dataset directory (with `manifest.toml`).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Run directories (`odeflash train memristor`), model files (`odeflash export`) and baseline
    /// fits (`odeflash baseline`: the directory or its `fit.json`), in any mix.
    #[arg(required = true, value_name = "MODEL_OR_RUN")]
    pub models: Vec<PathBuf>,
    /// Report directory (gets `report.md`, `report.json` and the figures).
    #[arg(long, value_name = "REPORT_DIR")]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
    /// Supply periods every model simulates before the scored samples, so that its unknown
    /// initial state settles.
    #[arg(long, default_value_t = 1.0, value_name = "N", value_parser = checked::<f64>(rules::non_negative))]
    pub warmup_periods: f64,
    /// How the warm-up is simulated: `skip` (the record's first periods, left out of L_b, as
    /// training validates) or `replay` (the first period replayed before the record, all of it
    /// scored, as baseline fits score).
    #[arg(long, value_enum, default_value_t = WarmupMode::Skip)]
    pub warmup: WarmupMode,
    /// Trajectory of Fig. 6 and 7 (its manifest `file`; default: the first validation
    /// trajectory).
    #[arg(long, value_name = "NAME")]
    pub trajectory: Option<String>,
    /// Epochs whose v-i loops Fig. 6 shows (default: up to four of the run's saved epochs).
    #[arg(long, value_delimiter = ',', value_name = "E,E,...")]
    pub fig6_epochs: Option<Vec<u64>>,
    /// Runs: use the last epoch instead of the best validation epoch.
    #[arg(long)]
    pub last: bool,
    /// Model files: fixed-step solver (a model file does not record one; runs use their
    /// training solver).
    #[arg(long, value_enum, default_value_t = SolverArg::Rk4)]
    pub solver: SolverArg,
    /// Model files: solver steps per sample interval.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "N",
        value_parser = substeps_parser()
    )]
    pub substeps: u16,
    /// Worker threads of the neural models' simulation (0: all cores); baselines run on one.
    /// Generation times compare at the default.
    #[arg(long, default_value_t = 1, value_parser = checked::<usize>(|n| rules::in_range(n, 0, MAX_THREADS)))]
    pub threads: usize,
    /// Neural models: fused multiply-adds (the host's fastest path; results differ from the
    /// device's by rounding).
    #[arg(long)]
    pub fma: bool,
    /// Evaluate models trained or fitted on a dataset whose trajectories or split differ from
    /// this one's.
    #[arg(long)]
    pub allow_other_data: bool,
}

/// [`BaselineKind`] on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BaselineKindArg {
    /// Mean metastable switch (paper 000 eq. 10-13).
    Mms,
    /// Generalized MMS: MMS in parallel with a Schottky pair (eq. 14).
    Gmms,
}

impl From<BaselineKindArg> for BaselineKind {
    fn from(k: BaselineKindArg) -> Self {
        match k {
            BaselineKindArg::Mms => BaselineKind::Mms,
            BaselineKindArg::Gmms => BaselineKind::Gmms,
        }
    }
}
