//! Dense-layer kernels: plain functions over slices, so they can be tested against an f64
//! reference and swapped for a target-tuned version without touching the model code.
//!
//! Summation order is fixed (inputs in order, bias last) so that the batched host path in
//! [`crate::batch`] reproduces these results bit for bit when it runs without fused
//! multiply-add.

/// `y[o] = sum_i w[o * n_in + i] * x[i] + b[o]`; `w` is row-major `y.len() x x.len()`.
///
/// Lengths are validated when a model is decoded; mismatched slices here only shorten the loop.
#[inline]
pub fn dense_f32(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    #[cfg(all(
        target_arch = "arm",
        target_os = "none",
        target_abi = "eabihf",
        not(target_has_atomic = "64")
    ))]
    if arm_vfma::dense_f32(w, b, x, y) {
        return;
    }
    let n_in = x.len();
    if n_in == 0 {
        return;
    }
    for ((row, &bias), out) in w.chunks_exact(n_in).zip(b).zip(y.iter_mut()) {
        let mut acc = 0.0f32;
        for (&wi, &xi) in row.iter().zip(x) {
            acc += wi * xi;
        }
        *out = acc + bias;
    }
}

/// `dense_f32` for Cortex-M cores with a single-precision FPU (thumbv7em-none-eabihf: M4F, M7;
/// thumbv8m.main-none-eabihf: M33, M55), in assembly: the FPU's fused multiply-add (VFMA), weights
/// and inputs loaded eight registers at a time (VLDM), eight rows per pass so each input is loaded
/// once per eight rows. 1.17 instructions per multiply-accumulate in the inner loop, 1.6 over the
/// layers of a 2→16→32→16→1 net with call and per-row overhead, against five or six for the
/// compiled loop (rustc never fuses `a * b + c`, and loads one value per instruction).
///
/// Same summation order as the portable loop (inputs in order from 0.0, bias added last), but
/// each `acc + w * x` is rounded once instead of twice: every multiply-accumulate may differ from
/// the portable kernel (and the host) by half an ulp of the running sum, within the same
/// `(n_in + 1) * eps * sum |w x|` bound as the portable loop's own rounding (more ulps of the
/// result only where the sum cancels). Measured on the 2→16→32→16→1 SingleNN-MemODE under RK4:
/// the trajectory stays bit-identical to the host's, as `dt * f` is far below an ulp of the state.
///
/// The cfg picks those targets on stable Rust, where ARM target features are not visible to
/// `cfg`: bare-metal, hard-float, and no 64-bit atomics (which every A- and R-profile target has;
/// their VFPv3 may lack VFMA).
#[cfg(all(
    target_arch = "arm",
    target_os = "none",
    target_abi = "eabihf",
    not(target_has_atomic = "64")
))]
mod arm_vfma {
    /// Runs the layer and returns `true`, or returns `false` (having done nothing) when the slices
    /// are not a complete `y.len() x x.len()` layer, which the portable loop then handles.
    /// Out of line: one copy in flash, and a symbol whose instructions QEMU can count.
    #[inline(never)]
    #[allow(unsafe_code)]
    pub fn dense_f32(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) -> bool {
        let (n_in, n_out) = (x.len(), y.len());
        if n_in == 0 || n_out == 0 || w.len() / n_in < n_out || b.len() < n_out {
            return false;
        }
        // SAFETY: the assembly reads `n_out * n_in` values from `w` (checked above), `n_in` from
        // `x` per row, `n_out` from `b`, and writes `n_out` to `y`; f32 slices are 4-byte aligned
        // as VLDM/VSTM require. It keeps its own 64-byte frame below `sp` (no `nostack`), restores
        // `sp`, and declares every register it changes.
        unsafe {
            core::arch::asm!(
                // Frame: [sp, 32) zeros, to clear the accumulators with one VLDM; x and n_in at
                // 32; end of the 8-row blocks in w and the leftover row count at 40; b and y
                // cursors at 48.
                "sub sp, #64",
                "movs r12, #0",
                "movs lr, #0",
                "strd r12, lr, [sp, #0]",
                "strd r12, lr, [sp, #8]",
                "strd r12, lr, [sp, #16]",
                "strd r12, lr, [sp, #24]",
                "strd r1, r4, [sp, #32]",
                "strd r2, r3, [sp, #48]",
                "lsl lr, r4, #2", // row stride, bytes
                "and r12, r5, #7",
                "str r12, [sp, #44]",
                "lsr r12, r5, #3",
                "mul r12, r12, lr",
                "add r12, r0, r12, lsl #3",
                "str r12, [sp, #40]",
                "cmp r0, r12",
                "beq 6f",
                // Blocks of eight rows: r0-r5, r8, r10 walk them, s16-s23 accumulate.
                "2:",
                "add r1, r0, lr",
                "add r2, r1, lr",
                "add r3, r2, lr",
                "add r4, r3, lr",
                "add r5, r4, lr",
                "add r8, r5, lr",
                "add r10, r8, lr",
                "vldmia sp, {{s16-s23}}",
                "ldrd r11, r12, [sp, #32]",
                "subs r12, #8",
                "blo 4f",
                "3:", // eight inputs at a time: one VLDM of x, then per row one VLDM and 8 VFMA
                "vldmia r11!, {{s0-s7}}",
                "vldmia r0!, {{s8-s15}}",
                "vfma.f32 s16, s8, s0", "vfma.f32 s16, s9, s1", "vfma.f32 s16, s10, s2", "vfma.f32 s16, s11, s3",
                "vfma.f32 s16, s12, s4", "vfma.f32 s16, s13, s5", "vfma.f32 s16, s14, s6", "vfma.f32 s16, s15, s7",
                "vldmia r1!, {{s8-s15}}",
                "vfma.f32 s17, s8, s0", "vfma.f32 s17, s9, s1", "vfma.f32 s17, s10, s2", "vfma.f32 s17, s11, s3",
                "vfma.f32 s17, s12, s4", "vfma.f32 s17, s13, s5", "vfma.f32 s17, s14, s6", "vfma.f32 s17, s15, s7",
                "vldmia r2!, {{s8-s15}}",
                "vfma.f32 s18, s8, s0", "vfma.f32 s18, s9, s1", "vfma.f32 s18, s10, s2", "vfma.f32 s18, s11, s3",
                "vfma.f32 s18, s12, s4", "vfma.f32 s18, s13, s5", "vfma.f32 s18, s14, s6", "vfma.f32 s18, s15, s7",
                "vldmia r3!, {{s8-s15}}",
                "vfma.f32 s19, s8, s0", "vfma.f32 s19, s9, s1", "vfma.f32 s19, s10, s2", "vfma.f32 s19, s11, s3",
                "vfma.f32 s19, s12, s4", "vfma.f32 s19, s13, s5", "vfma.f32 s19, s14, s6", "vfma.f32 s19, s15, s7",
                "vldmia r4!, {{s8-s15}}",
                "vfma.f32 s20, s8, s0", "vfma.f32 s20, s9, s1", "vfma.f32 s20, s10, s2", "vfma.f32 s20, s11, s3",
                "vfma.f32 s20, s12, s4", "vfma.f32 s20, s13, s5", "vfma.f32 s20, s14, s6", "vfma.f32 s20, s15, s7",
                "vldmia r5!, {{s8-s15}}",
                "vfma.f32 s21, s8, s0", "vfma.f32 s21, s9, s1", "vfma.f32 s21, s10, s2", "vfma.f32 s21, s11, s3",
                "vfma.f32 s21, s12, s4", "vfma.f32 s21, s13, s5", "vfma.f32 s21, s14, s6", "vfma.f32 s21, s15, s7",
                "vldmia r8!, {{s8-s15}}",
                "vfma.f32 s22, s8, s0", "vfma.f32 s22, s9, s1", "vfma.f32 s22, s10, s2", "vfma.f32 s22, s11, s3",
                "vfma.f32 s22, s12, s4", "vfma.f32 s22, s13, s5", "vfma.f32 s22, s14, s6", "vfma.f32 s22, s15, s7",
                "vldmia r10!, {{s8-s15}}",
                "vfma.f32 s23, s8, s0", "vfma.f32 s23, s9, s1", "vfma.f32 s23, s10, s2", "vfma.f32 s23, s11, s3",
                "vfma.f32 s23, s12, s4", "vfma.f32 s23, s13, s5", "vfma.f32 s23, s14, s6", "vfma.f32 s23, s15, s7",
                "subs r12, #8",
                "bhs 3b",
                "4:",
                "adds r12, #8",
                "beq 5f",
                "7:", // leftover inputs, one at a time
                "vldmia r11!, {{s0}}",
                "vldmia r0!, {{s8}}", "vfma.f32 s16, s8, s0",
                "vldmia r1!, {{s9}}", "vfma.f32 s17, s9, s0",
                "vldmia r2!, {{s10}}", "vfma.f32 s18, s10, s0",
                "vldmia r3!, {{s11}}", "vfma.f32 s19, s11, s0",
                "vldmia r4!, {{s12}}", "vfma.f32 s20, s12, s0",
                "vldmia r5!, {{s13}}", "vfma.f32 s21, s13, s0",
                "vldmia r8!, {{s14}}", "vfma.f32 s22, s14, s0",
                "vldmia r10!, {{s15}}", "vfma.f32 s23, s15, s0",
                "subs r12, #1",
                "bne 7b",
                "5:", // bias last, store; the next block starts where row 7 ended
                "ldrd r11, r12, [sp, #48]",
                "vldmia r11!, {{s0-s7}}",
                "vadd.f32 s16, s16, s0", "vadd.f32 s17, s17, s1", "vadd.f32 s18, s18, s2", "vadd.f32 s19, s19, s3",
                "vadd.f32 s20, s20, s4", "vadd.f32 s21, s21, s5", "vadd.f32 s22, s22, s6", "vadd.f32 s23, s23, s7",
                "vstmia r12!, {{s16-s23}}",
                "strd r11, r12, [sp, #48]",
                "mov r0, r10",
                "ldr r12, [sp, #40]",
                "cmp r0, r12",
                "bne 2b",
                // Leftover rows, one at a time: r0 walks the row, s16 accumulates.
                "6:",
                "ldr r5, [sp, #44]",
                "cmp r5, #0",
                "beq 9f",
                "ldrd r2, r3, [sp, #48]",
                "8:",
                "vldmia sp, {{s16}}",
                "ldrd r11, r12, [sp, #32]",
                "subs r12, #8",
                "blo 22f",
                "21:",
                "vldmia r11!, {{s0-s7}}",
                "vldmia r0!, {{s8-s15}}",
                "vfma.f32 s16, s8, s0", "vfma.f32 s16, s9, s1", "vfma.f32 s16, s10, s2", "vfma.f32 s16, s11, s3",
                "vfma.f32 s16, s12, s4", "vfma.f32 s16, s13, s5", "vfma.f32 s16, s14, s6", "vfma.f32 s16, s15, s7",
                "subs r12, #8",
                "bhs 21b",
                "22:",
                "adds r12, #8",
                "beq 24f",
                "23:",
                "vldmia r11!, {{s0}}",
                "vldmia r0!, {{s8}}",
                "vfma.f32 s16, s8, s0",
                "subs r12, #1",
                "bne 23b",
                "24:",
                "vldmia r2!, {{s0}}",
                "vadd.f32 s16, s16, s0",
                "vstmia r3!, {{s16}}",
                "subs r5, #1",
                "bne 8b",
                "9:",
                "add sp, #64",
                inout("r0") w.as_ptr() => _,
                inout("r1") x.as_ptr() => _,
                inout("r2") b.as_ptr() => _,
                inout("r3") y.as_mut_ptr() => _,
                inout("r4") n_in => _,
                inout("r5") n_out => _,
                out("r8") _, out("r10") _, out("r11") _, out("r12") _, out("lr") _,
                out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                out("s20") _, out("s21") _, out("s22") _, out("s23") _,
            );
        }
        true
    }
}

/// Weight-only int8 layer: `y[o] = scale[o] * sum_i q[o * n_in + i] * x[i] + b[o]`.
///
/// Activations stay f32; each output row has its own scale (symmetric, `max|w| / 127`).
#[inline]
pub fn dense_i8(q: &[i8], scale: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    let n_in = x.len();
    if n_in == 0 {
        return;
    }
    for (((row, &s), &bias), out) in q.chunks_exact(n_in).zip(scale).zip(b).zip(y.iter_mut()) {
        let mut acc = 0.0f32;
        for (&qi, &xi) in row.iter().zip(x) {
            acc += qi as f32 * xi;
        }
        *out = s * acc + bias;
    }
}

/// Symmetric per-row int8 quantization of a row-major `n_out x n_in` matrix.
///
/// Returns nothing when the lengths do not fit; rows of zeros get scale 0.
pub fn quantize_rows(w: &[f32], n_in: usize, q: &mut [i8], scales: &mut [f32]) -> Option<()> {
    if n_in == 0 || w.len() != q.len() || w.len() != scales.len() * n_in {
        return None;
    }
    for ((row, qrow), s) in w
        .chunks_exact(n_in)
        .zip(q.chunks_exact_mut(n_in))
        .zip(scales.iter_mut())
    {
        let max = row.iter().fold(0.0f32, |m, &v| m.max(libm::fabsf(v)));
        *s = max / 127.0;
        quantize_row_with_scale(row, *s, qrow);
    }
    Some(())
}

/// Quantizes one row with a given scale (round to nearest, clamp to ±127).
pub fn quantize_row_with_scale(row: &[f32], scale: f32, q: &mut [i8]) {
    for (&v, qv) in row.iter().zip(q.iter_mut()) {
        *qv = if scale > 0.0 {
            libm::roundf(v / scale).clamp(-127.0, 127.0) as i8
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn dense_matches_f64_reference() {
        let mut seed = 1;
        for &(n_in, n_out) in &[(1, 1), (2, 64), (64, 128), (128, 128), (17, 3)] {
            let w: Vec<f32> = (0..n_in * n_out).map(|_| lcg(&mut seed)).collect();
            let b: Vec<f32> = (0..n_out).map(|_| lcg(&mut seed)).collect();
            let x: Vec<f32> = (0..n_in).map(|_| lcg(&mut seed) * 3.0).collect();
            let mut y = vec![0.0; n_out];
            dense_f32(&w, &b, &x, &mut y);
            for o in 0..n_out {
                let exact: f64 = (0..n_in)
                    .map(|i| w[o * n_in + i] as f64 * x[i] as f64)
                    .sum::<f64>()
                    + b[o] as f64;
                let mag: f64 = (0..n_in)
                    .map(|i| (w[o * n_in + i] as f64 * x[i] as f64).abs())
                    .sum::<f64>()
                    + (b[o] as f64).abs();
                // Recursive summation bound: n * eps * sum |terms|.
                let bound = (n_in as f64 + 1.0) * f32::EPSILON as f64 * mag;
                assert!(
                    (y[o] as f64 - exact).abs() <= bound,
                    "{n_in}x{n_out} row {o}"
                );
            }
        }
    }

    #[test]
    fn int8_error_within_scale_bound() {
        let mut seed = 7;
        let (n_in, n_out) = (32, 16);
        let w: Vec<f32> = (0..n_in * n_out).map(|_| lcg(&mut seed)).collect();
        let b: Vec<f32> = (0..n_out).map(|_| lcg(&mut seed)).collect();
        let x: Vec<f32> = (0..n_in).map(|_| lcg(&mut seed)).collect();
        let mut q = vec![0i8; w.len()];
        let mut s = vec![0.0f32; n_out];
        quantize_rows(&w, n_in, &mut q, &mut s).unwrap();
        let (mut yf, mut yq) = (vec![0.0; n_out], vec![0.0; n_out]);
        dense_f32(&w, &b, &x, &mut yf);
        dense_i8(&q, &s, &b, &x, &mut yq);
        for o in 0..n_out {
            // Each weight is off by at most scale/2, so |dy| <= scale/2 * sum|x| (+ f32 rounding).
            let l1: f32 = x.iter().map(|v| v.abs()).sum();
            let bound = 0.5 * s[o] * l1 * (1.0 + 1e-5) + 1e-5;
            assert!((yf[o] - yq[o]).abs() <= bound, "row {o}");
        }
        assert!(q.iter().any(|&v| v == 127 || v == -127));
    }
}
