//! The convergence-order check of every solver test in the workspace (runtime, f64 reference
//! solvers, differentiable solvers): one estimate, so a method's observed order means the same
//! thing wherever it is asserted.

/// Observed order of convergence: the least-squares slope of `ln err` against `ln h` over the
/// step sizes `hs` and the errors `errs` measured at them (two points give
/// `log2(err(h) / err(h/2))` for halved steps).
pub fn observed_order(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: std::vec::Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: std::vec::Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let k = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / k, ys.iter().sum::<f64>() / k);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_an_exact_power_law() {
        let hs = [0.1, 0.05, 0.025];
        let errs: std::vec::Vec<f64> = hs.iter().map(|h: &f64| 3.0 * h.powi(4)).collect();
        assert!((super::observed_order(&hs, &errs) - 4.0).abs() < 1e-12);
        assert!((super::observed_order(&hs[..2], &errs[..2]) - 4.0).abs() < 1e-12);
    }
}
