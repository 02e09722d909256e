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
