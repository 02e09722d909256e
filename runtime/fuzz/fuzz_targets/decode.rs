//! Any byte string: decoding returns a model or a typed error, and a decoded model runs a few
//! steps under every solver without panicking. Seed the corpus with `runtime/tests/golden/*.ofm`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use odeflash_runtime::{AlignedBlob, Model, SimConfig, Simulator, Solver};

fuzz_target!(|data: &[u8]| {
    let blob = AlignedBlob::from_bytes(data);
    let Ok(model) = Model::decode(blob.as_bytes()) else {
        return;
    };
    for solver in Solver::ALL {
        let cost = model.cost(solver, 2);
        let mut scratch = vec![0.0f32; cost.scratch_f32];
        let cfg = SimConfig {
            dt: model.iterator_dt().unwrap_or(1e-3),
            solver,
            substeps: if model.iterator_dt().is_some() { 1 } else { 2 }, newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        if let Ok(mut sim) = Simulator::new(&model, cfg, &mut scratch) {
            let _ = sim.observe(0.5);
            for k in 0..4 {
                if sim.step(k as f32 * 0.25, (k + 1) as f32 * 0.25).is_err() {
                    break;
                }
            }
        }
    }
});
