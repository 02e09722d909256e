//! Checks the runtime's dense-layer kernel on the device (on the M4F: the VFMA assembly) against
//! an f64 reference for shapes that exercise every path (8-row blocks, leftover rows, 8-input
//! chunks, leftover inputs), and leaves output past the layer untouched. Each call is bracketed by
//! the instruction-count markers; the first four are the layers of the 2→16→32→16→1 net.
//! Logs `shape N_IN N_OUT OK`, exits with a failing status if any shape is wrong, and counts the
//! outputs where the fused kernel differs from the unfused loop (same order, two roundings).
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use defmt::info;
use defmt_semihosting as _;
use odeflash_runtime::kernels::dense_f32;

const MAX_IN: usize = 33;
const MAX_OUT: usize = 32;
const SENTINEL: f32 = 12345.0;

static mut W: [f32; MAX_IN * MAX_OUT] = [0.0; MAX_IN * MAX_OUT];
static mut Y: [f32; MAX_OUT + 1] = [0.0; MAX_OUT + 1];

#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [unexpected_irq];

unsafe extern "C" fn unexpected_irq() {
    debug::exit(EXIT_FAILURE);
}

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

fn lcg(seed: &mut u32) -> f32 {
    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    (*seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
}

/// Outputs compared with the unfused loop, outputs that differ, largest difference in ulp.
static mut FUSED: (u32, u32, u32) = (0, 0, 0);

fn check(n_in: usize, n_out: usize, seed: &mut u32) -> bool {
    // SAFETY: single-threaded; the only references to W and Y.
    let (w, y) = unsafe { (&mut *addr_of_mut!(W), &mut *addr_of_mut!(Y)) };
    let w = &mut w[..n_in * n_out];
    let mut x = [0.0f32; MAX_IN];
    let mut b = [0.0f32; MAX_OUT];
    w.iter_mut().for_each(|v| *v = lcg(seed));
    x.iter_mut().for_each(|v| *v = 3.0 * lcg(seed));
    b.iter_mut().for_each(|v| *v = lcg(seed));
    y.iter_mut().for_each(|v| *v = SENTINEL);
    let (x, b) = (&x[..n_in], &b[..n_out]);
    odeflash_window_start();
    dense_f32(w, b, x, &mut y[..n_out]);
    odeflash_window_stop();
    let mut ok = y[n_out] == SENTINEL;
    for (o, (row, &bias)) in w.chunks_exact(n_in).zip(b).enumerate() {
        let (mut exact, mut mag) = (bias as f64, libm::fabs(bias as f64));
        for (&wi, &xi) in row.iter().zip(x) {
            exact += wi as f64 * xi as f64;
            mag += libm::fabs(wi as f64 * xi as f64);
        }
        // Recursive summation bound (fused or not): (n + 1) eps sum |terms|.
        let bound = (n_in as f64 + 1.0) * f32::EPSILON as f64 * mag;
        ok &= libm::fabs(y[o] as f64 - exact) <= bound;
        let mut acc = 0.0f32;
        for (&wi, &xi) in row.iter().zip(x) {
            acc += wi * xi;
        }
        let ulps = ((acc + bias).to_bits() as i32).wrapping_sub(y[o].to_bits() as i32);
        // SAFETY: single-threaded; the only reference to FUSED.
        let f = unsafe { &mut *addr_of_mut!(FUSED) };
        f.0 += 1;
        f.1 += (ulps != 0) as u32;
        f.2 = f.2.max(ulps.unsigned_abs());
    }
    info!("shape {=usize} {=usize} {=bool}", n_in, n_out, ok);
    ok
}

#[entry]
fn main() -> ! {
    let mut seed = 1;
    let mut failures = 0u32;
    for (n_in, n_out) in [(2, 16), (16, 32), (32, 16), (16, 1)] {
        failures += !check(n_in, n_out, &mut seed) as u32;
    }
    for n_in in [1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 33] {
        for n_out in [1, 2, 7, 8, 9, 15, 16, 17, 24, 32] {
            failures += !check(n_in, n_out, &mut seed) as u32;
        }
    }
    // SAFETY: single-threaded; the only reference to FUSED.
    let (n, differ, max_ulp) = unsafe { *addr_of_mut!(FUSED) };
    info!(
        "fused vs unfused: {=u32} of {=u32} outputs differ, by at most {=u32} ulp",
        differ, n, max_ulp
    );
    info!("kernel check failures {=u32}", failures);
    debug::exit(if failures == 0 {
        EXIT_SUCCESS
    } else {
        EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic");
    debug::exit(EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
