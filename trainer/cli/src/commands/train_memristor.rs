//! `odeflash train memristor`: SingleNN-MemODE, DualNN-MemODE or an iterator net on rig data
//! (`manifest.toml` + CSVs), with the paper's presets.

use std::io::Write;

use crate::args::TrainMemristorArgs;
use crate::commands::train::{apply_overrides, train_and_report};
use crate::paper000::compact_start::from_baseline;
use crate::paper000::preset::preset;
use crate::Error;
use odeflash_reference::dataset::Dataset;
use odeflash_reference::memristor::MemristorDataset;
use odeflash_training::config::Experiment;
use odeflash_training::run::JobFile;
use odeflash_training::run::RunDir;

/// Where `--init-baseline` writes the parameters a run starts from.
const INIT_FILE: &str = "init.json";

/// Cuts each training record to its warm-up and the first `train_periods` periods after it
/// (`--train-periods`; all of it when `None`).
fn keep_periods(
    data: &mut Dataset,
    ds: &MemristorDataset,
    warmup_periods: f64,
    train_periods: Option<f64>,
) -> Result<(), Error> {
    let Some(p) = train_periods else {
        return Ok(());
    };
    if p.is_nan() || p <= 0.0 {
        return Err(Error::Input(format!(
            "--train-periods {p}: give a positive number of periods"
        )));
    }
    for (t, m) in data.train.iter_mut().zip(ds.train()) {
        let keep = ((warmup_periods + p) * m.samples_per_period()).round() as usize;
        let keep = keep.clamp(2, t.len());
        t.drive.truncate(keep);
        for c in &mut t.channels {
            c.truncate(keep);
        }
    }
    Ok(())
}

/// `odeflash train memristor`.
pub fn run(args: &TrainMemristorArgs, out: &mut dyn Write) -> Result<(), Error> {
    let c = &args.common;
    let (exp, job_file, dir) = if c.resume {
        let dir = RunDir::open_resume(&c.out)?;
        let mut exp = Experiment::parse(&dir.config_path(), &dir.read_config()?)?;
        if let Some(e) = c.epochs {
            exp.train.epochs = e;
        }
        (exp, JobFile::read(dir.path())?, dir)
    } else {
        let (ds, mut data) =
            odeflash_reference::memristor::data::training_view(&args.data, args.warmup_periods)?;
        keep_periods(&mut data, &ds, args.warmup_periods, args.train_periods)?;
        let (mut exp, mut model) = preset(args.model, args.preset, &ds)?;
        if let Some(p) = &c.config {
            // An experiment file replaces the preset's settings wholesale.
            exp = Experiment::read(p)?;
        }
        apply_overrides(&mut exp, c);
        if args.base_loss_only {
            exp.loss.derivatives = false;
        }
        if let Some(s) = args.derivative_stride {
            exp.loss.derivative_stride = s.max(1);
        }
        let init = match &args.init_baseline {
            Some(fit) => {
                let path = std::path::absolute(c.out.join(INIT_FILE))
                    .map_err(|e| Error::Input(format!("{}: {e}", c.out.display())))?;
                exp.train.init_from = Some(path.clone());
                Some((
                    path,
                    from_baseline(&mut model, fit, &ds, &exp, &data.train, args, out)?,
                ))
            }
            None => None,
        };
        exp.validate()?;
        let dir = RunDir::create(&c.out, &exp.to_toml())?;
        if let Some((path, ck)) = init {
            ck.save_as(&path)?;
        }
        let job = JobFile::Memristor {
            data: std::fs::canonicalize(&args.data).unwrap_or_else(|_| args.data.clone()),
            model,
            warmup_periods: args.warmup_periods,
            train_periods: args.train_periods,
        };
        job.write(dir.path())?;
        (exp, job, dir)
    };
    exp.validate()?;
    let JobFile::Memristor {
        data: data_dir,
        model,
        warmup_periods,
        train_periods,
    } = &job_file
    else {
        return Err(Error::Input(format!(
            "{}: not a memristor run",
            dir.path().display()
        )));
    };
    let (ds, mut data) =
        odeflash_reference::memristor::data::training_view(data_dir, *warmup_periods)?;
    keep_periods(&mut data, &ds, *warmup_periods, *train_periods)?;
    train_and_report(model, &exp, &data, &dir, c, out)
}
