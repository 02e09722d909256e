//! Export (`odeflash export`): the trained parameters into the runtime's format, checked before writing.
//!
//! The check runs the exported file in the runtime over every validation input and compares it
//! with the trained model evaluated by burn with the same fixed-step solver at the sample step,
//! so the only differences left are the runtime's arithmetic (and int8 rounding when asked for).
//! Above the tolerance nothing is written and the command fails.

use std::io::Write;

use burn::tensor::{Tensor, TensorData};
use odeflash_runtime::spec::Quant;

use crate::backend::Cpu;
use crate::config::Experiment;
use crate::config::SolverConfig;
use crate::diffsolve::Drive;
use crate::model::TrainModel;
use crate::nn::upload;
use crate::run::JobFile;
use crate::run::{Checkpoint, RunDir};
use crate::train::{predict, simulate_runtime};
use crate::Error;
use odeflash_reference::dataset::{self, Trajectory};
use std::path::{Path, PathBuf};

/// The trained model's channels on the validation inputs, by burn on the CPU with the runtime's
/// fixed-step method at the sample step (so only arithmetic differs from the runtime).
pub fn burn_reference<M: TrainModel>(
    model: &M,
    values: &[Vec<f32>],
    exp: &Experiment,
    trajs: &[Trajectory],
    x0s: &[Vec<f32>],
) -> Result<Vec<Vec<Vec<f32>>>, Error> {
    let device = Default::default();
    let shapes: Vec<[usize; 2]> = model.params().iter().map(|p| p.shape).collect();
    let params = upload::<Cpu>(values, &shapes, &device);
    let (solver, substeps) = exp.solver.runtime_method();
    let fixed = SolverConfig {
        method: solver,
        adaptive: false,
        stride: 1,
        substeps: substeps as usize,
        ..exp.solver
    };
    trajs
        .iter()
        .zip(x0s)
        .map(|(t, x0)| {
            let n = x0.len();
            let x0 = Tensor::<Cpu, 2>::from_data(TensorData::new(x0.clone(), [1, n]), &device);
            let drive = Drive {
                rows: vec![t.drive.clone()],
            };
            let consts = (!t.consts.is_empty()).then(|| {
                Tensor::<Cpu, 2>::from_data(
                    TensorData::new(t.consts.clone(), [1, t.consts.len()]),
                    &device,
                )
            });
            let (_, obs) = predict(
                model,
                &params,
                x0,
                &drive,
                &[t.dt as f32],
                consts,
                &fixed,
                &device,
            )?;
            let [s, _, c] = obs.dims();
            let v = obs.into_data().into_vec::<f32>().unwrap_or_default();
            Ok((0..c)
                .map(|ch| (0..s).map(|k| v[k * c + ch]).collect())
                .collect())
        })
        .collect()
}

/// Largest deviation between two sets of channel traces, relative to each measured channel's
/// standard deviation.
pub fn deviation(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>], trajs: &[Trajectory]) -> f64 {
    let mut worst = 0.0f64;
    for ((ta, tb), t) in a.iter().zip(b).zip(trajs) {
        for ((ca, cb), var) in ta.iter().zip(tb).zip(t.variances()) {
            let sd = var.sqrt();
            for (x, y) in ca.iter().zip(cb) {
                worst = worst.max((*x as f64 - *y as f64).abs() / sd);
            }
        }
    }
    worst
}

/// What to export from a run directory, and how strictly to check it.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The model file to write.
    pub out: PathBuf,
    /// Weight storage.
    pub quant: Quant,
    /// Largest accepted deviation from the trained model, as a fraction of each measured
    /// channel's standard deviation (default 1e-3 for f32, 5e-2 for int8).
    pub tolerance: Option<f64>,
    /// The last epoch instead of the best validation epoch.
    pub last: bool,
}

/// Exports the model of the run in `run_dir`, reporting the check and the file to `out`.
pub fn export_run(run_dir: &Path, args: &ExportOptions, out: &mut dyn Write) -> Result<(), Error> {
    let dir = RunDir::open_trained(run_dir)?;
    let exp = Experiment::parse(&dir.config_path(), &dir.read_config()?)?;
    match JobFile::read(dir.path())? {
        JobFile::Ode { data: d, model, .. } => {
            let data = dataset::load(&d, model.n_states())?;
            let x0s = data.validation.iter().map(|t| t.at(0)).collect();
            export(&model, &data, x0s, &exp, &dir, args, out)
        }
        JobFile::Memristor {
            data: d,
            model,
            warmup_periods,
            ..
        } => {
            let (_, data) = odeflash_reference::memristor::data::training_view(&d, warmup_periods)?;
            let x0s = data.validation.iter().map(|_| model.x0.clone()).collect();
            export(&model, &data, x0s, &exp, &dir, args, out)
        }
    }
}

fn export<M: TrainModel>(
    model: &M,
    data: &odeflash_reference::dataset::Dataset,
    x0s: Vec<Vec<f32>>,
    exp: &Experiment,
    dir: &RunDir,
    args: &ExportOptions,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let ck = if args.last {
        Checkpoint::load(dir.path())?
    } else {
        Checkpoint::load_best(dir.path())?
    };
    let n_params = model.params().len();
    let values: Vec<Vec<f32>> = ck
        .params
        .iter()
        .take(n_params)
        .map(|p| p.values.clone())
        .collect();
    let quant = args.quant;
    let tolerance = args.tolerance.unwrap_or(match quant {
        Quant::F32 => 1e-3,
        Quant::Int8 => 5e-2,
    });
    let blob = model
        .to_spec(&values)
        .try_encode(quant)
        .map_err(|e| Error::Train(format!("the trained model does not encode: {e}")))?;
    let m = blob.model().map_err(|e| Error::Train(e.to_string()))?;
    let device_out = simulate_runtime(model, &values, exp, &data.validation, &x0s, quant)?;
    let reference = burn_reference(model, &values, exp, &data.validation, &x0s)?;
    let dev = deviation(&device_out, &reference, &data.validation);
    let (solver, substeps) = exp.solver.runtime_method();
    writeln!(
        out,
        "checked {} validation trajectories ({} at {} sub-step(s) per sample): runtime vs trained model, max deviation {dev:.3e} of the channel std (tolerance {tolerance:e})",
        data.validation.len(),
        solver.cli_name(),
        substeps
    )
    .map_err(Error::Stdout)?;
    if dev.is_nan() || dev > tolerance {
        return Err(Error::Train(format!(
            "export refused: the {} model departs from the trained one by {dev:.3e} (> {tolerance:e}); nothing written",
            match quant {
                Quant::F32 => "f32",
                Quant::Int8 => "int8",
            }
        )));
    }
    odeflash_reference::files::write_atomic(&args.out, blob.as_bytes())?;
    let cost = m.cost(solver, substeps);
    writeln!(
        out,
        "wrote {} (epoch {}, {} bytes, scratch {} bytes, {} MACs per step)",
        args.out.display(),
        ck.epoch,
        cost.flash_bytes,
        cost.scratch_bytes,
        cost.macs_per_step
    )
    .map_err(Error::Stdout)
}
