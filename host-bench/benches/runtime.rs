//! Host throughput of the runtime, in samples (steps) per second: the single-trajectory
//! `Simulator::step` a rig loop calls, and the batched path for the paper's 18-trajectory
//! ensemble. Two nets: the paper's SingleNN (2-64-128-128-64-1, SiLU) and the small MCU net
//! (2-16-32-16-1), each with f32 and int8 weights, RK4 at the sample step.
//!
//! Kept short (3 s per case) so the whole run takes about two minutes: `cargo bench -p
//! odeflash-host-bench`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use odeflash_runtime::batch::{simulate_batch, Arith, BatchOptions, Input};
use odeflash_runtime::spec::{examples, Quant};
use odeflash_runtime::{AlignedBlob, SimConfig, Simulator, Solver};

/// Trajectories of the batched case (the paper's ensemble size).
const BATCH: usize = 18;
/// Samples per trajectory in the batched case.
const BATCH_SAMPLES: usize = 1000;
/// Samples per period of the sine supply.
const PERIOD: usize = 1000;

const CONFIG: SimConfig = SimConfig {
    dt: 1e-4,
    solver: Solver::Rk4,
    substeps: 1,
    newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
};

fn models() -> Vec<(&'static str, AlignedBlob)> {
    let paper = examples::single_nn_memode(&[64, 128, 128, 64], 2024);
    let mcu = examples::single_nn_memode(&[16, 32, 16], 2024);
    vec![
        ("paper-f32", paper.encode(Quant::F32)),
        ("paper-int8", paper.encode(Quant::Int8)),
        ("mcu-f32", mcu.encode(Quant::F32)),
        ("mcu-int8", mcu.encode(Quant::Int8)),
    ]
}

fn sine(amplitude: f32, len: usize) -> Vec<f32> {
    (0..len)
        .map(|n| {
            amplitude * (2.0 * std::f32::consts::PI * (n % PERIOD) as f32 / PERIOD as f32).sin()
        })
        .collect()
}

fn single_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("step");
    group.throughput(Throughput::Elements(1));
    let drive = sine(1.0, PERIOD + 1);
    for (name, blob) in models() {
        let Ok(model) = blob.model() else {
            continue;
        };
        let mut scratch = vec![0.0f32; model.cost(CONFIG.solver, CONFIG.substeps).scratch_f32];
        let Ok(mut sim) = Simulator::new(&model, CONFIG, &mut scratch) else {
            continue;
        };
        let mut n = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let s = sim.step(drive[n], drive[n + 1]);
                n = (n + 1) % PERIOD;
                black_box(s)
            })
        });
    }
    group.finish();
}

fn batched(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("batch{BATCH}"));
    group.throughput(Throughput::Elements((BATCH * BATCH_SAMPLES) as u64));
    let drives: Vec<Vec<f32>> = (0..BATCH)
        .map(|t| sine(0.5 + 0.5 * (t % 3) as f32, BATCH_SAMPLES))
        .collect();
    let inputs: Vec<Input<'_>> = drives.iter().map(|d| Input::new(d)).collect();
    let opts = BatchOptions {
        threads: 0,
        arith: Arith::Auto,
    };
    for (name, blob) in models() {
        let Ok(model) = blob.model() else {
            continue;
        };
        group.bench_function(name, |b| {
            b.iter(|| black_box(simulate_batch(&model, CONFIG, &inputs, opts)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = single_step, batched
}
criterion_main!(benches);
