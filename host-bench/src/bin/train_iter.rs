//! Seconds per training iteration (forward, backward, clipping and optimizer step) of the paper's
//! memristor surrogates on the CPU backend (`Autodiff<Flex>`), with exactly the per-iteration
//! work of the trainer's loop (`trainer/training/src/train.rs`): rows of windows with learned starts
//! (`select`), `predict` (RK4 at the sample step), the paper's full objective
//! (`LossConfig::paper()`), the constraint and continuity terms, one read-back of the loss,
//! `backward`, `clip_global_norm` and an optimizer step (AdaBelief by default).
//!
//! Cases, for SingleNN-MemODE (2-64-128-128-64-1, SiLU) and DualNN-MemODE (7-120-240-240-120-6
//! GELU, G net 6-80-1), batches of 2 and 14 one-period trajectories of 1000 samples:
//! - `win100`: the trainer's default, windows of 100 intervals integrated as one batch,
//! - `unroll1000`: the whole 1000-sample trajectory unrolled,
//! - `win100/s5`: windows of 100 with solver steps of 5 samples (Hermite output),
//! - (full run) SingleNN windows of 50 and 200;
//!
//! each with all parameters as slices of one tracked leaf (`1leaf`, what the trainer does) and
//! with every parameter its own leaf (`each`, the trainer's earlier code, kept as a diagnostic:
//! see `Bench::leaves` for why it matters); and
//! - `free1000`: `--window-start free-run`, the whole record run from the model's initial state
//!   with the hand-written reverse pass of `trainer/training/src/freerun.rs` (f64, one thread per record
//!   up to the cores). This is the mode the memristor results are trained in, and the one that
//!   does what the Diffrax peer does (backpropagation through an RK4 solve of the whole period).
//!   Its forward and reverse passes are one call, timed as `forward`.
//!
//! Cases slower than `--case-budget` seconds stop after one timed iteration (column `n`).
//!
//! Then peak memory (VmHWM) of one SingleNN iteration on a 10^5-sample trajectory in windows of
//! 100, and of the whole trajectory unrolled, run at 2500 and 10^4 samples and extrapolated; each
//! memory case runs in a child process (this binary re-executed) so that its high-water mark is
//! its own.
//!
//! Usage: `train_iter [--iters N] [--quick] [--json] [--optimizer adabelief|adamw]
//! [--skip-memory] [--only SUBSTRING] [--case NET:BATCH:SAMPLES:WINDOW:STRIDE[:1leaf]]...
//! (WINDOW `free` for the free run)
//! [--case-budget SECONDS]`. Unrolls with a leaf per parameter (minutes per iteration) run only
//! with `--all`. `--quick`: 2 iterations, no window sweep, memory at 10^4 samples (unrolls of
//! 1000 and 2000 samples).

use std::process::{Command, ExitCode};
use std::time::Instant;

use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Tensor,
};
use odeflash_reference::dataset::Trajectory;
use odeflash_reference::rng::Rng;
use odeflash_runtime::spec::Quant;
use odeflash_runtime::Activation::{Gelu, Identity, Relu, Sigmoid, Silu};
use odeflash_training::backend::CpuAd;
use odeflash_training::config::{Experiment, WindowStart};
use odeflash_training::freerun::FreeRun;
use odeflash_training::leaf::Leaf;
use odeflash_training::loss::LossConfig;
use odeflash_training::model::TrainModel;
use odeflash_training::nn::{download, upload, MlpDef};
use odeflash_training::optim::{
    clip_global_norm, AdaBeliefConfig, AdamWConfig, Optimizer, OptimizerConfig,
};
use odeflash_training::surrogate::{Bounds, Kind, Memristor};
use odeflash_training::train::{batch_objective, run_decoded, simulate_runtime, WindowPlan};

type Ad = CpuAd;
type Inner = <CpuAd as AutodiffBackend>::InnerBackend;

/// Diffrax + Optax seconds per SingleNN iteration reported in the paper, by batch size.
const DIFFRAX_S: [(usize, f64); 2] = [(2, 0.342), (14, 0.843)];
const SAMPLES_PER_PERIOD: usize = 1000;
const DT: f64 = 1e-3;
const SERIES_RESISTANCE: f32 = 1e3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    Single,
    Dual,
}

impl Net {
    fn name(self) -> &'static str {
        match self {
            Net::Single => "SingleNN",
            Net::Dual => "DualNN",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "single" => Some(Net::Single),
            "dual" => Some(Net::Dual),
            _ => None,
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Net::Single => "single",
            Net::Dual => "dual",
        }
    }

    fn model(self) -> Memristor {
        match self {
            Net::Single => Memristor {
                kind: Kind::Single,
                f: MlpDef::new(
                    2,
                    vec![
                        (64, Silu),
                        (128, Silu),
                        (128, Silu),
                        (64, Silu),
                        (1, Identity),
                    ],
                ),
                g: None,
                bounds: Bounds::default(),
                r_init: [2e3, 100e3],
                x0: vec![0.5],
                series_resistance: SERIES_RESISTANCE,
                dt: DT as f32,
                name: "single-nn".into(),
            },
            Net::Dual => Memristor {
                kind: Kind::Dual,
                f: MlpDef::new(
                    7,
                    vec![
                        (120, Gelu),
                        (240, Gelu),
                        (240, Gelu),
                        (120, Gelu),
                        (6, Identity),
                    ],
                ),
                g: Some(MlpDef::new(6, vec![(80, Relu), (1, Sigmoid)])),
                bounds: Bounds::default(),
                r_init: [2e3, 100e3],
                x0: vec![0.0; 6],
                series_resistance: SERIES_RESISTANCE,
                dt: DT as f32,
                name: "dual-nn".into(),
            },
        }
    }

    /// Multiply-adds of one field evaluation for one row, times two (matmul FLOPs).
    fn flops_per_eval(self) -> f64 {
        let m = self.model();
        let mut f = mlp_macs(&m.f);
        if let Some(g) = &m.g {
            f += mlp_macs(g);
        }
        2.0 * f as f64
    }
}

fn mlp_macs(def: &MlpDef) -> usize {
    def.param_shapes()
        .iter()
        .filter(|s| s[0] > 1)
        .map(|s| s[0] * s[1])
        .sum()
}

/// How a case gets its gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grad {
    /// burn's autodiff with every parameter its own tracked leaf: the trainer's earlier code,
    /// kept as a diagnostic (see [`Bench::leaves`]).
    Each,
    /// burn's autodiff with all parameters as slices of one tracked leaf, as the trainer does.
    OneLeaf,
    /// Whole records from the initial state through [`FreeRun`]'s f64 reverse pass.
    FreeRun,
}

impl Grad {
    /// The `leaves` column, and the memory child's argument.
    fn label(self) -> &'static str {
        match self {
            Grad::Each => "each",
            Grad::OneLeaf => "1leaf",
            Grad::FreeRun => "f64",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Grad::Each, Grad::OneLeaf, Grad::FreeRun]
            .into_iter()
            .find(|g| g.label() == s)
    }
}

/// One timed configuration.
#[derive(Clone, Debug)]
struct Case {
    net: Net,
    batch: usize,
    samples: usize,
    /// Intervals per window; 0 unrolls whole trajectories.
    window: usize,
    stride: usize,
    /// With [`Grad::FreeRun`], `window` is 0.
    grad: Grad,
}

impl Case {
    /// `SingleNN/b2/win100`, for `--only`.
    fn label(&self) -> String {
        format!(
            "{}/b{}/{}/{}",
            self.net.name(),
            self.batch,
            self.mode(),
            self.grad.label()
        )
    }

    fn mode(&self) -> String {
        let w = if self.grad == Grad::FreeRun {
            format!("free{}", self.samples)
        } else if self.window == 0 {
            format!("unroll{}", self.samples)
        } else {
            format!("win{}", self.window)
        };
        if self.stride > 1 {
            format!("{w}/s{}", self.stride)
        } else {
            w
        }
    }
}

/// Synthetic rig data: sine supplies of one period per 1000 samples (1 Hz at 1 kHz), amplitudes
/// cycling through 1.0, 0.5 and 1.5 V, phases staggered; the targets are the model itself with
/// other weights, simulated by the runtime (RK4, f32).
fn trajectories(
    model: &Memristor,
    count: usize,
    samples: usize,
) -> Result<Vec<Trajectory>, String> {
    let amplitudes = [1.0f64, 0.5, 1.5];
    let mut trajs: Vec<Trajectory> = (0..count)
        .map(|b| {
            let a = amplitudes[b % amplitudes.len()];
            let phase = b as f64 * 0.37;
            let drive = (0..samples)
                .map(|s| {
                    let t = s as f64 / SAMPLES_PER_PERIOD as f64;
                    (a * (2.0 * std::f64::consts::PI * t + phase).sin()) as f32
                })
                .collect();
            Trajectory {
                path: format!("synthetic-{b}").into(),
                dt: DT,
                drive,
                channels: vec![vec![0.0; samples]; 2],
                consts: vec![SERIES_RESISTANCE],
                warmup: 0,
            }
        })
        .collect();
    let teacher = model.init(&mut Rng::new(7));
    let x0s = vec![model.x0.clone(); count];
    let exp = Experiment::default();
    let sim = simulate_runtime(model, &teacher, &exp, &trajs, &x0s, Quant::F32)
        .map_err(|e| format!("simulating the targets: {e}"))?;
    for (t, ch) in trajs.iter_mut().zip(sim) {
        if ch.iter().flatten().any(|v| !v.is_finite()) {
            return Err("the synthetic targets are not finite".into());
        }
        t.channels = ch;
    }
    Ok(trajs)
}

/// A training state ready to iterate: the trainer's loop body over one batch of all trajectories.
struct Bench {
    model: Memristor,
    exp: Experiment,
    trajs: Vec<Trajectory>,
    plan: WindowPlan,
    variances: Vec<[Vec<f64>; 3]>,
    params: Vec<Tensor<Inner, 2>>,
    opt: Box<dyn Optimizer<Inner>>,
    /// The parameters' shapes.
    shapes: Vec<[usize; 2]>,
    grad: Grad,
    device: burn::tensor::Device<Ad>,
}

impl Bench {
    fn new(case: &Case, optimizer: &OptimizerConfig) -> Result<Self, String> {
        let model = case.net.model();
        let mut exp = Experiment::default();
        exp.solver.stride = case.stride;
        exp.loss = LossConfig::paper();
        exp.train.window = case.window;
        if case.grad == Grad::FreeRun {
            exp.train.window = 0;
            exp.train.window_start = WindowStart::FreeRun;
        }
        exp.train.batch_size = case.batch;
        exp.optimizer = optimizer.clone();
        exp.validate().map_err(|e| e.to_string())?;
        // Memristor states are not measured: window starts are learned (train.rs `learned`).
        assert!(!model.states_observed());
        let trajs = trajectories(&model, case.batch, case.samples)?;
        let lengths: Vec<usize> = trajs.iter().map(Trajectory::len).collect();
        let plan = WindowPlan::new(&lengths, exp.train.window)?;
        let device = Default::default();
        let n = model.n_states();
        let defs = model.params();
        let mut shapes: Vec<[usize; 2]> = defs.iter().map(|d| d.shape).collect();
        let mut values = model.init(&mut Rng::new(exp.train.seed));
        if case.grad != Grad::FreeRun {
            shapes.push([plan.total(), n]);
            values.push(simulated_starts(&model, &values, &exp, &trajs, &plan)?);
        }
        let params = upload::<Inner>(&values, &shapes, &device);
        let opt = exp.optimizer.try_build().map_err(|e| e.to_string())?;
        let variances = trajs
            .iter()
            .map(|t| [0, 1, 2].map(|o| t.derivative_variances(o)))
            .collect();
        Ok(Bench {
            model,
            exp,
            trajs,
            plan,
            variances,
            params,
            opt,
            shapes,
            grad: case.grad,
            device,
        })
    }

    /// Rows (windows) per batch and samples per row.
    fn shape(&self) -> (usize, usize) {
        (self.plan.total(), self.plan.len)
    }

    /// Field evaluations of one solve (RK4: 4 per step, plus the end derivative with a stride).
    fn evals(&self) -> usize {
        let intervals = self.plan.len - 1;
        let stride = self.exp.solver.stride;
        if stride == 1 {
            4 * intervals
        } else {
            4 * intervals.div_ceil(stride) + 1
        }
    }

    /// The autodiff parameters of one iteration. With [`Grad::OneLeaf`] (what the trainer does,
    /// [`Leaf`]) they are slices of one tracked leaf holding all of them, returned too; without,
    /// each parameter is its own tracked leaf (`Tensor::from_inner(p).require_grad()`), as the
    /// trainer had it first.
    ///
    /// Why it matters: burn-autodiff 0.21 starts a graph at every tracked leaf and merges graphs
    /// when an op joins them (`GraphLocator::merge`). A merge re-points the merged graph's nodes
    /// to the surviving graph, but not the origins of graphs merged into it earlier, and which
    /// side survives follows hash-map order. Parameters used in every field evaluation then keep
    /// landing on stale graphs, each time merging (and often moving) the whole solve graph: the
    /// forward pass grows faster than quadratically with the evaluations. With one leaf there is
    /// one graph and no merge.
    fn leaves(&self) -> (Vec<Tensor<Ad, 2>>, Option<Leaf<Ad>>) {
        if self.grad == Grad::Each {
            let ad = self
                .params
                .iter()
                .map(|p| Tensor::from_inner(p.clone()).require_grad())
                .collect();
            return (ad, None);
        }
        let (leaf, ad) = Leaf::<Ad>::new(&self.params);
        (ad, Some(leaf))
    }

    /// One iteration: the body of `train::train`'s batch loop, for the batch of all trajectories.
    fn iteration(&mut self) -> Result<Phases, String> {
        if self.grad == Grad::FreeRun {
            return self.free_run_iteration();
        }
        let t0 = Instant::now();
        let (model, exp, device) = (&self.model, &self.exp, &self.device);
        let (plan, data) = (&self.plan, &self.trajs);
        let chunk: Vec<usize> = (0..data.len()).collect();
        let (ad, leaf) = self.leaves();
        let (loss, _terms) = batch_objective(
            model,
            exp,
            data,
            &self.variances,
            plan,
            &chunk,
            &ad,
            true,
            device,
        )
        .map_err(|e| e.to_string())?;
        let value = scalar(loss.clone().inner());
        if !value.is_finite() {
            return Err(format!("the training loss became {value}"));
        }
        let forward = t0.elapsed().as_secs_f64();
        let grads = loss.backward();
        let backward = t0.elapsed().as_secs_f64() - forward;
        let mut g: Vec<Tensor<Inner, 2>> = match leaf {
            None => ad
                .iter()
                .zip(&self.params)
                .map(|(a, p)| a.grad(&grads).unwrap_or_else(|| p.zeros_like()))
                .collect(),
            Some(leaf) => leaf.grads(&grads),
        };
        self.apply(&mut g);
        let total = t0.elapsed().as_secs_f64();
        Ok(Phases {
            loss: value,
            forward,
            backward,
            step: total - forward - backward,
        })
    }
}

impl Bench {
    /// The free-run branch of `train::train`'s batch loop: parameters down to the host, the
    /// whole-record objective and its gradient, gradients back up, clipping and the step.
    fn free_run_iteration(&mut self) -> Result<Phases, String> {
        // Set up once per run in the trainer: not timed.
        let exp = &self.exp;
        let fr = FreeRun::new(&self.model, &exp.solver, &exp.loss).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let trajs: Vec<&Trajectory> = self.trajs.iter().collect();
        let vars: Vec<&[Vec<f64>; 3]> = self.variances.iter().collect();
        let e = fr
            .evaluate(&download(&self.params), &trajs, &vars)
            .map_err(|e| e.to_string())?;
        if !e.loss.is_finite() {
            return Err(format!("the training loss became {}", e.loss));
        }
        let forward = t0.elapsed().as_secs_f64();
        let mut g = upload::<Inner>(&e.grads, &self.shapes, &self.device);
        self.apply(&mut g);
        let total = t0.elapsed().as_secs_f64();
        Ok(Phases {
            loss: e.loss,
            forward,
            backward: 0.0,
            step: total - forward,
        })
    }

    /// Clipping and the optimizer step, as the trainer does them.
    fn apply(&mut self, g: &mut [Tensor<Inner, 2>]) {
        let exp = &self.exp;
        let norm = clip_global_norm(g, exp.train.clip_norm.unwrap_or(f64::INFINITY));
        if norm.is_finite() {
            self.opt.step(exp.train.lr, &mut self.params, g);
        }
        // The step is lazy on some backends: read one parameter back to make it happen here.
        let _ = scalar(self.params[0].clone().slice([0..1, 0..1]).reshape([1]));
    }
}

/// Where one iteration's time went, seconds.
#[derive(Clone, Copy, Debug)]
struct Phases {
    loss: f64,
    /// Host data, graph building and the forward pass, up to the loss read-back.
    forward: f64,
    /// `backward()`.
    backward: f64,
    /// Gradients, clipping and the optimizer step.
    step: f64,
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// Window starts from a runtime simulation of the initial model (as `train.rs` does).
fn simulated_starts(
    model: &Memristor,
    values: &[Vec<f32>],
    exp: &Experiment,
    trajs: &[Trajectory],
    plan: &WindowPlan,
) -> Result<Vec<f32>, String> {
    let n = model.n_states();
    let spec_x0 = model.to_spec(values).x0;
    let mut starts = Vec::with_capacity(plan.total() * n);
    for (t, s) in trajs.iter().zip(&plan.starts) {
        let blob = model
            .to_spec_with(values, &t.consts)
            .try_encode(Quant::F32)
            .map_err(|e| format!("initial model does not encode: {e}"))?;
        let m = blob.model().map_err(|e| e.to_string())?;
        let traj = &run_decoded(
            &m,
            exp,
            std::slice::from_ref(t),
            std::slice::from_ref(&spec_x0),
        )
        .map_err(|e| e.to_string())?[0];
        for &k in s {
            starts.extend_from_slice(&traj.x[k * n..(k + 1) * n]);
        }
    }
    Ok(starts)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

struct Timing {
    case: Case,
    rows: usize,
    len: usize,
    evals: usize,
    times: Vec<f64>,
    warmup: f64,
    phases: Vec<Phases>,
}

impl Timing {
    fn median(&self) -> f64 {
        median(&self.times)
    }

    /// Medians of the forward, backward and step phases.
    fn phase_medians(&self) -> [f64; 3] {
        let m = |f: fn(&Phases) -> f64| median(&self.phases.iter().map(f).collect::<Vec<_>>());
        [m(|p| p.forward), m(|p| p.backward), m(|p| p.step)]
    }

    fn loss(&self) -> f64 {
        self.phases.last().map_or(f64::NAN, |p| p.loss)
    }

    fn diffrax(&self) -> Option<f64> {
        if self.case.net != Net::Single || self.case.samples != SAMPLES_PER_PERIOD {
            return None;
        }
        DIFFRAX_S
            .iter()
            .find(|(b, _)| *b == self.case.batch)
            .map(|&(_, s)| s)
    }

    /// Matmul GFLOP/s, taking backward as twice the forward.
    fn gflops(&self) -> f64 {
        3.0 * self.rows as f64 * self.evals as f64 * self.case.net.flops_per_eval()
            / self.median()
            / 1e9
    }
}

/// Times `iters` iterations after a warm-up; past `budget` seconds (warm-up included) it stops
/// after at least one timed iteration.
fn time_case(
    case: &Case,
    iters: usize,
    budget: f64,
    opt: &OptimizerConfig,
) -> Result<Timing, String> {
    let mut bench = Bench::new(case, opt)?;
    let (rows, len) = bench.shape();
    let start = Instant::now();
    let t = Instant::now();
    bench.iteration()?;
    let warmup = t.elapsed().as_secs_f64();
    eprint!("  warm-up {warmup:.3} s;");
    let mut times = Vec::with_capacity(iters);
    let mut phases = Vec::with_capacity(iters);
    for _ in 0..iters {
        if !times.is_empty() && start.elapsed().as_secs_f64() > budget {
            break;
        }
        let t = Instant::now();
        phases.push(bench.iteration()?);
        times.push(t.elapsed().as_secs_f64());
        eprint!(" {:.3}", t.elapsed().as_secs_f64());
    }
    eprintln!();
    Ok(Timing {
        case: case.clone(),
        rows,
        len,
        evals: bench.evals(),
        times,
        warmup,
        phases,
    })
}

/// `VmHWM` and `VmRSS` of this process, kB.
fn proc_memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The child side of a memory case: set up, one iteration, report.
fn mem_child(
    net: Net,
    samples: usize,
    window: usize,
    grad: Grad,
    opt: &OptimizerConfig,
) -> Result<(), String> {
    let case = Case {
        net,
        batch: 1,
        samples,
        window,
        stride: 1,
        grad,
    };
    let mut bench = Bench::new(&case, opt)?;
    let (hwm0, rss0) = proc_memory();
    let t = Instant::now();
    bench.iteration()?;
    let secs = t.elapsed().as_secs_f64();
    let (hwm, _) = proc_memory();
    let (rows, len) = bench.shape();
    println!("MEM {hwm} {hwm0} {rss0} {secs} {rows} {len}");
    Ok(())
}

/// The whole long trajectory unrolled, extrapolated from two shorter unrolls.
#[derive(Clone, Copy, Debug)]
struct Extrapolation {
    /// VmHWM, linear in the samples.
    mib: f64,
    kib_per_sample: f64,
    /// Seconds per iteration, `t ~ samples^exponent` through both points.
    secs: f64,
    exponent: f64,
}

struct MemResult {
    net: Net,
    grad: Grad,
    samples: usize,
    window: usize,
    rows: usize,
    len: usize,
    /// VmHWM after the iteration, kB.
    hwm_kb: u64,
    /// VmRSS before the iteration (after setup), kB.
    rss_before_kb: u64,
    secs: f64,
}

impl MemResult {
    fn mode(&self) -> String {
        if self.grad == Grad::FreeRun {
            "free".into()
        } else if self.window == 0 {
            "unroll".into()
        } else {
            format!("win{}", self.window)
        }
    }

    fn delta_mb(&self) -> f64 {
        self.hwm_kb.saturating_sub(self.rss_before_kb) as f64 / 1024.0
    }
}

/// One memory case in a child process.
fn run_mem_case(
    net: Net,
    samples: usize,
    window: usize,
    grad: Grad,
    opt_arg: &str,
) -> Result<MemResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .args([
            "--mem-child",
            net.arg(),
            &samples.to_string(),
            &window.to_string(),
            grad.label(),
            "--optimizer",
            opt_arg,
        ])
        .output()
        .map_err(|e| format!("starting the memory child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MEM "))
        .ok_or_else(|| {
            format!(
                "memory child ({samples} samples, window {window}) failed: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
    let f: Vec<&str> = line.split_whitespace().skip(1).collect();
    let num = |i: usize| -> Result<f64, String> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("memory child: bad line `{line}`"))
    };
    Ok(MemResult {
        net,
        grad,
        samples,
        window,
        hwm_kb: num(0)? as u64,
        rss_before_kb: num(2)? as u64,
        secs: num(3)?,
        rows: num(4)? as usize,
        len: num(5)? as usize,
    })
}

struct Args {
    iters: usize,
    quick: bool,
    json: bool,
    skip_memory: bool,
    all: bool,
    only: Option<String>,
    extra: Vec<Case>,
    optimizer: String,
    mem_child: Option<(Net, usize, usize, Grad)>,
    case_budget: f64,
}

const USAGE: &str = "usage: train_iter [--iters N] [--quick] [--json] \
                     [--optimizer adabelief|adamw] [--skip-memory] [--all] [--only SUBSTRING-OF-MODEL/bBATCH/MODE] \
                     [--case NET:BATCH:SAMPLES:WINDOW:STRIDE[:1leaf]]... (NET: single or dual; \
                     --case replaces the standard cases) [--case-budget SECONDS]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        iters: 5,
        quick: false,
        json: false,
        skip_memory: false,
        all: false,
        only: None,
        extra: Vec::new(),
        optimizer: "adabelief".into(),
        mem_child: None,
        case_budget: 60.0,
    };
    let mut iters_given = false;
    let mut it = std::env::args().skip(1);
    let count = |v: Option<String>, what: &str| -> Result<usize, String> {
        let v = v.ok_or(format!("{what} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{what}: `{v}` is not a count"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--iters" => {
                args.iters = count(it.next(), "--iters")?;
                iters_given = true;
            }
            "--quick" => args.quick = true,
            "--json" => args.json = true,
            "--skip-memory" => args.skip_memory = true,
            "--all" => args.all = true,
            "--case-budget" => {
                let v = it.next().ok_or("--case-budget needs seconds")?;
                args.case_budget = v
                    .parse()
                    .map_err(|_| format!("--case-budget: `{v}` is not a number"))?;
            }
            "--only" => args.only = Some(it.next().ok_or("--only needs a value")?),
            "--case" => {
                let v = it
                    .next()
                    .ok_or("--case needs NET:BATCH:SAMPLES:WINDOW:STRIDE[:1leaf]")?;
                args.extra.push(parse_case(&v)?);
            }
            "--optimizer" => {
                args.optimizer = it.next().ok_or("--optimizer needs a value")?;
            }
            "--mem-child" => {
                let net = it.next().ok_or("--mem-child needs NET SAMPLES WINDOW")?;
                let net = Net::parse(&net).ok_or(format!("--mem-child: unknown net `{net}`"))?;
                let samples = count(it.next(), "--mem-child SAMPLES")?;
                let window = count(it.next(), "--mem-child WINDOW")?;
                let leaves = it.next().ok_or("--mem-child needs LEAVES")?;
                let grad = Grad::parse(&leaves)
                    .ok_or(format!("--mem-child: unknown leaves `{leaves}`"))?;
                args.mem_child = Some((net, samples, window, grad));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}` ({USAGE})")),
        }
    }
    if !iters_given && args.quick {
        args.iters = 2;
    }
    if args.iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    Ok(args)
}

/// `NET:BATCH:SAMPLES:WINDOW:STRIDE[:1leaf]`, e.g. `single:2:1000:0:1`; WINDOW `free` for the
/// free run (stride 1, no leaf variant).
fn parse_case(v: &str) -> Result<Case, String> {
    let f: Vec<&str> = v.split(':').collect();
    let bad = || {
        format!(
            "--case `{v}`: expected NET:BATCH:SAMPLES:WINDOW:STRIDE[:1leaf] (WINDOW a count or \
             `free`, which takes stride 1 and no `1leaf`)"
        )
    };
    if f.len() != 5 && !(f.len() == 6 && f[5] == "1leaf") {
        return Err(bad());
    }
    let n = |i: usize| f[i].parse::<usize>().map_err(|_| bad());
    let free_run = f[3] == "free";
    let one_leaf = f.len() == 6;
    let case = Case {
        net: Net::parse(f[0]).ok_or_else(bad)?,
        batch: n(1)?,
        samples: n(2)?,
        window: if free_run { 0 } else { n(3)? },
        stride: n(4)?,
        grad: match (free_run, one_leaf) {
            (true, _) => Grad::FreeRun,
            (false, true) => Grad::OneLeaf,
            (false, false) => Grad::Each,
        },
    };
    if case.batch == 0 || case.stride == 0 || (free_run && (case.stride != 1 || one_leaf)) {
        return Err(bad());
    }
    Ok(case)
}

fn optimizer(name: &str) -> Result<OptimizerConfig, String> {
    match name {
        "adabelief" => Ok(OptimizerConfig::AdaBelief(AdaBeliefConfig::default())),
        "adamw" => Ok(OptimizerConfig::AdamW(AdamWConfig::default())),
        other => Err(format!("--optimizer: `{other}` is not adabelief or adamw")),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_iter: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let opt = optimizer(&args.optimizer)?;
    if let Some((net, samples, window, grad)) = args.mem_child {
        return mem_child(net, samples, window, grad, &opt);
    }

    let mut cases = Vec::new();
    for net in [Net::Single, Net::Dual] {
        for batch in [2, 14] {
            for (window, stride) in [(100, 1), (0, 1), (100, 5)] {
                for grad in [Grad::Each, Grad::OneLeaf] {
                    cases.push(Case {
                        net,
                        batch,
                        samples: SAMPLES_PER_PERIOD,
                        window,
                        stride,
                        grad,
                    });
                }
            }
            cases.push(Case {
                net,
                batch,
                samples: SAMPLES_PER_PERIOD,
                window: 0,
                stride: 1,
                grad: Grad::FreeRun,
            });
        }
    }
    if !args.quick {
        for batch in [2, 14] {
            for window in [50, 200] {
                for grad in [Grad::Each, Grad::OneLeaf] {
                    cases.push(Case {
                        net: Net::Single,
                        batch,
                        samples: SAMPLES_PER_PERIOD,
                        window,
                        stride: 1,
                        grad,
                    });
                }
            }
        }
    }
    if let Some(only) = &args.only {
        cases.retain(|c| c.label().contains(only.as_str()));
    }
    // Unrolls with a leaf per parameter take minutes per iteration (graph merges,
    // see `Bench::leaves`; about 5 for SingleNN at batch 2): only with --all.
    let mut skipped = Vec::new();
    if !args.all {
        cases.retain(|c| {
            let keep = c.grad != Grad::Each || c.window != 0;
            if !keep {
                skipped.push(c.label());
            }
            keep
        });
    }
    if !args.extra.is_empty() {
        cases = args.extra.clone();
    }
    let load_before = load_average();
    let mut timings = Vec::new();
    for case in &cases {
        eprintln!(
            "timing {} batch {} {} ...",
            case.net.name(),
            case.batch,
            case.mode()
        );
        timings.push(time_case(case, args.iters, args.case_budget, &opt)?);
    }

    // Memory: windows over a long trajectory; the unroll at two lengths, extrapolated.
    let (long, unrolls) = if args.quick {
        (10_000, [1_000, 2_000])
    } else {
        (100_000, [2_500, 10_000])
    };
    let mut mem = Vec::new();
    if !args.skip_memory {
        // A leaf per parameter makes a long unroll's graph building superlinear
        // (hours at 10^4 samples): the unrolls run with one leaf; the graph holds the same
        // tensors either way. The free run keeps states, not a graph: it runs the whole length.
        let mut plan = vec![(long, 100, Grad::Each), (long, 100, Grad::OneLeaf)];
        plan.extend(unrolls.iter().map(|&s| (s, 0, Grad::OneLeaf)));
        plan.push((long, 0, Grad::FreeRun));
        for (samples, window, grad) in plan {
            eprintln!(
                "memory SingleNN {samples} samples, window {window}, leaves {} ...",
                grad.label()
            );
            mem.push(run_mem_case(
                Net::Single,
                samples,
                window,
                grad,
                &args.optimizer,
            )?);
        }
    }
    let unrolled: Vec<&MemResult> = mem
        .iter()
        .filter(|m| m.window == 0 && m.grad != Grad::FreeRun)
        .collect();
    let extrapolated = (unrolled.len() == 2).then(|| {
        let (a, b) = (unrolled[0], unrolled[1]);
        let ds = (b.samples - a.samples) as f64;
        let slope_mb = (b.hwm_kb as f64 - a.hwm_kb as f64) / 1024.0 / ds;
        let extra = (long - b.samples) as f64;
        // Time grows faster than linearly (burn's checkpointer build is quadratic in the saved
        // states): a power law through both points.
        let k = (b.secs / a.secs).ln() / (b.samples as f64 / a.samples as f64).ln();
        Extrapolation {
            mib: b.hwm_kb as f64 / 1024.0 + slope_mb * extra,
            kib_per_sample: slope_mb * 1024.0,
            secs: b.secs * (long as f64 / b.samples as f64).powf(k),
            exponent: k,
        }
    });
    let load_after = load_average();

    let report = Report {
        args: &args,
        timings: &timings,
        skipped: &skipped,
        mem: &mem,
        extrapolated,
        long,
        load: [load_before, load_after],
    };
    if args.json {
        print_json(&report);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Everything measured.
struct Report<'a> {
    args: &'a Args,
    timings: &'a [Timing],
    /// Labels of cases left out.
    skipped: &'a [String],
    mem: &'a [MemResult],
    extrapolated: Option<Extrapolation>,
    /// Samples of the long memory trajectory.
    long: usize,
    /// 1-minute load average before and after.
    load: [String; 2],
}

fn print_table(r: &Report<'_>) {
    let (args, timings, mem, extrapolated, long) =
        (r.args, r.timings, r.mem, r.extrapolated, r.long);
    let [load_before, load_after] = &r.load;
    println!(
        "Training iteration (forward + backward + clip + {} step), CPU backend Autodiff<Flex>, \
         RK4, paper loss, learned window starts (free: whole records from the initial state, \
         hand-written f64 reverse pass); median of {} after 1 warm-up",
        args.optimizer, args.iters
    );
    println!(
        "{:<9} {:>5} {:<10} {:<7} {:>10} {:>2} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>11}",
        "model",
        "batch",
        "mode",
        "leaves",
        "rows x len",
        "n",
        "median s",
        "min s",
        "max s",
        "warm-up",
        "fwd s",
        "bwd s",
        "step s",
        "evals",
        "us/eval",
        "GFLOP/s",
        "vs Diffrax"
    );
    for t in timings {
        let ratio = t.diffrax().map_or("-".to_string(), |d| {
            let r = t.median() / d;
            format!("{r:.3} {}", if r <= 0.5 { "ok" } else { "MISS" })
        });
        let min = t.times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = t.times.iter().copied().fold(0.0, f64::max);
        let [fwd, bwd, step] = t.phase_medians();
        println!(
            "{:<9} {:>5} {:<10} {:<7} {:>10} {:>2} {:>9.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>6} {:>8.1} {:>8.2} {:>11}",
            t.case.net.name(),
            t.case.batch,
            t.case.mode(),
            t.case.grad.label(),
            format!("{}x{}", t.rows, t.len),
            t.times.len(),
            t.median(),
            min,
            max,
            t.warmup,
            fwd,
            bwd,
            step,
            t.evals,
            t.median() / t.evals as f64 * 1e6,
            t.gflops(),
            ratio
        );
    }
    println!(
        "Diffrax+Optax (paper, SingleNN): {} s at batch 2, {} s at batch 14; target <= half \
         (ratio <= 0.5). evals = field evaluations per solve (each a batch of `rows`); \
         us/eval = median / evals; fwd = host data + graph + forward up to the loss read-back, \
         bwd = backward(), step = clip + optimizer; GFLOP/s counts matmuls only, backward as \
         twice the forward.",
        DIFFRAX_S[0].1, DIFFRAX_S[1].1
    );
    if !r.skipped.is_empty() {
        println!(
            "Not run (minutes per iteration with a leaf per parameter; --all runs them): {}",
            r.skipped.join(", ")
        );
    }
    if !mem.is_empty() {
        println!();
        println!("Peak memory of one SingleNN iteration (child process each, VmHWM)");
        println!(
            "{:<9} {:>8} {:<10} {:<7} {:>10} {:>12} {:>14} {:>14} {:>10}",
            "model",
            "samples",
            "mode",
            "leaves",
            "rows x len",
            "VmHWM MiB",
            "RSS before MiB",
            "increase MiB",
            "iter s"
        );
        for m in mem {
            println!(
                "{:<9} {:>8} {:<10} {:<7} {:>10} {:>12.1} {:>14.1} {:>14.1} {:>10.3}",
                m.net.name(),
                m.samples,
                m.mode(),
                m.grad.label(),
                format!("{}x{}", m.rows, m.len),
                m.hwm_kb as f64 / 1024.0,
                m.rss_before_kb as f64 / 1024.0,
                m.delta_mb(),
                m.secs
            );
        }
        if let Some(e) = extrapolated {
            println!(
                "Whole {long}-sample unroll, NOT RUN, extrapolated from the two unroll lengths: \
                 VmHWM ~{:.0} MiB ({:.1} GiB; linear, {:.1} KiB per sample), ~{:.0} s per \
                 iteration (power law, time ~ samples^{:.2}).",
                e.mib,
                e.mib / 1024.0,
                e.kib_per_sample,
                e.secs,
                e.exponent
            );
        }
        println!(
            "The unrolls run with one leaf: with a leaf per parameter a 10^4-sample \
             graph takes hours to build (see the timing table's unroll rows); the tensors held \
             are the same."
        );
    }
    println!("load average (1 min): {load_before} before, {load_after} after the timings");
}

fn print_json(r: &Report<'_>) {
    let (args, timings, mem, extrapolated, long) =
        (r.args, r.timings, r.mem, r.extrapolated, r.long);
    let [load_before, load_after] = &r.load;
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v}")
        } else {
            "null".into()
        }
    };
    let mut s = String::from("{\n");
    s += &format!(
        "  \"backend\": \"Autodiff<Flex>\",\n  \"optimizer\": \"{}\",\n  \"iters\": {},\n",
        args.optimizer, args.iters
    );
    let skipped: Vec<String> = r.skipped.iter().map(|l| format!("\"{l}\"")).collect();
    s += &format!(
        "  \"load_average\": [\"{load_before}\", \"{load_after}\"],\n  \"skipped\": [{}],\n  \
         \"timings\": [\n",
        skipped.join(", ")
    );
    let rows: Vec<String> = timings
        .iter()
        .map(|t| {
            let times: Vec<String> = t.times.iter().map(|&v| num(v)).collect();
            let d = t.diffrax();
            format!(
                "    {{\"model\": \"{}\", \"batch\": {}, \"mode\": \"{}\", \"leaves\": \"{}\", \"window\": {}, \
                 \"stride\": {}, \"rows\": {}, \"len\": {}, \"evals\": {}, \"median_s\": {}, \
                 \"warmup_s\": {}, \"times_s\": [{}], \"forward_s\": {}, \"backward_s\": {}, \
                 \"step_s\": {}, \"loss\": {}, \"gflops\": {}, \
                 \"diffrax_s\": {}, \"ratio\": {}}}",
                t.case.net.name(),
                t.case.batch,
                t.case.mode(),
                t.case.grad.label(),
                t.case.window,
                t.case.stride,
                t.rows,
                t.len,
                t.evals,
                num(t.median()),
                num(t.warmup),
                times.join(", "),
                num(t.phase_medians()[0]),
                num(t.phase_medians()[1]),
                num(t.phase_medians()[2]),
                num(t.loss()),
                num(t.gflops()),
                d.map_or("null".into(), num),
                d.map_or("null".into(), |d| num(t.median() / d)),
            )
        })
        .collect();
    s += &rows.join(",\n");
    s += "\n  ],\n  \"memory\": [\n";
    let rows: Vec<String> = mem
        .iter()
        .map(|m| {
            format!(
                "    {{\"model\": \"{}\", \"leaves\": \"{}\", \"samples\": {}, \"window\": {}, \"rows\": {}, \
                 \"len\": {}, \"vmhwm_kib\": {}, \"rss_before_kib\": {}, \"iter_s\": {}}}",
                m.net.name(),
                m.grad.label(),
                m.samples,
                m.window,
                m.rows,
                m.len,
                m.hwm_kb,
                m.rss_before_kb,
                num(m.secs)
            )
        })
        .collect();
    s += &rows.join(",\n");
    s += "\n  ],\n";
    s += &match extrapolated {
        Some(e) => format!(
            "  \"unroll_extrapolated\": {{\"samples\": {long}, \"vmhwm_mib\": {}, \
             \"kib_per_sample\": {}, \"iter_s\": {}, \"time_exponent\": {}}}\n",
            num(e.mib),
            num(e.kib_per_sample),
            num(e.secs),
            num(e.exponent)
        ),
        None => "  \"unroll_extrapolated\": null\n".into(),
    };
    s += "}";
    println!("{s}");
}
