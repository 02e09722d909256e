//! Arguments of paper 002's stiff-problem commands: `odeflash solve` (the f64 reference solver),
//! `odeflash stiff-train` and `odeflash stiff-experiment` (Π-net training), with the problems'
//! default settings.

use std::path::PathBuf;

use clap::Args;

/// `odeflash solve`.
#[derive(Debug, Args)]
pub struct SolveArgs {
    /// Problem: linear, toy2d, toy3d, hires, vdp.
    #[arg(long, value_name = "NAME")]
    pub problem: String,
    /// Method: radau5 (adaptive), or a fixed-step one with --dt: euler, heun, rk4, rk5/tsit5,
    /// dopri5, backward-euler, trapezoid, radau3, radau5-fixed.
    #[arg(long, value_name = "METHOD", default_value = "radau5")]
    pub method: String,
    /// Relative tolerance (radau5) [default: 1e-6].
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub rtol: Option<f64>,
    /// Absolute tolerance (radau5) [default: 1e-9].
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    pub atol: Option<f64>,
    /// Step size of a fixed-step method (required for those; each interval between outputs is
    /// split into equal steps no longer than this).
    #[arg(long, value_name = "DT", allow_negative_numbers = true)]
    pub dt: Option<f64>,
    /// End of the interval (the start is 0) [default: the problem's standard interval].
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub t_end: Option<f64>,
    /// Number of output times, evenly spaced from 0 to T (both included; 1 gives only T)
    /// [default: 101].
    #[arg(long, value_name = "N", conflicts_with = "output_times")]
    pub outputs: Option<usize>,
    /// Output times, comma-separated, increasing, in [0, T]; T is appended if missing.
    #[arg(
        long,
        value_name = "T1,T2,...",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub output_times: Option<Vec<f64>>,
    /// Initial state, comma-separated [default: the problem's standard one].
    #[arg(
        long,
        value_name = "Y1,Y2,...",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub y0: Option<Vec<f64>>,
    /// Output CSV (`t,y1,...`), replaced atomically.
    #[arg(long, value_name = "CSV")]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
}

/// Settings shared by both commands.
#[derive(Debug, Clone, Args)]
pub struct StiffCommon {
    /// Problem: linear, toy2d, toy3d, hires, vdp.
    #[arg(long)]
    pub problem: String,
    /// Adam epochs, one step per epoch on the whole batch of intervals (default 3000; hires
    /// 2000).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Initial learning rate (default 0.1; vdp 0.3, hires 0.05).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Final learning rate, exponential decay from `--lr` (default 1e-4; hires 1e-3).
    #[arg(long)]
    pub lr_final: Option<f64>,
    /// Adam's second-moment decay.
    #[arg(long, default_value_t = 0.99)]
    pub beta2: f64,
    /// Solver steps per observation interval.
    #[arg(long, default_value_t = 1)]
    pub substeps: usize,
    /// Π-net hidden width (default 8; hires 16).
    #[arg(long)]
    pub width: Option<usize>,
    /// Π-net degree (default: the degree of the problem's right-hand side).
    #[arg(long)]
    pub degree: Option<usize>,
    /// End of the observed interval (default: the problem's standard interval; hires 20, where
    /// the 20 trajectories of Table 7 have all reached their steady state).
    #[arg(long)]
    pub t_end: Option<f64>,
    /// Coefficients below this magnitude are left out of the printed equations.
    #[arg(long, default_value_t = 1e-3, value_parser = super::checked::<f64>(odeflash_training::config::rules::non_negative))]
    pub prune: f64,
    /// Seed of the initial weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scale every state by its largest observed magnitude: as the Π-net's input scale and as a
    /// loss weight `1 / c_i^2` (both fold exactly into the printed equations; default: on for
    /// hires, whose species differ by orders of magnitude, off elsewhere as in paper 002).
    #[arg(long)]
    pub scale_states: Option<bool>,
    /// First observation time after 0: the other points are then spaced geometrically from it
    /// to the end (dense where the transient is fast); default: equally spaced.
    #[arg(long)]
    pub t_first: Option<f64>,
    /// Output directory (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
}

/// `odeflash stiff-train`.
#[derive(Debug, Clone, Args)]
pub struct StiffTrainArgs {
    /// Method: backward-euler, trapezoid, radau3, radau5, or an explicit one (euler, heun, rk4,
    /// rk5, dopri5).
    #[arg(long)]
    pub method: String,
    /// Observation points per trajectory (equally spaced, both ends included).
    #[arg(long)]
    pub points: usize,
    /// Shared settings.
    #[command(flatten)]
    pub common: StiffCommon,
}

/// `odeflash stiff-experiment`.
#[derive(Debug, Clone, Args)]
pub struct StiffExperimentArgs {
    /// Numbers of observation points, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![25, 50, 100, 200, 400])]
    pub points: Vec<usize>,
    /// Methods, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["backward-euler".to_string(), "trapezoid".into(), "radau3".into(), "radau5".into()])]
    pub methods: Vec<String>,
    /// Shared settings.
    #[command(flatten)]
    pub common: StiffCommon,
}

impl StiffCommon {
    /// `--epochs` or the problem's default.
    pub fn epochs(&self) -> usize {
        self.epochs
            .unwrap_or(if self.problem == "hires" { 2000 } else { 3000 })
    }

    /// `--lr` or the problem's default: 0.1; 0.05 for HIRES (its 8 quadratic rows move together
    /// and overshoot at 0.1); 0.3 for stiff van der Pol, where it shows paper 002's Fig. 4 from a
    /// cold start: with 301 points (h = 10) the first Adam step makes the net's field stiff
    /// enough that RK4 blows up at the next epoch (training halts, saying why), while the
    /// implicit methods keep a finite loss on the same field and go on.
    pub fn lr(&self) -> f64 {
        self.lr.unwrap_or(match self.problem.as_str() {
            "vdp" => 0.3,
            "hires" => 0.05,
            _ => 0.1,
        })
    }

    /// `--lr-final` or the problem's default.
    pub fn lr_final(&self) -> f64 {
        self.lr_final
            .unwrap_or(if self.problem == "hires" { 1e-3 } else { 1e-4 })
    }

    /// `--width` or the problem's default: 16 for HIRES (8 states), 8 otherwise.
    pub fn width(&self) -> usize {
        self.width
            .unwrap_or(if self.problem == "hires" { 16 } else { 8 })
    }

    /// `--t-end` or the problem's default: HIRES from Table 7's initial conditions is at rest
    /// after t = 20 (the standard interval runs to 321.8), so equally spaced points over the
    /// standard interval put all but three or so of every trajectory's intervals on the
    /// steady state, where nothing can be learned.
    pub fn t_end(&self) -> Option<f64> {
        self.t_end.or(if self.problem == "hires" {
            Some(20.0)
        } else {
            None
        })
    }
}
