//! Every command's arguments (clap), in one place: the command tree and the argument types
//! several commands share ([`SolverArg`], [`SolverArgs`], [`QuantArg`]) here, each command
//! group's arguments in a submodule, all re-exported here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use odeflash_runtime::limits::MAX_SUBSTEPS;
use odeflash_runtime::spec::Quant;
use odeflash_runtime::Solver;

mod data;
mod device;
mod memristor;
mod model;
mod stiff;
mod train;

pub use data::{DataCheckArgs, SynthMemristorArgs, SynthOscillatorArgs};
pub use device::{DeviceCheckArgs, MachineArg, Sine};
pub use memristor::{parse_integrator, BaselineArgs, BaselineKindArg, EvalArgs};
pub use model::{ExportArgs, ImportArgs, InspectArgs, SimulateArgs};
pub use stiff::{SolveArgs, StiffCommon, StiffExperimentArgs, StiffTrainArgs};
pub use train::{
    BackendArg, MemristorModelArg, PresetArg, TrainCommon, TrainMemristorArgs, TrainOdeArgs,
    WindowStartArg,
};

/// Neural-ODE memristor surrogates for microcontrollers: inspect, import and simulate model files.
#[derive(Debug, Parser)]
#[command(name = "odeflash", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Shows what a model file holds and what running it costs (flash, RAM, MACs).
    Inspect(InspectArgs),
    /// Encodes a model spec (JSON, as written by `inspect --json`) into a model file.
    Import(ImportArgs),
    /// Runs a model on one or more stimulus CSV files (columns `t`, `v_s`).
    Simulate(SimulateArgs),
    /// Trains a model; the run directory holds the resolved config, metrics, checkpoints, plots.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Exports a trained run to a model file, after checking it in the runtime against the
    /// trained model on the validation data.
    Export(ExportArgs),
    /// Generates data sets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Fits a classical compact memristor model (MMS or GMMS) by differential evolution and
    /// L-BFGS-B, as the paper's baselines.
    Baseline(BaselineArgs),
    /// Scores memristor runs, model files and baseline fits on a rig dataset: L_b per trajectory
    /// and per split, training and generation times, figures (paper 000 Tables I-II, Fig. 6-8).
    Eval(EvalArgs),
    /// Builds the QEMU firmware example with a model, runs it, and checks it against the host:
    /// differences, flash, RAM, instructions per step.
    DeviceCheck(DeviceCheckArgs),
    /// Solves one of paper 002's stiff test problems in f64 (adaptive Radau IIA 5 or a fixed-step
    /// method) and writes the solution at chosen times as CSV.
    Solve(SolveArgs),
    /// Paper 002: trains a polynomial (Π-net) neural ODE on a stiff problem with one method and
    /// prints the equation it learned.
    StiffTrain(StiffTrainArgs),
    /// Paper 002's experiment: every method at several numbers of points; equations learned,
    /// stiff-coefficient error against points, time per epoch.
    StiffExperiment(StiffExperimentArgs),
}

/// `odeflash train ...`.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// A generic neural ODE `dx/dt = f(x, u)` on trajectories with every state measured
    /// (`DIR/train/*.csv`, `DIR/validation/*.csv`; columns `t`, optional `u`, `x0`, `x1`, ...).
    Ode(TrainOdeArgs),
    /// A memristor surrogate (paper 000) on rig data: `DIR/manifest.toml` and one CSV per
    /// trajectory (see `odeflash data synth-memristor`).
    Memristor(TrainMemristorArgs),
}

/// `odeflash data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// A damped, driven oscillator (2 states), for testing that a neural ODE learns a known system.
    SynthOscillator(SynthOscillatorArgs),
    /// A realistic "measured" memristor data set on the paper's grid, from a device outside every
    /// fitted model family (see docs/synthetic-memristor.md).
    SynthMemristor(SynthMemristorArgs),
    /// Loads a rig dataset (`DIR/manifest.toml` and its CSVs) exactly as `train memristor` does
    /// and prints a summary per record: check rig records before a long fit.
    Check(DataCheckArgs),
}

/// Fixed-step solvers, by their CLI names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SolverArg {
    /// Forward Euler, order 1.
    Euler,
    /// Heun, order 2.
    Heun,
    /// Classical Runge-Kutta, order 4.
    Rk4,
    /// Tsitouras 5, order 5.
    #[value(alias = "tsit5")]
    Rk5,
    /// Dormand-Prince 5, order 5.
    Dopri5,
    /// Backward Euler, implicit, order 1 (fixed Newton iterations).
    BackwardEuler,
    /// Implicit trapezoid rule, order 2.
    Trapezoid,
    /// Radau IIA, implicit, order 3.
    Radau3,
    /// Radau IIA, implicit, order 5.
    Radau5,
}

impl From<SolverArg> for Solver {
    fn from(s: SolverArg) -> Self {
        match s {
            SolverArg::Euler => Solver::Euler,
            SolverArg::Heun => Solver::Heun,
            SolverArg::Rk4 => Solver::Rk4,
            SolverArg::Rk5 => Solver::Tsit5,
            SolverArg::Dopri5 => Solver::Dopri5,
            SolverArg::BackwardEuler => Solver::BackwardEuler,
            SolverArg::Trapezoid => Solver::Trapezoid,
            SolverArg::Radau3 => Solver::Radau3,
            SolverArg::Radau5 => Solver::Radau5,
        }
    }
}

/// The fixed-step solver a model runs with: `--solver` and `--substeps`, as `simulate` and
/// `device-check` take them (`eval`'s pair applies to model files only and says so in its help,
/// so it has its own fields with the same parser; `train` and `stiff-*` take other kinds).
#[derive(Clone, Copy, Debug, Args)]
pub struct SolverArgs {
    /// Fixed-step solver (ignored by iterator nets).
    #[arg(long, value_enum, default_value_t = SolverArg::Rk4)]
    pub solver: SolverArg,
    /// Solver steps per sample interval, 1 to 1024 (iterator nets take exactly 1).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = substeps_parser())]
    pub substeps: u16,
}

/// A number on the command line, checked by `rule` (one of
/// [`odeflash_training::config::rules`], which also checks the experiment file) where clap
/// parses it: `--clip-norm -1` is refused with the flag's name, never taken as "none".
pub fn checked<T>(
    rule: fn(T) -> Result<T, String>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + 'static,
    T::Err: std::fmt::Display,
{
    move |s: &str| {
        s.trim()
            .parse::<T>()
            .map_err(|e| format!("`{s}`: {e}"))
            .and_then(rule)
    }
}

/// Parses `--substeps`: 1 to [`MAX_SUBSTEPS`].
pub fn substeps_parser() -> clap::builder::RangedI64ValueParser<u16> {
    clap::value_parser!(u16).range(1..=MAX_SUBSTEPS as i64)
}

/// Weight storage of an imported model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QuantArg {
    /// f32 weights.
    F32,
    /// int8 weights with one f32 scale per output row.
    Int8,
}

impl From<QuantArg> for Quant {
    fn from(q: QuantArg) -> Self {
        match q {
            QuantArg::F32 => Quant::F32,
            QuantArg::Int8 => Quant::Int8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every checked flag parses into its field's type (a mismatch panics in clap only when the
    /// flag is read), and out-of-range values are refused with the flag's name.
    #[test]
    fn checked_flags_parse_and_refuse() {
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace());
        let train = "odeflash train memristor --data d --model single --out o --unknown-flag";
        let full =
            "odeflash train memristor --data d --model single --out o --derivative-stride 2 \
             --warmup-periods 0.5 --train-periods 1 --init-iterations 10 --init-candidates 2 \
             --clip-norm 1 --average 0.9 --epochs 3 --lr 1e-3 --batch-size 2 --seed 4 \
             --window 0 --stride 1";
        assert!(parse(train).is_err());
        assert!(parse(full).is_ok());
        assert!(parse("odeflash train ode --data d --out o --states 2").is_ok());
        assert!(parse("odeflash export r --out m --tolerance 1e-3").is_ok());
        assert!(parse("odeflash eval --data d m --out r --warmup-periods 0").is_ok());
        assert!(parse("odeflash baseline mms --data d --out o --de-periods 2").is_ok());
        for (flag, value) in [
            ("--clip-norm", "-1"),
            ("--clip-norm", "nan"),
            ("--average", "nan"),
            ("--average", "1"),
            ("--lr", "0"),
            ("--lr", "inf"),
            ("--epochs", "0"),
            ("--batch-size", "0"),
            ("--window", "1"),
            ("--seed", "18446744073709551615"),
            ("--warmup-periods", "-1"),
            ("--train-periods", "0"),
        ] {
            let line = format!("{full} {flag}={value}");
            let err = parse(&line).unwrap_err().to_string();
            assert!(err.contains(flag), "{flag} {value}: {err}");
        }
        for bad in ["--population=1", "--threads=100000", "--de-periods=-1"] {
            let err = parse(&format!("odeflash baseline mms --data d --out o {bad}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{bad}: {err}");
        }
        assert!(
            parse("odeflash baseline mms --data d --out o --generations 0 --threads 2").is_ok()
        );
        assert!(
            parse("odeflash data synth-oscillator --out o --train 2 --samples 9 --dt 0.1").is_ok()
        );
        assert!(
            parse("odeflash data synth-memristor --out o --periods 2 --samples-per-period 9")
                .is_ok()
        );
        for bad in [
            "synth-oscillator --out o --dt=-1",
            "synth-oscillator --out o --samples 1",
            "synth-memristor --out o --periods 0",
            "synth-memristor --out o --samples-per-period 100000000",
        ] {
            assert!(parse(&format!("odeflash data {bad}")).is_err(), "{bad}");
        }
        let err = parse("odeflash export r --out m --tolerance nan")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--tolerance") && err.contains("not a finite number"),
            "{err}"
        );
    }
}
