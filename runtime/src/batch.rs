//! Batched host simulation: many trajectories of one model at once, spread over threads.
//!
//! The single-trajectory [`Simulator`] is a matrix-vector product per layer, which leaves most of
//! a host's SIMD width idle. Here trajectories advance in lockstep, so every dense layer becomes a
//! matrix-matrix product that the compiler vectorizes, and groups of trajectories run on threads.
//!
//! # Layout
//! Activations are stored one row per trajectory (`rows x stride`, each row 64-byte aligned and
//! padded to a multiple of 16 values); the weights are transposed once so that 16 consecutive
//! output neurons of one input are contiguous. The kernel vectorizes over *output neurons* and
//! register-blocks over up to 12 trajectories: every loaded weight vector is reused for each
//! trajectory of the block, every input value is broadcast once per pair of weight vectors. So no
//! lane is ever padding: 18 trajectories on 2 threads are two blocks of 9 rows, where a
//! trajectory-lane layout would compute 2 x 16 lanes. Trajectories of different lengths each run
//! to their own end: a finished (or failed) trajectory drops out of the lockstep set and the
//! remaining rows are compacted.
//!
//! # Arithmetic
//! [`Arith::Portable`] multiplies then adds, in the summation order of [`crate::kernels`]
//! (inputs in order from 0, bias last; `s * acc + b` for int8), and evaluates SiLU and sigmoid
//! with a lane-wise transcription of `libm::expf`; results are bit-identical to
//! [`Simulator::run`], whatever the SIMD width. [`Arith::Fma`] fuses the multiply-adds of the dense
//! layers (one rounding instead of two) and evaluates SiLU and sigmoid with a fused polynomial
//! `exp` and one division instead of two (about 1 ulp): faster, and different only by rounding
//! (relative differences of about 1e-6 after thousands of steps in the tests). On x86-64 the best
//! instruction set (AVX-512 or AVX2, with FMA) is picked at run time; other activations call
//! [`Activation::apply`] value by value.
//!
//! Threads split the trajectories, longest first, so each thread gets about the same number of
//! samples; each thread then runs its share in lockstep groups of at most [`GROUP`].

use std::vec::Vec;

use crate::activation::Activation;
use crate::error::SimError;
use crate::limits::MAX_WIDTH;
use crate::model::{Dynamics, IteratorForm, Mlp, Model, Readout, Weights};
use crate::sim::{SimConfig, Simulator};
use crate::solver::MAX_STAGES;

/// Values per SIMD block (one AVX-512 register); rows and weight blocks are padded to it.
const V: usize = 16;

/// Most trajectories one thread advances in lockstep: enough rows to fill the register blocks,
/// few enough that the activations of a group stay in the L1/L2 cache.
pub const GROUP: usize = 48;

/// How the dense layers accumulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Arith {
    /// [`Arith::Fma`] where the CPU has fused multiply-add, else [`Arith::Portable`].
    #[default]
    Auto,
    /// Multiply, then add: bit-identical to [`Simulator::run`], for cross-checks.
    Portable,
    /// Fused multiply-adds and fused SiLU/sigmoid: fastest, equal to the portable results within
    /// rounding. On a CPU without FMA a correct but slow software fallback.
    Fma,
}

/// Tuning of [`simulate_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BatchOptions {
    /// Worker threads; 0 uses [`std::thread::available_parallelism`].
    pub threads: usize,
    /// Arithmetic mode.
    pub arith: Arith,
}

/// One trajectory to simulate. The defaults come from the model and the [`SimConfig`] so a plain
/// drive is all most callers need; the overrides exist for ensembles over initial states or
/// sample rates that should still share one batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Input<'d> {
    /// Supply voltage at each sample, volts.
    pub drive: &'d [f32],
    /// Initial state; the model's own when `None`.
    pub x0: Option<&'d [f32]>,
    /// Sample interval for this trajectory, seconds; the config's when `None`.
    pub dt: Option<f32>,
}

impl<'d> Input<'d> {
    /// A drive with the model's initial state and the config's sample interval.
    pub fn new(drive: &'d [f32]) -> Self {
        Input {
            drive,
            x0: None,
            dt: None,
        }
    }

    /// The same input starting from `x0`.
    pub fn with_x0(self, x0: &'d [f32]) -> Self {
        Input {
            x0: Some(x0),
            ..self
        }
    }

    /// The same input at its own sample interval.
    pub fn with_dt(self, dt: f32) -> Self {
        Input {
            dt: Some(dt),
            ..self
        }
    }
}

/// The outputs of one trajectory, as [`Simulator::run`] writes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trajectory {
    /// Memristor voltage per sample (the drive for models without a readout).
    pub v: Vec<f32>,
    /// Current per sample (0 for models without a readout).
    pub i: Vec<f32>,
    /// States, row-major `len x n_states`.
    pub x: Vec<f32>,
    /// State components clamped into their bounds, the initial state included.
    pub clamped: u32,
}

/// Why a batch failed. Trajectory errors carry the index into the inputs and exactly the error
/// [`Simulator::run`] would have returned for that trajectory alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchError {
    /// The configuration (or a trajectory's `dt`) is refused, as by [`Simulator::new`].
    Config {
        /// The first trajectory with that setting.
        trajectory: usize,
        /// The error.
        error: SimError,
    },
    /// A trajectory failed; when several do, the one with the lowest index is reported.
    Trajectory {
        /// Index into the inputs.
        trajectory: usize,
        /// The error, its `step` counted as [`Simulator`] counts it.
        error: SimError,
    },
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BatchError::Config { trajectory, error } => {
                write!(f, "trajectory {trajectory}: {error}")
            }
            BatchError::Trajectory { trajectory, error } => {
                write!(f, "trajectory {trajectory}: {error}")
            }
        }
    }
}

impl std::error::Error for BatchError {}

/// Names the kernel `arith` resolves to on this CPU (for benchmark reports).
pub fn kernel_name(arith: Arith) -> &'static str {
    Kernel::select(arith).name
}

/// Simulates every input with `model` and `config`, as [`Simulator::run`] would one by one.
///
/// Each trajectory runs to its own length; an empty drive gives an empty trajectory. Settings
/// and initial states are checked before anything runs (the first refused one is reported); a
/// trajectory that fails while running drops out and the others finish, and the batch then fails
/// with the lowest failing index, so the report does not depend on thread timing.
pub fn simulate_batch(
    model: &Model<'_>,
    config: SimConfig,
    inputs: &[Input<'_>],
    opts: BatchOptions,
) -> Result<Vec<Trajectory>, BatchError> {
    simulate_with(
        model,
        config,
        inputs,
        opts.threads,
        Kernel::select(opts.arith),
    )
}

fn simulate_with(
    model: &Model<'_>,
    config: SimConfig,
    inputs: &[Input<'_>],
    threads: usize,
    kernel: Kernel,
) -> Result<Vec<Trajectory>, BatchError> {
    // The lockstep kernels are written for MLPs and explicit tableaux; a Π-net or an implicit
    // solver runs trajectory by trajectory with `Simulator`, which supports both (same results
    // as a caller looping over `Simulator::run`, spread over the threads).
    let f = match model.dynamics.net() {
        Some(f) if !(config.solver.is_implicit() && model.dynamics.is_continuous()) => f,
        _ => return simulate_each(model, config, inputs, threads),
    };
    let ctx = Ctx::new(model, f, config, kernel);
    // Validate with the simulator itself, so the checks (and the initial clamp) cannot drift.
    let mut scratch = vec![0.0f32; model.cost(config.solver, config.substeps).scratch_f32];
    let mut members = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let cfg = SimConfig {
            dt: input.dt.unwrap_or(config.dt),
            ..config
        };
        let mut sim =
            Simulator::new(model, cfg, &mut scratch).map_err(|error| BatchError::Config {
                trajectory: index,
                error,
            })?;
        sim.reset(input.x0)
            .map_err(|error| BatchError::Trajectory {
                trajectory: index,
                error,
            })?;
        members.push(Member {
            index,
            drive: input.drive,
            x0: sim.state().to_vec(),
            clamped0: sim.clamp_count(),
            h: cfg.dt / config.substeps as f32,
            bad_input: input.drive.iter().position(|v| !v.is_finite()),
        });
    }

    // Longest first onto the least-loaded thread.
    members.sort_by(|a, b| {
        b.drive
            .len()
            .cmp(&a.drive.len())
            .then(a.index.cmp(&b.index))
    });
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .clamp(1, members.len().max(1));
    let mut shares: Vec<Vec<Member<'_>>> = (0..threads).map(|_| Vec::new()).collect();
    let mut load = vec![0usize; threads];
    for m in members {
        let t = (0..threads).min_by_key(|&t| (load[t], t)).unwrap_or(0);
        load[t] += m.drive.len().max(1);
        shares[t].push(m);
    }

    let mut results: Vec<Option<Result<Trajectory, SimError>>> = vec![None; inputs.len()];
    let mut store = |done: Vec<(usize, Result<Trajectory, SimError>)>| {
        for (index, r) in done {
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(r);
            }
        }
    };
    if threads == 1 {
        for share in &shares {
            store(ctx.run_share(share));
        }
    } else {
        std::thread::scope(|scope| {
            let ctx = &ctx;
            let handles: Vec<_> = shares
                .iter()
                .map(|share| scope.spawn(move || ctx.run_share(share)))
                .collect();
            for h in handles {
                match h.join() {
                    Ok(done) => store(done),
                    Err(payload) => std::panic::resume_unwind(payload),
                }
            }
        });
    }

    let mut out = Vec::with_capacity(inputs.len());
    for (trajectory, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(t)) => out.push(t),
            Some(Err(error)) => return Err(BatchError::Trajectory { trajectory, error }),
            // Every member is assigned to exactly one share, so this does not happen.
            None => out.push(Trajectory::default()),
        }
    }
    Ok(out)
}

/// Each input through its own [`Simulator::run`], inputs dealt round-robin onto `threads`.
fn simulate_each(
    model: &Model<'_>,
    config: SimConfig,
    inputs: &[Input<'_>],
    threads: usize,
) -> Result<Vec<Trajectory>, BatchError> {
    let cfg_of = |input: &Input<'_>| SimConfig {
        dt: input.dt.unwrap_or(config.dt),
        ..config
    };
    let scratch_len = model.cost_for(&config).scratch_f32;
    let one = |index: usize| -> Result<Trajectory, BatchError> {
        let input = &inputs[index];
        let mut scratch = vec![0.0f32; scratch_len];
        let mut sim = Simulator::new(model, cfg_of(input), &mut scratch).map_err(|error| {
            BatchError::Config {
                trajectory: index,
                error,
            }
        })?;
        let fail = |error| BatchError::Trajectory {
            trajectory: index,
            error,
        };
        sim.reset(input.x0).map_err(fail)?;
        let len = input.drive.len();
        let n = sim.state().len();
        let mut t = Trajectory {
            v: vec![0.0; len],
            i: vec![0.0; len],
            x: vec![0.0; len * n],
            clamped: 0,
        };
        sim.run(input.drive, &mut t.v, &mut t.i, &mut t.x)
            .map_err(fail)?;
        t.clamped = sim.clamp_count();
        Ok(t)
    };
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .clamp(1, inputs.len().max(1));
    let mut results: Vec<Option<Result<Trajectory, BatchError>>> = vec![None; inputs.len()];
    std::thread::scope(|scope| {
        let one = &one;
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || {
                    (k..inputs.len())
                        .step_by(threads)
                        .map(|i| (i, one(i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        results[i] = Some(r);
                    }
                }
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    // The lowest failing index wins, as on the lockstep path.
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Ok(Trajectory::default())))
        .collect()
}

/// One validated input.
struct Member<'d> {
    index: usize,
    drive: &'d [f32],
    /// Initial state after the simulator's clamp.
    x0: Vec<f32>,
    clamped0: u32,
    /// Solver step, `dt / substeps`.
    h: f32,
    /// First non-finite drive sample.
    bad_input: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// Prepared (transposed, padded) nets.

/// A 64-byte aligned, zero-initialized f32 buffer, so every row and weight block starts on a
/// cache line. Aligned by offsetting into an over-allocated `Vec` (no unsafe code needed).
struct AlignedBuf {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    fn zeroed(len: usize) -> Self {
        let buf = vec![0.0f32; len + V];
        let addr = buf.as_ptr() as usize;
        let off = ((64 - addr % 64) % 64) / core::mem::size_of::<f32>();
        AlignedBuf { buf, off, len }
    }

    fn get(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// One dense layer in the kernel's layout.
struct Dense {
    n_in: usize,
    n_out: usize,
    /// Output blocks of `V` neurons.
    nv: usize,
    /// `wt[i * nv * V + o] = w[o][i]` (int8 weights converted to f32, which is exact), zero
    /// padded in `o`.
    wt: AlignedBuf,
    /// Per-row scales of int8 weights, padded with zeros.
    scale: Option<Vec<f32>>,
    /// Bias, padded with zeros.
    bias: Vec<f32>,
    activation: Activation,
}

/// An MLP in the kernel's layout, scaling included.
struct Net {
    in_offset: Vec<f32>,
    in_scale: Vec<f32>,
    layers: Vec<Dense>,
    out_scale: Vec<f32>,
    out_offset: Vec<f32>,
    /// Activation row stride: the widest padded layer (or input).
    stride: usize,
}

impl Net {
    fn new(m: &Mlp<'_>) -> Self {
        let mut stride = m.n_in().div_ceil(V) * V;
        let layers = m
            .layers
            .iter()
            .map(|l| {
                let (n_in, n_out) = (l.n_in as usize, l.n_out as usize);
                let nv = n_out.div_ceil(V);
                let pad = nv * V;
                stride = stride.max(pad);
                let mut wt = AlignedBuf::zeroed(n_in * pad);
                let w = wt.get_mut();
                let scale = match l.weights {
                    Weights::F32(src) => {
                        for (o, row) in src.chunks_exact(n_in.max(1)).enumerate().take(n_out) {
                            for (i, &v) in row.iter().enumerate() {
                                w[i * pad + o] = v;
                            }
                        }
                        None
                    }
                    Weights::Int8 { q, scales } => {
                        for (o, row) in q.chunks_exact(n_in.max(1)).enumerate().take(n_out) {
                            for (i, &v) in row.iter().enumerate() {
                                w[i * pad + o] = v as f32;
                            }
                        }
                        let mut s = scales.to_vec();
                        s.resize(pad, 0.0);
                        Some(s)
                    }
                };
                let mut bias = l.bias.to_vec();
                bias.resize(pad, 0.0);
                Dense {
                    n_in,
                    n_out,
                    nv,
                    wt,
                    scale,
                    bias,
                    activation: l.activation,
                }
            })
            .collect();
        Net {
            in_offset: m.in_offset.to_vec(),
            in_scale: m.in_scale.to_vec(),
            layers,
            out_scale: m.out_scale.to_vec(),
            out_offset: m.out_offset.to_vec(),
            stride,
        }
    }

    fn n_in(&self) -> usize {
        self.in_scale.len()
    }

    fn n_out(&self) -> usize {
        self.out_scale.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels. Everything below `net_rows` is `#[inline(always)]`, so each instruction-set wrapper
// compiles its own copy of the whole network evaluation with its target features.

/// Evaluates `net` on `rows` (at most [`GROUP`]) rows: `input` is `rows x n_in`, `out`
/// `rows x n_out`.
type NetFn = unsafe fn(&Net, usize, &[f32], &mut [f32], &mut Scratch);

/// The kernel's own buffers: two ping-pong activation buffers of `GROUP x stride` and the
/// inputs of one register block at the fixed row stride [`XS`].
struct Scratch {
    a: AlignedBuf,
    b: AlignedBuf,
    xt: AlignedBuf,
}

impl Scratch {
    fn new(stride: usize) -> Self {
        Scratch {
            a: AlignedBuf::zeroed(GROUP * stride),
            b: AlignedBuf::zeroed(GROUP * stride),
            xt: AlignedBuf::zeroed(MAX_BLOCK * XS),
        }
    }
}

/// The most rows of one register block any instruction set uses.
const MAX_BLOCK: usize = 12;
/// Row stride of a register block's input copy: the widest layer plus one block, so that rows
/// do not alias in the L1 cache.
const XS: usize = MAX_WIDTH + V;

#[inline(always)]
fn net_rows<const FMA: bool, const BLOCK: usize, const WIDE: bool>(
    net: &Net,
    rows: usize,
    input: &[f32],
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let Scratch { a, b, xt } = scratch;
    let (a, b, xt) = (a.get_mut(), b.get_mut(), xt.get_mut());
    let s = net.stride;
    let (n_in, n_out) = (net.n_in(), net.n_out());
    for (src, dst) in input
        .chunks_exact(n_in.max(1))
        .zip(a.chunks_exact_mut(s))
        .take(rows)
    {
        for (((d, &x), &off), &sc) in dst
            .iter_mut()
            .zip(src)
            .zip(&net.in_offset)
            .zip(&net.in_scale)
        {
            *d = (x - off) * sc;
        }
    }
    let (mut cur, mut nxt) = (a, b);
    for layer in &net.layers {
        dense_rows::<FMA, BLOCK, WIDE>(layer, rows, s, cur, nxt, xt);
        activate_rows::<FMA>(layer, rows, s, nxt);
        core::mem::swap(&mut cur, &mut nxt);
    }
    for (dst, src) in out
        .chunks_exact_mut(n_out.max(1))
        .zip(cur.chunks_exact(s))
        .take(rows)
    {
        for (((o, &y), &sc), &off) in dst
            .iter_mut()
            .zip(src)
            .zip(&net.out_scale)
            .zip(&net.out_offset)
        {
            *o = y * sc + off;
        }
    }
}

/// `y = W x + b` for `rows` rows, in register blocks of at most `BLOCK` rows (balanced sizes).
#[inline(always)]
fn dense_rows<const FMA: bool, const BLOCK: usize, const WIDE: bool>(
    l: &Dense,
    rows: usize,
    s: usize,
    x: &[f32],
    y: &mut [f32],
    xt: &mut [f32],
) {
    const { assert!(BLOCK >= 1 && BLOCK <= MAX_BLOCK) };
    let blocks = rows.div_ceil(BLOCK);
    let mut r0 = 0;
    for bi in 0..blocks {
        let c = (rows - r0).div_ceil(blocks - bi);
        let xb = &x[r0 * s..(r0 + c) * s];
        let yb = &mut y[r0 * s..(r0 + c) * s];
        macro_rules! by_rows {
            ($($n:literal)*) => {
                match c {
                    $($n => dense_block::<FMA, $n, WIDE>(l, s, xb, yb, xt),)*
                    // Block sizes never exceed BLOCK <= MAX_BLOCK = 12.
                    _ => {}
                }
            };
        }
        by_rows!(1 2 3 4 5 6 7 8 9 10 11 12);
        r0 += c;
    }
}

/// One register block of `C` rows: all output blocks, two at a time if `WIDE`.
#[inline(always)]
fn dense_block<const FMA: bool, const C: usize, const WIDE: bool>(
    l: &Dense,
    s: usize,
    x: &[f32],
    y: &mut [f32],
    xt: &mut [f32],
) {
    let n_in = l.n_in;
    let pad = l.nv * V;
    let wt = l.wt.get();
    // The block's inputs, copied to a fixed row stride: the tile loop then addresses every row
    // at a constant offset from one pointer, and the bounds checks fold away.
    let Ok(xs) = <&mut [f32; MAX_BLOCK * XS]>::try_from(&mut xt[..MAX_BLOCK * XS]) else {
        return;
    };
    let n_in = n_in.min(MAX_WIDTH);
    for (c, row) in x.chunks_exact(s).take(C).enumerate() {
        xs[c * XS..c * XS + n_in].copy_from_slice(&row[..n_in]);
    }
    let xs = &*xs;
    let mut o0 = 0;
    while WIDE && o0 + 2 * V <= pad {
        let acc = tile::<FMA, C, 2>(wt, pad, o0, xs, n_in);
        store::<C, 2>(l, &acc, o0, s, y);
        o0 += 2 * V;
    }
    while o0 < pad {
        let acc = tile::<FMA, C, 1>(wt, pad, o0, xs, n_in);
        store::<C, 1>(l, &acc, o0, s, y);
        o0 += V;
    }
}

/// Accumulates `R` output blocks starting at `o0` for `C` rows over all inputs, in input order.
#[inline(always)]
fn tile<const FMA: bool, const C: usize, const R: usize>(
    wt: &[f32],
    pad: usize,
    o0: usize,
    xs: &[f32; MAX_BLOCK * XS],
    n_in: usize,
) -> [[[f32; V]; R]; C] {
    let mut acc = [[[0.0f32; V]; R]; C];
    let n_in = n_in.min(MAX_WIDTH);
    for i in 0..n_in {
        let base = i * pad + o0;
        let Some(wb) = wt.get(base..base + R * V) else {
            break;
        };
        let mut w = [[0.0f32; V]; R];
        for (r, wr) in w.iter_mut().enumerate() {
            wr.copy_from_slice(&wb[r * V..(r + 1) * V]);
        }
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let xv = xs[c * XS + i];
            for (acc_r, w_r) in acc_c.iter_mut().zip(&w) {
                for (a, &p) in acc_r.iter_mut().zip(w_r) {
                    *a = if FMA { p.mul_add(xv, *a) } else { *a + p * xv };
                }
            }
        }
    }
    acc
}

/// Bias (and int8 row scale) as in `kernels::dense_f32` / `dense_i8`.
#[inline(always)]
fn store<const C: usize, const R: usize>(
    l: &Dense,
    acc: &[[[f32; V]; R]; C],
    o0: usize,
    s: usize,
    y: &mut [f32],
) {
    let bias = &l.bias[o0..o0 + R * V];
    for (c, acc_c) in acc.iter().enumerate() {
        let yr = &mut y[c * s + o0..c * s + o0 + R * V];
        match &l.scale {
            None => {
                for (r, acc_r) in acc_c.iter().enumerate() {
                    for k in 0..V {
                        yr[r * V + k] = acc_r[k] + bias[r * V + k];
                    }
                }
            }
            Some(scale) => {
                let sc = &scale[o0..o0 + R * V];
                for (r, acc_r) in acc_c.iter().enumerate() {
                    for k in 0..V {
                        yr[r * V + k] = sc[r * V + k] * acc_r[k] + bias[r * V + k];
                    }
                }
            }
        }
    }
}

/// Applies the layer's activation to `rows` rows, vectorized for the common cases: with the
/// `libm` arithmetic (bit for bit) in portable mode, with a faster fused version otherwise.
#[inline(always)]
fn activate_rows<const FMA: bool>(l: &Dense, rows: usize, s: usize, y: &mut [f32]) {
    let pad = l.nv * V;
    for row in y.chunks_exact_mut(s).take(rows) {
        match l.activation {
            Activation::Identity => {}
            Activation::Silu | Activation::Sigmoid => {
                let silu = matches!(l.activation, Activation::Silu);
                for blk in row[..pad].chunks_exact_mut(V) {
                    if let Ok(blk) = <&mut [f32; V]>::try_from(blk) {
                        if FMA {
                            sigmoid_block_fma(blk, silu);
                        } else {
                            sigmoid_block(blk, silu);
                        }
                    }
                }
            }
            Activation::Relu => {
                for v in &mut row[..l.n_out] {
                    *v = if *v > 0.0 { *v } else { 0.0 };
                }
            }
            other => {
                for v in &mut row[..l.n_out] {
                    *v = other.apply(*v);
                }
            }
        }
    }
}

// `libm::expf` (FreeBSD `e_expf.c`), transcribed lane-wise: the same operations in the same order,
// branches turned into selects. Lanes with |x| >= 87.34 or NaN (overflow, subnormal results, the
// multi-step `scalbnf`) are recomputed with the scalar function.
const EXP_LN2_HI: f32 = f32::from_bits(0x3f31_7200);
const EXP_LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
/// `1.4426950216e+00` in `e_expf.c`, the f32 `LOG2_E` rounds to.
const EXP_INV_LN2: f32 = core::f32::consts::LOG2_E;
const EXP_P1: f32 = f32::from_bits(0x3e2a_aa8f);
const EXP_P2: f32 = f32::from_bits(0xbb35_5215);
/// `|x|` bits from which the scalar path takes over.
const EXP_SLOW: u32 = 0x42ae_ac50;

/// `libm::expf` on a block; returns whether some lane needs the scalar path.
#[inline(always)]
fn expf_block(x: &[f32; V], out: &mut [f32; V]) -> bool {
    let mut slow = false;
    for k in 0..V {
        let xk = x[k];
        let bits = xk.to_bits();
        let sign = bits >> 31;
        let hx = bits & 0x7fff_ffff;
        slow |= hx >= EXP_SLOW;
        let half = if sign != 0 { -0.5f32 } else { 0.5f32 };
        // `(z as i32) as f32` is `z.trunc()` for the |z| < 128 of the fast lanes; kept in floats
        // so the conversion vectorizes (the saturating `as i32` does not).
        let k_big = (EXP_INV_LN2 * xk + half).trunc();
        let k_mid = if sign != 0 { -1.0f32 } else { 1.0f32 };
        let kf = if hx > 0x3f85_1592 {
            k_big
        } else if hx > 0x3eb1_7218 {
            k_mid
        } else {
            0.0
        };
        let hi = xk - kf * EXP_LN2_HI;
        let lo = kf * EXP_LN2_LO;
        let r = hi - lo;
        let rr = r * r;
        let c = r - rr * (EXP_P1 + rr * EXP_P2);
        let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
        // 2^k: k + 127 lands in the low mantissa bits of 2^23 + k + 127.
        let biased = (kf + (127.0 + 8_388_608.0)).to_bits() & 0x007f_ffff;
        let scale = f32::from_bits(biased << 23);
        out[k] = if hx > 0x3900_0000 {
            y * scale
        } else {
            1.0 + xk
        };
    }
    slow
}

/// [`crate::activation::sigmoid`] (or SiLU, `x * sigmoid(x)`) on a block, bit for bit.
#[inline(always)]
fn sigmoid_block(v: &mut [f32; V], silu: bool) {
    let x = *v;
    let mut t = [0.0f32; V];
    for k in 0..V {
        t[k] = if x[k] >= 0.0 { -x[k] } else { x[k] };
    }
    let mut e = [0.0f32; V];
    let slow = expf_block(&t, &mut e);
    for k in 0..V {
        let d = 1.0 + e[k];
        let sig = if x[k] >= 0.0 { 1.0 / d } else { e[k] / d };
        v[k] = if silu { x[k] * sig } else { sig };
    }
    if slow {
        fix_slow_lanes(v, &x, silu);
    }
}

/// Recomputes with the scalar function the lanes outside the fast paths' range (|x| >= 87.34,
/// NaN): underflowing exponentials and NaN propagation stay exactly as in `Activation::apply`.
#[cold]
#[inline(never)]
fn fix_slow_lanes(v: &mut [f32; V], x: &[f32; V], silu: bool) {
    let act = if silu {
        Activation::Silu
    } else {
        Activation::Sigmoid
    };
    for (out, &xk) in v.iter_mut().zip(x) {
        if xk.to_bits() & 0x7fff_ffff >= EXP_SLOW {
            *out = act.apply(xk);
        }
    }
}

/// Sigmoid or SiLU with fused multiply-adds: `exp(-|x|)` by a Cephes-style degree-6 polynomial
/// (about 1 ulp) and one division per lane instead of `libm::expf`'s two.
#[inline(always)]
fn sigmoid_block_fma(v: &mut [f32; V], silu: bool) {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const C1: f32 = 0.693_359_4; // ln 2, high part
    const C2: f32 = -2.121_944_4e-4; // ln 2 - C1
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let x = *v;
    let mut slow = false;
    for k in 0..V {
        let xk = x[k];
        slow |= xk.to_bits() & 0x7fff_ffff >= EXP_SLOW;
        let t = -xk.abs();
        // n = round(t / ln 2) and r = t - n ln 2, |r| <= ln 2 / 2.
        let big = t.mul_add(LOG2E, ROUND);
        let n = big - ROUND;
        let r = n.mul_add(-C2, n.mul_add(-C1, t));
        let mut p = P[0];
        p = p.mul_add(r, P[1]);
        p = p.mul_add(r, P[2]);
        p = p.mul_add(r, P[3]);
        p = p.mul_add(r, P[4]);
        p = p.mul_add(r, P[5]);
        let y = p.mul_add(r * r, r) + 1.0;
        // 2^n from the integer in the low mantissa bits of `big` (n in [-126, 0] here).
        let nb = (big.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
        let scale = f32::from_bits((nb.wrapping_add(127) as u32) << 23);
        let e = y * scale;
        let num = if xk >= 0.0 { 1.0 } else { e };
        let sig = num / (1.0 + e);
        v[k] = if silu { xk * sig } else { sig };
    }
    if slow {
        fix_slow_lanes(v, &x, silu);
    }
}

fn net_generic<const FMA: bool>(
    net: &Net,
    rows: usize,
    input: &[f32],
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    // 32 vector registers on aarch64 (a block is 4 of them), 16 on 32-bit x86 and others.
    #[cfg(target_arch = "aarch64")]
    net_rows::<FMA, 6, false>(net, rows, input, out, scratch);
    #[cfg(not(target_arch = "aarch64"))]
    net_rows::<FMA, 2, false>(net, rows, input, out, scratch);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{net_rows, Net, Scratch};

    /// 32 vector registers: 2 weight blocks x 12 rows of accumulators, 2 weights, 1 input.
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub(super) unsafe fn net_avx512<const FMA: bool>(
        net: &Net,
        rows: usize,
        input: &[f32],
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        net_rows::<FMA, 12, true>(net, rows, input, out, scratch)
    }

    /// 16 vector registers, a block is two of them: 1 weight block x 6 rows of accumulators.
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn net_avx2<const FMA: bool>(
        net: &Net,
        rows: usize,
        input: &[f32],
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        net_rows::<FMA, 6, false>(net, rows, input, out, scratch)
    }
}

/// The network evaluator chosen for this CPU and arithmetic mode.
#[derive(Clone, Copy)]
struct Kernel {
    eval: NetFn,
    name: &'static str,
}

impl Kernel {
    fn select(arith: Arith) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 =
                avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
            let fma = !matches!(arith, Arith::Portable);
            let pick = |eval: NetFn, name| Kernel { eval, name };
            match (avx512, avx2, fma) {
                (true, _, true) => return pick(x86::net_avx512::<true>, "avx512+fma"),
                (true, _, false) => return pick(x86::net_avx512::<false>, "avx512 portable"),
                (false, true, true) => return pick(x86::net_avx2::<true>, "avx2+fma"),
                (false, true, false) => return pick(x86::net_avx2::<false>, "avx2 portable"),
                _ => {}
            }
            if matches!(arith, Arith::Fma) {
                return pick(net_generic::<true>, "generic software fma");
            }
            pick(net_generic::<false>, "generic portable")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            // Other 64-bit hosts (aarch64) have fused multiply-add in their base instruction set.
            let fma = match arith {
                Arith::Portable => false,
                Arith::Fma => true,
                Arith::Auto => cfg!(target_arch = "aarch64"),
            };
            if fma {
                Kernel {
                    eval: net_generic::<true>,
                    name: "generic fma",
                }
            } else {
                Kernel {
                    eval: net_generic::<false>,
                    name: "generic portable",
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The simulation loop: `sim.rs` semantics, one row per trajectory.

/// Everything shared by the threads.
struct Ctx<'m, 'a> {
    model: &'m Model<'a>,
    config: SimConfig,
    kernel: Kernel,
    f: Net,
    g: Option<Net>,
    stride: usize,
    n: usize,
    stages: usize,
    a: [[f32; MAX_STAGES]; MAX_STAGES],
    b: [f32; MAX_STAGES],
    c: [f32; MAX_STAGES],
}

/// Per-thread buffers, sized for [`GROUP`] rows.
struct Work {
    scratch: Scratch,
    /// Net inputs `[x.., u]`.
    inp: Vec<f32>,
    /// Memductance-net outputs.
    gout: Vec<f32>,
    /// Memductance per row.
    g: Vec<f32>,
    /// Stage states, compact rows of `n`.
    xs: Vec<f32>,
    /// Drive per row.
    vs: Vec<f32>,
    /// Net outputs, compact rows of `n`.
    dx: Vec<f32>,
}

impl<'m, 'a> Ctx<'m, 'a> {
    fn new(model: &'m Model<'a>, f: &Mlp<'a>, config: SimConfig, kernel: Kernel) -> Self {
        let f = Net::new(f);
        let g = match &model.readout {
            Readout::Net { g, .. } => Some(Net::new(g)),
            _ => None,
        };
        let stride = g.as_ref().map_or(f.stride, |g| g.stride.max(f.stride));
        let tab = config.solver.tableau();
        let stages = match model.dynamics {
            Dynamics::Ode { .. } | Dynamics::PolyOde { .. } => tab.stages.min(MAX_STAGES),
            Dynamics::Iterator { .. } => 1,
        };
        let mut a = [[0.0f32; MAX_STAGES]; MAX_STAGES];
        for (dst, src) in a.iter_mut().zip(&tab.a) {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = s as f32;
            }
        }
        Ctx {
            model,
            config,
            kernel,
            f,
            g,
            stride,
            n: model.n_states(),
            stages,
            a,
            b: tab.b.map(|v| v as f32),
            c: tab.c.map(|v| v as f32),
        }
    }

    fn work(&self) -> Work {
        let n = self.n;
        Work {
            scratch: Scratch::new(self.stride),
            inp: vec![0.0; GROUP * (n + 1)],
            gout: vec![0.0; GROUP],
            g: vec![0.0; GROUP],
            xs: vec![0.0; GROUP * n],
            vs: vec![0.0; GROUP],
            dx: vec![0.0; GROUP * n],
        }
    }

    fn eval(&self, net: &Net, rows: usize, input: &[f32], out: &mut [f32], w: &mut Work) {
        #[allow(unsafe_code)]
        // SAFETY: `Kernel::select` only picks a `#[target_feature]` instantiation after
        // `is_x86_feature_detected!` confirmed every feature it enables on this CPU; the function
        // has no other precondition (all its memory accesses are bounds-checked slices).
        unsafe {
            (self.kernel.eval)(net, rows, input, out, &mut w.scratch)
        }
    }

    /// Memductance of the first `rows` rows of `w.xs` into `w.g`; false without a readout.
    fn conductance(&self, rows: usize, w: &mut Work) -> bool {
        let n = self.n;
        match &self.model.readout {
            Readout::None => false,
            Readout::Linear { r_on, r_off } => {
                for (g, x) in w.g.iter_mut().zip(w.xs.chunks_exact(n.max(1))).take(rows) {
                    let s = x.first().copied().unwrap_or(0.0);
                    *g = s / r_on + (1.0 - s) / r_off;
                }
                true
            }
            Readout::Net { g_min, g_max, .. } => {
                if let Some(gnet) = &self.g {
                    let mut gout = core::mem::take(&mut w.gout);
                    let xs = core::mem::take(&mut w.xs);
                    self.eval(gnet, rows, &xs[..rows * n], &mut gout[..rows], w);
                    w.xs = xs;
                    for (g, &y) in w.g.iter_mut().zip(&gout).take(rows) {
                        *g = g_min + (g_max - g_min) * y;
                    }
                    w.gout = gout;
                }
                true
            }
        }
    }

    /// Memristor voltage for memductance `g` under supply `vs` (see `sim::observe`).
    fn voltage(&self, g: f32, vs: f32) -> f32 {
        match self.model.circuit {
            Some(c) => vs / (1.0 + c.series_resistance * g),
            None => vs,
        }
    }

    /// The state net at rows `w.xs` under drives `w.vs`, into `w.dx` (see `sim::eval_net`).
    fn eval_net(&self, rows: usize, w: &mut Work) {
        let n = self.n;
        let has_g = self.conductance(rows, w);
        for r in 0..rows {
            let vs = w.vs[r];
            let u = if has_g { self.voltage(w.g[r], vs) } else { vs };
            let dst = &mut w.inp[r * (n + 1)..(r + 1) * (n + 1)];
            dst[..n].copy_from_slice(&w.xs[r * n..(r + 1) * n]);
            dst[n] = u;
        }
        let inp = core::mem::take(&mut w.inp);
        let mut dx = core::mem::take(&mut w.dx);
        self.eval(
            &self.f,
            rows,
            &inp[..rows * (n + 1)],
            &mut dx[..rows * n],
            w,
        );
        w.inp = inp;
        w.dx = dx;
    }

    /// Runs one thread's share, in lockstep groups.
    fn run_share(&self, share: &[Member<'_>]) -> Vec<(usize, Result<Trajectory, SimError>)> {
        let mut w = self.work();
        let mut done = Vec::with_capacity(share.len());
        for group in share.chunks(GROUP) {
            self.run_group(group, &mut w, &mut done);
        }
        done
    }

    fn run_group(
        &self,
        group: &[Member<'_>],
        w: &mut Work,
        done: &mut Vec<(usize, Result<Trajectory, SimError>)>,
    ) {
        let n = self.n;
        let st = self.stages;
        let gn = group.len();
        let mut x = vec![0.0f32; gn * n];
        let mut k = vec![0.0f32; gn * st * n];
        let mut out: Vec<Trajectory> = group
            .iter()
            .map(|m| Trajectory {
                v: Vec::with_capacity(m.drive.len()),
                i: Vec::with_capacity(m.drive.len()),
                x: Vec::with_capacity(m.drive.len() * n),
                clamped: m.clamped0,
            })
            .collect();
        let mut failed: Vec<Option<SimError>> = vec![None; gn];
        for (xr, m) in x.chunks_exact_mut(n.max(1)).zip(group) {
            xr.copy_from_slice(&m.x0[..n]);
        }
        let max_len = group.iter().map(|m| m.drive.len()).max().unwrap_or(0);
        let mut active: Vec<usize> = Vec::with_capacity(gn);
        let mut dvs = vec![0.0f32; gn];
        let mut vs_now = vec![0.0f32; gn];

        for row in 0..max_len {
            // Who takes part in this row: drive long enough, finite, no earlier failure.
            active.clear();
            for (t, m) in group.iter().enumerate() {
                if failed[t].is_some() || m.drive.len() <= row {
                    continue;
                }
                if m.bad_input == Some(row) {
                    // `Simulator::run` sees sample `row` first as `vs_next` of the step counted
                    // `row - 1` (or in the first observation).
                    failed[t] = Some(SimError::NonFiniteInput {
                        step: row.saturating_sub(1) as u32,
                    });
                    continue;
                }
                active.push(t);
            }
            if active.is_empty() {
                break;
            }
            if row > 0 {
                for &t in &active {
                    let d = group[t].drive;
                    vs_now[t] = d[row - 1];
                    dvs[t] = d[row] - d[row - 1];
                }
                self.advance(group, &active, &mut x, &mut k, &vs_now, &dvs, &mut out, w);
                for &t in &active {
                    if x[t * n..(t + 1) * n].iter().any(|v| !v.is_finite()) {
                        failed[t] = Some(SimError::NonFiniteState {
                            step: (row - 1) as u32,
                        });
                    }
                }
                active.retain(|&t| failed[t].is_none());
            }
            // Observation at this row, in chunks of the work buffers' size.
            for chunk in active.chunks(GROUP) {
                for (r, &t) in chunk.iter().enumerate() {
                    w.xs[r * n..(r + 1) * n].copy_from_slice(&x[t * n..(t + 1) * n]);
                }
                let has_g = self.conductance(chunk.len(), w);
                for (r, &t) in chunk.iter().enumerate() {
                    let vs = group[t].drive[row];
                    let (v, i) = if has_g {
                        let g = w.g[r];
                        let v = self.voltage(g, vs);
                        (v, g * v)
                    } else {
                        (vs, 0.0)
                    };
                    let o = &mut out[t];
                    o.v.push(v);
                    o.i.push(i);
                    o.x.extend_from_slice(&x[t * n..(t + 1) * n]);
                }
            }
        }
        for ((m, o), f) in group.iter().zip(out).zip(failed) {
            done.push((m.index, f.map_or(Ok(o), Err)));
        }
    }

    /// One sample interval for the `active` rows (see `Simulator::step`).
    #[allow(clippy::too_many_arguments)]
    fn advance(
        &self,
        group: &[Member<'_>],
        active: &[usize],
        x: &mut [f32],
        k: &mut [f32],
        vs_now: &[f32],
        dvs: &[f32],
        out: &mut [Trajectory],
        w: &mut Work,
    ) {
        let n = self.n;
        let st = self.stages;
        match &self.model.dynamics {
            Dynamics::Ode { .. } | Dynamics::PolyOde { .. } => {
                let m = self.config.substeps;
                for s in 0..m {
                    for stage in 0..st {
                        let frac = (s as f32 + self.c[stage]) / m as f32;
                        for chunk in active.chunks(GROUP) {
                            for (r, &t) in chunk.iter().enumerate() {
                                let h = group[t].h;
                                let xs = &mut w.xs[r * n..(r + 1) * n];
                                xs.copy_from_slice(&x[t * n..(t + 1) * n]);
                                for j in 0..stage {
                                    let a = self.a[stage][j];
                                    if a != 0.0 {
                                        let ha = h * a;
                                        let kj = &k[(t * st + j) * n..(t * st + j + 1) * n];
                                        for (v, &kv) in xs.iter_mut().zip(kj) {
                                            *v += ha * kv;
                                        }
                                    }
                                }
                                w.vs[r] = vs_now[t] + frac * dvs[t];
                            }
                            self.eval_net(chunk.len(), w);
                            for (r, &t) in chunk.iter().enumerate() {
                                k[(t * st + stage) * n..(t * st + stage + 1) * n]
                                    .copy_from_slice(&w.dx[r * n..(r + 1) * n]);
                            }
                        }
                    }
                    for &t in active {
                        let h = group[t].h;
                        let xt = &mut x[t * n..(t + 1) * n];
                        for stage in 0..st {
                            let b = self.b[stage];
                            if b != 0.0 {
                                let hb = h * b;
                                let ks = &k[(t * st + stage) * n..(t * st + stage + 1) * n];
                                for (o, &kv) in xt.iter_mut().zip(ks) {
                                    *o += hb * kv;
                                }
                            }
                        }
                        out[t].clamped = self.clamp(xt, out[t].clamped);
                    }
                }
            }
            Dynamics::Iterator { form, .. } => {
                for chunk in active.chunks(GROUP) {
                    for (r, &t) in chunk.iter().enumerate() {
                        w.xs[r * n..(r + 1) * n].copy_from_slice(&x[t * n..(t + 1) * n]);
                        w.vs[r] = vs_now[t];
                    }
                    self.eval_net(chunk.len(), w);
                    for (r, &t) in chunk.iter().enumerate() {
                        let xt = &mut x[t * n..(t + 1) * n];
                        let d = &w.dx[r * n..(r + 1) * n];
                        match form {
                            IteratorForm::Residual => {
                                for (v, &dv) in xt.iter_mut().zip(d) {
                                    *v += dv;
                                }
                            }
                            IteratorForm::Direct => xt.copy_from_slice(d),
                        }
                        out[t].clamped = self.clamp(xt, out[t].clamped);
                    }
                }
            }
        }
    }

    /// Clamps into the model's bounds, counting as `Simulator` does.
    fn clamp(&self, x: &mut [f32], mut count: u32) -> u32 {
        let m = self.model;
        for ((x, &lo), &hi) in x.iter_mut().zip(m.lower).zip(m.upper) {
            if *x < lo {
                *x = lo;
                count = count.saturating_add(1);
            } else if *x > hi {
                *x = hi;
                count = count.saturating_add(1);
            }
        }
        count
    }
}

#[cfg(test)]
// Tests report failures by panicking.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::spec::examples::{dual_nn_memode, random_mlp, single_nn_memode, Rng};
    use crate::spec::{BoundSpec, DynamicsSpec, ModelSpec, Quant, ReadoutSpec};
    use crate::{AlignedBlob, Solver};

    /// Every kernel this CPU can run in portable mode.
    fn portable_kernels() -> Vec<Kernel> {
        let mut ks = vec![Kernel {
            eval: net_generic::<false>,
            name: "generic portable",
        }];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                ks.push(Kernel {
                    eval: x86::net_avx2::<false>,
                    name: "avx2 portable",
                });
            }
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
                ks.push(Kernel {
                    eval: x86::net_avx512::<false>,
                    name: "avx512 portable",
                });
            }
        }
        ks
    }

    /// Drives of different lengths, amplitudes and frequencies.
    fn drives(count: usize, base_len: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(seed);
        (0..count)
            .map(|t| {
                let len = base_len - (t * 7) % (base_len / 2).max(1);
                let amp = 0.5 + 1.5 * (rng.next_f32() + 1.0) / 2.0;
                let per = 20.0 + 30.0 * (rng.next_f32() + 1.0);
                (0..len)
                    .map(|n| {
                        let ph = 2.0 * core::f64::consts::PI * n as f64 / per as f64;
                        (amp as f64 * ph.sin()) as f32 + 0.05 * rng.next_f32()
                    })
                    .collect()
            })
            .collect()
    }

    /// `Simulator::run` on each input alone.
    fn reference(model: &Model<'_>, config: SimConfig, inputs: &[Input<'_>]) -> Vec<Trajectory> {
        let n = model.n_states();
        let mut scratch = vec![0.0f32; model.cost(config.solver, config.substeps).scratch_f32];
        inputs
            .iter()
            .map(|inp| {
                let cfg = SimConfig {
                    dt: inp.dt.unwrap_or(config.dt),
                    ..config
                };
                let mut sim = Simulator::new(model, cfg, &mut scratch).unwrap();
                sim.reset(inp.x0).unwrap();
                let len = inp.drive.len();
                let mut t = Trajectory {
                    v: vec![0.0; len],
                    i: vec![0.0; len],
                    x: vec![0.0; len * n],
                    clamped: 0,
                };
                sim.run(inp.drive, &mut t.v, &mut t.i, &mut t.x).unwrap();
                t.clamped = sim.clamp_count();
                t
            })
            .collect()
    }

    fn assert_identical(got: &[Trajectory], want: &[Trajectory], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (t, (g, w)) in got.iter().zip(want).enumerate() {
            for (name, a, b) in [("v", &g.v, &w.v), ("i", &g.i, &w.i), ("x", &g.x, &w.x)] {
                assert_eq!(a.len(), b.len(), "{what}: trajectory {t} {name} length");
                for (j, (p, q)) in a.iter().zip(b.iter()).enumerate() {
                    assert!(
                        p == q && p.to_bits() == q.to_bits(),
                        "{what}: trajectory {t} {name}[{j}]: {p:e} vs {q:e}"
                    );
                }
            }
            assert_eq!(g.clamped, w.clamped, "{what}: trajectory {t} clamp count");
        }
    }

    fn iterator_model(form: IteratorForm, readout: bool, seed: u64) -> ModelSpec {
        let n = 2;
        let mut net = random_mlp(
            n + 1,
            &[
                (20, crate::Activation::Silu),
                (12, crate::Activation::Tanh),
                (n, crate::Activation::Identity),
            ],
            seed,
        );
        net.output_scale = match form {
            IteratorForm::Residual => vec![0.02; n],
            IteratorForm::Direct => vec![0.9; n],
        };
        ModelSpec {
            format_version: crate::FORMAT_VERSION,
            name: "iterator".into(),
            dynamics: DynamicsSpec::Iterator {
                net,
                form,
                dt: 1e-3,
            },
            readout: if readout {
                ReadoutSpec::Linear {
                    r_on: 1e3,
                    r_off: 1e5,
                }
            } else {
                ReadoutSpec::None
            },
            circuit: readout.then_some(crate::Circuit {
                series_resistance: 1e3,
            }),
            x0: vec![0.3, -0.2],
            bounds: vec![
                BoundSpec {
                    lower: Some(0.0),
                    upper: Some(1.0),
                },
                BoundSpec::default(),
            ],
        }
    }

    fn blobs() -> Vec<(&'static str, AlignedBlob)> {
        vec![
            (
                "single f32",
                single_nn_memode(&[16, 32, 16], 3).encode(Quant::F32),
            ),
            (
                "single int8",
                single_nn_memode(&[16, 32, 16], 4).encode(Quant::Int8),
            ),
            (
                "dual f32",
                dual_nn_memode(&[24, 48, 24], 16, 3, 5).encode(Quant::F32),
            ),
            (
                "dual int8",
                dual_nn_memode(&[24, 48, 24], 16, 3, 6).encode(Quant::Int8),
            ),
        ]
    }

    #[test]
    fn batch_portable_is_bit_identical_to_simulator() {
        let ds = drives(11, 60, 1);
        let inputs: Vec<Input<'_>> = ds.iter().map(|d| Input::new(d)).collect();
        for (name, blob) in blobs() {
            let model = blob.model().unwrap();
            for solver in [Solver::Euler, Solver::Rk4, Solver::Tsit5] {
                for substeps in [1, 3] {
                    let config = SimConfig {
                        dt: 1e-3,
                        solver,
                        substeps,
                        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
                    };
                    let want = reference(&model, config, &inputs);
                    for kernel in portable_kernels() {
                        for threads in [1, 3] {
                            let got =
                                simulate_with(&model, config, &inputs, threads, kernel).unwrap();
                            let what = format!(
                                "{name} {solver:?} x{substeps} {} {threads} threads",
                                kernel.name
                            );
                            assert_identical(&got, &want, &what);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn batch_portable_public_api_matches_simulator() {
        let blob = single_nn_memode(&[16, 32, 16], 9).encode(Quant::F32);
        let model = blob.model().unwrap();
        let config = SimConfig {
            dt: 1e-3,
            solver: Solver::Rk4,
            substeps: 1,
            newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        let ds = drives(13, 80, 2);
        let x0s: Vec<[f32; 1]> = (0..ds.len()).map(|t| [t as f32 / 10.0 - 0.1]).collect();
        // Per-trajectory x0 (one out of bounds, clamped) and dt overrides, and an empty drive.
        let mut inputs: Vec<Input<'_>> = ds
            .iter()
            .zip(&x0s)
            .enumerate()
            .map(|(t, (d, x0))| Input::new(d).with_x0(x0).with_dt(1e-3 * (1 + t % 3) as f32))
            .collect();
        inputs.push(Input::new(&[]));
        let want = reference(&model, config, &inputs);
        let opts = BatchOptions {
            threads: 0,
            arith: Arith::Portable,
        };
        let got = simulate_batch(&model, config, &inputs, opts).unwrap();
        assert_identical(&got, &want, "public api");
        assert_eq!(want[0].clamped, 1);
        assert!(got.last().unwrap().v.is_empty());
    }

    #[test]
    fn batch_many_groups_and_blocks_bit_identical() {
        // More trajectories than one lockstep group, on one thread and on two, with the paper's
        // widths so the register tiles cover 128-wide layers.
        let blob = single_nn_memode(&[64, 128, 128, 64], 1).encode(Quant::F32);
        let model = blob.model().unwrap();
        let config = SimConfig {
            dt: 1e-3,
            solver: Solver::Rk4,
            substeps: 1,
            newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        let ds = drives(GROUP + 5, 12, 9);
        let inputs: Vec<Input<'_>> = ds.iter().map(|d| Input::new(d)).collect();
        let want = reference(&model, config, &inputs);
        for kernel in portable_kernels() {
            for threads in [1, 2] {
                let got = simulate_with(&model, config, &inputs, threads, kernel).unwrap();
                assert_identical(&got, &want, &format!("{} {threads} threads", kernel.name));
            }
        }
    }

    #[test]
    fn batch_iterator_nets_are_bit_identical() {
        let ds = drives(11, 70, 3);
        let inputs: Vec<Input<'_>> = ds.iter().map(|d| Input::new(d)).collect();
        for form in [IteratorForm::Residual, IteratorForm::Direct] {
            for readout in [false, true] {
                for quant in [Quant::F32, Quant::Int8] {
                    let blob = iterator_model(form, readout, 11).encode(quant);
                    let model = blob.model().unwrap();
                    let config = SimConfig {
                        dt: 1e-3,
                        solver: Solver::Rk4,
                        substeps: 1,
                        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
                    };
                    let want = reference(&model, config, &inputs);
                    for kernel in portable_kernels() {
                        let got = simulate_with(&model, config, &inputs, 2, kernel).unwrap();
                        let what = format!("{form:?} readout={readout} {quant:?} {}", kernel.name);
                        assert_identical(&got, &want, &what);
                    }
                }
            }
        }
    }

    #[test]
    fn batch_all_solvers_bit_identical() {
        let blob = dual_nn_memode(&[24, 48, 24], 16, 3, 8).encode(Quant::F32);
        let model = blob.model().unwrap();
        let ds = drives(5, 40, 4);
        let inputs: Vec<Input<'_>> = ds.iter().map(|d| Input::new(d)).collect();
        for solver in Solver::ALL {
            let config = SimConfig {
                dt: 2e-3,
                solver,
                substeps: 2,
                newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
            };
            let want = reference(&model, config, &inputs);
            let got = simulate_batch(
                &model,
                config,
                &inputs,
                BatchOptions {
                    threads: 2,
                    arith: Arith::Portable,
                },
            )
            .unwrap();
            assert_identical(&got, &want, solver.tableau().name);
        }
    }

    #[test]
    fn batch_fma_agrees_within_tolerance() {
        let config = SimConfig {
            dt: 1e-3,
            solver: Solver::Rk4,
            substeps: 1,
            newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        let ds = drives(11, 2000, 5);
        let inputs: Vec<Input<'_>> = ds.iter().map(|d| Input::new(d)).collect();
        for (name, blob) in blobs() {
            let model = blob.model().unwrap();
            let want = reference(&model, config, &inputs);
            let opts = BatchOptions {
                threads: 2,
                arith: Arith::Fma,
            };
            let got = simulate_batch(&model, config, &inputs, opts).unwrap();
            let mut worst = 0.0f64;
            for (g, w) in got.iter().zip(&want) {
                for (a, b) in [(&g.v, &w.v), (&g.i, &w.i), (&g.x, &w.x)] {
                    assert_eq!(a.len(), b.len());
                    let mag = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
                    for (p, q) in a.iter().zip(b.iter()) {
                        let rel = (p - q).abs() as f64 / (q.abs().max(1e-3 * mag)) as f64;
                        worst = worst.max(rel);
                    }
                }
            }
            eprintln!("{name}: fma max relative difference {worst:e}");
            assert!(worst <= 1e-4, "{name}: max relative difference {worst:e}");
        }
    }

    #[test]
    fn batch_reports_failures_like_simulator() {
        let blob = single_nn_memode(&[16, 16], 2).encode(Quant::F32);
        let model = blob.model().unwrap();
        let config = SimConfig {
            dt: 1e-3,
            solver: Solver::Heun,
            substeps: 1,
            newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        let ds = drives(6, 30, 6);
        let mut bad3 = ds[3].clone();
        bad3[17] = f32::NAN;
        let mut bad5 = ds[5].clone();
        bad5[0] = f32::INFINITY;
        let mut inputs: Vec<Input<'_>> = ds.iter().map(|d| Input::new(d)).collect();
        inputs[3] = Input::new(&bad3);
        inputs[5] = Input::new(&bad5);
        let mut scratch = vec![0.0f32; 256];
        let mut sim = Simulator::new(&model, config, &mut scratch).unwrap();
        let len = bad3.len();
        let (mut v, mut i, mut x) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        let want = sim.run(&bad3, &mut v, &mut i, &mut x).unwrap_err();
        assert_eq!(want, SimError::NonFiniteInput { step: 16 });
        let got = simulate_batch(&model, config, &inputs, BatchOptions::default()).unwrap_err();
        assert_eq!(
            got,
            BatchError::Trajectory {
                trajectory: 3,
                error: want
            }
        );
        // Bad settings are refused as the simulator refuses them.
        let bad_dt = [Input::new(&ds[0]), Input::new(&ds[1]).with_dt(-1.0)];
        let got = simulate_batch(&model, config, &bad_dt, BatchOptions::default()).unwrap_err();
        assert!(
            matches!(got, BatchError::Config { trajectory: 1, .. }),
            "{got:?}"
        );
        let bad_x0 = [Input::new(&ds[0]).with_x0(&[0.1, 0.2])];
        let got = simulate_batch(&model, config, &bad_x0, BatchOptions::default()).unwrap_err();
        assert_eq!(
            got,
            BatchError::Trajectory {
                trajectory: 0,
                error: SimError::BadInitialState
            }
        );
    }

    #[test]
    fn batch_non_finite_state_names_trajectory_and_step() {
        // A direct, linear iterator map that grows geometrically until it overflows.
        let mut spec = iterator_model(IteratorForm::Direct, false, 12);
        if let DynamicsSpec::Iterator { net, .. } = &mut spec.dynamics {
            *net = random_mlp(3, &[(2, crate::Activation::Identity)], 12);
            net.output_scale = vec![50.0; 2];
        }
        spec.bounds = vec![BoundSpec::default(); 2];
        let blob = spec.encode(Quant::F32);
        let model = blob.model().unwrap();
        let config = SimConfig {
            dt: 1e-3,
            solver: Solver::Euler,
            substeps: 1,
            newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        let ds = drives(4, 120, 7);
        let inputs: Vec<Input<'_>> = ds.iter().map(|d| Input::new(d)).collect();
        let mut scratch = vec![0.0f32; 512];
        let mut first = None;
        for (t, d) in ds.iter().enumerate() {
            let mut sim = Simulator::new(&model, config, &mut scratch).unwrap();
            let len = d.len();
            let (mut v, mut i, mut x) = (vec![0.0; len], vec![0.0; len], vec![0.0; 2 * len]);
            if let Err(e) = sim.run(d, &mut v, &mut i, &mut x) {
                first.get_or_insert((t, e));
            }
        }
        let (trajectory, error) = first.expect("the net overflows");
        assert!(matches!(error, SimError::NonFiniteState { .. }));
        let got = simulate_batch(&model, config, &inputs, BatchOptions::default()).unwrap_err();
        assert_eq!(got, BatchError::Trajectory { trajectory, error });
    }

    #[test]
    fn batch_activation_blocks_match_scalar() {
        assert_eq!(EXP_INV_LN2.to_bits(), 0x3fb8_aa3b);
        let mut vals: Vec<f32> = Vec::new();
        // A stride through every exponent and sign, and the special values.
        let mut bits = 0u32;
        while let Some(b) = bits.checked_add(0x0000_1f3d) {
            vals.push(f32::from_bits(bits));
            bits = b;
        }
        vals.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
        ]);
        for i in -20000..=20000 {
            vals.push(i as f32 * 0.005);
        }
        while vals.len() % V != 0 {
            vals.push(1.0);
        }
        for (act, silu) in [(Activation::Silu, true), (Activation::Sigmoid, false)] {
            for chunk in vals.chunks_exact(V) {
                let mut blk: [f32; V] = chunk.try_into().unwrap();
                sigmoid_block(&mut blk, silu);
                for (&x, &y) in chunk.iter().zip(&blk) {
                    let want = act.apply(x);
                    assert!(
                        want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan()),
                        "{} at {x:e}: {y:e} vs {want:e}",
                        act.name()
                    );
                }
            }
        }
    }

    #[test]
    fn batch_fused_activation_is_accurate() {
        let mut worst = 0.0f64;
        for (act, silu) in [(Activation::Silu, true), (Activation::Sigmoid, false)] {
            let mut vals: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 4.5e-4).collect();
            vals.extend([
                0.0,
                -0.0,
                1e-30,
                -1e-30,
                87.0,
                -87.0,
                100.0,
                -100.0,
                f32::NAN,
            ]);
            vals.extend([f32::INFINITY, f32::NEG_INFINITY]);
            while vals.len() % V != 0 {
                vals.push(0.5);
            }
            for chunk in vals.chunks_exact(V) {
                let mut blk: [f32; V] = chunk.try_into().unwrap();
                sigmoid_block_fma(&mut blk, silu);
                for (&x, &y) in chunk.iter().zip(&blk) {
                    let want = act.apply(x);
                    if want.is_nan() || want == y {
                        assert_eq!(y.is_nan(), want.is_nan(), "{} at {x:e}", act.name());
                        continue;
                    }
                    let err = (y as f64 - want as f64).abs() / (want.abs() as f64).max(1e-38);
                    worst = worst.max(err);
                    assert!(err <= 1e-6, "{} at {x:e}: {y:e} vs {want:e}", act.name());
                }
            }
        }
        eprintln!("fused sigmoid/SiLU: max relative error {worst:e}");
    }
}
