//! Links the whole runtime (decoder, every activation, every solver, f32 and int8 kernels) and
//! nothing else, so `cargo xtask size` reports what the runtime costs in flash without a model.
//! The model is read from a fixed flash address at run time, so no model bytes are linked.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use cortex_m_rt::entry;
use odeflash_runtime::{Model, SimConfig, Simulator, Solver};

/// Where a model would be flashed (its own region, outside this image).
const MODEL_ADDR: usize = 0x0020_0000;
const MODEL_MAX: usize = 64 * 1024;

static mut SCRATCH: [f32; 1024] = [0.0; 1024];
static mut SINK: [f32; 3] = [0.0; 3];
static mut SOLVER: u8 = 2;

#[entry]
fn main() -> ! {
    // SAFETY: the region is mapped flash on the target; it is only read.
    let blob: &'static [u8] =
        unsafe { core::slice::from_raw_parts(MODEL_ADDR as *const u8, MODEL_MAX) };
    // The solver is chosen at run time so that every tableau is linked (an upper bound).
    let solver = match unsafe { read_volatile(addr_of!(SOLVER)) } {
        0 => Solver::Euler,
        1 => Solver::Heun,
        2 => Solver::Rk4,
        3 => Solver::Tsit5,
        _ => Solver::Dopri5,
    };
    if let Ok(model) = Model::decode(blob) {
        let cfg = SimConfig {
            dt: model.iterator_dt().unwrap_or(1e-3),
            solver,
            substeps: 1, newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        // SAFETY: single-threaded firmware, the only reference to SCRATCH.
        let scratch = unsafe { &mut *addr_of_mut!(SCRATCH) };
        if let Ok(mut sim) = Simulator::new(&model, cfg, scratch) {
            let mut vs = 0.0f32;
            loop {
                let next = vs + 1e-3;
                match sim.step(vs, next) {
                    Ok(s) => unsafe { write_volatile(addr_of_mut!(SINK), [s.v, s.i, s.g]) },
                    Err(_) => break,
                }
                vs = if next > 1.0 { -1.0 } else { next };
            }
        }
    }
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
