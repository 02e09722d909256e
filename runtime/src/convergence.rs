//! The convergence-order harness of every solver test in the workspace (the runtime's explicit
//! and implicit steps, the f64 reference solvers, the differentiable solvers): one set of test
//! problems with exact solutions and one order estimate, in the spirit of diffsol's
//! `test_models`, so a method's observed order means the same thing wherever it is asserted.

use std::vec::Vec;

/// A test problem `y' = f(t, y)`, `y(0) = y0`, with its exact Jacobian and solution.
#[derive(Clone, Copy)]
pub struct TestProblem {
    /// Name, for failure messages.
    pub name: &'static str,
    /// Initial state at `t = 0`.
    pub y0: &'static [f64],
    /// End of the interval the orders are measured over.
    pub t_end: f64,
    /// Stiff: explicit methods are unstable at the step sizes an order test uses (callers leave
    /// it out of their explicit methods' problems).
    pub stiff: bool,
    /// The vector field.
    pub f: fn(f64, &[f64], &mut [f64]),
    /// Its Jacobian `∂f/∂y`, row-major.
    pub jac: fn(f64, &[f64], &mut [f64]),
    /// The exact solution.
    pub exact: fn(f64) -> Vec<f64>,
}

impl TestProblem {
    /// The field and, when `jac` is given, its Jacobian: the closure form of the runtime's
    /// implicit step.
    pub fn eval(&self, t: f64, y: &[f64], dy: &mut [f64], jac: Option<&mut [f64]>) {
        (self.f)(t, y, dy);
        if let Some(j) = jac {
            (self.jac)(t, y, j);
        }
    }

    /// Largest componentwise error of `y` against the exact solution at `t`.
    pub fn error(&self, t: f64, y: &[f64]) -> f64 {
        (self.exact)(t)
            .iter()
            .zip(y)
            .map(|(e, v)| (e - v).abs())
            .fold(0.0, f64::max)
    }
}

/// The problems: scalar and systems, autonomous and forced, linear and nonlinear, one stiff.
pub const TEST_PROBLEMS: [TestProblem; 6] = [
    // Forced, so the stage nodes c_i must be right.
    TestProblem {
        name: "forced linear",
        y0: &[1.0],
        t_end: 1.0,
        stiff: false,
        f: |t, y, dy| dy[0] = -y[0] + t.sin(),
        jac: |_, _, j| j[0] = -1.0,
        exact: |t| std::vec![1.5 * (-t).exp() + 0.5 * (t.sin() - t.cos())],
    },
    TestProblem {
        name: "logistic",
        y0: &[0.1],
        t_end: 1.0,
        stiff: false,
        f: |_, y, dy| dy[0] = y[0] * (1.0 - y[0]),
        jac: |_, y, j| j[0] = 1.0 - 2.0 * y[0],
        exact: |t| std::vec![1.0 / (1.0 + 9.0 * (-t).exp())],
    },
    TestProblem {
        name: "oscillator",
        y0: &[1.0, 0.0],
        t_end: 1.0,
        stiff: false,
        f: |_, y, dy| {
            dy[0] = y[1];
            dy[1] = -y[0];
        },
        jac: |_, _, j| j.copy_from_slice(&[0.0, 1.0, -1.0, 0.0]),
        exact: |t| std::vec![t.cos(), -t.sin()],
    },
    // `y1 = 1 / (1 + t)`, `y2 = exp(-t) + sin t`, coupled through a term that vanishes on the
    // solution (`y1 (1 + t) - 1`), so the Jacobian is full.
    TestProblem {
        name: "coupled nonlinear",
        y0: &[1.0, 1.0],
        t_end: 1.0,
        stiff: false,
        f: |t, y, dy| {
            let e = y[0] * (1.0 + t) - 1.0;
            dy[0] = -y[0] * y[0];
            dy[1] = -y[1] + t.sin() + t.cos() + 3.0 * e * y[1];
        },
        jac: |t, y, j| {
            let e = y[0] * (1.0 + t) - 1.0;
            j.copy_from_slice(&[-2.0 * y[0], 0.0, 3.0 * (1.0 + t) * y[1], -1.0 + 3.0 * e]);
        },
        exact: |t| std::vec![1.0 / (1.0 + t), (-t).exp() + t.sin()],
    },
    // A rotation whose speed is the squared radius: nonlinear, the radius (1) is conserved.
    TestProblem {
        name: "nonlinear rotation",
        y0: &[1.0, 0.0],
        t_end: 1.0,
        stiff: false,
        f: |_, y, dy| {
            let s = y[0] * y[0] + y[1] * y[1];
            dy[0] = -s * y[1];
            dy[1] = s * y[0];
        },
        jac: |_, y, j| {
            let (x, v) = (y[0], y[1]);
            let s = x * x + v * v;
            j.copy_from_slice(&[-2.0 * x * v, -s - 2.0 * v * v, s + 2.0 * x * x, 2.0 * x * v]);
        },
        exact: |t| std::vec![t.cos(), t.sin()],
    },
    // Kaps' problem (Hairer & Wanner IV.10) at `1/ε = 10`: mildly stiff, smooth solution.
    TestProblem {
        name: "Kaps (mu = 10)",
        y0: &[1.0, 1.0],
        t_end: 1.0,
        stiff: true,
        f: |_, y, dy| {
            dy[0] = -12.0 * y[0] + 10.0 * y[1] * y[1];
            dy[1] = y[0] - y[1] - y[1] * y[1];
        },
        jac: |_, y, j| j.copy_from_slice(&[-12.0, 20.0 * y[1], 1.0, -1.0 - 2.0 * y[1]]),
        exact: |t| std::vec![(-2.0 * t).exp(), (-t).exp()],
    },
];

/// The problems an explicit method of order `order` is checked on: the non-stiff ones, and for
/// 5th order only the scalar problems and the linear oscillator. On the two nonlinear systems
/// Tsit5 and Dopri5 stay pre-asymptotic over the whole step range above f64 rounding (measured
/// slopes 6.1 and 5.5 on the coupled problem, Dopri5 5.6 on the rotation).
pub fn explicit_problems(order: u8) -> impl Iterator<Item = &'static TestProblem> {
    TEST_PROBLEMS.iter().filter(move |p| {
        !(p.stiff || order >= 5 && matches!(p.name, "coupled nonlinear" | "nonlinear rotation"))
    })
}

/// Observed order of convergence: the least-squares slope of `ln err` against `ln h` over the
/// step sizes `hs` and the errors `errs` measured at them (two points give
/// `log2(err(h) / err(h/2))` for halved steps).
pub fn observed_order(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let k = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / k, ys.iter().sum::<f64>() / k);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

/// Runs a method on each of `problems` with each step count of `steps` over `[0, t_end]`,
/// `error(problem, steps)` returning the run's error, and asserts that the observed order is
/// within `tol` of `order`. Prints each order.
pub fn check_orders<'a>(
    method: &str,
    order: f64,
    tol: f64,
    problems: impl IntoIterator<Item = &'a TestProblem>,
    steps: &[usize],
    mut error: impl FnMut(&TestProblem, usize) -> f64,
) {
    for p in problems {
        let hs: Vec<f64> = steps.iter().map(|&n| p.t_end / n as f64).collect();
        let errs: Vec<f64> = steps.iter().map(|&n| error(p, n)).collect();
        let observed = observed_order(&hs, &errs);
        std::println!(
            "{method} on {}: observed order {observed:.3}, errors {errs:?}",
            p.name
        );
        assert!(
            (observed - order).abs() < tol,
            "{method} on {}: observed order {observed:.3} (errors {errs:?}), expected {order}",
            p.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_an_exact_power_law() {
        let hs = [0.1, 0.05, 0.025];
        let errs: Vec<f64> = hs.iter().map(|h: &f64| 3.0 * h.powi(4)).collect();
        assert!((observed_order(&hs, &errs) - 4.0).abs() < 1e-12);
        assert!((observed_order(&hs[..2], &errs[..2]) - 4.0).abs() < 1e-12);
    }

    /// The exact solutions solve their problems (central differences) and the Jacobians are the
    /// field's derivatives: a wrong formula here would make every order test meaningless.
    #[test]
    fn exact_solutions_and_jacobians_are_consistent() {
        for p in &TEST_PROBLEMS {
            let n = p.y0.len();
            assert!(p.error(0.0, p.y0) < 1e-15, "{}: y0", p.name);
            for t in [0.1, 0.5, 0.9] {
                let h = 1e-5;
                let y = (p.exact)(t);
                let mut dy = std::vec![0.0; n];
                (p.f)(t, &y, &mut dy);
                for (k, d) in dy.iter().enumerate() {
                    let fd = ((p.exact)(t + h)[k] - (p.exact)(t - h)[k]) / (2.0 * h);
                    assert!((fd - d).abs() < 1e-7, "{}: y'[{k}] at {t}", p.name);
                }
                let mut jac = std::vec![0.0; n * n];
                (p.jac)(t, &y, &mut jac);
                for c in 0..n {
                    let (mut yp, mut ym) = (y.clone(), y.clone());
                    yp[c] += h;
                    ym[c] -= h;
                    let (mut fp, mut fm) = (std::vec![0.0; n], std::vec![0.0; n]);
                    (p.f)(t, &yp, &mut fp);
                    (p.f)(t, &ym, &mut fm);
                    for r in 0..n {
                        let fd = (fp[r] - fm[r]) / (2.0 * h);
                        assert!(
                            (fd - jac[r * n + c]).abs() < 1e-6,
                            "{}: J[{r}][{c}]",
                            p.name
                        );
                    }
                }
            }
        }
    }
}
