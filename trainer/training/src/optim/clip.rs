//! Gradient clipping by the global norm, as `torch.nn.utils.clip_grad_norm_`.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Scales all gradients together so that their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_(parameters, max_norm)` (`norm_type=2`):
///
/// ```text
/// total_norm = sqrt(sum over all gradients and elements of g^2)
/// clip_coef  = max_norm / (total_norm + 1e-6)
/// g = g * clip_coef                      (for every gradient, when clip_coef < 1)
/// ```
///
/// Returns `total_norm`, the norm before clipping. The squares are summed per tensor on the
/// backend (in its float type) and across tensors in `f64`, with one read-back for all tensors.
/// burn's own gradient clipping works per tensor, which changes the update's direction.
///
/// When the norm is not finite (a NaN or an infinite gradient, or an overflow), the gradients
/// are left unchanged and the non-finite norm is returned, so the caller can skip the step
/// (PyTorch would scale everything by NaN or 0). An empty list has norm 0.
///
/// # Panics
///
/// If `max_norm` is negative or NaN.
pub fn clip_global_norm<B: Backend>(grads: &mut [Tensor<B, 2>], max_norm: f64) -> f64 {
    assert!(
        max_norm >= 0.0,
        "clip_global_norm: max_norm must be >= 0, got {max_norm}"
    );
    if grads.is_empty() {
        return 0.0;
    }
    let sums: Vec<Tensor<B, 1>> = grads.iter().map(|g| g.clone().square().sum()).collect();
    let sums = Tensor::cat(sums, 0)
        .into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .expect("converted to f64");
    let total_norm = sums.iter().sum::<f64>().sqrt();
    if !total_norm.is_finite() {
        return total_norm;
    }
    let clip_coef = max_norm / (total_norm + 1e-6);
    if clip_coef < 1.0 {
        for g in grads.iter_mut() {
            *g = g.clone().mul_scalar(clip_coef);
        }
    }
    total_norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_support::{tensor, values, Tb};

    fn grads() -> Vec<Tensor<Tb, 2>> {
        // Squares: 9 + 16 + 0 + 144 + 0 + 0 = 169, so the norm is 13.
        vec![
            tensor(&[3.0, 4.0, 0.0], [1, 3]),
            tensor(&[-12.0, 0.0, 0.0, 0.0], [2, 2]),
        ]
    }

    #[test]
    fn clips_to_max_norm() {
        let mut g = grads();
        let norm = clip_global_norm(&mut g, 6.5);
        assert!((norm - 13.0).abs() < 1e-12, "norm {norm}");
        let scale = 6.5 / (13.0 + 1e-6);
        let expected = [
            vec![3.0 * scale, 4.0 * scale, 0.0],
            vec![-12.0 * scale, 0.0, 0.0, 0.0],
        ];
        for (t, e) in g.iter().zip(&expected) {
            for (a, b) in values(t).iter().zip(e) {
                assert!(
                    (f64::from(*a) - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{a} vs {b}"
                );
            }
        }
        // The clipped gradients have (nearly) the maximal norm.
        let after = clip_global_norm(&mut g, 100.0);
        assert!((after - 6.5).abs() < 1e-5, "norm after clipping {after}");
    }

    #[test]
    fn leaves_small_gradients_alone() {
        let mut g = grads();
        let before: Vec<Vec<f32>> = g.iter().map(values).collect();
        // clip_coef = 13.5 / (13 + 1e-6) > 1: nothing changes.
        let norm = clip_global_norm(&mut g, 13.5);
        assert!((norm - 13.0).abs() < 1e-12);
        let after: Vec<Vec<f32>> = g.iter().map(values).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn non_finite_norm_leaves_gradients_alone() {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut g = grads();
            g.push(tensor(&[1.0, bad], [2, 1]));
            let before: Vec<Vec<u32>> = g
                .iter()
                .map(|t| values(t).iter().map(|v| v.to_bits()).collect())
                .collect();
            let norm = clip_global_norm(&mut g, 1.0);
            assert!(!norm.is_finite());
            assert_eq!(norm.is_nan(), bad.is_nan());
            let after: Vec<Vec<u32>> = g
                .iter()
                .map(|t| values(t).iter().map(|v| v.to_bits()).collect())
                .collect();
            assert_eq!(before, after);
        }
    }

    #[test]
    fn empty_list_has_zero_norm() {
        let mut g: Vec<Tensor<Tb, 2>> = Vec::new();
        assert_eq!(clip_global_norm(&mut g, 1.0), 0.0);
    }
}
