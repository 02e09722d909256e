//! L-BFGS-B: bound-constrained limited-memory quasi-Newton minimization (Byrd, Lu, Nocedal &
//! Zhu 1995; Zhu et al. 1997, the code paper 000 used through Optim.jl).
//!
//! What is implemented, for the handful of parameters of a compact model:
//! - the limited-memory BFGS matrix `B` of the last `m` pairs `(s, y)` with `B0 = theta I`,
//!   `theta = y'y / s'y` of the newest pair, formed **densely** (n x n; the compact `W M W'`
//!   representation of the original pays off only for large n);
//! - the generalized Cauchy point: the first local minimizer of the quadratic model along the
//!   projected steepest-descent path `P(x - t g)`, segment by segment between breakpoints;
//! - subspace minimization over the variables free at the Cauchy point by the direct primal
//!   method (solve `B_FF d = -r_F` by Cholesky), then truncation of the step to the box, as in
//!   L-BFGS-B 2.1 (version 3.0's projection refinement is not implemented);
//! - a backtracking line search along `d = x_bar - x` (Armijo condition, safeguarded quadratic
//!   interpolation; first trial step 1, or `1/|d|` on the first iteration), which evaluates only
//!   the objective, so an expensive finite-difference gradient is computed once per iteration.
//!   The original uses the Moré–Thuente search with the strong Wolfe conditions; here a pair is
//!   added to the memory only when `s'y > eps y'y` (the original's curvature safeguard);
//! - stopping: projected-gradient infinity norm `<= pgtol`, or relative reduction of `f` below
//!   `factr * eps`, or the iteration/evaluation budget.

/// Settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LbfgsbConfig {
    /// Correction pairs kept (`m`).
    pub memory: usize,
    /// Iterations.
    pub max_iterations: usize,
    /// Objective evaluations (line searches), gradients not counted.
    pub max_evaluations: usize,
    /// Stop when the projected gradient's infinity norm is at most this.
    pub pgtol: f64,
    /// Stop when `(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= factr * eps`.
    pub factr: f64,
    /// Armijo constant.
    pub c1: f64,
}

impl Default for LbfgsbConfig {
    fn default() -> Self {
        LbfgsbConfig {
            memory: 10,
            max_iterations: 100,
            max_evaluations: 2_000,
            pgtol: 1e-8,
            factr: 1e7,
            c1: 1e-4,
        }
    }
}

/// Why the iteration stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Projected gradient small.
    ProjectedGradient,
    /// Relative reduction of the objective below `factr * eps`.
    RelativeReduction,
    /// Iteration budget spent.
    MaxIterations,
    /// Evaluation budget spent.
    MaxEvaluations,
    /// No decrease along the search direction, even after resetting the memory.
    LineSearchFailed,
}

/// The outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct LbfgsbResult {
    /// Minimizer found.
    pub x: Vec<f64>,
    /// Objective there.
    pub value: f64,
    /// Iterations.
    pub iterations: usize,
    /// Objective evaluations (excluding those inside gradients).
    pub evaluations: usize,
    /// Gradient evaluations.
    pub gradients: usize,
    /// Infinity norm of the projected gradient at `x`.
    pub projected_gradient: f64,
    /// Why it stopped.
    pub stop: StopReason,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn matvec(m: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
    m.iter().map(|row| dot(row, v)).collect()
}

/// Infinity norm of `P(x - g) - x`.
pub fn projected_gradient_norm(x: &[f64], g: &[f64], lower: &[f64], upper: &[f64]) -> f64 {
    (0..x.len())
        .map(|i| ((x[i] - g[i]).clamp(lower[i], upper[i]) - x[i]).abs())
        .fold(0.0, f64::max)
}

/// The dense limited-memory BFGS matrix.
fn bfgs_matrix(n: usize, pairs: &[(Vec<f64>, Vec<f64>)]) -> Vec<Vec<f64>> {
    let theta = pairs
        .last()
        .map_or(1.0, |(s, y)| dot(y, y) / dot(s, y).max(f64::MIN_POSITIVE));
    let mut b: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { theta } else { 0.0 }).collect())
        .collect();
    for (s, y) in pairs {
        let bs = matvec(&b, s);
        let sbs = dot(s, &bs);
        let ys = dot(y, s);
        if sbs <= 0.0 || ys <= 0.0 {
            continue;
        }
        for i in 0..n {
            for j in 0..n {
                b[i][j] += y[i] * y[j] / ys - bs[i] * bs[j] / sbs;
            }
        }
    }
    b
}

/// Solves `a x = r` for symmetric positive-definite `a` (Cholesky); `None` if not SPD.
fn cholesky_solve(a: &[Vec<f64>], r: &[f64]) -> Option<Vec<f64>> {
    let n = r.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i][j]
                - l[i][..j]
                    .iter()
                    .zip(&l[j][..j])
                    .map(|(p, q)| p * q)
                    .sum::<f64>();
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut s = r[i];
        for k in 0..i {
            s -= l[i][k] * y[k];
        }
        y[i] = s / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l[k][i] * x[k];
        }
        x[i] = s / l[i][i];
    }
    Some(x)
}

/// The generalized Cauchy point of the model `g'(z - x) + (z - x)'B(z - x)/2` along
/// `P(x - t g)`.
fn cauchy_point(x: &[f64], g: &[f64], lower: &[f64], upper: &[f64], b: &[Vec<f64>]) -> Vec<f64> {
    let n = x.len();
    let mut t_break = vec![f64::INFINITY; n];
    let mut d = vec![0.0; n];
    for i in 0..n {
        if g[i] < 0.0 {
            t_break[i] = (x[i] - upper[i]) / g[i];
        } else if g[i] > 0.0 {
            t_break[i] = (x[i] - lower[i]) / g[i];
        }
        if t_break[i] > 0.0 {
            d[i] = -g[i];
        }
    }
    let mut order: Vec<usize> = (0..n)
        .filter(|&i| t_break[i] > 0.0 && t_break[i].is_finite())
        .collect();
    order.sort_by(|&a, &c| t_break[a].total_cmp(&t_break[c]));
    let mut xc = x.to_vec();
    let mut t_old = 0.0;
    let mut next = 0;
    loop {
        if d.iter().all(|&v| v == 0.0) {
            break;
        }
        let z: Vec<f64> = (0..n).map(|i| xc[i] - x[i]).collect();
        let bd = matvec(b, &d);
        let f1 = dot(g, &d) + dot(&bd, &z);
        let f2 = dot(&d, &bd);
        if f1 >= 0.0 {
            break;
        }
        let t_next = order.get(next).map_or(f64::INFINITY, |&i| t_break[i]);
        let dt = t_next - t_old;
        let dt_min = if f2 > 0.0 { -f1 / f2 } else { f64::INFINITY };
        if dt_min < dt {
            for i in 0..n {
                xc[i] += dt_min * d[i];
            }
            break;
        }
        if !t_next.is_finite() {
            // Unbounded descent of the model along a free ray: cannot happen with B positive
            // definite; stay at the current point.
            break;
        }
        for i in 0..n {
            xc[i] += dt * d[i];
        }
        // Fix every variable whose breakpoint is reached (ties together).
        while let Some(&i) = order.get(next) {
            if t_break[i] > t_next {
                break;
            }
            xc[i] = if d[i] > 0.0 { upper[i] } else { lower[i] };
            d[i] = 0.0;
            next += 1;
        }
        t_old = t_next;
    }
    for i in 0..n {
        xc[i] = xc[i].clamp(lower[i], upper[i]);
    }
    xc
}

/// Subspace minimization from the Cauchy point `xc`, truncated to the box.
fn subspace_step(
    x: &[f64],
    g: &[f64],
    xc: &[f64],
    lower: &[f64],
    upper: &[f64],
    b: &[Vec<f64>],
) -> Vec<f64> {
    let n = x.len();
    let free: Vec<usize> = (0..n)
        .filter(|&i| xc[i] > lower[i] && xc[i] < upper[i])
        .collect();
    if free.is_empty() {
        return xc.to_vec();
    }
    let z: Vec<f64> = (0..n).map(|i| xc[i] - x[i]).collect();
    let bz = matvec(b, &z);
    let r: Vec<f64> = free.iter().map(|&i| -(g[i] + bz[i])).collect();
    let bff: Vec<Vec<f64>> = free
        .iter()
        .map(|&i| free.iter().map(|&j| b[i][j]).collect())
        .collect();
    let Some(du) = cholesky_solve(&bff, &r) else {
        return xc.to_vec();
    };
    let mut alpha: f64 = 1.0;
    for (k, &i) in free.iter().enumerate() {
        if du[k] > 0.0 {
            alpha = alpha.min((upper[i] - xc[i]) / du[k]);
        } else if du[k] < 0.0 {
            alpha = alpha.min((lower[i] - xc[i]) / du[k]);
        }
    }
    let alpha = alpha.max(0.0);
    let mut out = xc.to_vec();
    for (k, &i) in free.iter().enumerate() {
        out[i] = (xc[i] + alpha * du[k]).clamp(lower[i], upper[i]);
    }
    out
}

/// Minimizes `f` over the box `[lower, upper]` from `x0`. `grad(x, f(x))` returns the gradient
/// (it gets the value so a finite-difference gradient can reuse it). `progress(iteration, f)` is
/// called after every iteration.
pub fn minimize(
    f: &mut dyn FnMut(&[f64]) -> f64,
    grad: &mut dyn FnMut(&[f64], f64) -> Vec<f64>,
    x0: &[f64],
    lower: &[f64],
    upper: &[f64],
    config: &LbfgsbConfig,
    progress: &mut dyn FnMut(usize, f64),
) -> LbfgsbResult {
    let n = x0.len();
    let eps = f64::EPSILON;
    let mut x: Vec<f64> = (0..n).map(|i| x0[i].clamp(lower[i], upper[i])).collect();
    let mut fx = f(&x);
    let mut evaluations = 1;
    let mut g = grad(&x, fx);
    let mut gradients = 1;
    let mut pairs: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut iterations = 0;
    let finish = |x: Vec<f64>, value, g: &[f64], iterations, evaluations, gradients, stop| {
        let projected_gradient = projected_gradient_norm(&x, g, lower, upper);
        LbfgsbResult {
            x,
            value,
            iterations,
            evaluations,
            gradients,
            projected_gradient,
            stop,
        }
    };
    if !fx.is_finite() {
        return finish(x, fx, &g, 0, 1, 1, StopReason::LineSearchFailed);
    }
    loop {
        if projected_gradient_norm(&x, &g, lower, upper) <= config.pgtol {
            return finish(
                x,
                fx,
                &g,
                iterations,
                evaluations,
                gradients,
                StopReason::ProjectedGradient,
            );
        }
        if iterations >= config.max_iterations {
            return finish(
                x,
                fx,
                &g,
                iterations,
                evaluations,
                gradients,
                StopReason::MaxIterations,
            );
        }
        let (d, slope) = search_direction(&x, &g, lower, upper, &mut pairs);
        if slope >= 0.0 {
            return finish(
                x,
                fx,
                &g,
                iterations,
                evaluations,
                gradients,
                StopReason::LineSearchFailed,
            );
        }
        let dnorm = dot(&d, &d).sqrt();
        let step = if iterations == 0 && pairs.is_empty() {
            1.0_f64.min(1.0 / dnorm)
        } else {
            1.0
        };
        let accepted = line_search(
            f,
            &x,
            fx,
            &d,
            slope,
            step,
            (lower, upper),
            config,
            &mut evaluations,
        );
        let Some((xn, fnew)) = accepted else {
            if !pairs.is_empty() {
                pairs.clear();
                iterations += 1;
                continue;
            }
            let stop = if evaluations >= config.max_evaluations {
                StopReason::MaxEvaluations
            } else {
                StopReason::LineSearchFailed
            };
            return finish(x, fx, &g, iterations, evaluations, gradients, stop);
        };
        let gn = grad(&xn, fnew);
        gradients += 1;
        iterations += 1;
        let s: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
        if dot(&s, &y) > eps * dot(&y, &y) {
            pairs.push((s, y));
            if pairs.len() > config.memory {
                pairs.remove(0);
            }
        }
        let reduction = (fx - fnew) / fx.abs().max(fnew.abs()).max(1.0);
        x = xn;
        fx = fnew;
        g = gn;
        progress(iterations, fx);
        if reduction <= config.factr * eps {
            return finish(
                x,
                fx,
                &g,
                iterations,
                evaluations,
                gradients,
                StopReason::RelativeReduction,
            );
        }
        if evaluations >= config.max_evaluations {
            return finish(
                x,
                fx,
                &g,
                iterations,
                evaluations,
                gradients,
                StopReason::MaxEvaluations,
            );
        }
    }
}

/// The search direction from `x`: to the minimizer of the quadratic model over the subspace of
/// the free variables at the generalized Cauchy point, and the slope along it. A direction that
/// does not descend (a stale memory) restarts from steepest descent once.
fn search_direction(
    x: &[f64],
    g: &[f64],
    lower: &[f64],
    upper: &[f64],
    pairs: &mut Vec<(Vec<f64>, Vec<f64>)>,
) -> (Vec<f64>, f64) {
    let n = x.len();
    let mut reset = false;
    loop {
        let b = bfgs_matrix(n, pairs);
        let xc = cauchy_point(x, g, lower, upper, &b);
        let xbar = subspace_step(x, g, &xc, lower, upper, &b);
        let d: Vec<f64> = (0..n).map(|i| xbar[i] - x[i]).collect();
        let slope = dot(g, &d);
        if slope < 0.0 || reset {
            return (d, slope);
        }
        pairs.clear();
        reset = true;
    }
}

/// Backtracking along `d` from `x` (projected onto the box) until the Armijo condition holds,
/// with safeguarded quadratic interpolation; the accepted point and its value, if any.
#[allow(clippy::too_many_arguments)]
fn line_search(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x: &[f64],
    fx: f64,
    d: &[f64],
    slope: f64,
    mut step: f64,
    (lower, upper): (&[f64], &[f64]),
    config: &LbfgsbConfig,
    evaluations: &mut usize,
) -> Option<(Vec<f64>, f64)> {
    let n = x.len();
    let dnorm = dot(d, d).sqrt();
    for _ in 0..40 {
        if *evaluations >= config.max_evaluations {
            break;
        }
        let xt: Vec<f64> = (0..n)
            .map(|i| (x[i] + step * d[i]).clamp(lower[i], upper[i]))
            .collect();
        let ft = f(&xt);
        *evaluations += 1;
        if ft.is_finite() && ft <= fx + config.c1 * step * slope {
            return Some((xt, ft));
        }
        // Minimizer of the quadratic through f(0), f'(0), f(step), safeguarded.
        let q = if ft.is_finite() {
            -slope * step * step / (2.0 * (ft - fx - slope * step))
        } else {
            0.1 * step
        };
        step = q.clamp(0.1 * step, 0.5 * step);
        if step * dnorm < 1e-20 {
            break;
        }
    }
    None
}

/// Central-difference gradient of `f` on the box (one-sided at a bound), step `h`, evaluated
/// on up to `threads` threads.
pub fn fd_gradient(
    f: &(dyn Fn(&[f64]) -> f64 + Sync),
    x: &[f64],
    lower: &[f64],
    upper: &[f64],
    h: f64,
    threads: usize,
) -> Vec<f64> {
    // Each component needs two points: (x + a e_i, x - b e_i) with a, b >= 0.
    let n = x.len();
    let mut points = Vec::with_capacity(2 * n);
    let mut spans = Vec::with_capacity(n);
    for i in 0..n {
        let up = (upper[i] - x[i]).min(h).max(0.0);
        let down = (x[i] - lower[i]).min(h).max(0.0);
        let (a, b) = if up >= h && down >= h {
            (h, h)
        } else if up >= down {
            (up.max(h.min(upper[i] - lower[i])), 0.0)
        } else {
            (0.0, down.max(h.min(upper[i] - lower[i])))
        };
        let mut p = x.to_vec();
        p[i] = (x[i] + a).min(upper[i]);
        let mut q = x.to_vec();
        q[i] = (x[i] - b).max(lower[i]);
        spans.push(p[i] - q[i]);
        points.push(p);
        points.push(q);
    }
    let vals = super::de::par_map(&points, threads, &|p: &Vec<f64>| f(p));
    (0..n)
        .map(|i| {
            if spans[i] > 0.0 {
                (vals[2 * i] - vals[2 * i + 1]) / spans[i]
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadratic_with_active_bounds_is_exact() {
        // f = (x0 - 2)^2 + (x1 + 1)^2 + (x2 - 0.5)^2 on [0,1]^3: minimizer (1, 0, 0.5).
        let target = [2.0, -1.0, 0.5];
        let mut f = |x: &[f64]| (0..3).map(|i| (x[i] - target[i]).powi(2)).sum::<f64>();
        let mut g = |x: &[f64], _: f64| (0..3).map(|i| 2.0 * (x[i] - target[i])).collect();
        let r = minimize(
            &mut f,
            &mut g,
            &[0.3, 0.7, 0.1],
            &[0.0; 3],
            &[1.0; 3],
            &LbfgsbConfig::default(),
            &mut |_, _| {},
        );
        assert!((r.x[0] - 1.0).abs() < 1e-12 && r.x[1].abs() < 1e-12);
        assert!((r.x[2] - 0.5).abs() < 1e-8, "{:?}", r);
    }

    #[test]
    fn cholesky_solves() {
        let a = vec![vec![4.0, 1.0], vec![1.0, 3.0]];
        let x = cholesky_solve(&a, &[1.0, 2.0]).unwrap();
        assert!((4.0 * x[0] + x[1] - 1.0).abs() < 1e-14);
        assert!((x[0] + 3.0 * x[1] - 2.0).abs() < 1e-14);
        assert!(cholesky_solve(&[vec![-1.0]], &[1.0]).is_none());
    }
}
