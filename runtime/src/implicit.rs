//! Implicit single-step methods for stiff dynamics: their Butcher tableaux, in one place, and the
//! fixed-Newton device step that runs them.
//!
//! The trainer (Newton + implicit-function-theorem gradients, adaptive Radau5) and the runtime's
//! fixed-Newton device steps both read these constants, so a model trained with a method runs on
//! the device with exactly the same coefficients. Values from Hairer & Wanner, *Solving Ordinary
//! Differential Equations II*, sec. IV.5 (Radau IIA) and the trapezoid rule written as the
//! two-stage Lobatto IIIA method (its first stage is explicit: `Y1 = y0`).

use crate::lu::{back_substitute, lu_factor, Scalar};
use crate::solver::Real;

/// Most stages of any implicit tableau here (Radau IIA order 5).
pub const MAX_IMPLICIT_STAGES: usize = 3;

/// A fully implicit Butcher tableau: stage equations `Y_i = y0 + h Σ_j a[i][j] f(Y_j)`, solution
/// `y1 = y0 + h Σ_j b[j] f(Y_j)`. Every method here is stiffly accurate except the trapezoid
/// rule, whose last row of `a` is `b` as well, so `y1` is the last stage in all four.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImplicitTableau<T = f64> {
    /// Name as in the literature.
    pub name: &'static str,
    /// Number of stages.
    pub stages: usize,
    /// Classical order of the solution.
    pub order: u8,
    /// Stage coefficients.
    pub a: [[T; MAX_IMPLICIT_STAGES]; MAX_IMPLICIT_STAGES],
    /// Weights.
    pub b: [T; MAX_IMPLICIT_STAGES],
    /// Nodes: stage `i` is at `t + c[i] h`.
    pub c: [T; MAX_IMPLICIT_STAGES],
    /// Index of the first stage that is implicit (1 for the trapezoid rule, whose first stage is
    /// the step start, 0 otherwise).
    pub first_implicit: usize,
}

const fn row3_f32(r: &[f64; MAX_IMPLICIT_STAGES]) -> [f32; MAX_IMPLICIT_STAGES] {
    [r[0] as f32, r[1] as f32, r[2] as f32]
}

impl ImplicitTableau<f64> {
    /// The same tableau rounded to f32 at compile time (no soft-float f64 on the device).
    pub const fn to_f32(&self) -> ImplicitTableau<f32> {
        ImplicitTableau {
            name: self.name,
            stages: self.stages,
            order: self.order,
            a: [
                row3_f32(&self.a[0]),
                row3_f32(&self.a[1]),
                row3_f32(&self.a[2]),
            ],
            b: row3_f32(&self.b),
            c: row3_f32(&self.c),
            first_implicit: self.first_implicit,
        }
    }
}

impl<T> ImplicitTableau<T> {
    /// Stages solved for by Newton's method (`stages - first_implicit`).
    pub const fn implicit_stages(&self) -> usize {
        self.stages.saturating_sub(self.first_implicit)
    }
}

/// Backward (implicit) Euler, order 1, L-stable.
pub const BACKWARD_EULER: ImplicitTableau = ImplicitTableau {
    name: "backward Euler",
    stages: 1,
    order: 1,
    a: [[1.0, 0.0, 0.0], [0.0; 3], [0.0; 3]],
    b: [1.0, 0.0, 0.0],
    c: [1.0, 0.0, 0.0],
    first_implicit: 0,
};

/// Trapezoid rule (Crank-Nicolson), order 2, A-stable; Lobatto IIIA with two stages.
pub const TRAPEZOID: ImplicitTableau = ImplicitTableau {
    name: "trapezoid",
    stages: 2,
    order: 2,
    a: [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0; 3]],
    b: [0.5, 0.5, 0.0],
    c: [0.0, 1.0, 0.0],
    first_implicit: 1,
};

/// Radau IIA with two stages, order 3, L-stable.
pub const RADAU_IIA3: ImplicitTableau = ImplicitTableau {
    name: "Radau IIA (order 3)",
    stages: 2,
    order: 3,
    a: [[5.0 / 12.0, -1.0 / 12.0, 0.0], [0.75, 0.25, 0.0], [0.0; 3]],
    b: [0.75, 0.25, 0.0],
    c: [1.0 / 3.0, 1.0, 0.0],
    first_implicit: 0,
};

/// Radau IIA with three stages, order 5, L-stable (the method of Hairer & Wanner's RADAU5).
/// Entries are `(88 - 7√6)/360` and so on, evaluated to f64.
pub const RADAU_IIA5: ImplicitTableau = ImplicitTableau {
    name: "Radau IIA (order 5)",
    stages: 3,
    order: 5,
    a: [
        [
            0.1968154772236604,
            -0.06553542585019839,
            0.02377097434822015,
        ],
        [0.3944243147390873, 0.2920734116652285, -0.04154875212599793],
        [0.37640306270046725, 0.5124858261884216, 0.1111111111111111],
    ],
    b: [0.37640306270046725, 0.5124858261884216, 0.1111111111111111],
    c: [0.1550510257216822, 0.6449489742783178, 1.0],
    first_implicit: 0,
};

/// Why a Newton iteration of an implicit step could not continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NewtonFailure {
    /// The Newton matrix `I - h (A ⊗ J)` is singular to working precision: a pivot of the
    /// elimination is at most `ε` times its largest entry (the step size meets an eigenvalue
    /// `1 / (h a)` of the Jacobian, or the Jacobian is degenerate).
    Singular,
    /// The Newton matrix or the Newton update holds NaN or infinity (the vector field or its
    /// Jacobian overflowed).
    NonFinite,
    /// The scratch slice is shorter than [`implicit_scratch_len`].
    ScratchTooSmall,
    /// No convergence within the iteration limit, or the increments grew: the host's adaptive
    /// Newton iterations only (the device runs a fixed count and never reports it, so firmware
    /// builds leave the variant out and pay nothing for it).
    #[cfg(feature = "std")]
    NotConverged,
}

impl core::fmt::Display for NewtonFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NewtonFailure::Singular => "the Newton matrix is singular",
            NewtonFailure::NonFinite => "the Newton matrix or update is not finite",
            NewtonFailure::ScratchTooSmall => "the Newton scratch is too small",
            #[cfg(feature = "std")]
            NewtonFailure::NotConverged => "the Newton iteration did not converge",
        })
    }
}

/// Scratch of [`implicit_step`], in scalars, for `n` states and a tableau with `stages` stages
/// of which `implicit` are implicit: the Newton matrix `N x N` and its right-hand side `N`
/// (`N = implicit * n`), the stage derivatives, the stage increments, one `n x n` Jacobian and
/// one stage state.
pub const fn implicit_scratch_len(n: usize, stages: usize, implicit: usize) -> usize {
    let big = implicit * n;
    big * (big + 1) + stages * n + implicit * n + n * n + n
}

/// Subtracts stage `col`'s block column from the Newton matrix `M = I - h (A ⊗ J)` of the
/// implicit stages (`m n × m n`, row-major, `m = stages - first_implicit`): block `(r, col)`
/// gets `-h a[first + r][first + col] J`, with `jac` the stage's `n × n` Jacobian
/// (`jac[p * n + q] = ∂f_p/∂y_q`). Every block column subtracted from a zeroed matrix, then
/// [`add_identity`], gives `M`: the exact Jacobian of the stage equations.
pub fn subtract_stage_jacobian<T: Real>(
    mat: &mut [T],
    tab: &ImplicitTableau<T>,
    n: usize,
    h: T,
    col: usize,
    jac: &[T],
) {
    let s = tab.stages.min(MAX_IMPLICIT_STAGES);
    let fi = tab.first_implicit.min(s);
    let m = s - fi;
    let big = m * n;
    for r in 0..m {
        let coef = h * tab.a[fi + r][fi + col];
        if coef == T::ZERO {
            continue;
        }
        for p in 0..n {
            let row = &mut mat[(r * n + p) * big + col * n..][..n];
            for (mv, &jv) in row.iter_mut().zip(&jac[p * n..(p + 1) * n]) {
                *mv = *mv - coef * jv;
            }
        }
    }
}

/// Adds the identity to the row-major `size × size` matrix `mat`.
pub fn add_identity<T: Real>(mat: &mut [T], size: usize) {
    for i in 0..size {
        mat[i * size + i] = mat[i * size + i] + T::ONE;
    }
}

/// One step of size `h` of an implicit Runge-Kutta method from `x` into `out`, with exactly
/// `iters` full Newton iterations (deterministic cost: no convergence test, no early exit).
///
/// The unknowns are the increments `Z_i = Y_i - x` of the implicit stages, starting from zero
/// (an explicit predictor would be worse than none for a stiff field). Each iteration evaluates
/// the field and its Jacobian at every implicit stage, assembles `M = I - h (A ⊗ J_j)` (block
/// `(i, j)` is `δ_ij I - h a_ij J_j`, [`subtract_stage_jacobian`]) and solves
/// `M ΔZ = -(Z - h A F)` by LU with partial pivoting ([`crate::lu`]). The explicit first stage
/// of the trapezoid rule (a zero row of `a`) is evaluated once at `x`. Every tableau here is
/// stiffly accurate, so the solution is the last stage, `out = x + Z_last`: no extra evaluation,
/// and no amplification of the Newton residual by `h f` on stiff components.
///
/// `f(c, y, dy, jac)` writes the field at stage node `c` (a fraction of the step) and state `y`
/// into `dy` and, when `jac` is given, its Jacobian `∂f/∂y` row-major (`jac[p * n + q] =
/// ∂f_p/∂y_q`). `scratch` holds [`implicit_scratch_len`] values. A singular or non-finite
/// Newton matrix is an error, never a panic.
pub fn implicit_step<T: Real + Scalar<Mag = T>, E: From<NewtonFailure>>(
    tab: &ImplicitTableau<T>,
    h: T,
    iters: u8,
    x: &[T],
    scratch: &mut [T],
    out: &mut [T],
    mut f: impl FnMut(T, &[T], &mut [T], Option<&mut [T]>) -> Result<(), E>,
) -> Result<(), E> {
    let n = x.len();
    let s = tab.stages.min(MAX_IMPLICIT_STAGES);
    let fi = tab.first_implicit.min(s);
    let m = s - fi;
    let big = m * n;
    if scratch.len() < implicit_scratch_len(n, s, m) || out.len() != n || m == 0 {
        return Err(NewtonFailure::ScratchTooSmall.into());
    }
    let (mat, rest) = scratch.split_at_mut(big * big);
    let (rhs, rest) = rest.split_at_mut(big);
    let (fs, rest) = rest.split_at_mut(s * n);
    let (z, rest) = rest.split_at_mut(m * n);
    let (jac, rest) = rest.split_at_mut(n * n);
    let y = &mut rest[..n];
    z.fill(T::ZERO);
    for (j, fj) in fs.chunks_exact_mut(n).take(fi).enumerate() {
        f(tab.c[j], x, fj, None)?;
    }
    for _ in 0..iters {
        mat.fill(T::ZERO);
        for (ii, zi) in z.chunks_exact(n).enumerate() {
            let stage = fi + ii;
            for ((yv, &xv), &zv) in y.iter_mut().zip(x).zip(zi) {
                *yv = xv + zv;
            }
            let Some(fj) = fs.get_mut(stage * n..(stage + 1) * n) else {
                return Err(NewtonFailure::ScratchTooSmall.into());
            };
            f(tab.c[stage], y, fj, Some(&mut *jac))?;
            subtract_stage_jacobian(mat, tab, n, h, ii, jac);
        }
        add_identity(mat, big);
        for r in 0..m {
            for p in 0..n {
                let row = r * n + p;
                let mut g = z[row];
                for (j, fj) in fs.chunks_exact(n).take(s).enumerate() {
                    let a = tab.a[fi + r][j];
                    if a != T::ZERO {
                        g = g - h * a * fj[p];
                    }
                }
                rhs[row] = T::ZERO - g;
            }
        }
        lu_factor(mat, big, None, Some(&mut *rhs), T::EPSILON)?;
        back_substitute(mat, big, rhs)?;
        for (zv, &d) in z.iter_mut().zip(rhs.iter()) {
            *zv = *zv + d;
        }
    }
    for ((o, &xv), &zv) in out.iter_mut().zip(x).zip(&z[(m - 1) * n..]) {
        *o = xv + zv;
    }
    Ok(())
}

/// Solves `A u = r` for the `nn x (nn + 1)` augmented matrix `[A | r]` (row-major) with
/// [`lu_factor`] and [`back_substitute`]; `u` replaces `r`. A host convenience (it copies).
#[cfg(feature = "std")]
pub fn solve_augmented<T: Real + Scalar<Mag = T>>(
    mat: &mut [T],
    nn: usize,
) -> Result<(), NewtonFailure> {
    let cols = nn + 1;
    if mat.len() < nn * cols {
        return Err(NewtonFailure::ScratchTooSmall);
    }
    let mut a: std::vec::Vec<T> = (0..nn * nn)
        .map(|i| mat[(i / nn) * cols + i % nn])
        .collect();
    let mut r: std::vec::Vec<T> = (0..nn).map(|i| mat[i * cols + nn]).collect();
    lu_factor(&mut a, nn, None, Some(&mut r), T::EPSILON)?;
    let solved = back_substitute(&a, nn, &mut r);
    for (i, v) in r.iter().enumerate() {
        mat[i * cols + nn] = *v;
    }
    solved
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simplifying conditions B(p) and C(q) that define these collocation methods:
    /// Σ b_j c_j^(k-1) = 1/k and Σ_j a_ij c_j^(k-1) = c_i^k / k.
    #[test]
    fn tableaux_satisfy_their_order_conditions() {
        for (t, q) in [
            (BACKWARD_EULER, 1),
            (TRAPEZOID, 2),
            (RADAU_IIA3, 2),
            (RADAU_IIA5, 3),
        ] {
            let s = t.stages;
            for k in 1..=t.order as i32 {
                let lhs: f64 = (0..s).map(|j| t.b[j] * t.c[j].powi(k - 1)).sum();
                assert!((lhs - 1.0 / k as f64).abs() < 1e-14, "{} B({k})", t.name);
            }
            for i in 0..s {
                for k in 1..=q {
                    let lhs: f64 = (0..s).map(|j| t.a[i][j] * t.c[j].powi(k - 1)).sum();
                    let rhs = t.c[i].powi(k) / k as f64;
                    assert!((lhs - rhs).abs() < 1e-14, "{} C({k}) row {i}", t.name);
                }
            }
            // Stiffly accurate: the solution is the last stage.
            assert_eq!(t.a[s - 1], t.b, "{}", t.name);
        }
    }
}
