//! Dense LU with partial pivoting, in place and heap-free: the one elimination behind the
//! device's implicit steps and the host's reference solvers (real and, through [`Scalar`],
//! complex Newton matrices).
//!
//! Row-major `n × n` storage: after [`lu_factor`], `U` is on and above the diagonal and the
//! multipliers of `L` (unit diagonal implied) below it; `piv[k]` is the row exchanged with row
//! `k` at step `k` (rows are exchanged whole, so `P A = L U`). A right-hand side can be carried
//! through the elimination as it runs (one solve, no pivots stored), or solved later with the
//! stored pivots ([`lu_solve`]); both do the same operations in the same order, so they agree
//! to the bit.

use crate::implicit::NewtonFailure;
use crate::solver::Real;

/// An entry of a matrix to eliminate: a field with a magnitude to choose pivots by.
pub trait Scalar:
    Copy
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self>
{
    /// The type of magnitudes.
    type Mag: Real;
    /// The pivoting magnitude: `|x|` for reals (`|re| + |im|` is enough for complex numbers).
    fn magnitude(self) -> Self::Mag;
    /// Neither part infinite nor NaN.
    fn finite(self) -> bool;
    /// Exactly zero (a multiplier that can be skipped).
    fn is_zero(self) -> bool;
}

macro_rules! real_scalar {
    ($t:ty) => {
        impl Scalar for $t {
            type Mag = $t;
            fn magnitude(self) -> $t {
                Real::abs(self)
            }
            fn finite(self) -> bool {
                Real::is_finite(self)
            }
            fn is_zero(self) -> bool {
                self == 0.0
            }
        }
    };
}
real_scalar!(f32);
real_scalar!(f64);

/// Factors the row-major `n × n` matrix `a` in place (see the module doc), recording the pivots
/// in `piv` when given and applying the row operations to `rhs` when given (`rhs` then holds
/// `L⁻¹ P rhs`, ready for [`back_substitute`]).
///
/// Any non-finite entry of `a` or `rhs` is [`NewtonFailure::NonFinite`]; a pivot at most `rel`
/// times the largest entry of `a` is [`NewtonFailure::Singular`] (`rel = 0` refuses only exact
/// zeros); slices shorter than `n × n` / `n` are [`NewtonFailure::ScratchTooSmall`].
#[inline(always)]
pub fn lu_factor<T: Scalar>(
    a: &mut [T],
    n: usize,
    mut piv: Option<&mut [usize]>,
    mut rhs: Option<&mut [T]>,
    rel: T::Mag,
) -> Result<(), NewtonFailure> {
    let short = |s: Option<usize>| s.is_some_and(|len| len < n);
    if a.len() < n * n
        || short(piv.as_deref().map(<[usize]>::len))
        || short(rhs.as_deref().map(<[T]>::len))
    {
        return Err(NewtonFailure::ScratchTooSmall);
    }
    let mut scale = T::Mag::ZERO;
    for &v in &a[..n * n] {
        if !v.finite() {
            return Err(NewtonFailure::NonFinite);
        }
        let m = v.magnitude();
        if m > scale {
            scale = m;
        }
    }
    if rhs
        .as_deref()
        .is_some_and(|b| b[..n].iter().any(|v| !v.finite()))
    {
        return Err(NewtonFailure::NonFinite);
    }
    let tiny = scale * rel;
    for k in 0..n {
        let mut p = k;
        let mut best = a[k * n + k].magnitude();
        for r in k + 1..n {
            let m = a[r * n + k].magnitude();
            if m > best {
                best = m;
                p = r;
            }
        }
        // Entries are finite (checked above), so this also covers an all-zero column.
        if best <= tiny {
            return Err(NewtonFailure::Singular);
        }
        if p != k {
            for c in 0..n {
                a.swap(k * n + c, p * n + c);
            }
            if let Some(b) = rhs.as_deref_mut() {
                b.swap(k, p);
            }
        }
        if let Some(piv) = piv.as_deref_mut() {
            piv[k] = p;
        }
        let d = a[k * n + k];
        for r in k + 1..n {
            let l = a[r * n + k] / d;
            a[r * n + k] = l;
            if l.is_zero() {
                continue;
            }
            for c in k + 1..n {
                a[r * n + c] = a[r * n + c] - l * a[k * n + c];
            }
            if let Some(b) = rhs.as_deref_mut() {
                b[r] = b[r] - l * b[k];
            }
        }
    }
    Ok(())
}

/// Solves `U x = b` in place with the factors of [`lu_factor`]. A non-finite component is
/// [`NewtonFailure::NonFinite`] (it is left in `b`, where the caller may look).
#[inline(always)]
pub fn back_substitute<T: Scalar>(lu: &[T], n: usize, b: &mut [T]) -> Result<(), NewtonFailure> {
    if lu.len() < n * n || b.len() < n {
        return Err(NewtonFailure::ScratchTooSmall);
    }
    for k in (0..n).rev() {
        let mut v = b[k];
        for c in k + 1..n {
            v = v - lu[k * n + c] * b[c];
        }
        v = v / lu[k * n + k];
        b[k] = v;
        if !v.finite() {
            return Err(NewtonFailure::NonFinite);
        }
    }
    Ok(())
}

/// Solves `A x = b` in place with the factors and pivots of [`lu_factor`].
pub fn lu_solve<T: Scalar>(
    lu: &[T],
    n: usize,
    piv: &[usize],
    b: &mut [T],
) -> Result<(), NewtonFailure> {
    if piv.len() < n || b.len() < n {
        return Err(NewtonFailure::ScratchTooSmall);
    }
    for (k, &p) in piv[..n].iter().enumerate() {
        b.swap(k, p);
    }
    // The row operations of the elimination, replayed on `b` in the order `lu_factor` applies
    // them to a carried right-hand side.
    for k in 0..n {
        let bk = b[k];
        for r in k + 1..n {
            let l = lu[r * n + k];
            if !l.is_zero() {
                b[r] = b[r] - l * bk;
            }
        }
    }
    back_substitute(lu, n, b)
}

/// The permutation of `P A = L U` from the pivots: row `i` of the factors is row `perm[i]` of
/// `A`.
pub fn permutation(piv: &[usize], perm: &mut [usize]) {
    for (i, p) in perm.iter_mut().enumerate() {
        *p = i;
    }
    for (k, &p) in piv.iter().enumerate() {
        perm.swap(k, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6×6 system that needs row exchanges: carrying the right-hand side through the
    /// elimination and solving later with the stored pivots agree to the bit, and both solve it.
    #[test]
    fn carried_and_stored_pivot_solves_agree_to_the_bit() {
        let n = 6;
        let mut seed = 0x1234_5678_u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let mut a: [f64; 36] = core::array::from_fn(|_| next());
        a[0] = 0.0; // the first pivot must come from another row
        let x: [f64; 6] = core::array::from_fn(|i| i as f64 - 2.5);
        let b: [f64; 6] = core::array::from_fn(|r| (0..n).map(|c| a[r * n + c] * x[c]).sum());

        let (mut carried, mut rhs) = (a, b);
        lu_factor(&mut carried, n, None, Some(&mut rhs), 0.0).unwrap();
        back_substitute(&carried, n, &mut rhs).unwrap();

        let (mut lu, mut piv, mut sol) = (a, [0usize; 6], b);
        lu_factor(&mut lu, n, Some(&mut piv), None, 0.0).unwrap();
        assert_eq!(
            lu, carried,
            "the factors do not depend on the carried column"
        );
        lu_solve(&lu, n, &piv, &mut sol).unwrap();
        assert_eq!(sol, rhs);
        for (s, x) in sol.iter().zip(x) {
            assert!((s - x).abs() < 1e-12, "{sol:?}");
        }
    }

    #[test]
    fn singular_non_finite_and_short_inputs_are_errors() {
        let mut a = [1.0f32, 2.0, 2.0, 4.0];
        assert_eq!(
            lu_factor(&mut a, 2, None, None, 0.0),
            Err(NewtonFailure::Singular)
        );
        let mut a = [1.0f32, f32::NAN, 0.0, 1.0];
        assert_eq!(
            lu_factor(&mut a, 2, None, None, 0.0),
            Err(NewtonFailure::NonFinite)
        );
        let mut a = [1.0f32; 3];
        assert_eq!(
            lu_factor(&mut a, 2, None, None, 0.0),
            Err(NewtonFailure::ScratchTooSmall)
        );
        // A pivot below `rel` times the largest entry counts as singular.
        let mut a = [1.0f64, 0.0, 0.0, 1e-12];
        assert_eq!(
            lu_factor(&mut a, 2, None, None, 1e-9),
            Err(NewtonFailure::Singular)
        );
    }
}
