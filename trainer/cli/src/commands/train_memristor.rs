//! `odeflash train memristor`: SingleNN-MemODE, DualNN-MemODE or an iterator net on rig data
//! (`manifest.toml` + CSVs), with the paper's presets.

use std::io::Write;

use crate::args::{MemristorModelArg, PresetArg, TrainMemristorArgs};
use crate::commands::train::{
    apply_overrides, refuse_differences, resumed_experiment, same_data, train_and_report,
};
use crate::paper000::check_warmup;
use crate::paper000::compact_start::from_baseline;
use crate::paper000::preset::preset;
use crate::Error;
use odeflash_reference::dataset::Dataset;
use odeflash_reference::memristor::MemristorDataset;
use odeflash_training::config::Experiment;
use odeflash_training::run::{data_hash, JobFile, RunDir};
use odeflash_training::surrogate::Kind;

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

/// Sections of an experiment file that `train memristor` takes from its preset and options.
const UNUSED_SECTIONS: [&str; 2] = ["net", "states"];

/// `odeflash train memristor`.
pub fn run(args: &TrainMemristorArgs, out: &mut dyn Write) -> Result<(), Error> {
    let c = &args.common;
    let warmup_periods = args.warmup_periods.unwrap_or(1.0);
    let (exp, job_file, dir) = if c.resume {
        let dir = RunDir::open_resume(&c.out)?;
        let (exp, mut diffs) =
            resumed_experiment(&dir, c, &UNUSED_SECTIONS, |e| loss_options(e, args))?;
        let job = JobFile::read(dir.path())?;
        diffs.extend(job_differences(args, &job));
        refuse_differences(&dir, &diffs, &exp)?;
        (exp, job, dir)
    } else {
        let (ds, mut data) =
            odeflash_reference::memristor::data::training_view(&args.data, warmup_periods)?;
        check_warmup(&data, &ds, warmup_periods)?;
        keep_periods(&mut data, &ds, warmup_periods, args.train_periods)?;
        let (mut exp, mut model) =
            preset(args.model, args.preset.unwrap_or(PresetArg::Paper), &ds)?;
        if let Some(p) = &c.config {
            exp = exp.layer_file(p, &UNUSED_SECTIONS)?;
        }
        apply_overrides(&mut exp, c);
        loss_options(&mut exp, args);
        exp.validate()?;
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
        let dir = RunDir::create(&c.out, &exp.to_toml_without(&UNUSED_SECTIONS))?;
        if let Some((path, ck)) = init {
            ck.save_as(&path)?;
        }
        let job = JobFile::Memristor {
            data: std::fs::canonicalize(&args.data).unwrap_or_else(|_| args.data.clone()),
            model,
            warmup_periods,
            train_periods: args.train_periods,
            data_hash: Some(data_hash(&data)),
            start: Some(args.start()),
        };
        job.write(dir.path())?;
        (exp, job, dir)
    };
    let JobFile::Memristor {
        data: data_dir,
        model,
        warmup_periods,
        train_periods,
        ..
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
    job_file.check_data(&data)?;
    train_and_report(model, &exp, &data, &dir, c, out)
}

/// `--base-loss-only` and `--derivative-stride`.
fn loss_options(exp: &mut Experiment, args: &TrainMemristorArgs) {
    if args.base_loss_only {
        exp.loss.derivatives = false;
    }
    if let Some(s) = args.derivative_stride {
        exp.loss.derivative_stride = s;
    }
}

/// Where the options of a resume that are not experiment settings differ from the run's job.
fn job_differences(args: &TrainMemristorArgs, job: &JobFile) -> Vec<String> {
    let mut diffs = Vec::new();
    same_data(&args.data, job, &mut diffs);
    let JobFile::Memristor {
        model,
        warmup_periods,
        train_periods,
        start,
        ..
    } = job
    else {
        diffs.push("the run is not a memristor run".into());
        return diffs;
    };
    let asked = args.start();
    let given = [
        args.preset.is_some(),
        args.init_baseline.is_some(),
        args.init_iterations.is_some(),
        args.init_candidates.is_some(),
    ];
    match start {
        Some(run) => {
            let show = |p: &Option<std::path::PathBuf>| {
                p.as_ref()
                    .map_or("none".to_string(), |p| p.display().to_string())
            };
            let pairs = [
                ("--preset", run.preset.clone(), asked.preset.clone()),
                (
                    "--init-baseline",
                    show(&run.init_baseline),
                    show(&asked.init_baseline),
                ),
                (
                    "--init-iterations",
                    run.init_iterations.to_string(),
                    asked.init_iterations.to_string(),
                ),
                (
                    "--init-candidates",
                    run.init_candidates.to_string(),
                    asked.init_candidates.to_string(),
                ),
            ];
            for ((flag, was, now), given) in pairs.into_iter().zip(given) {
                if given && was != now {
                    diffs.push(format!("{flag}: the run started with {was}, not {now}"));
                }
            }
        }
        // A run from before the start was recorded: its start options cannot be compared.
        None if given.contains(&true) => diffs.push(
            "--preset and --init-*: this run does not record how it started; drop them".into(),
        ),
        None => {}
    }
    let kind = match args.model {
        MemristorModelArg::Single => Kind::Single,
        MemristorModelArg::Dual => Kind::Dual,
        MemristorModelArg::Iterator => Kind::Iterator,
    };
    if kind != model.kind {
        diffs.push(format!(
            "--model: the run trains {:?}, not {kind:?}",
            model.kind
        ));
    }
    if let Some(w) = args.warmup_periods.filter(|w| w != warmup_periods) {
        diffs.push(format!(
            "--warmup-periods: the run has {warmup_periods}, not {w}"
        ));
    }
    if args.train_periods.is_some() && args.train_periods != *train_periods {
        diffs.push(format!(
            "--train-periods: the run has {}, not {}",
            train_periods.map_or("all".to_string(), |p| p.to_string()),
            args.train_periods
                .map_or("all".to_string(), |p| p.to_string()),
        ));
    }
    diffs
}
