//! The paper's ensemble benchmark: 18 trajectories of the SingleNN-MemODE (2-64-128-128-64-1,
//! SiLU, RK4 at the sample step), sine supplies of {0.5, 1.0, 1.5} V x {1, 5, 10, 20, 50, 100} Hz,
//! 100 periods of 1000 samples each. Times the single-trajectory simulator against the batched
//! path and compares with the Diffrax reference time of the paper.
//!
//! Usage: `ensemble [--samples N] [--json] [--skip-single]` (N per trajectory, default 100000).
//! `--skip-single` leaves out the slow single-trajectory run (for profiling the batched path);
//! the FMA outputs are then compared with the batched portable ones, which are bit-identical to
//! the single-trajectory path.

use std::process::ExitCode;
use std::time::Instant;

use odeflash_runtime::batch::{self, Arith, BatchOptions, Input, Trajectory};
use odeflash_runtime::spec::{examples, Quant};
use odeflash_runtime::{Model, SimConfig, Simulator, Solver};

/// Wall time of the Diffrax (JAX, CPU) ensemble run reported in the paper, seconds.
const DIFFRAX_S: f64 = 28.2;
const AMPLITUDES: [f64; 3] = [0.5, 1.0, 1.5];
const FREQUENCIES: [f64; 6] = [1.0, 5.0, 10.0, 20.0, 50.0, 100.0];
const SAMPLES_PER_PERIOD: usize = 1000;
const SEED: u64 = 2024;

struct Args {
    samples: usize,
    json: bool,
    skip_single: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        samples: 100 * SAMPLES_PER_PERIOD,
        json: false,
        skip_single: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => args.json = true,
            "--skip-single" => args.skip_single = true,
            "--samples" => {
                let v = it.next().ok_or("--samples needs a value")?;
                args.samples = v
                    .parse()
                    .map_err(|_| format!("--samples: `{v}` is not a count"))?;
            }
            "-h" | "--help" => {
                return Err("usage: ensemble [--samples N] [--json] [--skip-single]".into());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if args.samples == 0 {
        return Err("--samples must be at least 1".into());
    }
    Ok(args)
}

/// One ensemble member: its supply and sample interval.
struct Case {
    dt: f32,
    drive: Vec<f32>,
}

fn cases(samples: usize) -> Vec<Case> {
    let mut out = Vec::new();
    for &amplitude in &AMPLITUDES {
        for &frequency in &FREQUENCIES {
            let drive = (0..samples)
                .map(|n| {
                    let phase = 2.0 * std::f64::consts::PI * n as f64 / SAMPLES_PER_PERIOD as f64;
                    (amplitude * phase.sin()) as f32
                })
                .collect();
            out.push(Case {
                dt: (1.0 / (SAMPLES_PER_PERIOD as f64 * frequency)) as f32,
                drive,
            });
        }
    }
    out
}

fn config(dt: f32) -> SimConfig {
    SimConfig {
        dt,
        solver: Solver::Rk4,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    }
}

/// All cases one after the other through `Simulator::run`.
fn single_path(model: &Model<'_>, cases: &[Case]) -> Result<Vec<Trajectory>, String> {
    let n = model.n_states();
    let mut scratch = vec![0.0f32; model.cost(Solver::Rk4, 1).scratch_f32];
    let mut out = Vec::with_capacity(cases.len());
    for (idx, c) in cases.iter().enumerate() {
        let mut sim = Simulator::new(model, config(c.dt), &mut scratch)
            .map_err(|e| format!("trajectory {idx}: {e}"))?;
        let len = c.drive.len();
        let mut t = Trajectory {
            v: vec![0.0; len],
            i: vec![0.0; len],
            x: vec![0.0; len * n],
            clamped: 0,
        };
        sim.run(&c.drive, &mut t.v, &mut t.i, &mut t.x)
            .map_err(|e| format!("trajectory {idx}: {e}"))?;
        t.clamped = sim.clamp_count();
        out.push(t);
    }
    Ok(out)
}

fn batched(
    model: &Model<'_>,
    cases: &[Case],
    threads: usize,
    arith: Arith,
) -> Result<Vec<Trajectory>, String> {
    let inputs: Vec<Input<'_>> = cases
        .iter()
        .map(|c| Input::new(&c.drive).with_dt(c.dt))
        .collect();
    let opts = BatchOptions { threads, arith };
    batch::simulate_batch(model, config(cases[0].dt), &inputs, opts).map_err(|e| e.to_string())
}

fn timed<T>(f: impl FnOnce() -> Result<T, String>) -> Result<(T, f64), String> {
    let start = Instant::now();
    let r = f()?;
    Ok((r, start.elapsed().as_secs_f64()))
}

/// Largest `|a - b| / max(|b|, 1e-3 * peak|b|)` over every output series.
fn max_rel_diff(a: &[Trajectory], b: &[Trajectory]) -> f64 {
    let mut worst = 0.0f64;
    for (p, q) in a.iter().zip(b) {
        for (x, y) in [(&p.v, &q.v), (&p.i, &q.i), (&p.x, &q.x)] {
            let peak = y.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
            let floor = (1e-3 * peak).max(f64::MIN_POSITIVE);
            for (&u, &w) in x.iter().zip(y.iter()) {
                let d = (u as f64 - w as f64).abs() / (w.abs() as f64).max(floor);
                worst = worst.max(d);
            }
        }
    }
    worst
}

/// Output values that differ in any bit.
fn mismatches(a: &[Trajectory], b: &[Trajectory]) -> usize {
    a.iter()
        .zip(b)
        .map(|(p, q)| {
            [(&p.v, &q.v), (&p.i, &q.i), (&p.x, &q.x)]
                .iter()
                .map(|(x, y)| {
                    x.iter()
                        .zip(y.iter())
                        .filter(|(u, w)| u.to_bits() != w.to_bits())
                        .count()
                        + x.len().abs_diff(y.len())
                })
                .sum::<usize>()
        })
        .sum()
}

fn run(args: &Args) -> Result<(), String> {
    let spec = examples::single_nn_memode(&[64, 128, 128, 64], SEED);
    let blob = spec.encode(Quant::F32);
    let model = blob.model().map_err(|e| e.to_string())?;
    let cases = cases(args.samples);
    let steps = (cases.len() * args.samples) as f64;
    let cost = model.cost(Solver::Rk4, 1);
    let macs = steps * cost.macs_per_step as f64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let single = if args.skip_single {
        None
    } else {
        Some(timed(|| single_path(&model, &cases))?)
    };
    let (portable, t_portable) = timed(|| batched(&model, &cases, 1, Arith::Portable))?;
    let (_, t_fma1) = timed(|| batched(&model, &cases, 1, Arith::Fma))?;
    let (fma, t_fma) = timed(|| batched(&model, &cases, 0, Arith::Fma))?;
    // The reference of the FMA comparison: the single path, or the portable batch (which is
    // bit-identical to it) when the single path was skipped.
    let portable_mismatches = single.as_ref().map(|(s, _)| mismatches(&portable, s));
    let reference = single.as_ref().map_or(&portable, |(s, _)| s);
    let reference_name = if single.is_some() {
        "single"
    } else {
        "portable"
    };
    let rel = max_rel_diff(&fma, reference);

    let mut rows = Vec::new();
    if let Some((_, t)) = &single {
        rows.push((
            "single",
            "single-trajectory Simulator::run, sequential",
            *t,
            1,
        ));
    }
    rows.push((
        "batched_portable_1_thread",
        "batched portable",
        t_portable,
        1,
    ));
    rows.push(("batched_fma_1_thread", "batched fma", t_fma1, 1));
    rows.push(("batched_fma_all_threads", "batched fma", t_fma, threads));

    if args.json {
        println!("{{");
        println!("  \"model\": \"{}\",", model.name);
        println!("  \"trajectories\": {},", cases.len());
        println!("  \"samples_per_trajectory\": {},", args.samples);
        println!("  \"macs_per_step\": {},", cost.macs_per_step);
        println!("  \"threads\": {threads},");
        println!(
            "  \"kernel_portable\": \"{}\",",
            batch::kernel_name(Arith::Portable)
        );
        println!("  \"kernel_fma\": \"{}\",", batch::kernel_name(Arith::Fma));
        println!("  \"diffrax_reference_s\": {DIFFRAX_S},");
        for (key, _, t, th) in &rows {
            println!(
                "  \"{key}\": {{\"seconds\": {t:.4}, \"threads\": {th}, \"steps_per_s\": {:.1}, \"speedup_vs_diffrax\": {:.2}}},",
                steps / t,
                DIFFRAX_S / t
            );
        }
        match portable_mismatches {
            Some(m) => println!("  \"portable_mismatched_values\": {m},"),
            None => println!("  \"portable_mismatched_values\": null,"),
        }
        println!("  \"fma_reference\": \"{reference_name}\",");
        println!("  \"fma_max_rel_diff\": {rel:e}");
        println!("}}");
    } else {
        println!(
            "ensemble: {} trajectories x {} samples ({}), RK4, {} MAC/step, {:.3e} MACs",
            cases.len(),
            args.samples,
            model.name,
            cost.macs_per_step,
            macs
        );
        println!(
            "  supplies: {AMPLITUDES:?} V x {FREQUENCIES:?} Hz, {SAMPLES_PER_PERIOD} samples/period"
        );
        println!(
            "  kernels: portable = {}, fma = {}",
            batch::kernel_name(Arith::Portable),
            batch::kernel_name(Arith::Fma)
        );
        println!(
            "  {:<46} {:>7} {:>9} {:>12} {:>11}",
            "path", "threads", "wall s", "steps/s", "vs Diffrax"
        );
        for (_, name, t, th) in &rows {
            println!(
                "  {name:<46} {th:>7} {t:>9.3} {:>12.3e} {:>10.2}x",
                steps / t,
                DIFFRAX_S / t
            );
        }
        println!("  Diffrax reference: {DIFFRAX_S} s (speed-up = reference / wall time)");
        if let Some(m) = portable_mismatches {
            println!(
                "  portable vs single: {m} values differ (bit-identical: {})",
                m == 0
            );
        }
        println!("  fma vs {reference_name}: max relative difference {rel:.3e}");
        let clamped: u32 = fma.iter().map(|t| t.clamped).sum();
        println!("  state values clamped into bounds (all trajectories): {clamped}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensemble failed: {e}");
            ExitCode::FAILURE
        }
    }
}
