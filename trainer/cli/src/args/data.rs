//! Arguments of `odeflash data synth-oscillator`, `odeflash data synth-memristor` and
//! `odeflash data check`.

use std::path::PathBuf;

use clap::Args;
use odeflash_training::config::rules::{self, in_range};

use super::checked;

/// `odeflash data synth-oscillator`.
#[derive(Debug, Args)]
pub struct SynthOscillatorArgs {
    /// Output directory (gets `train/` and `validation/`).
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
    /// Training trajectories.
    #[arg(long, default_value_t = 8, value_parser = checked::<usize>(|n| in_range(n, 1, 100_000)))]
    pub train: usize,
    /// Validation trajectories.
    #[arg(long, default_value_t = 2, value_parser = checked::<usize>(|n| in_range(n, 1, 100_000)))]
    pub validation: usize,
    /// Samples per trajectory.
    #[arg(long, default_value_t = 201, value_parser = checked::<usize>(|n| in_range(n, 2, 10_000_000)))]
    pub samples: usize,
    /// Sample interval, seconds.
    #[arg(long, default_value_t = 0.05, value_parser = checked::<f64>(rules::positive))]
    pub dt: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `odeflash data synth-memristor`.
#[derive(Debug, Args)]
pub struct SynthMemristorArgs {
    /// Output directory (gets one CSV per trajectory and `manifest.toml`).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
    /// Recorded supply periods per trajectory.
    #[arg(long, default_value_t = 100, value_parser = checked::<usize>(|n| in_range(n, 1, 1_000_000)))]
    pub periods: usize,
    /// Samples per supply period.
    #[arg(long, default_value_t = 1000, value_parser = checked::<usize>(|n| in_range(n, 2, 1_000_000)))]
    pub samples_per_period: usize,
    /// Seed of the DAQ noise and the threshold drift.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `odeflash data check`.
#[derive(Debug, Args)]
pub struct DataCheckArgs {
    /// Rig dataset directory (with `manifest.toml`).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Periods at the start of each record left out of validation losses, as `train memristor
    /// --warmup-periods` takes them.
    #[arg(long, default_value_t = 1.0, value_name = "N", value_parser = checked::<f64>(rules::non_negative))]
    pub warmup_periods: f64,
}
