//! `odeflash simulate`: runs a model on recorded drives.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use odeflash_runtime::batch::{simulate_batch, Arith, BatchError, BatchOptions, Input, Trajectory};
use odeflash_runtime::{Model, SimConfig, SimError, Simulator, Solver};

use crate::args::SimulateArgs;
use crate::Error;
use odeflash_reference::files::{claim_dir, claim_file, decode, read_model, write_atomic};
use odeflash_reference::stimulus::Stimulus;

/// Largest current magnitude of a trajectory, amperes.
pub fn max_abs_i(traj: &Trajectory) -> f32 {
    traj.i.iter().fold(0.0, |m, i| m.max(i.abs()))
}

/// Runs the command.
pub fn run(args: &SimulateArgs, out: &mut dyn Write) -> Result<(), Error> {
    let blob = read_model(&args.model)?;
    let model = decode(&args.model, &blob)?;
    let solver = Solver::from(args.solver_args.solver);
    let stimuli = args
        .stimulus
        .iter()
        .map(|p| Stimulus::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = output_paths(args)?;
    let x0 = args.x0.as_deref();
    if let Some(x0) = x0 {
        if x0.len() != model.n_states() {
            return Err(Error::Usage(format!(
                "--x0 has {} value(s), the model in {} has {} state(s)",
                x0.len(),
                args.model.display(),
                model.n_states()
            )));
        }
    }
    for stim in &stimuli {
        check_settings(args, &model, stim, solver)?;
    }

    let trajectories = if let [stim] = stimuli.as_slice() {
        vec![run_single(
            &args.model,
            &model,
            &config(stim, solver, args.solver_args.substeps),
            stim,
            x0,
        )?]
    } else {
        let arith = if args.fma {
            Arith::Auto
        } else {
            Arith::Portable
        };
        run_batch(
            &args.model,
            &model,
            solver,
            args.solver_args.substeps,
            &stimuli,
            x0,
            arith,
        )?
    };

    if stimuli.len() > 1 {
        claim_dir(&args.out, "simulate", args.force)?;
    } else {
        for path in &outputs {
            claim_file(path, args.force)?;
        }
    }
    let n = model.n_states();
    for ((stim, traj), path) in stimuli.iter().zip(&trajectories).zip(&outputs) {
        write_atomic(path, output_csv(stim, traj, n).as_bytes())?;
    }
    let method = match model.iterator_dt() {
        Some(_) => "iterator net".to_string(),
        None => format!("{} x{}", solver.cli_name(), args.solver_args.substeps),
    };
    for ((stim, traj), path) in stimuli.iter().zip(&trajectories).zip(&outputs) {
        writeln!(
            out,
            "{}: {} samples, dt {} s, {method}: {} clamp(s), max |i| {:.4e} A -> {}",
            stim.path.display(),
            stim.len(),
            stim.dt as f32,
            traj.clamped,
            max_abs_i(traj),
            path.display()
        )
        .map_err(Error::Stdout)?;
    }
    Ok(())
}

fn config(stim: &Stimulus, solver: Solver, substeps: u16) -> SimConfig {
    SimConfig {
        dt: stim.dt as f32,
        solver,
        substeps,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    }
}

/// Where each trajectory goes: `--out` itself for one stimulus (or `--out/NAME` if it is a
/// directory), `--out/NAME` for several. Refuses two outputs with the same name and an output
/// that would overwrite an input (a stimulus or the model).
fn output_paths(args: &SimulateArgs) -> Result<Vec<PathBuf>, Error> {
    let name = |p: &Path| {
        p.file_name()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Usage(format!("stimulus path {} has no file name", p.display())))
    };
    let paths = if let [stim] = args.stimulus.as_slice() {
        if args.out.is_dir() {
            vec![args.out.join(name(stim)?)]
        } else {
            vec![args.out.clone()]
        }
    } else {
        let mut seen = BTreeMap::new();
        let mut paths = Vec::new();
        for stim in &args.stimulus {
            let n = name(stim)?;
            if let Some(first) = seen.insert(n.clone(), stim) {
                return Err(Error::Usage(format!(
                    "{} and {} have the same file name; their outputs in {} would collide",
                    first.display(),
                    stim.display(),
                    args.out.display()
                )));
            }
            paths.push(args.out.join(n));
        }
        paths
    };
    let inputs: Vec<(PathBuf, &Path)> = args
        .stimulus
        .iter()
        .chain([&args.model])
        .filter_map(|p| Some((p.canonicalize().ok()?, p.as_path())))
        .collect();
    for out in &paths {
        let Ok(target) = out.canonicalize() else {
            continue;
        };
        if let Some((_, input)) = inputs.iter().find(|(c, _)| *c == target) {
            return Err(Error::Usage(format!(
                "the output {} would overwrite the input {}",
                out.display(),
                input.display()
            )));
        }
    }
    Ok(paths)
}

/// Checks that the model runs with these settings on this stimulus (iterator nets: its interval).
fn check_settings(
    args: &SimulateArgs,
    model: &Model<'_>,
    stim: &Stimulus,
    solver: Solver,
) -> Result<(), Error> {
    let cfg = config(stim, solver, args.solver_args.substeps);
    let mut scratch = vec![0.0f32; model.cost(solver, args.solver_args.substeps).scratch_f32];
    let config_err = |source| Error::Config {
        model: args.model.clone(),
        source,
    };
    let mut sim = Simulator::new(model, cfg, &mut scratch).map_err(|e| match e {
        SimError::SampleIntervalMismatch { model_dt, .. } => {
            stim.interval_mismatch(model_dt).into()
        }
        e => config_err(e),
    })?;
    sim.reset(args.x0.as_deref()).map_err(config_err)
}

/// Maps a runtime error during a run to the stimulus sample and line it concerns. The stimulus
/// was checked finite and within f32 when read, so a state that leaves the finite range is the
/// model's doing (`model` names its file), not the drive's.
fn simulation_error(model: &Path, stim: &Stimulus, e: SimError) -> Error {
    let last = stim.len().saturating_sub(1);
    let (sample, what) = match e {
        // `step` counts the steps completed: the failing one leads to sample `step + 1`.
        SimError::NonFiniteState { step } => {
            let k = (step as usize + 1).min(last);
            let t = |j: usize| stim.t.get(j).copied().unwrap_or(f64::NAN);
            let what = format!(
                "the model's state became non-finite at sample {k}, stepping from t = {} s to \
                 t = {} s, although the drive there is finite (v_s = {}); the likely cause is \
                 the model {}: huge weights or dynamics that blow up (look at it with `odeflash \
                 inspect`), or a step too large for it (try more --substeps)",
                t(k.saturating_sub(1)),
                t(k),
                stim.v_s.get(k).copied().unwrap_or(f32::NAN),
                model.display()
            );
            (k, what)
        }
        SimError::NonFiniteInput { step } => {
            let k = (step as usize).min(last);
            (
                k,
                format!("column `v_s`: the drive is not finite at sample {k}"),
            )
        }
        e => (0, format!("the simulation failed: {e}")),
    };
    Error::Simulation {
        path: stim.path.clone(),
        line: stim.lines.get(sample).copied().unwrap_or(1),
        sample,
        what,
        cause: e,
    }
}

/// Runs one stimulus through [`Simulator::run`].
pub fn run_single(
    model_path: &Path,
    model: &Model<'_>,
    cfg: &SimConfig,
    stim: &Stimulus,
    x0: Option<&[f32]>,
) -> Result<Trajectory, Error> {
    let n = stim.len();
    let cost = model.cost(cfg.solver, cfg.substeps);
    let mut scratch = vec![0.0f32; cost.scratch_f32];
    let err = |e| simulation_error(model_path, stim, e);
    let mut sim = Simulator::new(model, *cfg, &mut scratch).map_err(err)?;
    sim.reset(x0).map_err(err)?;
    let mut traj = Trajectory {
        v: vec![0.0; n],
        i: vec![0.0; n],
        x: vec![0.0; n * model.n_states()],
        clamped: 0,
    };
    sim.run(&stim.v_s, &mut traj.v, &mut traj.i, &mut traj.x)
        .map_err(err)?;
    traj.clamped = sim.clamp_count();
    Ok(traj)
}

/// Runs several stimuli as one batch through [`simulate_batch`], each at its own sample interval,
/// on all cores. With [`Arith::Portable`] the results equal [`run_single`]'s bit for bit; with
/// [`Arith::Auto`] the dense layers may fuse multiply-adds and differ by rounding.
pub fn run_batch(
    model_path: &Path,
    model: &Model<'_>,
    solver: Solver,
    substeps: u16,
    stimuli: &[Stimulus],
    x0: Option<&[f32]>,
    arith: Arith,
) -> Result<Vec<Trajectory>, Error> {
    let Some(first) = stimuli.first() else {
        return Ok(Vec::new());
    };
    let inputs: Vec<Input<'_>> = stimuli
        .iter()
        .map(|s| Input {
            drive: &s.v_s,
            x0,
            dt: Some(s.dt as f32),
        })
        .collect();
    let config = config(first, solver, substeps);
    let opts = BatchOptions { threads: 0, arith };
    simulate_batch(model, config, &inputs, opts).map_err(|e| {
        let (BatchError::Config { trajectory, error }
        | BatchError::Trajectory { trajectory, error }) = e;
        match (stimuli.get(trajectory), error) {
            (Some(stim), SimError::SampleIntervalMismatch { model_dt, .. }) => {
                stim.interval_mismatch(model_dt).into()
            }
            (Some(stim), error) => simulation_error(model_path, stim, error),
            (None, error) => simulation_error(model_path, first, error),
        }
    })
}

/// The output CSV: `t,v_s,v,i,x0,x1,...`, every value written so it reads back exactly.
pub fn output_csv(stim: &Stimulus, traj: &Trajectory, n_states: usize) -> String {
    let mut s = String::with_capacity(stim.len() * (16 * (4 + n_states)));
    s.push_str("t,v_s,v,i");
    for k in 0..n_states {
        let _ = write!(s, ",x{k}");
    }
    s.push('\n');
    let rows = stim.t.iter().zip(&stim.v_s).zip(&traj.v).zip(&traj.i);
    for ((((t, vs), v), i), x) in rows.zip(traj.x.chunks_exact(n_states.max(1))) {
        let _ = write!(s, "{t},{vs},{v},{i}");
        for xk in x {
            let _ = write!(s, ",{xk}");
        }
        s.push('\n');
    }
    s
}
