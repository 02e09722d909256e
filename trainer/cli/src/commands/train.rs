//! `odeflash train ode`, and what both `train` subcommands share: the experiment resolved (file,
//! then command-line overrides), the run directory prepared, the training loop dispatched to the
//! chosen backend, the closing report.

use std::io::Write;

use crate::args::{TrainCommon, TrainOdeArgs};
use crate::Error;
use odeflash_reference::dataset::{self, Dataset};
use odeflash_training::backend::BackendKind;
use odeflash_training::config::{Experiment, WindowStart};
use odeflash_training::model::{NeuralOde, TrainModel};
use odeflash_training::run::{data_hash, Interrupt, JobFile, Progress, RunDir};
use odeflash_training::train::{self, Job, Summary};

pub fn apply_overrides(exp: &mut Experiment, c: &TrainCommon) {
    if let Some(v) = c.epochs {
        exp.train.epochs = v;
    }
    if let Some(v) = c.lr {
        exp.train.lr = v;
    }
    if let Some(v) = c.batch_size {
        exp.train.batch_size = v;
    }
    if let Some(v) = c.seed {
        exp.train.seed = v;
    }
    if let Some(v) = c.window {
        exp.train.window = v;
    }
    if let Some(v) = c.clip_norm {
        exp.train.clip_norm = (v > 0.0).then_some(v);
    }
    if let Some(v) = c.average {
        exp.train.average = (v > 0.0).then_some(v);
    }
    if let Some(v) = c.window_start.map(WindowStart::from) {
        exp.train.window_start = v;
    }
    if let Some(v) = &c.init_from {
        exp.train.init_from = Some(std::fs::canonicalize(v).unwrap_or_else(|_| v.clone()));
    }
    if let Some(v) = c.solver {
        exp.solver.method = v;
    }
    if c.adaptive {
        exp.solver.adaptive = true;
    }
    if let Some(v) = c.stride {
        exp.solver.stride = v;
    }
}

/// On `--resume`: the run's experiment with `--epochs` applied, and where the settings the
/// command line or `--config` gives differ from the run's. A resume continues the run as it was
/// started: an option it would ignore is refused ([`refuse_differences`]), never dropped.
pub fn resumed_experiment(
    dir: &RunDir,
    c: &TrainCommon,
    unused: &[&str],
    command_line: impl Fn(&mut Experiment),
) -> Result<(Experiment, Vec<String>), Error> {
    let run = Experiment::parse(&dir.config_path(), &dir.read_config()?)?;
    let mut asked = match &c.config {
        Some(p) => run.layer_file(p, unused)?,
        None => run.clone(),
    };
    apply_overrides(&mut asked, c);
    command_line(&mut asked);
    let mut resumed = run.clone();
    if let Some(e) = c.epochs {
        resumed.train.epochs = e;
    }
    asked.train.epochs = resumed.train.epochs;
    let diffs = resumed.differences(&asked);
    Ok((resumed, diffs))
}

/// Refuses a resume whose command line differs from the run in `diffs`, or that would train
/// nothing (`exp`, the resumed experiment, has no epochs left).
pub fn refuse_differences(dir: &RunDir, diffs: &[String], exp: &Experiment) -> Result<(), Error> {
    if diffs.is_empty() {
        let done = dir.load_checkpoint()?.epoch;
        if exp.train.epochs <= done {
            return Err(Error::Usage(format!(
                "{}: the run has trained {done} of its {} epoch(s) already, so resuming it \
                 would train nothing; pass --epochs with more than {done} to train longer",
                dir.path().display(),
                exp.train.epochs
            )));
        }
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{}: --resume continues the run as it was started, but the command line asks for other \
         settings: {}; drop these options (only --epochs may change), or start a new run in \
         another directory",
        dir.path().display(),
        diffs.join("; ")
    )))
}

/// Input and output scaling from the training data, so the net sees order-one numbers: inputs
/// standardized, outputs scaled by the spread of the measured derivatives.
fn scale_from_data(model: &mut NeuralOde, data: &Dataset) {
    let n = model.f.outputs();
    let stats = |vals: &mut dyn Iterator<Item = f64>| {
        let (mut s, mut s2, mut k) = (0.0, 0.0, 0.0);
        for v in vals {
            s += v;
            s2 += v * v;
            k += 1.0;
        }
        let mean = s / k;
        let std = (s2 / k - mean * mean).max(0.0).sqrt();
        (mean, if std > 1e-12 { std } else { 1.0 })
    };
    for c in 0..n {
        let (m, sd) = stats(
            &mut data
                .train
                .iter()
                .flat_map(|t| t.channels[c].iter().map(|&v| v as f64)),
        );
        model.f.input_offset[c] = m as f32;
        model.f.input_scale[c] = (1.0 / sd) as f32;
        let (_, dsd) = stats(&mut data.train.iter().flat_map(|t| {
            t.channels[c]
                .windows(2)
                .map(move |w| (w[1] as f64 - w[0] as f64) / t.dt)
        }));
        model.f.output_scale[c] = dsd as f32;
    }
    let (m, sd) = stats(
        &mut data
            .train
            .iter()
            .flat_map(|t| t.drive.iter().map(|&v| v as f64)),
    );
    model.f.input_offset[n] = m as f32;
    model.f.input_scale[n] = (1.0 / sd) as f32;
}

/// Trains `model` on `data` into the run directory on the backend the user asked for, with
/// Ctrl-C handling and a progress bar, and reports how the run ended: the end of every `train`
/// command.
pub fn train_and_report<M: TrainModel>(
    model: &M,
    exp: &Experiment,
    data: &Dataset,
    dir: &RunDir,
    c: &TrainCommon,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let interrupt = Interrupt::install()?;
    let batches = data.train.len().div_ceil(exp.train.batch_size.max(1)) as u64;
    let progress = Progress::new(exp.train.epochs, batches, c.quiet);
    let job = Job {
        model,
        exp,
        data,
        dir,
        progress: &progress,
        interrupt: &interrupt,
    };
    let summary = dispatch(c.backend.into(), &job)?;
    report(out, &summary, dir)
}

/// Runs the training loop on the backend the user asked for.
fn dispatch<M: TrainModel>(backend: BackendKind, job: &Job<'_, M>) -> Result<Summary, Error> {
    backend.check_available().map_err(Error::Usage)?;
    match backend {
        BackendKind::Cpu => {
            train::train::<odeflash_training::backend::CpuAd, M>(job, &Default::default())
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            let device = odeflash_training::backend::cuda_device()?;
            train::train::<odeflash_training::backend::GpuAd, M>(job, &device)
        }
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => Err(Error::Usage("CUDA support is not built in".into())),
    }
}

/// `odeflash train ode`.
pub fn run_ode(args: &TrainOdeArgs, out: &mut dyn Write) -> Result<(), Error> {
    let c = &args.common;
    let (exp, job_file, dir) = if c.resume {
        let dir = RunDir::open_resume(&c.out)?;
        let (exp, mut diffs) = resumed_experiment(&dir, c, &[], |e| {
            if let Some(n) = args.states {
                e.states = n;
            }
        })?;
        let job_file = JobFile::read(dir.path())?;
        same_data(&args.data, &job_file, &mut diffs);
        refuse_differences(&dir, &diffs, &exp)?;
        (exp, job_file, dir)
    } else {
        let mut exp = match &c.config {
            Some(p) => Experiment::read(p)?,
            None => Experiment::default(),
        };
        apply_overrides(&mut exp, c);
        if let Some(n) = args.states {
            exp.states = n;
        }
        if exp.states == 0 {
            exp.states = 2;
        }
        exp.validate()?;
        let data = dataset::load(&args.data, exp.states)?;
        let n = exp.states;
        let mut model = NeuralOde {
            f: exp.net.build(n + 1, n)?,
            x0: data.train[0].at(0),
            name: "neural-ode".into(),
        };
        scale_from_data(&mut model, &data);
        if exp.solver.stride == 0 && exp.solver.substeps == 1 && !exp.solver.adaptive {
            exp.solver.stride = odeflash_training::config::auto_stride(&data);
        }
        exp.solver.stride = exp.solver.stride.max(1);
        let dir = RunDir::create(&c.out, &exp.to_toml())?;
        let job_file = JobFile::Ode {
            data: std::fs::canonicalize(&args.data).unwrap_or_else(|_| args.data.clone()),
            model,
            data_hash: Some(data_hash(&data)),
        };
        job_file.write(dir.path())?;
        (exp, job_file, dir)
    };
    let JobFile::Ode {
        data: data_dir,
        model,
        ..
    } = &job_file
    else {
        return Err(Error::Input(format!(
            "{}: not a neural-ODE run",
            dir.path().display()
        )));
    };
    let data = dataset::load(data_dir, model.n_states())?;
    job_file.check_data(&data)?;
    train_and_report(model, &exp, &data, &dir, c, out)
}

/// Notes in `diffs` when `--data` names another directory than the run's.
pub fn same_data(asked: &std::path::Path, job: &JobFile, diffs: &mut Vec<String>) {
    let asked = std::fs::canonicalize(asked).unwrap_or_else(|_| asked.to_path_buf());
    let (run, _) = job.data();
    if asked != run {
        diffs.push(format!(
            "--data: the run trains on {}, not {}",
            run.display(),
            asked.display()
        ));
    }
}

/// Prints how a run ended.
fn report(out: &mut dyn Write, s: &Summary, dir: &RunDir) -> Result<(), Error> {
    let p = dir.path().display();
    if s.interrupted {
        writeln!(
            out,
            "interrupted after {} complete epoch(s); resume with --resume --out {p}",
            s.epochs
        )
        .map_err(Error::Stdout)?;
    } else {
        writeln!(
            out,
            "trained {} epoch(s) in {:.1} s; best validation loss {:.4e}\nrun directory: {p} (metrics.csv, learning_curve.png, best.json)",
            s.epochs, s.seconds, s.best_val_loss
        )
        .map_err(Error::Stdout)?;
    }
    Ok(())
}
