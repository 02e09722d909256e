//! Runs the model in the MODEL flash region (see `memory.x`) on an on-device sine (or a stimulus
//! table) and streams every sample over defmt: `s k v_s v i [states]`. Configured at build time
//! by `ODEFLASH_*` variables (see `build.rs`).
//!
//! The model region is decoded, CRC first, before anything runs; a refused model is logged with
//! its typed error and the firmware exits with a failing semihosting status, never stepping it.
//! Each step is bracketed by two marker functions so a QEMU plugin can count its instructions.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, ExitStatus, EXIT_FAILURE, EXIT_SUCCESS};
use defmt::{error, info};
use defmt_semihosting as _;
use odeflash_runtime::activation::sin;
use odeflash_runtime::{DecodeError, Model, Sample, SimConfig, SimError, Simulator, Solver};

mod params {
    use super::Solver;
    include!(concat!(env!("OUT_DIR"), "/params.rs"));
}

#[repr(C, align(16))]
struct Aligned<T>(T);

/// The model linked at build time (`ODEFLASH_MODEL`), placed at the start of the MODEL region.
/// Only the linker sees it: the firmware reads the region, whatever was flashed there.
#[link_section = ".model"]
#[used]
static LINKED_MODEL: Aligned<[u8; params::MODEL_LEN]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.ofm")));

/// Stimulus table (`ODEFLASH_STIMULUS`), little-endian f32 volts; empty for the sine.
static TABLE: [u8; 4 * params::TABLE_LEN] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/stimulus.bin"));

static mut SCRATCH: [f32; params::SCRATCH_F32] = [0.0; params::SCRATCH_F32];

extern "C" {
    static _model_start: u8;
    static _model_end: u8;
    static _stack_start: u32;
    static _stack_end: u32;
    static _ram_start: u32;
}

/// cortex-m-rt's `device` feature: the device part of the vector table is ours. No interrupt is
/// used, so one entry (the linker script wants at least one) instead of 240 saves 956 bytes.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [unexpected_irq];

unsafe extern "C" fn unexpected_irq() {
    debug::exit(EXIT_FAILURE);
}

/// The plugin counts instructions between these two calls (different bodies so they are not
/// merged into one address).
#[inline(never)]
#[no_mangle]
extern "C" fn odeflash_window_start() {
    unsafe {
        core::arch::asm!(
            "/* window start */",
            options(nomem, nostack, preserves_flags)
        )
    }
}

#[inline(never)]
#[no_mangle]
extern "C" fn odeflash_window_stop() {
    unsafe {
        core::arch::asm!(
            "/* window stop */",
            options(nomem, nostack, preserves_flags)
        )
    }
}

/// The supply voltage: the table, or `AMPLITUDE * sin(2 pi phase)` with the phase advanced by
/// `PHASE_STEP` per sample and wrapped into [0, 1), all in f32 (the host harness replays it).
struct Stimulus {
    k: usize,
    phase: f32,
}

impl Stimulus {
    fn next(&mut self) -> f32 {
        let k = self.k;
        self.k += 1;
        if !TABLE.is_empty() {
            return match TABLE.get(4 * k..4 * k + 4) {
                Some(&[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
                _ => 0.0,
            };
        }
        let v = params::AMPLITUDE * sin(core::f32::consts::TAU * self.phase);
        self.phase += params::PHASE_STEP;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
        }
        v
    }
}

fn model_region() -> &'static [u8] {
    // SAFETY: the linker symbols bound the MODEL flash region, which is mapped and only read.
    unsafe {
        let start = addr_of!(_model_start);
        let len = addr_of!(_model_end) as usize - start as usize;
        core::slice::from_raw_parts(start, len)
    }
}

/// Bytes of the painted stack region that were ever written (cortex-m-rt `paint-stack`).
fn stack_high_water() -> u32 {
    let (low, high) = (
        addr_of!(_stack_end) as usize,
        addr_of!(_stack_start) as usize,
    );
    let mut p = low;
    // SAFETY: every word between the two symbols is RAM owned by the stack.
    while p < high && unsafe { read_volatile(p as *const u32) } == cortex_m_rt::STACK_PAINT_VALUE {
        p += 4;
    }
    (high - p) as u32
}

/// Paints the unused stack again, so the next high-water mark covers what runs after this.
#[inline(never)]
fn repaint_stack() {
    let low = addr_of!(_stack_end) as usize;
    let sp = cortex_m::register::msp::read() as usize - 64; // this frame and a margin
    let mut p = low;
    while p < sp {
        // SAFETY: below the current stack pointer, nothing is live.
        unsafe { write_volatile(p as *mut u32, cortex_m_rt::STACK_PAINT_VALUE) };
        p += 4;
    }
}

/// Out of line so the decoder's temporaries are gone before the simulation runs; the model is
/// decoded straight into the caller's storage.
#[inline(never)]
fn decode(region: &'static [u8], model: &mut Model<'static>) -> Result<(), DecodeError> {
    Model::decode_into(region, model)
}

#[inline(never)]
fn step(sim: &mut Simulator<'_, 'static, '_>, vs: f32, next: f32) -> Result<Sample, SimError> {
    odeflash_window_start();
    let r = sim.step(vs, next);
    odeflash_window_stop();
    r
}

fn run() -> ExitStatus {
    let region = model_region();
    let mut model = Model::EMPTY;
    match decode(region, &mut model) {
        Ok(()) => {}
        Err(e) => {
            error!(
                "model region at {=usize:#x} refused: {}",
                region.as_ptr() as usize,
                e
            );
            return EXIT_FAILURE;
        }
    }
    info!(
        "model {=str} ({=str}), {=u32} bytes at {=usize:#x}",
        model.name,
        model.kind().as_str(),
        model.blob_len,
        region.as_ptr() as usize
    );
    let config = SimConfig {
        dt: params::DT,
        solver: params::SOLVER,
        substeps: params::SUBSTEPS, newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    info!(
        "config dt {=f32} amplitude {=f32} phase_step {=f32} samples {=u32}",
        params::DT,
        params::AMPLITUDE,
        params::PHASE_STEP,
        params::SAMPLES
    );
    // SAFETY: single-threaded firmware; the only reference to SCRATCH.
    let scratch = unsafe { &mut *addr_of_mut!(SCRATCH) };
    let mut sim = match Simulator::new(&model, config, scratch) {
        Ok(s) => s,
        Err(e) => {
            error!("simulator refused the configuration: {}", e);
            return EXIT_FAILURE;
        }
    };

    // SysTick as a coarse, second clock (deterministic under `-icount shift=0`).
    // SAFETY: nothing else uses the core peripherals.
    let mut syst = unsafe { cortex_m::Peripherals::steal() }.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.clear_current();
    syst.enable_counter();
    let mut ticks: u32 = 0;

    let decode_stack = stack_high_water();
    repaint_stack();

    let mut stim = Stimulus { k: 0, phase: 0.0 };
    let mut vs = stim.next();
    let mut obs = sim.observe(vs);
    for k in 0..params::SAMPLES {
        let s = match obs {
            Ok(s) => s,
            Err(e) => {
                error!("sample {=u32}: {}", k, e);
                return EXIT_FAILURE;
            }
        };
        info!(
            "s {=u32} {=f32} {=f32} {=f32} {=[?]}",
            k,
            vs,
            s.v,
            s.i,
            sim.state()
        );
        if k + 1 == params::SAMPLES {
            break;
        }
        let next = stim.next();
        let t0 = SYST::get_current();
        obs = step(&mut sim, vs, next);
        ticks = ticks.wrapping_add(t0.wrapping_sub(SYST::get_current()) & 0x00FF_FFFF);
        vs = next;
    }
    let static_ram = addr_of!(_stack_end) as usize - addr_of!(_ram_start) as usize;
    info!(
        "done steps {=u32} systick {=u32} static_ram {=u32} stack {=u32} decode_stack {=u32}",
        sim.steps(),
        ticks,
        static_ram as u32,
        stack_high_water(),
        decode_stack
    );
    EXIT_SUCCESS
}

#[entry]
fn main() -> ! {
    debug::exit(run());
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    error!("panic");
    debug::exit(EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
