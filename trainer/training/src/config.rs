//! The experiment file (TOML): network, solver, training and optimizer settings. Every field has
//! a default, unknown fields are refused (a typo must not silently fall back to a default), and
//! the run directory keeps the resolved file, command-line overrides applied.

use std::path::Path;

use odeflash_runtime::{Activation, Solver};
use serde::{Deserialize, Serialize};

use crate::diffsolve::{Adaptive, FixedGrid};
use crate::nn::{MlpDef, Shape};
use crate::optim::{OptimizerConfig, ReduceLrOnPlateauConfig};
use crate::Error;

/// The network of the vector field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Explicit hidden widths; when empty, `shape`, `width` and `depth` give them.
    pub hidden: Vec<usize>,
    /// Named shape (paper 000 Fig. 5: diamond; thesis sec. 4.2.1: the others).
    pub shape: Shape,
    /// Base width `N` of the shape.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Hidden activations: one for all layers, or one per layer.
    pub activations: Vec<Activation>,
    /// Output activation.
    pub output_activation: Activation,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            hidden: Vec::new(),
            shape: Shape::Rectangle,
            width: 32,
            depth: 2,
            activations: vec![Activation::Tanh],
            output_activation: Activation::Identity,
        }
    }
}

impl NetConfig {
    /// Hidden widths.
    pub fn widths(&self) -> Vec<usize> {
        if self.hidden.is_empty() {
            self.shape.widths(self.width, self.depth)
        } else {
            self.hidden.clone()
        }
    }

    /// The net with `inputs` inputs and `outputs` outputs; checks the activation list.
    pub fn build(&self, inputs: usize, outputs: usize) -> Result<MlpDef, Error> {
        let widths = self.widths();
        let acts = match self.activations.len() {
            1 => vec![self.activations[0]; widths.len()],
            n if n == widths.len() => self.activations.clone(),
            n => {
                return Err(Error::Input(format!(
                    "net.activations has {n} entries for {} hidden layers: give one for all, or one per layer",
                    widths.len()
                )))
            }
        };
        if widths.contains(&0) {
            return Err(Error::Input("net: a hidden layer has width 0".into()));
        }
        let mut layers: Vec<(usize, Activation)> = widths.into_iter().zip(acts).collect();
        layers.push((outputs, self.output_activation));
        Ok(MlpDef::new(inputs, layers))
    }
}

/// Which solver trains the model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolverConfig {
    /// `euler`, `heun`, `rk4`, `rk5` (Tsit5), `dopri5` at fixed step, or with `adaptive = true`
    /// Tsit5/Dopri5 with error control.
    pub method: Solver,
    /// Adaptive step-size control (Tsit5 or Dopri5 only).
    pub adaptive: bool,
    /// Samples per fixed step (outputs Hermite-interpolated at the samples); 0 picks one from
    /// the data (see [`auto_stride`]).
    pub stride: usize,
    /// Fixed steps per sample.
    pub substeps: usize,
    /// Relative tolerance of adaptive stepping (paper 000: 1e-3).
    pub rtol: f64,
    /// Absolute tolerance of adaptive stepping (paper 000: 1e-6).
    pub atol: f64,
    /// Step limit of one adaptive solve.
    pub max_steps: usize,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            method: Solver::Rk4,
            adaptive: false,
            stride: 0,
            substeps: 1,
            rtol: 1e-3,
            atol: 1e-6,
            max_steps: 100_000,
        }
    }
}

impl SolverConfig {
    /// Checks the combination.
    pub fn validate(&self) -> Result<(), Error> {
        if self.adaptive && self.method.error_estimator().is_none() {
            return Err(Error::Input(format!(
                "solver: adaptive stepping needs method = \"rk5\" (Tsit5) or \"dopri5\", not {:?}",
                self.method
            )));
        }
        if self.substeps == 0 || (self.stride > 1 && self.substeps > 1) {
            return Err(Error::Input(
                "solver: substeps must be >= 1, and stride and substeps cannot both be above 1"
                    .into(),
            ));
        }
        if !(self.rtol > 0.0 && self.atol > 0.0) {
            return Err(Error::Input(
                "solver: rtol and atol must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The fixed grid.
    pub fn grid(&self) -> FixedGrid {
        FixedGrid {
            stride: self.stride.max(1),
            substeps: self.substeps,
        }
    }

    /// Adaptive settings, when adaptive.
    pub fn adaptive(&self) -> Option<Adaptive> {
        self.adaptive.then_some(Adaptive {
            solver: self.method,
            rtol: self.rtol,
            atol: self.atol,
            max_steps: self.max_steps,
        })
    }

    /// The per-sample fixed-step method the runtime runs the exported model with: the training
    /// method (Tsit5 for adaptive training), with the training sub-steps.
    pub fn runtime_method(&self) -> (Solver, u16) {
        (self.method, self.substeps.min(u16::MAX as usize) as u16)
    }
}

/// Where the states at the start of each training window come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStart {
    /// From the data (every state observed).
    Data,
    /// Trainable, one per window, tied to the previous window's end by the continuity term.
    Learned,
    /// No windows: every record runs whole from the model's own initial state, as validation
    /// and the device run it, and the loss leaves out its warm-up (memristor surrogates; see
    /// `freerun`).
    FreeRun,
}

/// The training loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Epochs.
    pub epochs: u64,
    /// Trajectories per batch.
    pub batch_size: usize,
    /// Seed of initialization and batch order.
    pub seed: u64,
    /// Learning rate.
    pub lr: f64,
    /// Samples per window; trajectories are cut into windows integrated in parallel as one
    /// batch. 0: whole trajectories.
    pub window: usize,
    /// Window starts.
    pub window_start: WindowStart,
    /// Weight of the continuity term between consecutive learned windows.
    pub continuity_weight: f64,
    /// Global gradient-norm clipping (none when absent).
    pub clip_norm: Option<f64>,
    /// Epochs whose parameters are kept in `snapshots/` (for figures of the model at chosen
    /// epochs, paper 000 Fig. 6); when absent, the powers of two and the last epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_epochs: Option<Vec<u64>>,
    /// A run whose best parameters start this one (same model; its window starts, if any, are
    /// not taken): free-run fine-tuning of a model trained on windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
    /// Decay of an exponential moving average of the parameters, updated after every step;
    /// validation, `best.json` and snapshots then hold the average. Free-run fine-tuning
    /// zigzags: one step moves a slow validation record's L_b by a factor of two while the
    /// training loss falls steadily, and the average follows the descent without the zigzag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 4,
            seed: 0,
            lr: 1e-3,
            window: 50,
            window_start: WindowStart::Data,
            continuity_weight: 1.0,
            clip_norm: Some(10.0),
            snapshot_epochs: None,
            init_from: None,
            average: None,
        }
    }
}

impl TrainConfig {
    /// Whether the parameters after `epoch` (1-based) go into `snapshots/`: the listed epochs, or
    /// by default 1, 2, 4, 8, ... and the last (a handful per run, spread over a log axis).
    pub fn is_snapshot_epoch(&self, epoch: u64) -> bool {
        match &self.snapshot_epochs {
            Some(list) => list.contains(&epoch),
            None => epoch.is_power_of_two() || epoch == self.epochs,
        }
    }
}

/// A whole experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Experiment {
    /// Number of states of a generic neural ODE (memristor models fix their own).
    pub states: usize,
    /// The vector-field net.
    pub net: NetConfig,
    /// The solver.
    pub solver: SolverConfig,
    /// The loop.
    pub train: TrainConfig,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule on the validation loss (none when absent).
    pub scheduler: Option<ReduceLrOnPlateauConfig>,
    /// The objective.
    pub loss: crate::loss::LossConfig,
}

impl Experiment {
    /// Reads an experiment file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = odeflash_reference::files::read_text(path, "experiment file")?;
        Self::parse(path, &text)
    }

    /// Parses experiment TOML; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Experiment {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// The resolved file as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks everything that TOML types cannot.
    pub fn validate(&self) -> Result<(), Error> {
        self.solver.validate()?;
        self.optimizer
            .validate()
            .map_err(|e| Error::Input(format!("optimizer: {e}")))?;
        if self.train.batch_size == 0 {
            return Err(Error::Input("train.batch_size must be at least 1".into()));
        }
        if !(self.train.lr > 0.0 && self.train.lr.is_finite()) {
            return Err(Error::Input("train.lr must be positive".into()));
        }
        if let Some(a) = self.train.average {
            if !(0.0..1.0).contains(&a) {
                return Err(Error::Input(format!(
                    "train.average = {a}: give a decay in [0, 1)"
                )));
            }
        }
        if self.train.window == 1 {
            return Err(Error::Input(
                "train.window must be 0 (whole trajectories) or at least 2".into(),
            ));
        }
        Ok(())
    }
}

/// Solver steps per dominant period that keep the discretization error of training near that of
/// stepping every sample: measured on the damped oscillator (w = 2 rad/s, 63 samples per
/// natural period, 100 epochs, 32 trajectories), stride 1 / 2 / 5 / 10 took 138 / 57 / 18 / 8 s
/// and reached validation NMSE 5.0e-3 / 5.1e-3 / 5.7e-3 / 2.1e-2: about 12 steps per period
/// (stride 5) cost 7.5 times less for 14 % more error; 6 steps per period (stride 10) lost 4x.
pub const STEPS_PER_PERIOD: usize = 12;

/// The stride for `stride = 0`: the dominant period of the training signals, estimated from the
/// zero crossings of each mean-removed channel (the fastest channel counts), divided into
/// [`STEPS_PER_PERIOD`] steps, between 1 and 10 samples per step.
pub fn auto_stride(data: &odeflash_reference::dataset::Dataset) -> usize {
    let mut shortest = f64::INFINITY;
    for t in &data.train {
        for c in &t.channels {
            let mean = c.iter().map(|&v| v as f64).sum::<f64>() / c.len().max(1) as f64;
            let crossings = c
                .windows(2)
                .filter(|w| (w[0] as f64 - mean) * (w[1] as f64 - mean) < 0.0)
                .count();
            if crossings >= 2 {
                // Two crossings per period.
                shortest = shortest.min(2.0 * c.len() as f64 / crossings as f64);
            }
        }
    }
    if shortest.is_finite() {
        ((shortest / STEPS_PER_PERIOD as f64).floor() as usize).clamp(1, 10)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odeflash_reference::dataset::{Dataset, Trajectory};

    fn sine(period: f64, n: usize) -> Trajectory {
        Trajectory {
            path: "t.csv".into(),
            dt: 1.0,
            drive: vec![0.0; n],
            channels: vec![(0..n)
                .map(|k| (std::f64::consts::TAU * (k as f64 + 0.3) / period).sin() as f32)
                .collect()],
            consts: Vec::new(),
            warmup: 0,
        }
    }

    #[test]
    fn auto_stride_gives_twelve_steps_per_period() {
        let data = |p: f64| Dataset {
            train: vec![sine(p, 600)],
            validation: vec![],
        };
        assert_eq!(auto_stride(&data(60.0)), 5);
        assert_eq!(auto_stride(&data(24.0)), 2);
        assert_eq!(auto_stride(&data(10.0)), 1, "never below one sample");
        assert_eq!(auto_stride(&data(1000.0)), 10, "never above ten");
    }

    #[test]
    fn experiment_files_refuse_unknown_fields() {
        let e = Experiment::parse(Path::new("x.toml"), "[train]\nepochz = 3\n").unwrap_err();
        let msg = format!("{:#}", anyhow::Error::from(e));
        assert!(msg.contains("x.toml") && msg.contains("epochz"), "{msg}");
        let ok = Experiment::parse(
            Path::new("x.toml"),
            "[train]\nepochs = 3\n[net]\nshape = \"diamond\"\nwidth = 128\ndepth = 4\n",
        )
        .unwrap();
        assert_eq!(ok.net.widths(), vec![64, 128, 128, 64]);
    }

    #[test]
    fn snapshot_epochs() {
        let mut t = TrainConfig {
            epochs: 100,
            ..TrainConfig::default()
        };
        let picked: Vec<u64> = (0..=120).filter(|&e| t.is_snapshot_epoch(e)).collect();
        assert_eq!(picked, [1, 2, 4, 8, 16, 32, 64, 100]);
        t.snapshot_epochs = Some(vec![3, 7]);
        assert!(t.is_snapshot_epoch(7) && !t.is_snapshot_epoch(8) && !t.is_snapshot_epoch(100));
        // The default leaves the resolved config.toml (and so the resume hash) as it was.
        assert!(!Experiment::default().to_toml().contains("snapshot"));
        let e = Experiment::parse(Path::new("x.toml"), "[train]\nsnapshot_epochs = [5]\n").unwrap();
        assert_eq!(e.train.snapshot_epochs, Some(vec![5]));
    }
}
