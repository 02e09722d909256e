//! Adaptive Radau IIA of order 5 for stiff systems, after Hairer & Wanner's RADAU5 (*Solving
//! Ordinary Differential Equations II*, sec. IV.8; the Fortran code and SciPy's port organize the
//! step the same way).
//!
//! - Simplified Newton on the transformed stage system: `A^{-1}` has one real eigenvalue `γ` and a
//!   complex pair `α ± iβ`, so with `W = T^{-1} Z` the 3n×3n iteration matrix splits into one real
//!   n×n system `(γ/h I - J)` and one complex n×n system `((α - iβ)/h I - J)`. That is about 5
//!   n³/3 real flops per factorization instead of 9 n³ for the plain 3n×3n LU, and the real
//!   factor is exactly the matrix the error estimate needs, so it comes for free. The transform
//!   `T` is the published one; a test checks it diagonalizes the runtime's `RADAU_IIA5` tableau.
//! - Error estimate from the embedded order-3 formula, filtered by `(I - h γ0 J)^{-1}` so that it
//!   stays bounded for stiff components (and filtered once more after a rejection).
//! - Gustafsson's predictive step-size controller, safety factor shrinking with the Newton
//!   iterations taken.
//! - The Jacobian is reused across steps while Newton converges fast (contraction rate ≤ 1e-3 or
//!   at most two iterations); the factorizations are reused while the step size stays put.
//! - Dense output: the collocation polynomial of the last step, which also predicts the next
//!   step's stage values for Newton.

use odeflash_runtime::implicit::RADAU_IIA5;

use super::linalg::{Lu, LuC, C64};
use super::problems::OdeSystem;
use super::{check_request, rms_norm, Options, Solution, Stats, StiffError};

/// Most Newton iterations per step attempt.
const NEWTON_MAX_ITER: usize = 6;
/// Smallest and largest step-size change per step.
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;

/// `T`: columns are (generalized) eigenvectors of `A^{-1}`, the real one first, then the real
/// and imaginary parts of the complex one (Hairer & Wanner's RADAU5 constants).
const T: [[f64; 3]; 3] = [
    [
        0.094_438_762_488_975_24,
        -0.141_255_295_020_954_2,
        0.030_029_194_105_147_42,
    ],
    [
        0.250_213_122_965_333_3,
        0.204_129_352_293_799_94,
        -0.382_942_112_757_261_9,
    ],
    [1.0, 1.0, 0.0],
];

/// `T^{-1}`.
const TI: [[f64; 3]; 3] = [
    [
        4.178_718_591_551_904,
        0.327_682_820_761_062_4,
        0.523_376_445_499_449_5,
    ],
    [
        -4.178_718_591_551_904,
        -0.327_682_820_761_062_4,
        0.476_623_554_500_550_4,
    ],
    [
        0.502_872_634_945_786_8,
        -2.571_926_949_855_605,
        0.596_039_204_828_224_9,
    ],
];

/// The real eigenvalue of `A^{-1}`, `3 + 3^(2/3) - 3^(1/3)`.
fn mu_real() -> f64 {
    let c = 3f64.cbrt();
    3.0 + c * c - c
}

/// The complex eigenvalue of `A^{-1}` in the form the transformed system uses, `α - iβ`.
fn mu_complex() -> C64 {
    let c = 3f64.cbrt();
    let s = 3f64.powf(1.0 / 6.0);
    C64::new(3.0 + 0.5 * (c - c * c), -0.5 * (s.powi(5) + s.powi(7)))
}

/// Weights of the embedded error estimate, `err = (γ/h I - J)^{-1} (f(y0) + Σ E_i Z_i / h)`:
/// `E = (-13 - 7√6, -13 + 7√6, -1) / 3`. A test checks them against the tableau's nodes.
fn error_weights() -> [f64; 3] {
    let s6 = 6f64.sqrt();
    [
        (-13.0 - 7.0 * s6) / 3.0,
        (-13.0 + 7.0 * s6) / 3.0,
        -1.0 / 3.0,
    ]
}

/// `P` such that the collocation polynomial of a step is `u(x) = y0 + Σ_j (Z^T P)_j x^(j+1)`
/// (`x` the fraction of the step): the inverse transpose of the Vandermonde matrix
/// `V_ij = c_i^(j+1)` of the tableau's nodes, since `u(c_i) = y0 + Z_i`.
fn dense_matrix() -> [[f64; 3]; 3] {
    let c = RADAU_IIA5.c;
    let v: [[f64; 3]; 3] =
        core::array::from_fn(|i| core::array::from_fn(|j| c[i].powi(j as i32 + 1)));
    let inv = inverse3(&v);
    core::array::from_fn(|i| core::array::from_fn(|j| inv[j][i]))
}

/// Inverse of a 3×3 matrix by cofactors (the Vandermonde matrix above is well conditioned).
fn inverse3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let det = m[0][0] * adj[0][0] + m[0][1] * adj[1][0] + m[0][2] * adj[2][0];
    core::array::from_fn(|i| core::array::from_fn(|j| adj[i][j] / det))
}

/// Integrates `y' = f(t, y)` from `y(t0) = y0` with Radau IIA order 5 and returns the solution at
/// every time in `t_out` (non-decreasing, none before `t0`; a time equal to `t0` gives `y0`).
/// The integration stops at the last output time, exactly: the last row is the solution there,
/// not an interpolation. Intermediate outputs come from the collocation polynomial, which is
/// accurate to order 3 in the step (the same order as the error estimate), so tolerances set the
/// accuracy at the outputs too.
///
/// This is the call for reference data, e.g. the 20 HIRES trajectories of paper 002:
///
/// ```
/// use odeflash_reference::stiff::{hires_initial_conditions, problem, solve_adaptive, Options};
///
/// let hires = problem("hires").unwrap();
/// let t_out: Vec<f64> = (0..=100).map(|k| 3.218122 * k as f64).collect();
/// let opts = Options { rtol: 1e-8, atol: 1e-10, ..Options::default() };
/// for y0 in hires_initial_conditions() {
///     let sol = solve_adaptive(hires.as_ref(), &y0, 0.0, &t_out, &opts).unwrap();
///     assert_eq!(sol.y.len(), 101);
/// }
/// ```
pub fn solve_adaptive<S: OdeSystem + ?Sized>(
    system: &S,
    y0: &[f64],
    t0: f64,
    t_out: &[f64],
    opts: &Options,
) -> Result<Solution, StiffError> {
    check_request(&Erased(system), y0, t0, t_out)?;
    let positive = |x: f64| x > 0.0 && x.is_finite();
    if !positive(opts.rtol) || !positive(opts.atol) {
        return Err(StiffError::InvalidInput(format!(
            "tolerances must be positive and finite (rtol {}, atol {})",
            opts.rtol, opts.atol
        )));
    }
    if let Some(h) = opts
        .h0
        .into_iter()
        .chain(opts.h_max)
        .find(|h| !positive(*h))
    {
        return Err(StiffError::InvalidInput(format!(
            "step sizes must be positive (got {h})"
        )));
    }
    Radau5::new(system, y0, t0, opts).run(t_out)
}

/// Lets the `?Sized` generic call `check_request`, which takes a trait object.
struct Erased<'a, S: ?Sized>(&'a S);

impl<S: OdeSystem + ?Sized> OdeSystem for Erased<'_, S> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        self.0.rhs(t, y, dy)
    }
}

/// The solver's state between steps.
struct Radau5<'a, S: ?Sized> {
    sys: &'a S,
    opts: &'a Options,
    n: usize,
    t: f64,
    y: Vec<f64>,
    /// `f(t, y)`.
    f: Vec<f64>,
    /// Jacobian, row-major, and whether it was evaluated at the current `(t, y)`.
    jac: Vec<f64>,
    jac_current: bool,
    /// Factorizations of `γ/h I - J` and `(α - iβ)/h I - J`, and the `h` they were made for.
    lu: Option<(Lu, LuC, f64)>,
    h_abs: f64,
    h_abs_old: Option<f64>,
    err_old: Option<f64>,
    /// Dense output of the last accepted step.
    dense: Option<Dense>,
    stats: Stats,
    mu_r: f64,
    mu_c: C64,
    e: [f64; 3],
    p: [[f64; 3]; 3],
    newton_tol: f64,
}

impl<'a, S: OdeSystem + ?Sized> Radau5<'a, S> {
    fn new(sys: &'a S, y0: &[f64], t0: f64, opts: &'a Options) -> Self {
        let n = y0.len();
        Radau5 {
            sys,
            opts,
            n,
            t: t0,
            y: y0.to_vec(),
            f: vec![0.0; n],
            jac: vec![0.0; n * n],
            jac_current: false,
            lu: None,
            h_abs: 0.0,
            h_abs_old: None,
            err_old: None,
            dense: None,
            stats: Stats::default(),
            mu_r: mu_real(),
            mu_c: mu_complex(),
            e: error_weights(),
            p: dense_matrix(),
            newton_tol: (10.0 * f64::EPSILON / opts.rtol).max(opts.rtol.sqrt().min(0.03)),
        }
    }

    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
        self.stats.rhs_evals += 1;
        self.sys.rhs(t, y, dy);
    }

    fn update_jacobian(&mut self) {
        self.stats.jacobians += 1;
        self.sys.jacobian(self.t, &self.y, &mut self.jac);
        self.jac_current = true;
        self.lu = None;
    }

    fn scale(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter()
            .zip(b)
            .map(|(x, y)| self.opts.atol + self.opts.rtol * x.abs().max(y.abs()))
            .collect()
    }

    /// Hairer, Nørsett & Wanner I, sec. II.4: a step whose explicit-Euler error estimate is about
    /// 1% of the tolerance, for an error of order 3.
    fn initial_step(&mut self, span: f64) -> f64 {
        if let Some(h) = self.opts.h0 {
            return h.min(span);
        }
        let scale = self.scale(&self.y, &self.y);
        let d0 = rms_norm(&self.y, &scale);
        let d1 = rms_norm(&self.f, &scale);
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(span);
        let y1: Vec<f64> = self
            .y
            .iter()
            .zip(&self.f)
            .map(|(y, f)| y + h0 * f)
            .collect();
        let mut f1 = vec![0.0; self.n];
        self.rhs(self.t + h0, &y1, &mut f1);
        let diff: Vec<f64> = f1.iter().zip(&self.f).map(|(a, b)| a - b).collect();
        let d2 = rms_norm(&diff, &scale) / h0;
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(0.25)
        };
        (100.0 * h0).min(h1).min(span)
    }

    fn factor(&mut self, h: f64) -> Result<(), StiffError> {
        let n = self.n;
        let mr = self.mu_r / h;
        let mc = C64::new(self.mu_c.re / h, self.mu_c.im / h);
        let mut a = vec![0.0; n * n];
        let mut ac = vec![C64::default(); n * n];
        for i in 0..n {
            for j in 0..n {
                let d = if i == j { 1.0 } else { 0.0 };
                a[i * n + j] = mr * d - self.jac[i * n + j];
                ac[i * n + j] = C64::new(mc.re * d - self.jac[i * n + j], mc.im * d);
            }
        }
        self.stats.lu_decompositions += 1;
        let singular = || StiffError::SingularMatrix { t: self.t, h };
        let lu = Lu::factor(n, a).map_err(|_| singular())?;
        let luc = LuC::factor(n, ac).map_err(|_| singular())?;
        self.lu = Some((lu, luc, h));
        Ok(())
    }

    /// Simplified Newton on the transformed stage equations. Returns the stage increments `Z`
    /// (3 rows of n), the iterations taken and the last contraction rate, or `None` if the
    /// iteration diverged or was too slow.
    fn newton(
        &mut self,
        h: f64,
        z0: Vec<[f64; 3]>,
        scale: &[f64],
    ) -> Option<(Vec<[f64; 3]>, usize, f64)> {
        let n = self.n;
        let c = RADAU_IIA5.c;
        let mr = self.mu_r / h;
        let mc = C64::new(self.mu_c.re / h, self.mu_c.im / h);
        // z[k][i]: stage i, component k (stages side by side so one component's three stages are
        // transformed together).
        let mut z = z0;
        let mut w: Vec<[f64; 3]> = z.iter().map(|zk| mat_vec(&TI, zk)).collect();
        let mut f = vec![[0.0; 3]; n];
        let mut ys = vec![0.0; n];
        let mut fi = vec![0.0; n];
        let mut dw_real = vec![0.0; n];
        let mut dw_cplx = vec![C64::default(); n];
        let mut norm_old: Option<f64> = None;
        let mut rate = 0.0;
        for k in 0..NEWTON_MAX_ITER {
            self.stats.newton_iterations += 1;
            for i in 0..3 {
                for m in 0..n {
                    ys[m] = self.y[m] + z[m][i];
                }
                let ti = self.t + c[i] * h;
                self.rhs(ti, &ys, &mut fi);
                for m in 0..n {
                    f[m][i] = fi[m];
                }
            }
            if f.iter().flatten().any(|v| !v.is_finite()) {
                return None;
            }
            for m in 0..n {
                let tf = mat_vec(&TI, &f[m]);
                dw_real[m] = tf[0] - mr * w[m][0];
                // (tf1 + i tf2) - (mc) (w1 + i w2)
                let re = tf[1] - (mc.re * w[m][1] - mc.im * w[m][2]);
                let im = tf[2] - (mc.re * w[m][2] + mc.im * w[m][1]);
                dw_cplx[m] = C64::new(re, im);
            }
            let (lu, luc, _) = self.lu.as_ref()?;
            lu.solve(&mut dw_real);
            luc.solve(&mut dw_cplx);
            let mut sum = 0.0;
            for m in 0..n {
                let s = scale[m];
                sum += (dw_real[m] / s).powi(2)
                    + (dw_cplx[m].re / s).powi(2)
                    + (dw_cplx[m].im / s).powi(2);
            }
            let norm = (sum / (3 * n).max(1) as f64).sqrt();
            if let Some(old) = norm_old {
                rate = norm / old;
                let remaining = (NEWTON_MAX_ITER - k) as i32;
                if rate >= 1.0 || rate.powi(remaining) / (1.0 - rate) * norm > self.newton_tol {
                    return None;
                }
            }
            for m in 0..n {
                w[m][0] += dw_real[m];
                w[m][1] += dw_cplx[m].re;
                w[m][2] += dw_cplx[m].im;
                z[m] = mat_vec(&T, &w[m]);
            }
            if norm == 0.0 || (norm_old.is_some() && rate / (1.0 - rate) * norm < self.newton_tol) {
                return Some((z, k + 1, rate));
            }
            norm_old = Some(norm);
        }
        None
    }

    /// Stage increments predicted by the last step's collocation polynomial (zero at the start).
    fn predict(&self, h: f64) -> Vec<[f64; 3]> {
        match &self.dense {
            None => vec![[0.0; 3]; self.n],
            Some(d) => {
                let c = RADAU_IIA5.c;
                let mut out = vec![[0.0; 3]; self.n];
                for (i, &ci) in c.iter().enumerate() {
                    let yi = d.eval(self.t + ci * h);
                    for m in 0..self.n {
                        out[m][i] = yi[m] - self.y[m];
                    }
                }
                out
            }
        }
    }

    /// One accepted step towards `t_bound`.
    fn step(&mut self, t_bound: f64) -> Result<(), StiffError> {
        let n = self.n;
        let min_step = 10.0 * (self.t.abs() * f64::EPSILON).max(f64::MIN_POSITIVE);
        let mut h_abs = self.h_abs;
        let mut h_abs_old = self.h_abs_old;
        let mut err_old = self.err_old;
        if let Some(hm) = self.opts.h_max {
            if h_abs > hm {
                h_abs = hm;
                h_abs_old = None;
                err_old = None;
            }
        }
        if h_abs < min_step {
            h_abs = min_step;
            h_abs_old = None;
            err_old = None;
        }
        let mut rejected = false;
        loop {
            if self.stats.steps + self.stats.rejected >= self.opts.max_steps {
                return Err(StiffError::TooManySteps {
                    max_steps: self.opts.max_steps,
                    t: self.t,
                });
            }
            if h_abs < min_step {
                return Err(StiffError::StepSizeUnderflow {
                    t: self.t,
                    h: h_abs,
                });
            }
            let t_new = if self.t + h_abs >= t_bound {
                t_bound
            } else {
                self.t + h_abs
            };
            let h = t_new - self.t;
            h_abs = h;
            let z0 = self.predict(h);
            let scale = self.scale(&self.y, &self.y);

            // Newton, with a fresh Jacobian once if the old one does not converge.
            let mut result = None;
            loop {
                if !matches!(&self.lu, Some((_, _, hl)) if *hl == h) {
                    match self.factor(h) {
                        Ok(()) => {}
                        Err(_) => break,
                    }
                }
                result = self.newton(h, z0.clone(), &scale);
                if result.is_some() || self.jac_current {
                    break;
                }
                self.update_jacobian();
            }
            let Some((z, n_iter, rate)) = result else {
                self.stats.rejected += 1;
                rejected = true;
                h_abs *= 0.5;
                h_abs_old = None;
                err_old = None;
                continue;
            };

            let y_new: Vec<f64> = (0..n).map(|m| self.y[m] + z[m][2]).collect();
            // Error estimate, filtered by (γ/h I - J)^{-1}.
            let ze: Vec<f64> = (0..n)
                .map(|m| (self.e[0] * z[m][0] + self.e[1] * z[m][1] + self.e[2] * z[m][2]) / h)
                .collect();
            let mut err: Vec<f64> = (0..n).map(|m| self.f[m] + ze[m]).collect();
            let lu = &self.lu.as_ref().expect("factored above").0;
            lu.solve(&mut err);
            let scale = self.scale(&self.y, &y_new);
            let mut err_norm = rms_norm(&err, &scale);
            if err_norm > 1.0 && (rejected || self.stats.steps == 0) {
                // A stiff component can make the first estimate too pessimistic: filter again
                // with f at the corrected start (Hairer & Wanner II, sec. IV.8).
                let yc: Vec<f64> = (0..n).map(|m| self.y[m] + err[m]).collect();
                let mut fc = vec![0.0; n];
                self.rhs(self.t, &yc, &mut fc);
                let mut err2: Vec<f64> = (0..n).map(|m| fc[m] + ze[m]).collect();
                self.lu.as_ref().expect("factored above").0.solve(&mut err2);
                err_norm = rms_norm(&err2, &scale);
            }
            if !err_norm.is_finite() || y_new.iter().any(|v| !v.is_finite()) {
                err_norm = f64::INFINITY;
            }
            let safety =
                0.9 * (2 * NEWTON_MAX_ITER + 1) as f64 / (2 * NEWTON_MAX_ITER + n_iter) as f64;
            if err_norm > 1.0 {
                let factor = if err_norm.is_finite() {
                    predict_factor(h_abs, h_abs_old, err_norm, err_old)
                } else {
                    MIN_FACTOR
                };
                h_abs *= MIN_FACTOR.max(safety * factor);
                self.stats.rejected += 1;
                rejected = true;
                continue;
            }

            // Accepted.
            let recompute_jac = n_iter > 2 && rate > 1e-3;
            let mut factor =
                MAX_FACTOR.min(safety * predict_factor(h_abs, h_abs_old, err_norm, err_old));
            if !recompute_jac && factor < 1.2 {
                factor = 1.0;
            }
            let q: Vec<[f64; 3]> = (0..n)
                .map(|m| core::array::from_fn(|j| (0..3).map(|i| z[m][i] * self.p[i][j]).sum()))
                .collect();
            self.dense = Some(Dense {
                t_old: self.t,
                h,
                y_old: self.y.clone(),
                q,
            });
            self.t = t_new;
            self.y = y_new;
            let mut f_new = vec![0.0; n];
            let (t, y) = (self.t, self.y.clone());
            self.rhs(t, &y, &mut f_new);
            self.f = f_new;
            if self.f.iter().any(|v| !v.is_finite()) {
                return Err(StiffError::NonFinite { t: self.t });
            }
            self.stats.steps += 1;
            self.jac_current = false;
            if recompute_jac {
                self.update_jacobian();
            }
            // Gustafsson compares consecutive *accepted* step sizes (HACC in RADAU5).
            self.h_abs_old = Some(h_abs);
            self.err_old = Some(err_norm);
            self.h_abs = h_abs * factor;
            return Ok(());
        }
    }

    fn run(mut self, t_out: &[f64]) -> Result<Solution, StiffError> {
        let t_end = *t_out.last().expect("checked non-empty");
        let mut ys = Vec::with_capacity(t_out.len());
        let mut next = 0;
        while next < t_out.len() && t_out[next] == self.t {
            ys.push(self.y.clone());
            next += 1;
        }
        if next < t_out.len() {
            let (t, y) = (self.t, self.y.clone());
            let mut f = vec![0.0; self.n];
            self.rhs(t, &y, &mut f);
            if f.iter().any(|v| !v.is_finite()) {
                return Err(StiffError::NonFinite { t });
            }
            self.f = f;
            self.h_abs = self.initial_step(t_end - self.t);
            self.update_jacobian();
        }
        while next < t_out.len() {
            self.step(t_end)?;
            while next < t_out.len() && t_out[next] <= self.t {
                match &self.dense {
                    Some(d) if t_out[next] < self.t => ys.push(d.eval(t_out[next])),
                    _ => ys.push(self.y.clone()),
                }
                next += 1;
            }
        }
        Ok(Solution {
            t: t_out.to_vec(),
            y: ys,
            stats: self.stats,
        })
    }
}

fn mat_vec(m: &[[f64; 3]; 3], v: &[f64; 3]) -> [f64; 3] {
    core::array::from_fn(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

/// The collocation polynomial of an accepted step: `y(t_old + x h) = y_old + Σ_j q_j x^(j+1)`.
struct Dense {
    t_old: f64,
    h: f64,
    y_old: Vec<f64>,
    /// Per component, the coefficients of `x`, `x^2`, `x^3`.
    q: Vec<[f64; 3]>,
}

impl Dense {
    fn eval(&self, t: f64) -> Vec<f64> {
        let x = (t - self.t_old) / self.h;
        self.y_old
            .iter()
            .zip(&self.q)
            .map(|(y, q)| y + x * (q[0] + x * (q[1] + x * q[2])))
            .collect()
    }
}

/// Gustafsson's predictive controller for an error of order 3 (exponent 1/4): the usual factor
/// `err^(-1/4)`, damped by how the error changed with the last step-size change.
fn predict_factor(h: f64, h_old: Option<f64>, err: f64, err_old: Option<f64>) -> f64 {
    if err == 0.0 {
        return MAX_FACTOR;
    }
    let multiplier = match (h_old, err_old) {
        (Some(ho), Some(eo)) => h / ho * (eo / err).powf(0.25),
        _ => 1.0,
    };
    multiplier.min(1.0) * err.powf(-0.25)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_diagonalizes_the_runtime_tableau() {
        let inv_a = inverse3(&core::array::from_fn(|i| {
            core::array::from_fn(|j| RADAU_IIA5.a[i][j])
        }));
        // TI · A^{-1} · T must be [[γ, 0, 0], [0, α, β], [0, -β, α]] in the sign convention the
        // complex system uses (α - iβ acting on W1 + i W2).
        let m: [[f64; 3]; 3] = core::array::from_fn(|i| {
            core::array::from_fn(|j| {
                (0..3)
                    .map(|k| TI[i][k] * (0..3).map(|l| inv_a[k][l] * T[l][j]).sum::<f64>())
                    .sum()
            })
        });
        let (g, mc) = (mu_real(), mu_complex());
        let expect = [[g, 0.0, 0.0], [0.0, mc.re, -mc.im], [0.0, mc.im, mc.re]];
        for i in 0..3 {
            for j in 0..3 {
                assert!(
                    (m[i][j] - expect[i][j]).abs() < 1e-12,
                    "{m:?} vs {expect:?}"
                );
            }
        }
    }

    #[test]
    fn error_weights_give_an_order_three_embedded_formula() {
        // For y' = t^(k-1) from t = 0 the stage increments are Z_i = (c_i h)^k / k; the estimate
        // f(0) + Σ E_i Z_i / h vanishes for k = 1, 2, 3 and not for k = 4.
        let e = error_weights();
        let c = RADAU_IIA5.c;
        let h = 0.5f64;
        for k in 1..=4 {
            let f0 = if k == 1 { 1.0 } else { 0.0 };
            let est: f64 = f0
                + (0..3)
                    .map(|i| e[i] * (c[i] * h).powi(k) / k as f64 / h)
                    .sum::<f64>();
            if k <= 3 {
                assert!(est.abs() < 1e-13, "k = {k}: {est}");
            } else {
                assert!(est.abs() > 1e-3, "k = 4 must not vanish: {est}");
            }
        }
    }

    #[test]
    fn dense_output_interpolates_the_stages() {
        let p = dense_matrix();
        let c = RADAU_IIA5.c;
        let z = [0.3, -1.2, 2.5];
        for i in 0..3 {
            let u: f64 = (0..3)
                .map(|j| (0..3).map(|l| z[l] * p[l][j]).sum::<f64>() * c[i].powi(j as i32 + 1))
                .sum();
            assert!((u - z[i]).abs() < 1e-13);
        }
    }
}
