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
        Self::default().layer_file(path, &[])
    }

    /// Parses experiment TOML and checks every setting; `path` names it in errors, with the line
    /// of the setting at fault.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let exp: Experiment = toml::from_str(text).map_err(|e| experiment_error(path, e))?;
        exp.check().map_err(|e| e.in_file(path, text))?;
        Ok(exp)
    }

    /// `self` (a preset) with the experiment file at `path` laid over it setting by setting: the
    /// file's settings replace the preset's, the others stay (a file holding only
    /// `[train] epochs = 1` changes the epochs and nothing else). An `[optimizer]` with another
    /// `name` replaces the preset's optimizer whole. A section in `unused` (one the command
    /// takes from elsewhere) is refused, as are unknown settings, wrong types and values out
    /// of range, each with the file's line.
    pub fn layer_file(&self, path: &Path, unused: &[&str]) -> Result<Self, Error> {
        let text = odeflash_reference::files::read_text(path, "experiment file")?;
        self.layer(path, &text, unused)
    }

    /// [`Experiment::layer_file`] on the file's text.
    pub fn layer(&self, path: &Path, text: &str, unused: &[&str]) -> Result<Self, Error> {
        let overlay: toml::Table = toml::from_str(text).map_err(|e| experiment_error(path, e))?;
        // Alone first, for unknown keys and wrong types at the file's own lines; an
        // `[optimizer]` that only tunes the preset's optimizer has no `name` to parse alone.
        let tunes_optimizer = matches!(overlay.get("optimizer"),
            Some(toml::Value::Table(t)) if !t.contains_key("name"));
        if !tunes_optimizer {
            let _: Experiment = toml::from_str(text).map_err(|e| experiment_error(path, e))?;
        }
        // A section the command does not use may stand at its defaults (a run's resolved
        // config from before such sections were left out); anything else would be ignored.
        let defaults = toml::Table::try_from(Experiment::default()).unwrap_or_default();
        let mut overlay = overlay;
        for section in unused {
            match overlay.remove(*section) {
                Some(v) if Some(&v) != defaults.get(*section) => {
                    return Err(Invalid::new(
                        section,
                        "this command does not use it (the model's preset and command-line \
                         options choose it); remove it from the file",
                    )
                    .in_file(path, text))
                }
                _ => {}
            }
        }
        let mut merged = toml::Table::try_from(self).map_err(|e| Error::Input(e.to_string()))?;
        merge(&mut merged, overlay);
        let exp: Experiment = merged.try_into().map_err(|e| experiment_error(path, e))?;
        exp.check().map_err(|e| e.in_file(path, text))?;
        Ok(exp)
    }

    /// The resolved file as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The resolved file as TOML without the sections a command does not use, so that a run's
    /// `config.toml` shows only what the run used.
    pub fn to_toml_without(&self, unused: &[&str]) -> String {
        let mut table = toml::Table::try_from(self).unwrap_or_default();
        for section in unused {
            table.remove(*section);
        }
        toml::to_string_pretty(&table).unwrap_or_default()
    }

    /// Checks everything that TOML types cannot.
    pub fn validate(&self) -> Result<(), Error> {
        self.check()
            .map_err(|e| Error::Input(format!("invalid setting {e}")))
    }

    /// Every numeric setting against its range ([`rules`]), and the combinations; the first
    /// setting at fault, by its name in the file.
    pub fn check(&self) -> Result<(), Invalid> {
        use rules::*;
        let t = &self.train;
        at("states", in_range(self.states, 0, MAX_WIDTH))?;
        if self.net.hidden.is_empty() {
            at("net.width", in_range(self.net.width, 1, MAX_WIDTH))?;
            at("net.depth", in_range(self.net.depth, 1, MAX_DEPTH))?;
        }
        for &w in &self.net.hidden {
            at("net.hidden", in_range(w, 1, MAX_WIDTH))?;
        }
        at("net.hidden", in_range(self.net.hidden.len(), 0, MAX_DEPTH))?;
        let s = &self.solver;
        at("solver.stride", in_range(s.stride, 0, MAX_STRIDE))?;
        at("solver.substeps", in_range(s.substeps, 1, MAX_SUBSTEPS))?;
        at("solver.rtol", positive(s.rtol))?;
        at("solver.atol", positive(s.atol))?;
        at("solver.max_steps", in_range(s.max_steps, 1, MAX_STEPS))?;
        if s.adaptive && s.method.error_estimator().is_none() {
            return Err(Invalid::new(
                "solver.adaptive",
                format!(
                    "adaptive stepping needs method = \"rk5\" (Tsit5) or \"dopri5\", not {:?}",
                    s.method
                ),
            ));
        }
        if s.stride > 1 && s.substeps > 1 {
            return Err(Invalid::new(
                "solver.substeps",
                "stride and substeps cannot both be above 1",
            ));
        }
        at("train.epochs", in_range(t.epochs, 1, MAX_EPOCHS))?;
        at("train.batch_size", in_range(t.batch_size, 1, MAX_BATCH))?;
        at("train.seed", in_range(t.seed, 0, MAX_SEED))?;
        at("train.lr", positive(t.lr))?;
        at("train.window", window(t.window))?;
        at("train.continuity_weight", non_negative(t.continuity_weight))?;
        if let Some(c) = t.clip_norm {
            at("train.clip_norm", positive(c))?;
        }
        if let Some(a) = t.average {
            at("train.average", decay(a))?;
        }
        for &e in t.snapshot_epochs.iter().flatten() {
            at("train.snapshot_epochs", in_range(e, 1, MAX_EPOCHS))?;
        }
        let optim = |e: crate::optim::OptimError, section: &str| match e {
            crate::optim::OptimError::InvalidConfig { field, message, .. } => {
                Invalid::new(&format!("{section}.{field}"), message)
            }
            other => Invalid::new(section, other.to_string()),
        };
        self.optimizer
            .validate()
            .map_err(|e| optim(e, "optimizer"))?;
        if let Some(sched) = &self.scheduler {
            sched.validate().map_err(|e| optim(e, "scheduler"))?;
        }
        let l = &self.loss;
        at("loss.eps", non_negative(l.eps))?;
        at("loss.lambda_min", non_negative(l.lambda_min))?;
        at("loss.lambda_max", non_negative(l.lambda_max))?;
        if l.lambda_min > l.lambda_max {
            return Err(Invalid::new(
                "loss.lambda_max",
                format!(
                    "{} is below loss.lambda_min = {}",
                    l.lambda_max, l.lambda_min
                ),
            ));
        }
        at("loss.gamma", positive(l.gamma))?;
        at("loss.constraint_weight", non_negative(l.constraint_weight))?;
        at(
            "loss.derivative_stride",
            in_range(l.derivative_stride, 1, MAX_STRIDE),
        )?;
        Ok(())
    }
}

impl Experiment {
    /// The settings where `self` (a run's) and `other` (asked for) differ, each as
    /// `train.lr: the run has 0.001, not 0.5`.
    pub fn differences(&self, other: &Experiment) -> Vec<String> {
        let table = |e: &Experiment| toml::Table::try_from(e).unwrap_or_default();
        let mut out = Vec::new();
        differences(&table(self), &table(other), "", &mut out);
        out
    }
}

fn differences(run: &toml::Table, asked: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = run.keys().chain(asked.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let name = format!("{prefix}{key}");
        match (run.get(key), asked.get(key)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
                differences(a, b, &format!("{name}."), out)
            }
            (a, b) if a != b => {
                let show =
                    |v: Option<&toml::Value>| v.map_or("none".to_string(), |v| v.to_string());
                out.push(format!("{name}: the run has {}, not {}", show(a), show(b)));
            }
            _ => {}
        }
    }
}

fn experiment_error(path: &Path, e: toml::de::Error) -> Error {
    Error::Experiment {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

/// Lays `overlay` over `base` key by key, tables recursively; an optimizer of another `name`
/// replaces the base's whole (their settings differ).
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o))
                if b.get("name")
                    .is_none_or(|n| o.get("name").is_none_or(|m| m == n)) =>
            {
                merge(b, o)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A setting out of its range: its dotted name in the experiment file (`train.lr`) and what is
/// wrong with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The setting (`train.lr`), or a section (`net`).
    pub field: String,
    /// What is wrong, and what would do.
    pub what: String,
}

impl Invalid {
    fn new(field: &str, what: impl Into<String>) -> Self {
        Invalid {
            field: field.to_owned(),
            what: what.into(),
        }
    }

    /// The error naming the file, and the setting's line when the file sets it.
    pub fn in_file(&self, path: &Path, text: &str) -> Error {
        let p = path.display();
        Error::Input(match locate(text, &self.field) {
            Some(line) => format!("{p}:{line}: {self}"),
            None => format!("{p}: {self}"),
        })
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.what)
    }
}

fn at<T>(field: &str, checked: Result<T, String>) -> Result<T, Invalid> {
    checked.map_err(|what| Invalid::new(field, what))
}

/// The line (1-based) where the TOML `text` sets `field` (`train.lr`, under `[train]` or as a
/// dotted key), or opens the section `field` (`net`).
pub fn locate(text: &str, field: &str) -> Option<usize> {
    let mut section = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            section = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if section == field {
                return Some(i + 1);
            }
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key: String = key
            .split('.')
            .map(|k| k.trim().trim_matches('"'))
            .collect::<Vec<_>>()
            .join(".");
        let full = if section.is_empty() {
            key
        } else {
            format!("{section}.{key}")
        };
        if full == field || field.starts_with(&format!("{full}.")) {
            return Some(i + 1);
        }
    }
    None
}

/// The range of each kind of numeric setting: one source for the experiment file's check
/// ([`Experiment::check`]) and the command line's parsers. The bounds on counts are far above
/// any real run; they keep a typo (`batch_size = 18446744073709551615`) from reaching the
/// allocator or the TOML writer (which holds integers up to 2^63 - 1).
pub mod rules {
    /// Epochs.
    pub const MAX_EPOCHS: u64 = 1_000_000_000;
    /// Trajectories per batch.
    pub const MAX_BATCH: usize = 1 << 20;
    /// Seeds (TOML integers are signed 64-bit).
    pub const MAX_SEED: u64 = i64::MAX as u64;
    /// Net widths and state counts.
    pub const MAX_WIDTH: usize = 1 << 16;
    /// Hidden layers.
    pub const MAX_DEPTH: usize = 256;
    /// Samples per step, per finite difference.
    pub const MAX_STRIDE: usize = 1 << 20;
    /// Solver steps per sample (the runtime's limit).
    pub const MAX_SUBSTEPS: usize = odeflash_runtime::limits::MAX_SUBSTEPS as usize;
    /// Steps of one adaptive solve.
    pub const MAX_STEPS: usize = 1 << 32;
    /// Samples per window.
    pub const MAX_WINDOW: usize = 1 << 30;

    /// A finite number above 0.
    pub fn positive(v: f64) -> Result<f64, String> {
        finite(v)?;
        if v > 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} must be above 0"))
        }
    }

    /// A finite number, 0 or above.
    pub fn non_negative(v: f64) -> Result<f64, String> {
        finite(v)?;
        if v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} must be 0 or above"))
        }
    }

    /// The decay of a moving average, in [0, 1).
    pub fn decay(v: f64) -> Result<f64, String> {
        finite(v)?;
        if (0.0..1.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not a decay in [0, 1) (e.g. 0.9)"))
        }
    }

    /// Samples per training window: 0 (whole trajectories) or at least 2.
    pub fn window(v: usize) -> Result<usize, String> {
        if v == 1 {
            return Err("1 must be 0 (whole trajectories) or at least 2".into());
        }
        in_range(v, 0, MAX_WINDOW)
    }

    /// A count in `lo..=hi`.
    pub fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
        v: T,
        lo: T,
        hi: T,
    ) -> Result<T, String> {
        if v < lo {
            Err(format!("{v} must be at least {lo}"))
        } else if v > hi {
            Err(format!("{v} is above the limit of {hi}"))
        } else {
            Ok(v)
        }
    }

    fn finite(v: f64) -> Result<(), String> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(format!("{v} is not a finite number"))
        }
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
    fn solver_combinations_name_their_setting_and_line() {
        let err = |text: &str| {
            Experiment::parse(Path::new("x.toml"), text)
                .unwrap_err()
                .to_string()
        };
        let msg = err("[solver]\nmethod = \"rk4\"\nadaptive = true\n");
        assert!(
            msg.starts_with("x.toml:3: solver.adaptive: adaptive stepping needs"),
            "{msg}"
        );
        let msg = err("[solver]\nstride = 2\nsubsteps = 4\n");
        assert!(
            msg.starts_with("x.toml:3: solver.substeps: stride and substeps cannot"),
            "{msg}"
        );
        let msg = err("[solver]\nsubsteps = 0\n");
        assert!(
            msg.starts_with("x.toml:2: solver.substeps: 0 must be at least 1"),
            "{msg}"
        );
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
