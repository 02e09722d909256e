//! What `odeflash eval` runs on: trained surrogates, exported model files and MMS/GMMS fits
//! loaded, simulated, scored and drawn side by side on a rig dataset, as paper 000 compares them
//! (Tables I and II, Fig. 6-8, training and generation times).
//!
//! Every model is scored the same way: simulated over each whole trajectory from its own initial
//! state, then `L_b = NMSE(v) + NMSE(i)` (eq. 3-5, each channel normalized by the trajectory's own
//! unbiased variance, [`baseline::nmse_with`]). The device state at the start of a record is
//! unknown, so each model first settles over a warm-up of supply periods ([`Warmup`]), the same
//! for every model kind:
//! - [`WarmupMode::Skip`]: the first periods of the record are simulated but left out of `L_b`,
//!   as training validates (`memristor::data::training_view`); a run's validation mean then equals its
//!   best validation loss;
//! - [`WarmupMode::Replay`]: the record's first period is replayed before it and the whole record
//!   is scored, as baseline fits score themselves ([`SimOptions::warmup_periods`]).
//!
//! Neural models (runs and `.ofm` files) run in the runtime's f32 path, bit-identical to the
//! device's `Simulator` (portable arithmetic), with the series resistor of each trajectory;
//! baselines run through [`baseline::evaluate`]. Both on one thread by default, so generation
//! times compare ([`Host`] trades that for the host's fastest batched path).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use odeflash_runtime::batch::{simulate_batch, Arith, BatchError, BatchOptions, Input};
use odeflash_runtime::spec::{ModelSpec, Quant};
use odeflash_runtime::{Circuit, KindName, SimConfig, Solver};
use serde::{Deserialize, Serialize};

use crate::Error;
use odeflash_reference::memristor::baseline::{
    self, CompactModel, FitReport, Integrator, LbSummary, SimOptions,
};
use odeflash_reference::memristor::data::{
    unbiased_variance, MemristorDataset, MemristorTrajectory, Split,
};
use odeflash_reference::plot::{plot_panels, Panel, Series};
use odeflash_training::config::Experiment;
use odeflash_training::model::TrainModel;
use odeflash_training::run::metrics::{read_jsonl, Record};
use odeflash_training::run::JobFile;
use odeflash_training::run::{rundir, Checkpoint};
use odeflash_training::surrogate::{Kind, Memristor};

/// How the warm-up before the scored samples is simulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WarmupMode {
    /// The record's first periods, simulated and left out of `L_b`.
    Skip,
    /// The record's first period replayed before it; the whole record scored.
    Replay,
}

/// The warm-up every model gets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    /// How.
    pub mode: WarmupMode,
    /// Supply periods.
    pub periods: f64,
}

impl Warmup {
    /// Samples replayed before the record (as [`CompactModel::simulate`] counts them).
    pub fn replayed(&self, t: &MemristorTrajectory) -> usize {
        match self.mode {
            WarmupMode::Skip => 0,
            WarmupMode::Replay => {
                let period = (t.samples_per_period().round() as usize).clamp(1, t.len());
                (self.periods.max(0.0) * period as f64).round() as usize
            }
        }
    }

    /// One sentence for the report header.
    pub fn describe(&self) -> String {
        match self.mode {
            WarmupMode::Skip => format!(
                "every model starts from its own initial state at the first sample; the first {} \
                 supply period(s) of each record are simulated but left out of L_b (as training \
                 validates)",
                self.periods
            ),
            WarmupMode::Replay => format!(
                "every model starts from its own initial state {} supply period(s) before the \
                 record, replaying the record's first period; the whole record is scored (as \
                 baseline fits score)",
                self.periods
            ),
        }
    }
}

/// Where a model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A run directory of `odeflash train memristor`.
    Run,
    /// A model file (`odeflash export`).
    ModelFile,
    /// A `fit.json` of `odeflash baseline`.
    Baseline,
}

/// How a model is simulated.
#[derive(Clone, Debug, PartialEq)]
pub enum Engine {
    /// In the runtime.
    Runtime {
        /// The model (its circuit is set per trajectory).
        spec: Box<ModelSpec>,
        /// Weight storage.
        quant: Quant,
        /// Fixed-step method.
        solver: Solver,
        /// Steps per sample.
        substeps: u16,
    },
    /// A compact model.
    Compact {
        /// The fitted model.
        model: CompactModel,
        /// Its integrator (the fit's).
        integrator: Integrator,
    },
}

impl Engine {
    /// The method, in words.
    pub fn describe(&self) -> String {
        match self {
            Engine::Runtime {
                quant,
                solver,
                substeps,
                spec,
                ..
            } => {
                let method = if matches!(
                    spec.dynamics,
                    odeflash_runtime::spec::DynamicsSpec::Iterator { .. }
                ) {
                    "one map step per sample".to_string()
                } else {
                    format!("{} x{substeps} per sample", solver.cli_name())
                };
                let q = match quant {
                    Quant::F32 => "f32",
                    Quant::Int8 => "int8",
                };
                format!("runtime, {q} weights, {method}")
            }
            Engine::Compact { integrator, .. } => match integrator {
                Integrator::TrBdf2 => "TR-BDF2, one step per sample".into(),
                Integrator::Rk4 { substeps } => format!("rk4 x{substeps} per sample"),
            },
        }
    }
}

/// What Fig. 6 needs of a run.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// The run directory.
    pub dir: PathBuf,
    /// The surrogate.
    pub model: Memristor,
    /// Its metrics, one record per epoch.
    pub records: Vec<Record>,
}

/// One model to evaluate.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Unique name in tables and legends.
    pub label: String,
    /// Model kind as the paper names it.
    pub kind: String,
    /// The path given.
    pub source: PathBuf,
    /// What it is.
    pub origin: Origin,
    /// How it runs.
    pub engine: Engine,
    /// Epoch of the parameters (runs).
    pub epoch: Option<u64>,
    /// Epochs trained (runs).
    pub epochs_trained: Option<u64>,
    /// Training or fitting wall time, s (runs: the epochs' times from the metrics; fits: the
    /// fit's).
    pub training_seconds: Option<f64>,
    /// Fig. 6 material (runs).
    pub run: Option<RunContext>,
    /// Remarks for the report (another dataset, no metrics).
    pub notes: Vec<String>,
}

/// Loading options.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Runs: the last checkpoint instead of the best.
    pub last: bool,
    /// Model files: method and steps per sample (they do not record one).
    pub solver: Solver,
    /// Model files: steps per sample.
    pub substeps: u16,
    /// Accept models trained on another dataset.
    pub allow_other_data: bool,
}

fn not_found(path: &Path) -> Error {
    Error::Input(format!("{}: no such file or directory", path.display()))
}

/// Loads a run directory, a model file or a baseline fit (a directory with `fit.json`, or the
/// file), checking it against `ds`.
pub fn load(path: &Path, ds: &MemristorDataset, opts: &LoadOptions) -> Result<Candidate, Error> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            not_found(path)
        } else {
            Error::read(path, e)
        }
    })?;
    if meta.is_dir() {
        if path.join(JobFile::FILE).is_file() {
            load_run(path, ds, opts)
        } else if path.join("fit.json").is_file() {
            load_fit(&path.join("fit.json"), path, ds, opts)
        } else {
            Err(Error::Input(format!(
                "{}: neither a training run (no {}) nor a baseline fit (no fit.json)",
                path.display(),
                JobFile::FILE
            )))
        }
    } else if path.file_name().is_some_and(|n| n == JobFile::FILE) {
        let dir = path.parent().unwrap_or(Path::new("."));
        load_run(dir, ds, opts)
    } else if path.extension().is_some_and(|e| e == "json") {
        load_fit(path, path, ds, opts)
    } else {
        load_model_file(path, opts)
    }
}

fn paper_kind(k: KindName) -> &'static str {
    match k {
        KindName::SingleNnMemOde => "SingleNN-MemODE",
        KindName::DualNnMemOde => "DualNN-MemODE",
        KindName::IteratorNet(_) => "Iterator net",
        KindName::NeuralOde => "neural ODE",
        KindName::PolyNeuralOde => "polynomial neural ODE",
    }
}

/// The parameters of `model` in checkpoint `ck` (read from `path`), checked by name and shape.
pub fn checkpoint_values(
    model: &Memristor,
    ck: &Checkpoint,
    path: &Path,
) -> Result<Vec<Vec<f32>>, Error> {
    let defs = model.params();
    if ck.params.len() < defs.len()
        || ck
            .params
            .iter()
            .zip(&defs)
            .any(|(p, d)| p.name != d.name || p.shape != d.shape)
    {
        return Err(Error::Input(format!(
            "{}: its parameters do not match the model in {}",
            path.display(),
            JobFile::FILE
        )));
    }
    Ok(ck.params[..defs.len()]
        .iter()
        .map(|p| p.values.clone())
        .collect())
}

fn load_run(dir: &Path, ds: &MemristorDataset, opts: &LoadOptions) -> Result<Candidate, Error> {
    let job_path = dir.join(JobFile::FILE);
    let JobFile::Memristor { data, model, .. } = JobFile::read(dir)? else {
        return Err(Error::Input(format!(
            "{}: a neural-ODE run (`odeflash train ode`), not a memristor surrogate",
            job_path.display()
        )));
    };
    let config = dir.join(odeflash_training::run::RunDir::CONFIG);
    let text = odeflash_reference::files::read_text(&config, "experiment file")?;
    let exp = Experiment::parse(&config, &text)?;
    let file = if opts.last {
        Checkpoint::FILE
    } else {
        Checkpoint::BEST_FILE
    };
    let ck_path = dir.join(file);
    if !ck_path.is_file() {
        return Err(Error::Input(format!(
            "{}: no trained model: {} does not exist (the run stopped before its first epoch \
             ended)",
            dir.display(),
            ck_path.display()
        )));
    }
    let ck = Checkpoint::load_file(&ck_path)?;
    let values = checkpoint_values(&model, &ck, &ck_path)?;
    let spec = model.to_spec(&values);
    let (solver, substeps) = exp.solver.runtime_method();
    let mut notes = Vec::new();
    if let Some(n) = check_data_dir(&job_path, &data, ds, opts.allow_other_data)? {
        notes.push(n);
    }
    let metrics = dir.join("metrics.jsonl");
    let records = match read_jsonl(&metrics) {
        Ok(r) => r,
        Err(_) if !metrics.exists() => {
            notes.push(format!(
                "{}: no metrics.jsonl, so no training time and no learning curve",
                dir.display()
            ));
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let training_seconds =
        (!records.is_empty()).then(|| records.iter().filter_map(|r| r.get("seconds")).sum::<f64>());
    let epochs_trained = records.last().map(|r| r.epoch() as u64);
    let kind = match model.kind {
        Kind::Single => "SingleNN-MemODE",
        Kind::Dual => "DualNN-MemODE",
        Kind::Iterator => "Iterator net",
    };
    Ok(Candidate {
        label: kind.into(),
        kind: kind.into(),
        source: dir.to_path_buf(),
        origin: Origin::Run,
        engine: Engine::Runtime {
            spec: Box::new(spec),
            quant: Quant::F32,
            solver,
            substeps,
        },
        epoch: Some(ck.epoch),
        epochs_trained,
        training_seconds,
        run: Some(RunContext {
            dir: dir.to_path_buf(),
            model,
            records,
        }),
        notes,
    })
}

fn load_model_file(path: &Path, opts: &LoadOptions) -> Result<Candidate, Error> {
    let blob = odeflash_reference::files::read_model(path)?;
    let m = odeflash_reference::files::decode(path, &blob)?;
    if matches!(m.readout, odeflash_runtime::Readout::None) {
        return Err(Error::Input(format!(
            "{}: a {} without a memductance readout, not a memristor surrogate",
            path.display(),
            m.kind().as_str()
        )));
    }
    let spec = ModelSpec::from_model(&m);
    let quant = if spec.is_int8() {
        Quant::Int8
    } else {
        Quant::F32
    };
    // Each trajectory's series resistor goes in by re-encoding: it must give back this file.
    let mut notes = Vec::new();
    if spec.try_encode(quant).map(|b| b.as_bytes().to_vec()).ok() != Some(blob.as_bytes().to_vec())
    {
        notes.push(format!(
            "{}: re-encoding the model with another series resistor does not reproduce the file              bit for bit (weights rounded again)",
            path.display()
        ));
    }
    let kind = paper_kind(m.kind());
    Ok(Candidate {
        label: kind.into(),
        kind: kind.into(),
        source: path.to_path_buf(),
        origin: Origin::ModelFile,
        engine: Engine::Runtime {
            spec: Box::new(spec),
            quant,
            solver: opts.solver,
            substeps: opts.substeps,
        },
        epoch: None,
        epochs_trained: None,
        training_seconds: None,
        run: None,
        notes,
    })
}

fn load_fit(
    file: &Path,
    source: &Path,
    ds: &MemristorDataset,
    opts: &LoadOptions,
) -> Result<Candidate, Error> {
    let report = FitReport::load(file)?;
    let theirs: Vec<(String, Split)> = report
        .trajectories
        .iter()
        .map(|s| (s.name.clone(), s.split))
        .collect();
    let mut notes = Vec::new();
    if let Some(diff) = split_difference(&theirs, ds) {
        let msg = format!(
            "{}: fitted on {}, whose trajectories differ from {}: {diff}",
            file.display(),
            report.data.display(),
            ds.dir.display()
        );
        if !opts.allow_other_data {
            return Err(Error::Input(format!(
                "{msg}; pass --allow-other-data to evaluate it anyway"
            )));
        }
        notes.push(msg);
    }
    let kind = report.model.as_str().to_uppercase();
    Ok(Candidate {
        label: kind.clone(),
        kind,
        source: source.to_path_buf(),
        origin: Origin::Baseline,
        engine: Engine::Compact {
            model: report.compact_model.clone(),
            integrator: report.sim.integrator,
        },
        epoch: None,
        epochs_trained: None,
        training_seconds: Some(report.fit_seconds),
        run: None,
        notes,
    })
}

/// The first difference between a model's (name, split) list and the dataset's.
fn split_difference(theirs: &[(String, Split)], ds: &MemristorDataset) -> Option<String> {
    for (name, split) in theirs {
        match ds.trajectories.iter().find(|t| &t.name == name) {
            None => return Some(format!("`{name}` is not in {}", ds.dir.display())),
            Some(t) if t.split != *split => {
                return Some(format!(
                    "`{name}` was {} there, is {} here",
                    split.as_str(),
                    t.split.as_str()
                ))
            }
            Some(_) => {}
        }
    }
    ds.trajectories
        .iter()
        .find(|t| !theirs.iter().any(|(n, _)| *n == t.name))
        .map(|t| format!("`{}` was not in it", t.name))
}

/// Checks a run's dataset directory against the evaluated one: the same directory, or one with
/// the same trajectories and splits. A directory that no longer exists cannot be checked (a run
/// copied from another machine): a note, not an error.
fn check_data_dir(
    job: &Path,
    theirs: &Path,
    ds: &MemristorDataset,
    allow: bool,
) -> Result<Option<String>, Error> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    if canon(theirs).is_some() && canon(theirs) == canon(&ds.dir) {
        return Ok(None);
    }
    if !theirs
        .join(odeflash_reference::memristor::data::MANIFEST)
        .is_file()
    {
        return Ok(Some(format!(
            "{}: trained on {}, which is not here; its split could not be checked against {}",
            job.display(),
            theirs.display(),
            ds.dir.display()
        )));
    }
    let other = MemristorDataset::load(theirs)?;
    let list: Vec<(String, Split)> = other
        .trajectories
        .iter()
        .map(|t| (t.name.clone(), t.split))
        .collect();
    match split_difference(&list, ds) {
        None => Ok(None),
        Some(diff) => {
            let msg = format!(
                "{}: trained on {}, whose trajectories differ from {}: {diff}",
                job.display(),
                theirs.display(),
                ds.dir.display()
            );
            if allow {
                Ok(Some(msg))
            } else {
                Err(Error::Input(format!(
                    "{msg}; pass --allow-other-data to evaluate it anyway"
                )))
            }
        }
    }
}

/// Gives every candidate a unique label: the kind, and where several share it, the file name.
pub fn assign_labels(cands: &mut [Candidate]) {
    let kinds: Vec<String> = cands.iter().map(|c| c.kind.clone()).collect();
    let mut used: Vec<String> = Vec::new();
    for c in cands.iter_mut() {
        let mut label = c.kind.clone();
        if kinds.iter().filter(|k| **k == c.kind).count() > 1 {
            let name = c.source.file_name().map_or_else(
                || c.source.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            label = format!("{} ({name})", c.kind);
        }
        let base = label.clone();
        let mut k = 2;
        while used.contains(&label) {
            label = format!("{base} #{k}");
            k += 1;
        }
        used.push(label.clone());
        c.label = label;
    }
}

/// A model's response to one trajectory (the record only, any replayed warm-up dropped).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    /// Memristor voltage, V.
    pub v: Vec<f64>,
    /// Current, A.
    pub i: Vec<f64>,
}

/// How the runtime runs on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Worker threads (0: all cores). Baselines always run on one.
    pub threads: usize,
    /// Fused multiply-adds: faster, different from the device by rounding.
    pub fma: bool,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            threads: 1,
            fma: false,
        }
    }
}

impl Host {
    fn options(&self) -> BatchOptions {
        BatchOptions {
            threads: self.threads,
            arith: if self.fma {
                Arith::Auto
            } else {
                Arith::Portable
            },
        }
    }

    /// One sentence for the report header.
    pub fn describe(&self) -> String {
        let threads = match self.threads {
            0 => "all cores".to_string(),
            1 => "one thread".to_string(),
            n => format!("{n} threads"),
        };
        let arith = if self.fma {
            "fused multiply-adds (differs from the device by rounding)"
        } else {
            "the device's arithmetic, bit for bit"
        };
        format!(
            "neural models in the odeflash runtime's batched f32 path on {threads}, {arith}; \
             baselines by their fit's integrator on one thread"
        )
    }
}

/// Runs a runtime model over trajectories, each with its own series resistor and sample
/// interval; `source` names the model in errors.
#[allow(clippy::too_many_arguments)]
pub fn run_runtime(
    spec: &ModelSpec,
    quant: Quant,
    solver: Solver,
    substeps: u16,
    trajs: &[&MemristorTrajectory],
    warmup: &Warmup,
    host: &Host,
    source: &Path,
) -> Result<Vec<Response>, Error> {
    let mut out = vec![Response::default(); trajs.len()];
    let mut groups: Vec<(f32, Vec<usize>)> = Vec::new();
    for (k, t) in trajs.iter().enumerate() {
        let rs = t.r_s as f32;
        match groups.iter_mut().find(|g| g.0 == rs) {
            Some(g) => g.1.push(k),
            None => groups.push((rs, vec![k])),
        }
    }
    for (rs, members) in groups {
        let mut s = spec.clone();
        s.circuit = Some(Circuit {
            series_resistance: rs,
        });
        let blob = s.try_encode(quant).map_err(|e| {
            Error::Input(format!(
                "{}: the model does not encode: {e}",
                source.display()
            ))
        })?;
        let m = blob
            .model()
            .map_err(|e| Error::Input(format!("{}: {e}", source.display())))?;
        let drives: Vec<Vec<f32>> = members
            .iter()
            .map(|&k| {
                let t = trajs[k];
                let pre = warmup.replayed(t);
                let period = (t.samples_per_period().round() as usize).clamp(1, t.len());
                (0..pre)
                    .map(|j| t.v_s[j % period])
                    .chain(t.v_s.iter().copied())
                    .collect()
            })
            .collect();
        let inputs: Vec<Input<'_>> = members
            .iter()
            .zip(&drives)
            .map(|(&k, d)| Input::new(d).with_dt(trajs[k].dt as f32))
            .collect();
        let cfg = SimConfig {
            dt: m
                .iterator_dt()
                .unwrap_or_else(|| trajs[members[0]].dt as f32),
            solver,
            substeps,
            newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        let res = simulate_batch(&m, cfg, &inputs, host.options()).map_err(|e| match e {
            BatchError::Config { trajectory, error } => Error::Input(format!(
                "{}: cannot run on {}: {error}",
                source.display(),
                trajs[members[trajectory]].path.display()
            )),
            BatchError::Trajectory { trajectory, error } => Error::Train(format!(
                "{}: the simulation of {} failed: {error} (a model file can be run with more \
                 --substeps)",
                source.display(),
                trajs[members[trajectory]].path.display()
            )),
        })?;
        for ((&k, r), d) in members.iter().zip(res).zip(&drives) {
            let pre = d.len() - trajs[k].len();
            out[k] = Response {
                v: r.v[pre..].iter().map(|&x| f64::from(x)).collect(),
                i: r.i[pre..].iter().map(|&x| f64::from(x)).collect(),
            };
        }
    }
    Ok(out)
}

/// Simulates every trajectory of `ds` (dataset order) with `c`; returns the responses and the
/// wall time of the simulation.
pub fn simulate(
    c: &Candidate,
    ds: &MemristorDataset,
    warmup: &Warmup,
    host: &Host,
) -> Result<(Vec<Response>, f64), Error> {
    match &c.engine {
        Engine::Runtime {
            spec,
            quant,
            solver,
            substeps,
        } => {
            let trajs: Vec<&MemristorTrajectory> = ds.trajectories.iter().collect();
            let start = Instant::now();
            let r = run_runtime(
                spec, *quant, *solver, *substeps, &trajs, warmup, host, &c.source,
            )?;
            Ok((r, start.elapsed().as_secs_f64()))
        }
        Engine::Compact { model, integrator } => {
            let opts = SimOptions {
                warmup_periods: match warmup.mode {
                    WarmupMode::Skip => 0.0,
                    WarmupMode::Replay => warmup.periods,
                },
                integrator: *integrator,
            };
            let e = baseline::evaluate(model, ds, &opts);
            let r = e
                .predictions
                .into_iter()
                .map(|p| Response { v: p.v, i: p.i })
                .collect();
            Ok((r, e.generation_seconds))
        }
    }
}

/// One trajectory's score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The manifest's `file`.
    pub trajectory: String,
    /// Its split.
    pub split: Split,
    /// `NMSE(v) + NMSE(i)`.
    pub lb: f64,
    /// `NMSE(v)`.
    pub nmse_v: f64,
    /// `NMSE(i)`.
    pub nmse_i: f64,
}

/// Eq. 3-5 over samples `skip..` of the record, each channel normalized by the variance of the
/// whole measured record.
pub fn score(t: &MemristorTrajectory, r: &Response, skip: usize) -> Score {
    let nmse_v = baseline::nmse_with(&t.v[skip..], &r.v[skip..], unbiased_variance(&t.v));
    let nmse_i = baseline::nmse_with(&t.i[skip..], &r.i[skip..], unbiased_variance(&t.i));
    Score {
        trajectory: t.name.clone(),
        split: t.split,
        lb: nmse_v + nmse_i,
        nmse_v,
        nmse_i,
    }
}

/// Means over the splits.
pub fn summarize(scores: &[Score]) -> LbSummary {
    let mean = |f: &dyn Fn(&Score) -> bool| {
        let v: Vec<f64> = scores.iter().filter(|s| f(s)).map(|s| s.lb).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    LbSummary {
        train: mean(&|s| s.split == Split::Train),
        validation: mean(&|s| s.split == Split::Validation),
        all: mean(&|_| true),
    }
}

/// A trajectory in the report (Table I order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryRow {
    /// Row number in Table I, from 1.
    pub row: usize,
    /// The manifest's `file`.
    pub name: String,
    /// Supply amplitude, V.
    pub amplitude: f64,
    /// Supply frequency, Hz.
    pub frequency: f64,
    /// Series resistor, ohm.
    pub series_resistance: f64,
    /// Split.
    pub split: Split,
    /// Samples in the record.
    pub samples: usize,
    /// First scored sample.
    pub scored_from: usize,
}

/// One model in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    /// Column name.
    pub label: String,
    /// Kind.
    pub kind: String,
    /// Run, model file or baseline.
    pub origin: Origin,
    /// The path given.
    pub source: PathBuf,
    /// How it was simulated.
    pub method: String,
    /// Epoch of the parameters (runs).
    pub epoch: Option<u64>,
    /// Epochs trained (runs).
    pub epochs_trained: Option<u64>,
    /// Training (runs) or fitting (baselines) wall time, s.
    pub training_seconds: Option<f64>,
    /// Wall time to generate every trajectory of the dataset once, s.
    pub generation_seconds: f64,
    /// Table II.
    pub lb: LbSummary,
    /// Table I, in [`EvalReport::trajectories`] order.
    pub scores: Vec<Score>,
    /// Remarks.
    pub notes: Vec<String>,
}

/// `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The dataset directory.
    pub data: PathBuf,
    /// The warm-up.
    pub warmup: Warmup,
    /// The warm-up, in words.
    pub warmup_text: String,
    /// How the runtime ran.
    pub host: Host,
    /// The simulation, in words.
    pub simulation_text: String,
    /// Trajectories in Table I order (amplitude, frequency, series resistor).
    pub trajectories: Vec<TrajectoryRow>,
    /// Models, in the order given.
    pub models: Vec<ModelReport>,
    /// Trajectory of Fig. 6 and 7.
    pub plotted: String,
    /// Figure files, relative to the report directory.
    pub figures: Vec<String>,
}

/// Dataset indices in Table I order.
pub fn table_order(ds: &MemristorDataset) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..ds.trajectories.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (&ds.trajectories[a], &ds.trajectories[b]);
        x.amplitude
            .total_cmp(&y.amplitude)
            .then(x.frequency.total_cmp(&y.frequency))
            .then(x.r_s.total_cmp(&y.r_s))
            .then(x.name.cmp(&y.name))
    });
    idx
}

fn sci(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2e}")
    } else {
        format!("{x}")
    }
}

fn seconds(x: Option<f64>) -> String {
    match x {
        None => "n/a".into(),
        Some(s) if s >= 120.0 => format!("{:.1} min", s / 60.0),
        Some(s) if s >= 1.0 => format!("{s:.2} s"),
        Some(s) => format!("{:.2} ms", s * 1e3),
    }
}

/// `report.md`.
pub fn markdown(r: &EvalReport) -> String {
    let mut s = String::new();
    let n = r.trajectories.len();
    let samples: usize = r.trajectories.iter().map(|t| t.samples).sum();
    let _ = writeln!(s, "# Memristor models on `{}`\n", r.data.display());
    let _ = writeln!(
        s,
        "{n} trajectories ({samples} samples). Scores: L_b = NMSE(v) + NMSE(i) per trajectory \
         (paper 000 eq. 3-5), each channel normalized by the unbiased variance of its measured \
         record.\n\nWarm-up: {}.\n\nSimulation: {}.\n",
        r.warmup_text, r.simulation_text
    );
    let _ = writeln!(s, "## Models\n");
    let _ = writeln!(
        s,
        "| model | source | simulated by | parameters | training time | generation of all {n} \
         trajectories |\n|---|---|---|---|---|---|"
    );
    for m in &r.models {
        let params = match (m.origin, m.epoch, m.epochs_trained) {
            (Origin::Run, Some(e), Some(t)) => format!("epoch {e} of {t}"),
            (Origin::Run, Some(e), None) => format!("epoch {e}"),
            (Origin::ModelFile, ..) => "model file".into(),
            (Origin::Baseline, ..) => "fit".into(),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {params} | {} | {} |",
            m.label,
            m.source.display(),
            m.method,
            seconds(m.training_seconds),
            seconds(Some(m.generation_seconds))
        );
    }
    for m in &r.models {
        for note in &m.notes {
            let _ = writeln!(s, "\nNote ({}): {note}", m.label);
        }
    }
    let header = {
        let mut h = "| # | f [Hz] | R_s [ohm] | set |".to_string();
        let mut rule = "|---:|---:|---:|---|".to_string();
        for m in &r.models {
            h.push_str(&format!(" {} |", m.label));
            rule.push_str("---:|");
        }
        format!("{h}\n{rule}")
    };
    let _ = writeln!(
        s,
        "\n## Table I: L_b per trajectory\n\nValidation rows are marked **validation** (bold \
         number and frequency). Row minimum in **bold**, row maximum in _italics_.\n"
    );
    let mut amplitude: Option<f64> = None;
    for (k, t) in r.trajectories.iter().enumerate() {
        if amplitude != Some(t.amplitude) {
            amplitude = Some(t.amplitude);
            let _ = writeln!(s, "\n### V_s = {} V\n\n{header}", t.amplitude);
        }
        let val = t.split == Split::Validation;
        let mark = |x: String| if val { format!("**{x}**") } else { x };
        let mut line = format!(
            "| {} | {} | {} | {} |",
            mark(t.row.to_string()),
            mark(t.frequency.to_string()),
            t.series_resistance,
            if val { "**validation**" } else { "train" }
        );
        let row: Vec<f64> = r.models.iter().map(|m| m.scores[k].lb).collect();
        let lo = row.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for &x in &row {
            let cell = if row.len() > 1 && x == lo {
                format!("**{}**", sci(x))
            } else if row.len() > 1 && x == hi {
                format!("_{}_", sci(x))
            } else {
                sci(x)
            };
            line.push_str(&format!(" {cell} |"));
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(
        s,
        "\n## Table II: mean L_b\n\n| dataset |{}\n|---|{}",
        r.models
            .iter()
            .map(|m| format!(" {} |", m.label))
            .collect::<String>(),
        "---:|".repeat(r.models.len())
    );
    for (name, f) in [
        (
            "validation",
            (|l: &LbSummary| l.validation) as fn(&LbSummary) -> f64,
        ),
        ("training", |l: &LbSummary| l.train),
        ("whole", |l: &LbSummary| l.all),
    ] {
        let _ = writeln!(
            s,
            "| {name} |{}",
            r.models
                .iter()
                .map(|m| format!(" {} |", sci(f(&m.lb))))
                .collect::<String>()
        );
    }
    let _ = writeln!(s, "\n## Figures\n");
    for f in &r.figures {
        let _ = writeln!(s, "![{f}]({f})\n");
    }
    s
}

/// Palette index of model `k`: the tab10 colours without grey, which the measurements take.
pub fn model_color(k: usize) -> usize {
    const COLORS: [usize; 9] = [0, 1, 2, 3, 4, 5, 6, 8, 9];
    COLORS[k % COLORS.len()]
}

/// Grey, for measured data.
pub const MEASURED: usize = 7;

/// Samples plotted of a trajectory: its scored part, at most the last two periods.
pub fn plot_range(t: &MemristorTrajectory, skip: usize) -> std::ops::Range<usize> {
    let n = t.len();
    let two = (2.0 * t.samples_per_period()).round() as usize;
    n.saturating_sub(two).max(skip).min(n.saturating_sub(2))..n
}

fn ua(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v * 1e6).collect()
}

fn measured(t: &MemristorTrajectory, range: std::ops::Range<usize>) -> (Vec<f64>, Vec<f64>) {
    let f = |x: &[f32]| x[range.clone()].iter().map(|&v| f64::from(v)).collect();
    (f(&t.v), f(&t.i))
}

fn title_of(t: &MemristorTrajectory) -> String {
    format!(
        "{}: {} V, {} Hz, R_s {} ohm ({})",
        t.name,
        t.amplitude,
        t.frequency,
        t.r_s,
        t.split.as_str()
    )
}

/// Fig. 7: measured (dashed) and every model's (solid) `v`, `i` and `v-i` loop of `t`.
pub fn figure_7(
    path: &Path,
    t: &MemristorTrajectory,
    skip: usize,
    models: &[(String, &Response)],
) -> Result<(), Error> {
    let range = plot_range(t, skip);
    let time: Vec<f64> = range.clone().map(|k| t.time(k)).collect();
    let (mv, mi) = measured(t, range.clone());
    let mut v = vec![Series::new("measured", time.clone(), mv.clone())
        .dashed()
        .color(MEASURED)];
    let mut i = vec![Series::new("measured", time.clone(), ua(&mi))
        .dashed()
        .color(MEASURED)];
    let mut vi = vec![Series::new("measured", mv, ua(&mi))
        .dashed()
        .color(MEASURED)];
    for (k, (label, r)) in models.iter().enumerate() {
        let pv = r.v[range.clone()].to_vec();
        let pi = ua(&r.i[range.clone()]);
        let c = model_color(k);
        v.push(Series::new(label.clone(), time.clone(), pv.clone()).color(c));
        i.push(Series::new(label.clone(), time.clone(), pi.clone()).color(c));
        vi.push(Series::new(label.clone(), pv, pi).color(c));
    }
    let panels = [
        Panel::new("(a) memristor voltage", "t [s]", "v [V]", v),
        Panel::new("(b) current", "t [s]", "i [uA]", i),
        Panel::new("(c) v-i loop", "v [V]", "i [uA]", vi),
    ];
    plot_panels(path, &title_of(t), None, &panels, 3, (1800, 620))?;
    Ok(())
}

/// Fig. 8: `L_b` of every trajectory (Table I order) for every model, markers side by side on a
/// log axis.
pub fn figure_8(path: &Path, r: &EvalReport) -> Result<(), Error> {
    let names: Vec<String> = r
        .trajectories
        .iter()
        .map(|t| {
            if t.split == Split::Validation {
                format!("{}v", t.row)
            } else {
                t.row.to_string()
            }
        })
        .collect();
    let m = r.models.len().max(1) as f64;
    let width = 0.6_f64.min(0.15 * m);
    let series: Vec<Series> = r
        .models
        .iter()
        .enumerate()
        .map(|(k, model)| {
            let off = if m > 1.0 {
                -width / 2.0 + width * k as f64 / (m - 1.0)
            } else {
                0.0
            };
            Series::new(
                model.label.clone(),
                (0..r.trajectories.len()).map(|j| j as f64 + off).collect(),
                model.scores.iter().map(|s| s.lb).collect(),
            )
            .markers()
            .color(model_color(k))
        })
        .collect();
    let panel = Panel::new(
        "",
        "trajectory (row of Table I; v: validation)",
        "L_b",
        series,
    )
    .log_y()
    .categories(names);
    plot_panels(
        path,
        "L_b per trajectory",
        Some(&panel),
        &[],
        1,
        (1400, 620),
    )?;
    Ok(())
}

/// The epochs Fig. 6 shows: those asked for, or up to four of the saved ones spread over the
/// run; `saved` maps epoch to parameter file.
pub fn fig6_epochs(
    run: &Path,
    saved: &BTreeMap<u64, PathBuf>,
    asked: Option<&[u64]>,
) -> Result<Vec<u64>, Error> {
    let have: Vec<u64> = saved.keys().copied().collect();
    match asked {
        Some(list) => {
            for e in list {
                if !saved.contains_key(e) {
                    return Err(Error::Usage(format!(
                        "--fig6-epochs: {} has no parameters of epoch {e} (saved: {}; choose \
                         epochs with train.snapshot_epochs in the experiment file)",
                        run.display(),
                        have.iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            Ok(list.to_vec())
        }
        None if have.len() <= 4 => Ok(have),
        None => {
            // Evenly spread by position: the first, the last and two between (round(k n / 3)).
            let n = have.len() - 1;
            let mut pick: Vec<u64> = (0..4).map(|k| have[(k * n + 1) / 3]).collect();
            pick.dedup();
            Ok(pick)
        }
    }
}

/// The parameter files of a run by epoch: its snapshots, `best.json` and `checkpoint.json`.
pub fn saved_parameters(dir: &Path) -> Result<BTreeMap<u64, PathBuf>, Error> {
    let mut saved: BTreeMap<u64, PathBuf> = rundir::snapshots(dir)?.into_iter().collect();
    for file in [Checkpoint::BEST_FILE, Checkpoint::FILE] {
        let p = dir.join(file);
        if p.is_file() {
            let ck = Checkpoint::load_file(&p)?;
            saved.entry(ck.epoch).or_insert(p);
        }
    }
    Ok(saved)
}

/// Fig. 6: the run's learning curve (training and validation loss, the shown epochs marked) over
/// the `v-i` loops of trajectory `t` at those epochs.
#[allow(clippy::too_many_arguments)]
pub fn figure_6(
    path: &Path,
    c: &Candidate,
    ctx: &RunContext,
    epochs: &[u64],
    saved: &BTreeMap<u64, PathBuf>,
    t: &MemristorTrajectory,
    skip: usize,
    warmup: &Warmup,
    host: &Host,
) -> Result<(), Error> {
    let Engine::Runtime {
        solver, substeps, ..
    } = &c.engine
    else {
        return Ok(());
    };
    let col = |name: &str| -> Vec<f64> {
        ctx.records
            .iter()
            .map(|r| r.get(name).unwrap_or(f64::NAN))
            .collect()
    };
    let ep = col("epoch");
    let val = col("val_loss");
    let at = |e: u64| {
        ctx.records
            .iter()
            .find(|r| r.epoch() as u64 == e)
            .and_then(|r| r.get("val_loss"))
            .unwrap_or(f64::NAN)
    };
    let curve = Panel::new(
        "learning curve",
        "epoch",
        "loss",
        vec![
            Series::new("training loss (L)", ep.clone(), col("train_loss")).color(0),
            Series::new("validation loss (L_b)", ep, val).color(1),
            Series::new(
                "shown below",
                epochs.iter().map(|&e| e as f64).collect(),
                epochs.iter().map(|&e| at(e)).collect(),
            )
            .markers()
            .color(3),
        ],
    )
    .log_y();
    let range = plot_range(t, skip);
    let (mv, mi) = measured(t, range.clone());
    let mut loops = Vec::new();
    for &e in epochs {
        let file = &saved[&e];
        let ck = Checkpoint::load_file(file)?;
        let values = checkpoint_values(&ctx.model, &ck, file)?;
        let spec = ctx.model.to_spec(&values);
        let r = run_runtime(
            &spec,
            Quant::F32,
            *solver,
            *substeps,
            &[t],
            warmup,
            host,
            file,
        )?;
        let lb = score(t, &r[0], skip).lb;
        loops.push(Panel::new(
            format!("epoch {e}: L_b {}", sci(lb)),
            "v [V]",
            "i [uA]",
            vec![
                Series::new("measured", mv.clone(), ua(&mi))
                    .dashed()
                    .color(MEASURED),
                Series::new(
                    "model",
                    r[0].v[range.clone()].to_vec(),
                    ua(&r[0].i[range.clone()]),
                )
                .color(0),
            ],
        ));
    }
    let title = format!("{}, run {}: {}", c.label, ctx.dir.display(), title_of(t));
    let cols = loops.len().max(1);
    plot_panels(path, &title, Some(&curve), &loops, cols, (1600, 1000))?;
    Ok(())
}

/// A file-name-safe form of a label.
pub fn slug(label: &str) -> String {
    let mut s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traj(spp: usize, periods: usize) -> MemristorTrajectory {
        let n = spp * periods;
        let v_s: Vec<f32> = (0..n)
            .map(|k| (std::f64::consts::TAU * k as f64 / spp as f64).sin() as f32)
            .collect();
        MemristorTrajectory {
            name: "t.csv".into(),
            path: "t.csv".into(),
            manifest_line: 1,
            amplitude: 1.0,
            frequency: 1.0,
            r_s: 1e4,
            split: Split::Validation,
            dt: 1.0 / spp as f64,
            t0: 0.0,
            v: v_s.iter().map(|v| v * 0.5).collect(),
            i: v_s.iter().map(|v| v * 5e-5).collect(),
            v_s,
            measured: odeflash_reference::memristor::data::Measured::Both,
            lines: (0..n).collect(),
        }
    }

    #[test]
    fn score_is_eq_5_over_the_scored_samples() {
        let t = traj(10, 2);
        // A prediction off by a constant c in v only: NMSE(v) = c^2 / var(v) wherever scored.
        let c = 0.1;
        let r = Response {
            v: t.v.iter().map(|&v| f64::from(v) + c).collect(),
            i: t.i.iter().map(|&i| f64::from(i)).collect(),
        };
        let var = unbiased_variance(&t.v);
        for skip in [0, 10] {
            let s = score(&t, &r, skip);
            assert!((s.nmse_v - c * c / var).abs() < 1e-9 * s.nmse_v, "{s:?}");
            assert_eq!(s.nmse_i, 0.0);
            assert_eq!(s.lb, s.nmse_v + s.nmse_i);
        }
        // Errors only in the warm-up do not count when skipped.
        let mut r2 = r.clone();
        r2.v = t.v.iter().map(|&v| f64::from(v)).collect();
        r2.v[3] += 1.0;
        assert_eq!(score(&t, &r2, 10).lb, 0.0);
        assert!(score(&t, &r2, 0).lb > 0.0);
    }

    #[test]
    fn replayed_samples_match_the_baseline_warmup() {
        let t = traj(10, 3);
        let w = Warmup {
            mode: WarmupMode::Replay,
            periods: 1.5,
        };
        assert_eq!(w.replayed(&t), 15);
        let s = Warmup {
            mode: WarmupMode::Skip,
            periods: 1.5,
        };
        assert_eq!(s.replayed(&t), 0);
    }

    #[test]
    fn fig6_epoch_choice() {
        let saved: BTreeMap<u64, PathBuf> = [1u64, 2, 4, 8, 16, 32, 64, 100]
            .iter()
            .map(|&e| (e, PathBuf::from(format!("{e}"))))
            .collect();
        let run = Path::new("run");
        assert_eq!(fig6_epochs(run, &saved, None).unwrap(), [1, 4, 32, 100]);
        assert_eq!(fig6_epochs(run, &saved, Some(&[2, 64])).unwrap(), [2, 64]);
        let msg = fig6_epochs(run, &saved, Some(&[3]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("epoch 3") && msg.contains("run"), "{msg}");
        let few: BTreeMap<u64, PathBuf> = saved.into_iter().take(3).collect();
        assert_eq!(fig6_epochs(run, &few, None).unwrap(), [1, 2, 4]);
    }

    #[test]
    fn slug_is_file_safe() {
        assert_eq!(slug("SingleNN-MemODE (run a)"), "singlenn-memode-run-a");
    }
}
