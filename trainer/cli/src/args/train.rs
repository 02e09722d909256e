//! Arguments of `odeflash train ode` and `odeflash train memristor`, and the settings they share.

use odeflash_training::backend::BackendKind;
use odeflash_training::config::rules::{self, in_range};
use odeflash_training::config::WindowStart;
use odeflash_training::run::StartOptions;
use std::path::PathBuf;

use super::checked;

use clap::{Args, ValueEnum};
use odeflash_runtime::Solver;

/// `odeflash train ode`.
#[derive(Debug, Args)]
pub struct TrainOdeArgs {
    /// Data directory with `train/` and `validation/`.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Number of states (columns `x0` ... in the data).
    #[arg(long, value_parser = checked::<usize>(|n| in_range(n, 1, rules::MAX_WIDTH)))]
    pub states: Option<usize>,
    /// Shared settings.
    #[command(flatten)]
    pub common: TrainCommon,
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
    /// Preset (default: paper).
    #[arg(long, value_enum)]
    pub preset: Option<PresetArg>,
    /// The paper's ablation: train on L_b only, without the derivative terms.
    #[arg(long)]
    pub base_loss_only: bool,
    /// Samples between the points of the finite differences behind L_v and L_c (1: the
    /// neighbouring samples).
    #[arg(long, value_name = "N", value_parser = checked::<usize>(|n| in_range(n, 1, rules::MAX_STRIDE)))]
    pub derivative_stride: Option<usize>,
    /// Periods at the start of each validation trajectory left out of its loss, while the model
    /// settles from its unknown initial state (default 1).
    #[arg(long, value_name = "N", value_parser = checked::<f64>(rules::non_negative))]
    pub warmup_periods: Option<f64>,
    /// Train on the first N periods after the warm-up of each training record (all when
    /// absent); validation still runs whole records. Settled records repeat themselves, so a
    /// few periods carry what a hundred do at a fraction of the cost.
    #[arg(long, value_name = "N", value_parser = checked::<f64>(rules::positive))]
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
    /// [default: 30000]
    #[arg(long, value_name = "N", value_parser = checked::<usize>(|n| in_range(n, 1, 100_000_000)))]
    pub init_iterations: Option<usize>,
    /// Starts fitted to the compact model from as many seeds, in parallel; training goes on
    /// from the one whose free run scores the lowest L_b on the training records.
    /// [default: 4]
    #[arg(long, value_name = "N", value_parser = checked::<usize>(|n| in_range(n, 1, 64)))]
    pub init_candidates: Option<usize>,
    /// Shared settings.
    #[command(flatten)]
    pub common: TrainCommon,
}

impl TrainMemristorArgs {
    /// How the run starts: the preset and the compact-model start, defaults resolved.
    pub fn start(&self) -> StartOptions {
        StartOptions {
            preset: format!("{:?}", self.preset.unwrap_or(PresetArg::Paper)).to_lowercase(),
            init_baseline: self
                .init_baseline
                .as_ref()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
            init_iterations: self.init_iterations.unwrap_or(30_000),
            init_candidates: self.init_candidates.unwrap_or(4),
        }
    }
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
    pub window_start: Option<WindowStartArg>,
    /// Start from the best parameters of another run of the same model (e.g. free-run
    /// fine-tuning after training on windows).
    #[arg(long, value_name = "RUN_DIR")]
    pub init_from: Option<PathBuf>,
    /// Global gradient-norm clipping (0: none).
    #[arg(long, value_parser = checked::<f64>(rules::non_negative))]
    pub clip_norm: Option<f64>,
    /// Validate and keep an exponential moving average of the parameters with this decay per
    /// step (e.g. 0.9; 0: none), instead of the last step's parameters.
    #[arg(long, value_name = "DECAY", value_parser = checked::<f64>(rules::decay))]
    pub average: Option<f64>,
    /// Epochs.
    #[arg(long, value_parser = checked::<u64>(|n| in_range(n, 1, rules::MAX_EPOCHS)))]
    pub epochs: Option<u64>,
    /// Learning rate.
    #[arg(long, value_parser = checked::<f64>(rules::positive))]
    pub lr: Option<f64>,
    /// Trajectories per batch.
    #[arg(long, value_parser = checked::<usize>(|n| in_range(n, 1, rules::MAX_BATCH)))]
    pub batch_size: Option<usize>,
    /// Seed of initialization and batch order.
    #[arg(long, value_parser = checked::<u64>(|n| in_range(n, 0, rules::MAX_SEED)))]
    pub seed: Option<u64>,
    /// Samples per training window (0: whole trajectories).
    #[arg(long, value_parser = checked::<usize>(rules::window))]
    pub window: Option<usize>,
    /// Solver: euler, heun, rk4, rk5, dopri5, or implicit backward-euler, trapezoid, radau3, radau5.
    #[arg(long, value_parser = parse_solver)]
    pub solver: Option<Solver>,
    /// Adaptive step-size control (rk5 or dopri5).
    #[arg(long)]
    pub adaptive: bool,
    /// Samples per solver step (outputs interpolated at the samples).
    #[arg(long, value_parser = checked::<usize>(|n| in_range(n, 1, rules::MAX_STRIDE)))]
    pub stride: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_solver(s: &str) -> Result<Solver, String> {
    Solver::from_name(s)
        .ok_or_else(|| format!("unknown solver `{s}` (euler, heun, rk4, rk5, dopri5, backward-euler, trapezoid, radau3, radau5)"))
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

/// [`WindowStart`] on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WindowStartArg {
    /// From the data (every state observed).
    Data,
    /// Trainable, one per window, tied to the previous window's end by the continuity term.
    Learned,
    /// No windows: every record runs whole from the model's own initial state, as validation
    /// and the device run it, and the loss leaves out its warm-up (memristor surrogates; see
    /// `freerun`).
    FreeRun,
}

impl From<WindowStartArg> for WindowStart {
    fn from(w: WindowStartArg) -> Self {
        match w {
            WindowStartArg::Data => WindowStart::Data,
            WindowStartArg::Learned => WindowStart::Learned,
            WindowStartArg::FreeRun => WindowStart::FreeRun,
        }
    }
}

/// [`BackendKind`] on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// burn's flex CPU backend.
    Cpu,
    /// burn-cuda on GPU 0 (binary built with `--features cuda`).
    Cuda,
}

impl From<BackendArg> for BackendKind {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Cpu => BackendKind::Cpu,
            BackendArg::Cuda => BackendKind::Cuda,
        }
    }
}
