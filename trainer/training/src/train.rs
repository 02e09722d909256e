//! The training loop: epochs of shuffled trajectory batches, each trajectory cut into windows
//! that are integrated in parallel as one batch, validation through the runtime, metrics,
//! checkpoints and resume.
//!
//! Why windows: burn records every tensor op, and a 1000-step RK4 graph of a small MLP is a long
//! chain of small ops whose bookkeeping dominates (1.66 s per iteration measured for the paper's
//! SingleNN at batch 2, against 0.34 s for Diffrax). Ten windows of 100 steps, integrated as one
//! batch of 20, do the same arithmetic in a tenth of the ops: 0.098 s. It also bounds memory:
//! the graph holds one window, whatever the trajectory length. Window starts come from the data
//! when every state is measured (the thesis's time-domain splitting), or are trained with a
//! continuity term tying each window's end to the next window's start (multiple shooting).

use std::time::Instant;

use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Int, Tensor, TensorData,
};
use odeflash_runtime::batch::{self, BatchOptions, Input};
use odeflash_runtime::spec::Quant;
use odeflash_runtime::SimConfig;

use crate::diffsolve::implicit::{Implicit, ImplicitMethod};
use crate::leaf::Leaf;

use crate::config::{Experiment, WindowStart};
use crate::diffsolve::{
    integrate_adaptive, integrate_fixed, Drive, ExplicitRk, FixedGrid, IteratorMap, PerRowTime,
};
use crate::freerun::FreeRun;
use crate::loss::{objective, Terms};
use crate::model::TrainModel;
use crate::nn::{download, upload};
use crate::optim::{clip_global_norm, Optimizer, ReduceLrOnPlateau};
use crate::run::{
    checkpoint::config_hash, Checkpoint, Interrupt, ParamTensor, Progress, Record, RunDir,
};
use crate::surrogate::Memristor;
use crate::Error;
use odeflash_reference::dataset::{Dataset, Trajectory};
use odeflash_reference::rng::Rng;

/// Windows of one trajectory: their start samples; every window spans `len` samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowPlan {
    /// Samples per window, both ends included.
    pub len: usize,
    /// Start sample of each window, per trajectory.
    pub starts: Vec<Vec<usize>>,
    /// Row of each trajectory's first window among all windows.
    pub offsets: Vec<usize>,
}

impl WindowPlan {
    /// Cuts trajectories of the given lengths into windows of `window` intervals (`0`: whole
    /// trajectories, which must then be of equal length). A last window that would run past the
    /// end starts earlier instead, so every sample is covered and none is dropped.
    pub fn new(lengths: &[usize], window: usize) -> Result<Self, String> {
        let min = lengths.iter().copied().min().unwrap_or(0);
        let w = if window == 0 {
            if lengths.iter().any(|&l| l != min) {
                return Err(
                    "train.window = 0 needs trajectories of equal length; set a window".into(),
                );
            }
            min.saturating_sub(1)
        } else {
            window
        };
        if w == 0 || min < w + 1 {
            return Err(format!(
                "a trajectory has {min} samples, fewer than one window of {} intervals",
                w
            ));
        }
        let mut starts = Vec::new();
        let mut offsets = Vec::new();
        let mut total = 0;
        for &n in lengths {
            let last = n - 1 - w;
            let mut s: Vec<usize> = (0..=last).step_by(w).collect();
            if *s.last().unwrap_or(&0) != last {
                s.push(last);
            }
            offsets.push(total);
            total += s.len();
            starts.push(s);
        }
        Ok(WindowPlan {
            len: w + 1,
            starts,
            offsets,
        })
    }

    /// Total windows.
    pub fn total(&self) -> usize {
        self.starts.iter().map(Vec::len).sum()
    }
}

/// What a training batch is cut into.
enum BatchKind<'a> {
    /// Windows solved in parallel (learned or measured starts).
    Windows(WindowPlan),
    /// Whole records run from the model's own initial state.
    FreeRun(FreeRun<'a>),
}

impl<'a> BatchKind<'a> {
    /// What a batch is trained on: whole free-running records, or windows.
    fn new<M: TrainModel>(
        model: &'a M,
        exp: &'a Experiment,
        lengths: &[usize],
    ) -> Result<Self, Error> {
        Ok(match exp.train.window_start {
            WindowStart::FreeRun => BatchKind::FreeRun(FreeRun::new(
                model.as_any().downcast_ref::<Memristor>().ok_or_else(|| {
                    Error::Input(
                        "train.window_start = \"free_run\" is implemented for the memristor \
                         surrogates"
                            .into(),
                    )
                })?,
                &exp.solver,
                &exp.loss,
            )?),
            _ => BatchKind::Windows(
                WindowPlan::new(lengths, exp.train.window).map_err(Error::Input)?,
            ),
        })
    }

    /// The loss of one batch (`chunk` of the training records), its terms, and the gradient of
    /// every parameter (none when the loss is not finite).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn gradient<B: AutodiffBackend, M: TrainModel>(
        &self,
        job: &Job<'_, M>,
        variances: &[[Vec<f64>; 3]],
        chunk: &[usize],
        params: &[Tensor<B::InnerBackend, 2>],
        shapes: &[[usize; 2]],
        learned: bool,
        device: &B::Device,
    ) -> Result<(f64, Terms, Vec<Tensor<B::InnerBackend, 2>>), Error> {
        let data = job.data;
        Ok(match self {
            BatchKind::FreeRun(fr) => {
                let trajs: Vec<&Trajectory> = chunk.iter().map(|&i| &data.train[i]).collect();
                let vars: Vec<&[Vec<f64>; 3]> = chunk.iter().map(|&i| &variances[i]).collect();
                let e = fr.evaluate(&download(params), &trajs, &vars)?;
                let g = upload::<B::InnerBackend>(&e.grads, shapes, device);
                (e.loss, e.terms, g)
            }
            BatchKind::Windows(plan) => {
                let (leaf, ad) = Leaf::<B>::new(params);
                let (loss, terms) = batch_objective(
                    job.model,
                    job.exp,
                    &data.train,
                    variances,
                    plan,
                    chunk,
                    &ad,
                    learned,
                    device,
                )?;
                let value = scalar(loss.clone().inner());
                let g = if value.is_finite() {
                    leaf.grads(&loss.backward())
                } else {
                    Vec::new()
                };
                (value, terms, g)
            }
        })
    }
}

/// What a training run returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Epochs completed (including those before a resume).
    pub epochs: u64,
    /// Best validation loss.
    pub best_val_loss: f64,
    /// Final parameter values.
    pub params: Vec<Vec<f32>>,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
    /// Wall time of this invocation, seconds.
    pub seconds: f64,
}

/// Everything a run needs besides the backend.
pub struct Job<'a, M: TrainModel> {
    /// The model.
    pub model: &'a M,
    /// The experiment.
    pub exp: &'a Experiment,
    /// The data.
    pub data: &'a Dataset,
    /// The run directory (created, or opened for resuming).
    pub dir: &'a RunDir,
    /// Progress display.
    pub progress: &'a Progress,
    /// Ctrl-C flag.
    pub interrupt: &'a Interrupt,
}

/// Paper 000's L_b for one trajectory (eq. 4-5): the normalized MSE of each channel, divided by
/// the trajectory's own unbiased variance, summed over channels; the first `warmup` samples
/// (a model settling from an unknown initial state) are left out.
pub fn nmse(pred: &[Vec<f32>], t: &Trajectory) -> f64 {
    let var = t.variances();
    let skip = t.warmup.min(t.len().saturating_sub(1));
    pred.iter()
        .zip(&t.channels)
        .zip(&var)
        .map(|((p, y), &v)| odeflash_reference::dataset::nmse_with(&y[skip..], &p[skip..], v))
        .sum()
}

/// Simulates trajectories with the runtime (batched, f32, the deployed solver) from the given
/// initial states, returning each trajectory's observed channels. Trajectories with different
/// rig constants (series resistors) run as separate runtime models, as each rig would.
pub fn simulate_runtime<M: TrainModel>(
    model: &M,
    values: &[Vec<f32>],
    exp: &Experiment,
    trajs: &[Trajectory],
    x0s: &[Vec<f32>],
    quant: Quant,
) -> Result<Vec<Vec<Vec<f32>>>, Error> {
    let mut out: Vec<Vec<Vec<f32>>> = vec![Vec::new(); trajs.len()];
    let mut groups: Vec<(Vec<f32>, Vec<usize>)> = Vec::new();
    for (k, t) in trajs.iter().enumerate() {
        match groups.iter_mut().find(|g| g.0 == t.consts) {
            Some(g) => g.1.push(k),
            None => groups.push((t.consts.clone(), vec![k])),
        }
    }
    for (consts, members) in groups {
        let blob = model
            .to_spec_with(values, &consts)
            .try_encode(quant)
            .map_err(|e| Error::Train(format!("the model does not encode: {e}")))?;
        let m = blob
            .model()
            .map_err(|e| Error::Train(format!("the model does not decode: {e}")))?;
        let sub: Vec<Trajectory> = members.iter().map(|&k| trajs[k].clone()).collect();
        let sub_x0: Vec<Vec<f32>> = members.iter().map(|&k| x0s[k].clone()).collect();
        let res = simulate_decoded(model, &m, exp, &sub, &sub_x0)?;
        for (k, r) in members.into_iter().zip(res) {
            out[k] = r;
        }
    }
    Ok(out)
}

/// Simulates trajectories with an already decoded runtime model; see [`simulate_runtime`].
pub fn simulate_decoded<M: TrainModel>(
    model: &M,
    m: &odeflash_runtime::Model<'_>,
    exp: &Experiment,
    trajs: &[Trajectory],
    x0s: &[Vec<f32>],
) -> Result<Vec<Vec<Vec<f32>>>, Error> {
    Ok(run_decoded(m, exp, trajs, x0s)?
        .iter()
        .map(|t| model.runtime_channels(t))
        .collect())
}

/// Runs the runtime's batched path over trajectories, each at its own sample interval.
pub fn run_decoded(
    m: &odeflash_runtime::Model<'_>,
    exp: &Experiment,
    trajs: &[Trajectory],
    x0s: &[Vec<f32>],
) -> Result<Vec<batch::Trajectory>, Error> {
    let (solver, substeps) = exp.solver.runtime_method();
    let cfg = SimConfig {
        dt: m
            .iterator_dt()
            .unwrap_or_else(|| trajs.first().map_or(1.0, |t| t.dt as f32)),
        solver,
        substeps,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let inputs: Vec<Input<'_>> = trajs
        .iter()
        .zip(x0s)
        .map(|(t, x0)| Input::new(&t.drive).with_x0(x0).with_dt(t.dt as f32))
        .collect();
    batch::simulate_batch(m, cfg, &inputs, BatchOptions::default()).map_err(|e| match e {
        batch::BatchError::Trajectory {
            error: odeflash_runtime::SimError::NonFiniteState { .. },
            ..
        } => Error::Diverged(format!("simulation failed: {e}")),
        _ => Error::Train(format!("simulation failed: {e}")),
    })
}

/// Solves the model over a batch of windows (`x0: [batch, n]`, drives of `drive.rows[b]`, each
/// row at its own sample interval `dts[b]`) and observes it: `([samples, batch, n], [samples,
/// batch, channels])`. The solve runs in sample units, each row's field scaled by its interval;
/// iterator nets step once per sample.
#[allow(clippy::too_many_arguments)]
pub fn predict<B: Backend, M: TrainModel>(
    model: &M,
    p: &[Tensor<B, 2>],
    x0: Tensor<B, 2>,
    drive: &Drive,
    dts: &[f32],
    consts: Option<Tensor<B, 2>>,
    solver: &crate::config::SolverConfig,
    device: &B::Device,
) -> Result<(Tensor<B, 3>, Tensor<B, 3>), Error> {
    let l = drive.rows.first().map_or(0, Vec::len);
    let nw = drive.batch();
    let field = model.field(p, consts.clone(), device);
    let x = if model.is_iterator() {
        let map = IteratorMap {
            residual: model.iterator_residual(),
        };
        integrate_fixed(
            field.as_ref(),
            &map,
            x0,
            drive,
            1.0,
            l,
            FixedGrid::PER_SAMPLE,
            model.state_bounds(),
        )?
    } else {
        let scaled = PerRowTime {
            field: field.as_ref(),
            dt: tensor2::<B>(dts.to_vec(), [nw, 1], device),
        };
        let explicit = ExplicitRk(solver.method);
        let implicit = ImplicitMethod::of_solver(solver.method).map(Implicit::new);
        match solver.adaptive() {
            Some(a) => integrate_adaptive(&scaled, x0, drive, 1.0, l, a)?.0,
            None => integrate_fixed(
                &scaled,
                match &implicit {
                    Some(s) => s as &dyn crate::diffsolve::Stepper<B>,
                    None => &explicit,
                },
                x0,
                drive,
                1.0,
                l,
                solver.grid(),
                model.state_bounds(),
            )?,
        }
    };
    let obs = model.observe(p, x.clone(), drive.table::<B>(device), consts);
    Ok((x, obs))
}

fn tensor2<B: Backend>(v: Vec<f32>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// Initial states of every window from a runtime simulation of the current model from its own
/// initial state (used when window starts are learned and the states are not measured).
fn simulated_starts<M: TrainModel>(
    model: &M,
    values: &[Vec<f32>],
    exp: &Experiment,
    data: &Dataset,
    plan: &WindowPlan,
) -> Result<Vec<f32>, Error> {
    let n = model.n_states();
    let spec_x0 = model.to_spec(values).x0;
    let mut starts = Vec::with_capacity(plan.total() * n);
    for (t, s) in data.train.iter().zip(&plan.starts) {
        let blob = model
            .to_spec_with(values, &t.consts)
            .try_encode(Quant::F32)
            .map_err(|e| Error::Train(format!("initial model does not encode: {e}")))?;
        let m = blob.model().map_err(|e| Error::Train(e.to_string()))?;
        let traj = &run_decoded(
            &m,
            exp,
            std::slice::from_ref(t),
            std::slice::from_ref(&spec_x0),
        )?[0];
        for &k in s {
            starts.extend_from_slice(&traj.x[k * n..(k + 1) * n]);
        }
    }
    Ok(starts)
}

/// The objective of one batch of training windows: the windows of trajectories `chunk`, each
/// solved from its start (learned, with the continuity term, or measured), the paper's terms
/// against the data, the constraint loss. `ad` holds the model's parameters, then the learned
/// window starts when `learned`. Shared by [`train`] and the `train_iter` benchmark, which
/// times exactly this.
#[allow(clippy::too_many_arguments)]
pub fn batch_objective<B: Backend, M: TrainModel>(
    model: &M,
    exp: &Experiment,
    trajs: &[Trajectory],
    variances: &[[Vec<f64>; 3]],
    plan: &WindowPlan,
    chunk: &[usize],
    ad: &[Tensor<B, 2>],
    learned: bool,
    device: &B::Device,
) -> Result<(Tensor<B, 1>, Terms), Error> {
    let (n, c, l) = (model.n_states(), model.n_channels(), plan.len);
    let n_model = ad.len() - usize::from(learned);
    // Windows of this batch, trajectory-major.
    let rows: Vec<(usize, usize, usize)> = chunk
        .iter()
        .flat_map(|&t| {
            plan.starts[t]
                .iter()
                .enumerate()
                .map(move |(k, &s)| (t, k, s))
        })
        .collect();
    let nw = rows.len();
    let drive = Drive {
        rows: rows
            .iter()
            .map(|&(t, _, s)| trajs[t].drive[s..s + l].to_vec())
            .collect(),
    };
    let mut target = Vec::with_capacity(l * nw * c);
    for i in 0..l {
        for &(t, _, s) in &rows {
            target.extend(trajs[t].channels.iter().map(|ch| ch[s + i]));
        }
    }
    let x0 = if learned {
        let idx: Vec<i64> = rows
            .iter()
            .map(|&(t, k, _)| (plan.offsets[t] + k) as i64)
            .collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [nw]), device);
        ad[n_model].clone().select(0, idx)
    } else {
        let v: Vec<f32> = rows.iter().flat_map(|&(t, _, s)| trajs[t].at(s)).collect();
        tensor2::<B>(v, [nw, n], device)
    };
    let k = trajs[chunk[0]].consts.len();
    let consts = (k > 0).then(|| {
        let v: Vec<f32> = rows
            .iter()
            .flat_map(|&(t, _, _)| trajs[t].consts.clone())
            .collect();
        tensor2::<B>(v, [nw, k], device)
    });
    let dts: Vec<f32> = rows.iter().map(|&(t, _, _)| trajs[t].dt as f32).collect();
    let (x, obs) = predict(
        model,
        &ad[..n_model],
        x0,
        &drive,
        &dts,
        consts,
        &exp.solver,
        device,
    )?;
    let target = Tensor::<B, 3>::from_data(TensorData::new(target, [l, nw, c]), device);
    let w = |order: usize| -> Tensor<B, 3> {
        let v: Vec<f32> = rows
            .iter()
            .flat_map(|&(t, _, _)| variances[t][order].iter().map(|v| (1.0 / v) as f32))
            .collect();
        Tensor::from_data(TensorData::new(v, [1, nw, c]), device)
    };
    let con = model.constraint_loss(&ad[..n_model], &x, exp.loss.gamma);
    let (mut loss, terms) = objective(obs, target, [w(0), w(1), w(2)], con, &exp.loss);
    if learned && exp.train.continuity_weight > 0.0 {
        // Each window's state at the next window's start sample against that start.
        let (mut from, mut to) = (Vec::new(), Vec::new());
        for (r, &(t, k, s)) in rows.iter().enumerate() {
            if let Some(&next) = plan.starts[t].get(k + 1) {
                from.push(((next - s) * nw + r) as i64);
                to.push((plan.offsets[t] + k + 1) as i64);
            }
        }
        if !from.is_empty() {
            let m = from.len();
            let from = Tensor::<B, 1, Int>::from_data(TensorData::new(from, [m]), device);
            let to = Tensor::<B, 1, Int>::from_data(TensorData::new(to, [m]), device);
            let ends = x.reshape([l * nw, n]).select(0, from);
            let starts = ad[n_model].clone().select(0, to);
            loss = loss + (ends - starts).powi_scalar(2).mean() * exp.train.continuity_weight;
        }
    }
    Ok((loss, terms))
}

/// Trains `job.model` on the autodiff backend `B`.
pub fn train<B: AutodiffBackend, M: TrainModel>(
    job: &Job<'_, M>,
    device: &B::Device,
) -> Result<Summary, Error> {
    let (model, exp, data) = (job.model, job.exp, job.data);
    let started = Instant::now();
    let n = model.n_states();
    let lengths: Vec<usize> = data.train.iter().map(Trajectory::len).collect();
    let objective = BatchKind::new(model, exp, &lengths)?;
    let learned = matches!(objective, BatchKind::Windows(_))
        && (exp.train.window_start == WindowStart::Learned || !model.states_observed());
    let defs = model.params();
    let mut shapes: Vec<[usize; 2]> = defs.iter().map(|d| d.shape).collect();
    let mut names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    let hash = run_hash(exp);

    // Parameters, optimizer and scheduler: fresh, or from the checkpoint.
    let mut rng = Rng::new(exp.train.seed);
    let mut values = model.init(&mut rng);
    if let Some(dir) = &exp.train.init_from {
        load_init_from(dir, &names, &shapes, &mut values)?;
    }
    if let (true, BatchKind::Windows(plan)) = (learned, &objective) {
        shapes.push([plan.total(), n]);
        names.push("window_starts".into());
        values.push(simulated_starts(model, &values, exp, data, plan)?);
    }
    let lr = exp.train.lr;
    let (mut opt, mut sched) = optimizer_and_schedule::<B::InnerBackend>(exp)?;
    let mut resumed = Resumed {
        values,
        lr,
        rng,
        epoch0: 0,
        global_step: 0,
        best: None,
        saved_average: None,
    };
    if job.dir.is_resumed() {
        resume(
            job,
            &hash,
            &names,
            &shapes,
            opt.as_mut(),
            &mut sched,
            device,
            &mut resumed,
        )?;
    }
    let Resumed {
        mut values,
        mut lr,
        mut rng,
        epoch0,
        mut global_step,
        mut best,
        saved_average,
    } = resumed;
    let mut average = parameter_average(job, saved_average, &values)?;
    let mut params: Vec<Tensor<B::InnerBackend, 2>> = upload(&values, &shapes, device);
    let mut metrics = job.dir.metrics(epoch0)?;

    // Per trajectory: variances of the channels and of their first and second differences.
    let variances: Vec<[Vec<f64>; 3]> = data
        .train
        .iter()
        .map(|t| [0, 1, 2].map(|o| t.derivative_variances_over(o, exp.loss.derivative_stride)))
        .collect();
    let bs = exp.train.batch_size.min(data.train.len());
    let batches = data.train.len().div_ceil(bs);
    let mut interrupted = false;
    for epoch in epoch0..exp.train.epochs {
        job.progress.start_epoch(epoch + 1);
        let t_epoch = Instant::now();
        let perm = rng.permutation(data.train.len());
        let mut sums = EpochSums::default();
        for chunk in perm.chunks(bs) {
            let (value, terms, mut g) = objective
                .gradient::<B, M>(job, &variances, chunk, &params, &shapes, learned, device)?;
            if !value.is_finite() {
                return Err(Error::Train(format!(
                    "epoch {}: the training loss became {value}; lower train.lr, clip gradients or use smaller steps",
                    epoch + 1
                )));
            }
            let norm = clip_and_step(exp, opt.as_mut(), lr, &mut params, &mut g, average.as_mut());
            global_step += 1;
            sums.add(value, norm, &terms);
            job.progress.batch(value);
            if job.interrupt.requested() {
                interrupted = true;
                break;
            }
        }
        if interrupted {
            break;
        }
        values = download(&params);
        // What is validated and kept: the parameters, or their average.
        let kept = average.as_ref().unwrap_or(&values);
        let val_loss = epoch_validation_loss(model, kept, exp, data)?;
        job.progress.set_val_loss(val_loss);
        if let Some(s) = sched.as_mut() {
            lr = s.step(val_loss);
        }
        metrics.append(sums.record(epoch + 1, batches, val_loss, lr, t_epoch))?;
        best = save_epoch(
            job,
            EpochState {
                epoch: epoch + 1,
                global_step,
                rng: &rng,
                names: &names,
                shapes: &shapes,
                values: &values,
                average: average.as_deref(),
                optimizer: opt.as_ref(),
                scheduler: sched.as_ref(),
                lr,
                best,
                hash: &hash,
            },
            val_loss,
        )?;
        odeflash_reference::plot::learning_curve(
            &job.dir.learning_curve_path(),
            metrics.records(),
        )?;
    }
    job.progress.finish();
    Ok(Summary {
        epochs: if interrupted {
            global_step / batches.max(1) as u64
        } else {
            exp.train.epochs.max(epoch0)
        },
        best_val_loss: best.unwrap_or(f64::NAN),
        params: download(&params),
        interrupted,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Clips the gradient to `train.clip_norm` and, when its norm is finite, steps the optimizer
/// and the parameter average; returns the norm before clipping (a skipped step shows as a
/// non-finite norm in the metrics).
fn clip_and_step<B: burn::tensor::backend::Backend>(
    exp: &Experiment,
    opt: &mut dyn Optimizer<B>,
    lr: f64,
    params: &mut [Tensor<B, 2>],
    g: &mut [Tensor<B, 2>],
    average: Option<&mut Vec<Vec<f32>>>,
) -> f64 {
    let norm = clip_global_norm(g, exp.train.clip_norm.unwrap_or(f64::INFINITY));
    if norm.is_finite() {
        opt.step(lr, params, g);
        if let (Some(decay), Some(avg)) = (exp.train.average, average) {
            ema_update(avg, &download(params), decay);
        }
    }
    norm
}

/// The hash a resumed run must match: training longer (`--resume --epochs N`) is the same run;
/// anything else is not.
fn run_hash(exp: &Experiment) -> String {
    let mut e = exp.clone();
    e.train.epochs = 0;
    config_hash(&e.to_toml())
}

/// [`validation_loss`] at the end of an epoch: a model that blows up on a validation record
/// scores infinity and training goes on (the free run's gradients usually pull it back); the
/// best epoch stays the best.
fn epoch_validation_loss<M: TrainModel>(
    model: &M,
    values: &[Vec<f32>],
    exp: &Experiment,
    data: &Dataset,
) -> Result<f64, Error> {
    match validation_loss(model, values, exp, data) {
        Err(Error::Diverged(_)) => Ok(f64::INFINITY),
        other => other,
    }
}

/// The experiment's optimizer, and its learning-rate schedule when it has one.
#[allow(clippy::type_complexity)]
fn optimizer_and_schedule<B: burn::tensor::backend::Backend>(
    exp: &Experiment,
) -> Result<(Box<dyn Optimizer<B>>, Option<ReduceLrOnPlateau>), Error> {
    let opt = exp
        .optimizer
        .try_build()
        .map_err(|e| Error::Input(format!("optimizer: {e}")))?;
    let sched = exp
        .scheduler
        .clone()
        .map(|c| ReduceLrOnPlateau::new(c, exp.train.lr))
        .transpose()
        .map_err(|e| Error::Input(format!("scheduler: {e}")))?;
    Ok((opt, sched))
}

/// Sums over an epoch's batches, for its metrics record.
#[derive(Default)]
struct EpochSums {
    loss: f64,
    norm: f64,
    terms: [f64; 4],
}

impl EpochSums {
    fn add(&mut self, loss: f64, norm: f64, t: &Terms) {
        self.loss += loss;
        self.norm += norm;
        for (s, v) in self
            .terms
            .iter_mut()
            .zip([t.base, t.velocity, t.curvature, t.constraint])
        {
            *s += v;
        }
    }

    /// The epoch's metrics record: batch means, the validation loss and the learning rate.
    fn record(&self, epoch: u64, batches: usize, val_loss: f64, lr: f64, t: Instant) -> Record {
        let b = batches as f64;
        Record::new(epoch)
            .with("train_loss", self.loss / b)
            .with("val_loss", val_loss)
            .with("lr", lr)
            .with("grad_norm", self.norm / b)
            .with("loss_base", self.terms[0] / b)
            .with("loss_velocity", self.terms[1] / b)
            .with("loss_curvature", self.terms[2] / b)
            .with("loss_constraint", self.terms[3] / b)
            .with("seconds", t.elapsed().as_secs_f64())
    }
}

/// Where a run stands: fresh, or as its checkpoint left it.
struct Resumed {
    values: Vec<Vec<f32>>,
    lr: f64,
    rng: Rng,
    epoch0: u64,
    global_step: u64,
    best: Option<f64>,
    saved_average: Option<serde_json::Value>,
}

/// Restores the run's checkpoint into `st`, the optimizer and the scheduler, refusing one of
/// another configuration or model.
#[allow(clippy::too_many_arguments)]
fn resume<M: TrainModel, B: burn::tensor::backend::Backend>(
    job: &Job<'_, M>,
    hash: &str,
    names: &[String],
    shapes: &[[usize; 2]],
    opt: &mut dyn Optimizer<B>,
    sched: &mut Option<ReduceLrOnPlateau>,
    device: &B::Device,
    st: &mut Resumed,
) -> Result<(), Error> {
    let ck = job.dir.load_checkpoint()?;
    if ck.config_hash != hash {
        return Err(Error::Input(format!(
            "{}: the run was started with another configuration; resume with the same settings",
            job.dir.config_path().display()
        )));
    }
    if ck.params.len() != names.len()
        || ck
            .params
            .iter()
            .zip(names)
            .zip(shapes)
            .any(|((p, n), s)| &p.name != n || &p.shape != s)
    {
        return Err(Error::Input(format!(
            "{}: its parameters do not match the model",
            job.dir.checkpoint_path().display()
        )));
    }
    st.values = ck.params.iter().map(|p| p.values.clone()).collect();
    let state = serde_json::from_value(ck.optimizer.get("state").cloned().unwrap_or_default())
        .map_err(|e| Error::Input(format!("checkpoint optimizer state: {e}")))?;
    opt.load_state(state, device)
        .map_err(|e| Error::Input(format!("checkpoint optimizer state: {e}")))?;
    if let Some(s) = sched.as_mut() {
        *s = serde_json::from_value(ck.scheduler.clone())
            .map_err(|e| Error::Input(format!("checkpoint scheduler state: {e}")))?;
        st.lr = s.lr();
    }
    st.lr = ck
        .optimizer
        .get("lr")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(st.lr);
    st.rng = Rng::from_state(ck.rng_state);
    st.epoch0 = ck.epoch;
    st.global_step = ck.global_step;
    st.best = ck.best_val_loss;
    st.saved_average = ck.optimizer.get("average").cloned();
    Ok(())
}

/// The moving average of the parameters (`train.average`), carried through checkpoints: the
/// saved one on resume, else the parameters themselves.
fn parameter_average<M: TrainModel>(
    job: &Job<'_, M>,
    saved: Option<serde_json::Value>,
    values: &[Vec<f32>],
) -> Result<Option<Vec<Vec<f32>>>, Error> {
    Ok(match (job.exp.train.average, saved) {
        (None, _) => None,
        (Some(_), Some(v)) if !v.is_null() => {
            let avg: Vec<Vec<f32>> = serde_json::from_value(v)
                .map_err(|e| Error::Input(format!("checkpoint parameter average: {e}")))?;
            if avg.len() != values.len() || avg.iter().zip(values).any(|(a, v)| a.len() != v.len())
            {
                return Err(Error::Input(format!(
                    "{}: its parameter average does not match the model",
                    job.dir.checkpoint_path().display()
                )));
            }
            Some(avg)
        }
        (Some(_), _) => Some(values.to_vec()),
    })
}

/// Copies the parameters of `train.init_from` (a run directory's best epoch, or a checkpoint
/// file) into `values`, refusing a run of another model.
fn load_init_from(
    dir: &std::path::Path,
    names: &[String],
    shapes: &[[usize; 2]],
    values: &mut [Vec<f32>],
) -> Result<(), Error> {
    let ck = if dir.is_file() {
        Checkpoint::load_file(dir)?
    } else {
        Checkpoint::load_best(dir)?
    };
    for ((name, shape), v) in names.iter().zip(shapes).zip(values.iter_mut()) {
        match ck.params.iter().find(|p| &p.name == name) {
            Some(p) if &p.shape == shape => v.clone_from(&p.values),
            _ => {
                return Err(Error::Input(format!(
                    "train.init_from: {} has no parameter {name} of shape {shape:?}; it is a \
                     run of another model",
                    dir.display()
                )))
            }
        }
    }
    Ok(())
}

/// What an epoch leaves behind: the training state a checkpoint resumes from.
struct EpochState<'a, O: ?Sized, S> {
    epoch: u64,
    global_step: u64,
    rng: &'a Rng,
    names: &'a [String],
    shapes: &'a [[usize; 2]],
    values: &'a [Vec<f32>],
    average: Option<&'a [Vec<f32>]>,
    optimizer: &'a O,
    scheduler: Option<&'a S>,
    lr: f64,
    best: Option<f64>,
    hash: &'a str,
}

/// Writes the epoch's checkpoint, its snapshot (`train.snapshot_epochs`) and, when `val_loss`
/// improved on the best, `best.json`; returns the best validation loss so far.
fn save_epoch<M: TrainModel, B: burn::tensor::backend::Backend>(
    job: &Job<'_, M>,
    st: EpochState<'_, dyn Optimizer<B>, ReduceLrOnPlateau>,
    val_loss: f64,
) -> Result<Option<f64>, Error> {
    // The optimizer's own state, and the learning rate it runs at (the scheduler's output).
    let mut opt_state = serde_json::json!({
        "state": serde_json::to_value(st.optimizer.state()).map_err(Error::Serialize)?,
        "lr": st.lr,
    });
    if let Some(avg) = st.average {
        opt_state["average"] = serde_json::to_value(avg).map_err(Error::Serialize)?;
    }
    let mut ck = Checkpoint {
        epoch: st.epoch,
        global_step: st.global_step,
        rng_state: st.rng.state(),
        params: st
            .names
            .iter()
            .zip(st.shapes)
            .zip(st.values)
            .map(|((name, shape), v)| ParamTensor {
                name: name.clone(),
                shape: *shape,
                values: v.clone(),
            })
            .collect(),
        optimizer: opt_state,
        scheduler: st.scheduler.map_or(serde_json::Value::Null, |s| {
            serde_json::to_value(s).unwrap_or_default()
        }),
        best_val_loss: st.best,
        config_hash: st.hash.to_string(),
    };
    let improved = ck.observe_val_loss(val_loss);
    let best = ck.best_val_loss;
    ck.save(job.dir.path())?;
    // The checkpoint resumes from the parameters; snapshots and the best hold what was
    // validated.
    if let Some(avg) = st.average {
        for (p, v) in ck.params.iter_mut().zip(avg) {
            p.values.clone_from(v);
        }
    }
    if job.exp.train.is_snapshot_epoch(st.epoch) {
        job.dir.save_snapshot(&ck)?;
    }
    if improved {
        ck.save_best(job.dir.path())?;
    }
    Ok(best)
}

/// `avg <- decay avg + (1 - decay) x`, elementwise.
fn ema_update(avg: &mut [Vec<f32>], x: &[Vec<f32>], decay: f64) {
    let d = decay as f32;
    for (a, x) in avg.iter_mut().zip(x) {
        for (a, &x) in a.iter_mut().zip(x) {
            *a = d * *a + (1.0 - d) * x;
        }
    }
}

/// Validation loss: every validation trajectory simulated whole by the runtime (the deployed
/// solver, f32) from its measured initial state, or from the model's own when the states are not
/// measured; the mean normalized MSE.
pub fn validation_loss<M: TrainModel>(
    model: &M,
    values: &[Vec<f32>],
    exp: &Experiment,
    data: &Dataset,
) -> Result<f64, Error> {
    let n_model = model.params().len();
    let values = &values[..n_model];
    let spec = model.to_spec(values);
    let x0s: Vec<Vec<f32>> = data
        .validation
        .iter()
        .map(|t| {
            if model.states_observed() {
                t.at(0)
            } else {
                spec.x0.clone()
            }
        })
        .collect();
    let pred = simulate_runtime(model, values, exp, &data.validation, &x0s, Quant::F32)?;
    let total: f64 = pred
        .iter()
        .zip(&data.validation)
        .map(|(p, t)| nmse(p, t))
        .sum();
    Ok(total / data.validation.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_sample() {
        let p = WindowPlan::new(&[101, 95], 20).unwrap();
        assert_eq!(p.len, 21);
        assert_eq!(p.starts[0], vec![0, 20, 40, 60, 80]);
        assert_eq!(p.starts[1], vec![0, 20, 40, 60, 74]);
        assert_eq!(p.offsets, vec![0, 5]);
        assert!(WindowPlan::new(&[10], 20).is_err());
        assert!(WindowPlan::new(&[10, 11], 0).is_err());
        assert_eq!(
            WindowPlan::new(&[10, 10], 0).unwrap().starts,
            vec![vec![0], vec![0]]
        );
    }
}
