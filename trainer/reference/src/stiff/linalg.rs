//! Owned LU factors for the reference solvers and the trainer's batched Newton iterations: a
//! thin owner of the runtime's one LU ([`odeflash_runtime::lu`]), real or complex ([`C64`], the
//! Radau5 complex system).

use std::ops::{Add, Div, Mul, Sub};

use odeflash_runtime::lu::{lu_factor, lu_solve, permutation, Scalar};
use odeflash_runtime::NewtonFailure;

/// A complex number as (re, im); only what the Radau5 complex system needs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct C64 {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl C64 {
    /// `re + i im`.
    pub const fn new(re: f64, im: f64) -> Self {
        C64 { re, im }
    }

    /// `|re| + |im|`: a norm, cheaper than the modulus and as good for pivoting.
    pub fn abs1(self) -> f64 {
        self.re.abs() + self.im.abs()
    }
}

impl Add for C64 {
    type Output = C64;
    fn add(self, o: C64) -> C64 {
        C64::new(self.re + o.re, self.im + o.im)
    }
}

impl Sub for C64 {
    type Output = C64;
    fn sub(self, o: C64) -> C64 {
        C64::new(self.re - o.re, self.im - o.im)
    }
}

impl Mul for C64 {
    type Output = C64;
    fn mul(self, o: C64) -> C64 {
        C64::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
}

impl Div for C64 {
    type Output = C64;
    fn div(self, o: C64) -> C64 {
        // Smith's algorithm: no overflow for large |o|.
        if o.re.abs() >= o.im.abs() {
            let r = o.im / o.re;
            let d = o.re + o.im * r;
            C64::new((self.re + self.im * r) / d, (self.im - self.re * r) / d)
        } else {
            let r = o.re / o.im;
            let d = o.re * r + o.im;
            C64::new((self.re * r + self.im) / d, (self.im * r - self.re) / d)
        }
    }
}

impl Scalar for C64 {
    type Mag = f64;
    fn magnitude(self) -> f64 {
        self.abs1()
    }
    fn finite(self) -> bool {
        self.re.is_finite() && self.im.is_finite()
    }
    fn is_zero(self) -> bool {
        self.re == 0.0 && self.im == 0.0
    }
}

/// LU factors of an n×n matrix with partial pivoting, row-major (layout: [`odeflash_runtime::lu`]).
#[derive(Clone, Debug)]
pub struct Lu<T = f64> {
    n: usize,
    a: Vec<T>,
    piv: Vec<usize>,
}

/// Complex LU factors.
pub type LuC = Lu<C64>;

impl<T: Scalar> Lu<T> {
    /// Factors `a` (row-major n×n), taking ownership of its storage; a zero pivot is singular,
    /// a non-finite entry non-finite.
    pub fn factor(n: usize, a: Vec<T>) -> Result<Self, NewtonFailure> {
        Self::factor_rel(n, a, <T::Mag as odeflash_runtime::solver::Real>::ZERO)
    }

    /// Like [`Lu::factor`], but a pivot at or below `rel` times the matrix's largest entry
    /// counts as singular too (a Newton matrix that close to singular gives no useful step).
    pub fn factor_rel(n: usize, mut a: Vec<T>, rel: T::Mag) -> Result<Self, NewtonFailure> {
        let mut piv = vec![0; n];
        lu_factor(&mut a, n, Some(&mut piv), None, rel)?;
        Ok(Lu { n, a, piv })
    }

    /// Solves `A x = b` in place. A non-finite solution is left in `b`, where every caller's
    /// convergence or error test sees it.
    pub fn solve(&self, b: &mut [T]) {
        let _ = lu_solve(&self.a, self.n, &self.piv, b);
    }

    /// The row permutation: row `i` of the factors is row `perm()[i]` of the matrix.
    pub fn perm(&self) -> Vec<usize> {
        let mut perm = vec![0; self.n];
        permutation(&self.piv, &mut perm);
        perm
    }

    /// `L` (strictly below the diagonal, unit diagonal implied) and `U`, row-major.
    pub fn factors(&self) -> &[T] {
        &self.a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_lu_solves_a_system_needing_pivoting() {
        // First pivot is zero: fails without row exchanges.
        let a = vec![0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0];
        let x = [1.0, -2.0, 3.0];
        let mut b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum())
            .collect();
        Lu::factor(3, a).unwrap().solve(&mut b);
        for (bi, xi) in b.iter().zip(x) {
            assert!((bi - xi).abs() < 1e-14, "{b:?}");
        }
        assert!(Lu::factor(2, vec![1.0, 2.0, 2.0, 4.0]).is_err());
    }

    #[test]
    fn complex_lu_solves_a_system() {
        let a = vec![
            C64::new(0.0, 1.0),
            C64::new(2.0, 0.0),
            C64::new(1.0, -1.0),
            C64::new(3.0, 2.0),
        ];
        let x = [C64::new(1.0, 2.0), C64::new(-0.5, 0.25)];
        let mut b: Vec<C64> = (0..2)
            .map(|i| {
                let p = a[i * 2].mul(x[0]);
                let q = a[i * 2 + 1].mul(x[1]);
                C64::new(p.re + q.re, p.im + q.im)
            })
            .collect();
        LuC::factor(2, a).unwrap().solve(&mut b);
        for (bi, xi) in b.iter().zip(x) {
            assert!(bi.sub(xi).abs1() < 1e-14, "{b:?}");
        }
    }
}
