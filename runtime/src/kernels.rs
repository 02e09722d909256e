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
/// once per eight rows; two-input layers keep x in registers and load eight rows' 16 weights with
/// one VLDM. 1.17 instructions per multiply-accumulate in the inner loop, 1.44 over the layers of
/// a 2→16→32→16→1 net with call and per-row overhead (2.6, 1.43, 1.32 and 3.5 per layer, the
/// length checks and register saves included), against five or six for the compiled loop (rustc
/// never fuses `a * b + c`, and loads one value per instruction).
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
#[allow(unsafe_code)]
mod arm_vfma {
    /// Runs the layer and returns `true`, or returns `false` (having done nothing) when the slices
    /// are not a complete `y.len() x x.len()` layer, which the portable loop then handles.
    #[inline(always)]
    pub fn dense_f32(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) -> bool {
        // SAFETY: the assembly checks the lengths itself (as `n_in != 0`, `w.len() / n_in >=
        // n_out`, `b.len() >= n_out`) before it reads `n_out * n_in` values from `w`, `n_in` from
        // `x` per row, `n_out` from `b`, and writes `n_out` to `y`; f32 slices are 4-byte aligned
        // as VLDM/VSTM require. It follows the AAPCS (callee-saved r4-r11, s16-s31 restored).
        unsafe {
            odeflash_arm_vfma_dense_f32(
                w.as_ptr(),
                w.len(),
                b.as_ptr(),
                b.len(),
                x.as_ptr(),
                x.len(),
                y.as_mut_ptr(),
                y.len(),
            )
        }
    }

    extern "C" {
        /// The kernel: `true` having run the layer, `false` having done nothing.
        fn odeflash_arm_vfma_dense_f32(
            w: *const f32,
            w_len: usize,
            b: *const f32,
            b_len: usize,
            x: *const f32,
            n_in: usize,
            y: *mut f32,
            n_out: usize,
        ) -> bool;
    }

    // Out of line, in its own section: one copy in flash, and a symbol (named for this module)
    // whose instructions QEMU can count; everything the kernel does, the length checks and the
    // register saves included, is inside it. Accumulators start from the 32 zero bytes after the
    // code (one VLDM per eight rows). `.fpu`: module-level assembly does not see the target's FPU
    // (and with LTO the directive stays in force for module assembly after this, which only gains
    // the instructions this FPU has); FPv4-SP's are a subset of the M7's, M33's and M55's FPv5.
    #[rustfmt::skip] // four instructions a line in the unrolled parts
    core::arch::global_asm!(
        ".syntax unified",
        ".fpu fpv4-sp-d16",
        ".pushsection .text.odeflash_arm_vfma_dense_f32,\"ax\",%progbits",
        ".global odeflash_arm_vfma_dense_f32",
        ".type odeflash_arm_vfma_dense_f32,%function",
        ".thumb_func",
        ".p2align 2",
        "odeflash_arm_vfma_dense_f32:",
        // r0 w, r1 w.len(), r2 b, r3 b.len(); on the stack x, n_in, y, n_out.
        "push {{r4-r11, lr}}",
        "ldrd r4, r7, [sp, #36]", // x, n_in
        "ldrd r6, r5, [sp, #44]", // y, n_out
        "cbz r7, 2f", // no inputs
        "udiv r1, r1, r7",
        "cmp r1, r5",
        "blo 2f",
        "cmp r3, r5",
        "bhs 3f",
        "2:", // not a complete layer: nothing done, false
        "movs r0, #0",
        "pop {{r4-r11, pc}}",
        "3:",
        "vpush {{s16-s31}}",
        "lsls r7, r7, #2", // row stride, bytes
        "cmp r7, #8",
        "beq 50f", // two inputs
        "lsrs r1, r5, #3", // blocks of eight rows
        "beq 30f",
        "muls r1, r7",
        "add lr, r0, r1, lsl #3", // end of the blocks in w
        // Blocks of eight rows: r0, r1, r3, r5, r8-r11 walk them, s16-s23 accumulate, r4 walks x.
        "20:",
        "adr r1, 99f",
        "vldmia r1, {{s16-s23}}", // from 0.0
        "adds r1, r0, r7",
        "adds r3, r1, r7",
        "adds r5, r3, r7",
        "add r8, r5, r7",
        "add r9, r8, r7",
        "add r10, r9, r7",
        "add r11, r10, r7",
        "lsrs r12, r7, #5", // chunks of eight inputs
        "beq 23f",
        "22:", // one VLDM of x, then per row one VLDM and eight VFMA
        "vldmia r4!, {{s0-s7}}",
        "vldmia r0!, {{s8-s15}}",
        "vfma.f32 s16, s8, s0", "vfma.f32 s16, s9, s1", "vfma.f32 s16, s10, s2", "vfma.f32 s16, s11, s3",
        "vfma.f32 s16, s12, s4", "vfma.f32 s16, s13, s5", "vfma.f32 s16, s14, s6", "vfma.f32 s16, s15, s7",
        "vldmia r1!, {{s8-s15}}",
        "vfma.f32 s17, s8, s0", "vfma.f32 s17, s9, s1", "vfma.f32 s17, s10, s2", "vfma.f32 s17, s11, s3",
        "vfma.f32 s17, s12, s4", "vfma.f32 s17, s13, s5", "vfma.f32 s17, s14, s6", "vfma.f32 s17, s15, s7",
        "vldmia r3!, {{s8-s15}}",
        "vfma.f32 s18, s8, s0", "vfma.f32 s18, s9, s1", "vfma.f32 s18, s10, s2", "vfma.f32 s18, s11, s3",
        "vfma.f32 s18, s12, s4", "vfma.f32 s18, s13, s5", "vfma.f32 s18, s14, s6", "vfma.f32 s18, s15, s7",
        "vldmia r5!, {{s8-s15}}",
        "vfma.f32 s19, s8, s0", "vfma.f32 s19, s9, s1", "vfma.f32 s19, s10, s2", "vfma.f32 s19, s11, s3",
        "vfma.f32 s19, s12, s4", "vfma.f32 s19, s13, s5", "vfma.f32 s19, s14, s6", "vfma.f32 s19, s15, s7",
        "vldmia r8!, {{s8-s15}}",
        "vfma.f32 s20, s8, s0", "vfma.f32 s20, s9, s1", "vfma.f32 s20, s10, s2", "vfma.f32 s20, s11, s3",
        "vfma.f32 s20, s12, s4", "vfma.f32 s20, s13, s5", "vfma.f32 s20, s14, s6", "vfma.f32 s20, s15, s7",
        "vldmia r9!, {{s8-s15}}",
        "vfma.f32 s21, s8, s0", "vfma.f32 s21, s9, s1", "vfma.f32 s21, s10, s2", "vfma.f32 s21, s11, s3",
        "vfma.f32 s21, s12, s4", "vfma.f32 s21, s13, s5", "vfma.f32 s21, s14, s6", "vfma.f32 s21, s15, s7",
        "vldmia r10!, {{s8-s15}}",
        "vfma.f32 s22, s8, s0", "vfma.f32 s22, s9, s1", "vfma.f32 s22, s10, s2", "vfma.f32 s22, s11, s3",
        "vfma.f32 s22, s12, s4", "vfma.f32 s22, s13, s5", "vfma.f32 s22, s14, s6", "vfma.f32 s22, s15, s7",
        "vldmia r11!, {{s8-s15}}",
        "vfma.f32 s23, s8, s0", "vfma.f32 s23, s9, s1", "vfma.f32 s23, s10, s2", "vfma.f32 s23, s11, s3",
        "vfma.f32 s23, s12, s4", "vfma.f32 s23, s13, s5", "vfma.f32 s23, s14, s6", "vfma.f32 s23, s15, s7",
        "subs r12, #1",
        "bne 22b",
        "23:",
        "ands r12, r7, #28", // leftover inputs, bytes
        "beq 25f",
        "24:",
        "vldmia r4!, {{s0}}",
        "vldmia r0!, {{s8}}", "vfma.f32 s16, s8, s0",
        "vldmia r1!, {{s9}}", "vfma.f32 s17, s9, s0",
        "vldmia r3!, {{s10}}", "vfma.f32 s18, s10, s0",
        "vldmia r5!, {{s11}}", "vfma.f32 s19, s11, s0",
        "vldmia r8!, {{s12}}", "vfma.f32 s20, s12, s0",
        "vldmia r9!, {{s13}}", "vfma.f32 s21, s13, s0",
        "vldmia r10!, {{s14}}", "vfma.f32 s22, s14, s0",
        "vldmia r11!, {{s15}}", "vfma.f32 s23, s15, s0",
        "subs r12, #4",
        "bne 24b",
        "25:", // bias last, store; x back to its start; the next block starts where row 7 ended
        "vldmia r2!, {{s0-s7}}",
        "vadd.f32 s16, s16, s0", "vadd.f32 s17, s17, s1", "vadd.f32 s18, s18, s2", "vadd.f32 s19, s19, s3",
        "vadd.f32 s20, s20, s4", "vadd.f32 s21, s21, s5", "vadd.f32 s22, s22, s6", "vadd.f32 s23, s23, s7",
        "vstmia r6!, {{s16-s23}}",
        "subs r4, r4, r7",
        "mov r0, r11",
        "cmp r0, lr", // end of the blocks?
        "bne 20b",
        "ldr r5, [sp, #112]", // n_out again, above the 36 + 64 bytes saved
        // Leftover rows (n_out % 8, counted by r5), one at a time: r0 walks the row, s16 accumulates.
        "30:",
        "ands r5, r5, #7",
        "beq 40f",
        "adr r3, 99f",
        "31:",
        "vldr s16, [r3]", // from 0.0
        "lsrs r1, r7, #5",
        "beq 33f",
        "32:",
        "vldmia r4!, {{s0-s7}}",
        "vldmia r0!, {{s8-s15}}",
        "vfma.f32 s16, s8, s0", "vfma.f32 s16, s9, s1", "vfma.f32 s16, s10, s2", "vfma.f32 s16, s11, s3",
        "vfma.f32 s16, s12, s4", "vfma.f32 s16, s13, s5", "vfma.f32 s16, s14, s6", "vfma.f32 s16, s15, s7",
        "subs r1, #1",
        "bne 32b",
        "33:",
        "ands r1, r7, #28",
        "beq 35f",
        "34:",
        "vldmia r4!, {{s0}}",
        "vldmia r0!, {{s8}}",
        "vfma.f32 s16, s8, s0",
        "subs r1, #4",
        "bne 34b",
        "35:",
        "vldmia r2!, {{s0}}",
        "vadd.f32 s16, s16, s0",
        "vstmia r6!, {{s16}}",
        "subs r4, r4, r7",
        "subs r5, #1",
        "bne 31b",
        "40:",
        "vpop {{s16-s31}}",
        "movs r0, #1",
        "pop {{r4-r11, pc}}",
        // Two inputs (x in s0-s1): eight rows a pass, one VLDM of their 16 weights, s24-s31 accumulate.
        "50:",
        "vldmia r4, {{s0-s1}}",
        "lsrs r1, r5, #3",
        "beq 30b",
        "adr r3, 99f",
        "51:",
        "vldmia r3, {{s24-s31}}", // from 0.0
        "vldmia r0!, {{s8-s23}}",
        "vfma.f32 s24, s8, s0", "vfma.f32 s24, s9, s1", "vfma.f32 s25, s10, s0", "vfma.f32 s25, s11, s1",
        "vfma.f32 s26, s12, s0", "vfma.f32 s26, s13, s1", "vfma.f32 s27, s14, s0", "vfma.f32 s27, s15, s1",
        "vfma.f32 s28, s16, s0", "vfma.f32 s28, s17, s1", "vfma.f32 s29, s18, s0", "vfma.f32 s29, s19, s1",
        "vfma.f32 s30, s20, s0", "vfma.f32 s30, s21, s1", "vfma.f32 s31, s22, s0", "vfma.f32 s31, s23, s1",
        "vldmia r2!, {{s8-s15}}",
        "vadd.f32 s24, s24, s8", "vadd.f32 s25, s25, s9", "vadd.f32 s26, s26, s10", "vadd.f32 s27, s27, s11",
        "vadd.f32 s28, s28, s12", "vadd.f32 s29, s29, s13", "vadd.f32 s30, s30, s14", "vadd.f32 s31, s31, s15",
        "vstmia r6!, {{s24-s31}}",
        "subs r1, #1",
        "bne 51b",
        "b 30b", // leftover rows
        ".p2align 2",
        "99:", // eight zeros: the accumulators' start
        ".space 32",
        ".size odeflash_arm_vfma_dense_f32, . - odeflash_arm_vfma_dense_f32",
        ".popsection",
    );
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

/// `y = W x` without bias, for the forward tangents of the implicit solvers' Jacobians; same
/// summation order as [`dense_f32`].
#[inline]
pub fn matvec_f32(w: &[f32], x: &[f32], y: &mut [f32]) {
    let n_in = x.len();
    if n_in == 0 {
        return;
    }
    for (row, out) in w.chunks_exact(n_in).zip(y.iter_mut()) {
        let mut acc = 0.0f32;
        for (&wi, &xi) in row.iter().zip(x) {
            acc += wi * xi;
        }
        *out = acc;
    }
}

/// `y = diag(scale) Q x` without bias: [`dense_i8`]'s tangent.
#[inline]
pub fn matvec_i8(q: &[i8], scale: &[f32], x: &[f32], y: &mut [f32]) {
    let n_in = x.len();
    if n_in == 0 {
        return;
    }
    for ((row, &s), out) in q.chunks_exact(n_in).zip(scale).zip(y.iter_mut()) {
        let mut acc = 0.0f32;
        for (&qi, &xi) in row.iter().zip(x) {
            acc += qi as f32 * xi;
        }
        *out = s * acc;
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
