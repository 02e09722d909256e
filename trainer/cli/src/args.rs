//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use odeflash_runtime::limits::MAX_SUBSTEPS;
use odeflash_runtime::spec::Quant;
use odeflash_runtime::Solver;

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
    Baseline(crate::commands::memristor::BaselineArgs),
    /// Scores memristor runs, model files and baseline fits on a rig dataset: L_b per trajectory
    /// and per split, training and generation times, figures (paper 000 Tables I-II, Fig. 6-8).
    Eval(crate::commands::eval::EvalArgs),
    /// Builds the QEMU firmware example with a model, runs it, and checks it against the host:
    /// differences, flash, RAM, instructions per step.
    DeviceCheck(crate::commands::device_check::DeviceCheckArgs),
    /// Solves one of paper 002's stiff test problems in f64 (adaptive Radau IIA 5 or a fixed-step
    /// method) and writes the solution at chosen times as CSV.
    Solve(crate::commands::solve::SolveArgs),
    /// Paper 002: trains a polynomial (Π-net) neural ODE on a stiff problem with one method and
    /// prints the equation it learned.
    StiffTrain(crate::paper002::StiffTrainArgs),
    /// Paper 002's experiment: every method at several numbers of points; equations learned,
    /// stiff-coefficient error against points, time per epoch.
    StiffExperiment(crate::paper002::StiffExperimentArgs),
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

/// Which memristor surrogate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MemristorModelArg {
    /// SingleNN-MemODE: one state, G of eq. 10.
    Single,
    /// DualNN-MemODE: latent states and a memductance net.
    Dual,
    /// An iterator net: one net evaluation per sample, for the smallest MCUs.
    Iterator,
}

/// Architecture and optimizer presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// The paper's best configurations (Table/sec. III).
    Paper,
    /// Small nets that train in minutes on a laptop CPU.
    Small,
}

/// `odeflash train memristor`.
#[derive(Debug, Args)]
pub struct TrainMemristorArgs {
    /// Data directory with `manifest.toml`.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Which surrogate.
    #[arg(long, value_enum)]
    pub model: MemristorModelArg,
    /// Preset.
    #[arg(long, value_enum, default_value_t = PresetArg::Paper)]
    pub preset: PresetArg,
    /// The paper's ablation: train on L_b only, without the derivative terms.
    #[arg(long)]
    pub base_loss_only: bool,
    /// Samples between the points of the finite differences behind L_v and L_c (1: the
    /// neighbouring samples).
    #[arg(long, value_name = "N")]
    pub derivative_stride: Option<usize>,
    /// Periods at the start of each validation trajectory left out of its loss, while the model
    /// settles from its unknown initial state.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_periods: f64,
    /// Train on the first N periods after the warm-up of each training record (all when
    /// absent); validation still runs whole records. Settled records repeat themselves, so a
    /// few periods carry what a hundred do at a fraction of the cost.
    #[arg(long, value_name = "N")]
    pub train_periods: Option<f64>,
    /// Start from a fitted compact model (`odeflash baseline`'s `fit.json`): its initial state,
    /// the state net fitted to its rate, and its R_on, R_off (SingleNN, iterator) or the G net
    /// fitted to its memductance (DualNN, whose other latent states start as slow decays).
    /// Gradient descent then improves on the compact model instead of searching from a random
    /// net (use with `--window-start free-run`).
    #[arg(long, value_name = "FIT.json")]
    pub init_baseline: Option<PathBuf>,
    /// Adam iterations (512 points each) fitting the state net to the compact model's rate
    /// (about 18 s for the small SingleNN; the paper's net costs some 100 times more per
    /// iteration).
    #[arg(long, default_value_t = 30_000)]
    pub init_iterations: usize,
    /// Starts fitted to the compact model from as many seeds, in parallel; training goes on
    /// from the one whose free run scores the lowest L_b on the training records.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub init_candidates: usize,
    /// Shared settings.
    #[command(flatten)]
    pub common: TrainCommon,
}

/// Settings every `train` subcommand shares; each overrides the experiment file.
#[derive(Debug, Args)]
pub struct TrainCommon {
    /// Run directory (created; with `--resume`, continued).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Experiment file (TOML); command-line settings override it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Continue a killed or finished run (with `--epochs` to train longer).
    #[arg(long)]
    pub resume: bool,
    /// Where training windows start: `data` (measured states), `learned` (trained starts with a
    /// continuity term) or `free-run` (whole records from the model's own initial state,
    /// memristor surrogates).
    #[arg(long, value_enum)]
    pub window_start: Option<odeflash_training::config::WindowStart>,
    /// Start from the best parameters of another run of the same model (e.g. free-run
    /// fine-tuning after training on windows).
    #[arg(long, value_name = "RUN_DIR")]
    pub init_from: Option<PathBuf>,
    /// Global gradient-norm clipping (0: none).
    #[arg(long)]
    pub clip_norm: Option<f64>,
    /// Validate and keep an exponential moving average of the parameters with this decay per
    /// step (e.g. 0.9; 0: none), instead of the last step's parameters.
    #[arg(long, value_name = "DECAY")]
    pub average: Option<f64>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Trajectories per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of initialization and batch order.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Samples per training window (0: whole trajectories).
    #[arg(long)]
    pub window: Option<usize>,
    /// Solver: euler, heun, rk4, rk5, dopri5, or implicit backward-euler, trapezoid, radau3, radau5.
    #[arg(long, value_parser = parse_solver)]
    pub solver: Option<Solver>,
    /// Adaptive step-size control (rk5 or dopri5).
    #[arg(long)]
    pub adaptive: bool,
    /// Samples per solver step (outputs interpolated at the samples).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = odeflash_training::backend::BackendKind::Cpu)]
    pub backend: odeflash_training::backend::BackendKind,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_solver(s: &str) -> Result<Solver, String> {
    Solver::from_name(s)
        .ok_or_else(|| format!("unknown solver `{s}` (euler, heun, rk4, rk5, dopri5, backward-euler, trapezoid, radau3, radau5)"))
}

/// `odeflash train ode`.
#[derive(Debug, Args)]
pub struct TrainOdeArgs {
    /// Data directory with `train/` and `validation/`.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Number of states (columns `x0` ... in the data).
    #[arg(long)]
    pub states: Option<usize>,
    /// Shared settings.
    #[command(flatten)]
    pub common: TrainCommon,
}

/// `odeflash export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run directory written by `odeflash train`.
    pub run_dir: PathBuf,
    /// Weight storage.
    #[arg(long, value_enum, default_value_t = QuantArg::F32)]
    pub quant: QuantArg,
    /// Model file to write.
    #[arg(long, value_name = "MODEL")]
    pub out: PathBuf,
    /// Largest accepted deviation of the exported model from the trained one, as a fraction of
    /// each measured channel's standard deviation (default 1e-3 for f32, 5e-2 for int8).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Export the last epoch instead of the best validation epoch.
    #[arg(long)]
    pub last: bool,
}

/// `odeflash data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// A damped, driven oscillator (2 states), for testing that a neural ODE learns a known system.
    SynthOscillator(SynthOscillatorArgs),
    /// A realistic "measured" memristor data set on the paper's grid, from a device outside every
    /// fitted model family (see docs/synthetic-memristor.md).
    SynthMemristor(crate::commands::memristor::SynthMemristorArgs),
}

/// `odeflash data synth-oscillator`.
#[derive(Debug, Args)]
pub struct SynthOscillatorArgs {
    /// Output directory (gets `train/` and `validation/`).
    #[arg(long)]
    pub out: PathBuf,
    /// Training trajectories.
    #[arg(long, default_value_t = 8)]
    pub train: usize,
    /// Validation trajectories.
    #[arg(long, default_value_t = 2)]
    pub validation: usize,
    /// Samples per trajectory.
    #[arg(long, default_value_t = 201)]
    pub samples: usize,
    /// Sample interval, seconds.
    #[arg(long, default_value_t = 0.05)]
    pub dt: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `odeflash inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model file.
    pub model: PathBuf,
    /// Write the whole model as JSON (weights dequantized, int8 scales kept) instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// With `--json`: write to this file instead of standard output.
    #[arg(long, requires = "json", value_name = "FILE")]
    pub out: Option<PathBuf>,
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

/// `odeflash import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Model spec, JSON.
    pub spec: PathBuf,
    /// Model file to write (replaced atomically).
    #[arg(long, value_name = "MODEL")]
    pub out: PathBuf,
    /// Weight storage [default: int8 if the spec carries int8 scales, else f32].
    #[arg(long, value_enum)]
    pub quant: Option<QuantArg>,
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

/// `odeflash simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Model file.
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Stimulus CSV with a header row naming the columns `t` (seconds, uniform) and `v_s`
    /// (supply voltage, volts); other columns and `#` comment lines are ignored. Repeat the flag
    /// to run several stimuli as one batch.
    #[arg(long, value_name = "CSV", required = true)]
    pub stimulus: Vec<PathBuf>,
    /// Output CSV (`t,v_s,v,i,x0,...`), replaced atomically; with several stimuli (or if it is an
    /// existing directory), a directory that receives one CSV per stimulus under the stimulus's
    /// file name.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Fixed-step solver (ignored by iterator nets).
    #[arg(long, value_enum, default_value_t = SolverArg::Rk4)]
    pub solver: SolverArg,
    /// Solver steps per sample interval, 1 to 1024 (iterator nets take exactly 1).
    #[arg(
        long,
        default_value_t = 1,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=MAX_SUBSTEPS as i64)
    )]
    pub substeps: u16,
    /// Initial state, comma-separated [default: the model's x0].
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_name = "A,B,..."
    )]
    pub x0: Option<Vec<f32>>,
    /// With several stimuli: let the batch kernel fuse multiply-adds where the CPU has them.
    /// Faster, but results then differ from single runs by rounding (up to ~1e-4 relative over a
    /// few hundred rk5 steps); without it a batch reproduces single runs bit for bit.
    #[arg(long)]
    pub fma: bool,
}
