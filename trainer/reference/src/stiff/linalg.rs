//! Dense LU with partial pivoting, real and complex, for the small iteration matrices of the
//! implicit solvers (n up to a few dozen: no BLAS needed, and no dependency).

/// A complex number as (re, im); only what the Radau5 complex system needs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct C64 {
    pub re: f64,
    pub im: f64,
}

impl C64 {
    pub const fn new(re: f64, im: f64) -> Self {
        C64 { re, im }
    }
    fn mul(self, o: C64) -> C64 {
        C64::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    fn sub(self, o: C64) -> C64 {
        C64::new(self.re - o.re, self.im - o.im)
    }
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
    fn abs1(self) -> f64 {
        self.re.abs() + self.im.abs()
    }
}

/// The matrix was singular to working precision (a zero pivot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Singular;

/// LU factors of a real n×n matrix with partial pivoting, row-major: `L` unit lower (below the
/// diagonal) and `U` upper in one array; row `i` of `P A` is row `perm[i]` of `A`. Shared by the
/// f64 reference solvers and the trainer's batched Newton iterations
/// ([`crate::diffsolve::implicit`]), which also apply the factors as tensor ops.
#[derive(Clone, Debug)]
pub struct Lu {
    n: usize,
    a: Vec<f64>,
    perm: Vec<usize>,
}

impl Lu {
    /// Factors `a` (row-major n×n), taking ownership of its storage; a zero or non-finite pivot
    /// is singular.
    pub fn factor(n: usize, a: Vec<f64>) -> Result<Self, Singular> {
        Self::factor_rel(n, a, 0.0)
    }

    /// Like [`Lu::factor`], but a pivot at or below `rel` times the matrix's largest entry
    /// counts as singular too (a Newton matrix that close to singular gives no useful step).
    pub fn factor_rel(n: usize, mut a: Vec<f64>, rel: f64) -> Result<Self, Singular> {
        debug_assert_eq!(a.len(), n * n);
        let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if !scale.is_finite() {
            return Err(Singular);
        }
        let mut perm: Vec<usize> = (0..n).collect();
        for k in 0..n {
            let (p, max) = (k..n)
                .map(|i| (i, a[i * n + k].abs()))
                .fold((k, -1.0), |b, c| if c.1 > b.1 { c } else { b });
            if max == 0.0 || !max.is_finite() || max <= rel * scale {
                return Err(Singular);
            }
            if p != k {
                for j in 0..n {
                    a.swap(k * n + j, p * n + j);
                }
                perm.swap(k, p);
            }
            let d = a[k * n + k];
            for i in k + 1..n {
                let l = a[i * n + k] / d;
                a[i * n + k] = l;
                if l != 0.0 {
                    for j in k + 1..n {
                        a[i * n + j] -= l * a[k * n + j];
                    }
                }
            }
        }
        Ok(Lu { n, a, perm })
    }

    /// Solves `A x = b` in place.
    pub fn solve(&self, b: &mut [f64]) {
        let n = self.n;
        let pb: Vec<f64> = self.perm.iter().map(|&p| b[p]).collect();
        b[..n].copy_from_slice(&pb);
        for i in 0..n {
            let row = &self.a[i * n..i * n + i];
            let s: f64 = row.iter().zip(&b[..i]).map(|(l, x)| l * x).sum();
            b[i] -= s;
        }
        for i in (0..n).rev() {
            let row = &self.a[i * n + i + 1..(i + 1) * n];
            let s: f64 = row.iter().zip(&b[i + 1..]).map(|(u, x)| u * x).sum();
            b[i] = (b[i] - s) / self.a[i * n + i];
        }
    }

    /// The row permutation: row `i` of the factors is row `perm()[i]` of the matrix.
    pub fn perm(&self) -> &[usize] {
        &self.perm
    }

    /// `L` (strictly below the diagonal, unit diagonal implied) and `U`, row-major.
    pub fn factors(&self) -> &[f64] {
        &self.a
    }
}

/// LU factors of a complex n×n matrix, row-major.
#[derive(Clone, Debug)]
pub struct LuC {
    n: usize,
    a: Vec<C64>,
    piv: Vec<usize>,
}

impl LuC {
    /// Factors `a` (row-major n×n).
    pub fn factor(n: usize, mut a: Vec<C64>) -> Result<Self, Singular> {
        debug_assert_eq!(a.len(), n * n);
        let mut piv = vec![0; n];
        for k in 0..n {
            let (p, max) = (k..n)
                .map(|i| (i, a[i * n + k].abs1()))
                .fold((k, -1.0), |b, c| if c.1 > b.1 { c } else { b });
            if max == 0.0 || !max.is_finite() {
                return Err(Singular);
            }
            piv[k] = p;
            if p != k {
                for j in 0..n {
                    a.swap(k * n + j, p * n + j);
                }
            }
            let d = a[k * n + k];
            for i in k + 1..n {
                let l = a[i * n + k].div(d);
                a[i * n + k] = l;
                for j in k + 1..n {
                    a[i * n + j] = a[i * n + j].sub(l.mul(a[k * n + j]));
                }
            }
        }
        Ok(LuC { n, a, piv })
    }

    /// Solves `A x = b` in place.
    pub fn solve(&self, b: &mut [C64]) {
        let n = self.n;
        for k in 0..n {
            b.swap(k, self.piv[k]);
        }
        for i in 0..n {
            let row = &self.a[i * n..i * n + i];
            b[i] = row
                .iter()
                .zip(&b[..i])
                .fold(b[i], |s, (l, x)| s.sub(l.mul(*x)));
        }
        for i in (0..n).rev() {
            let row = &self.a[i * n + i + 1..(i + 1) * n];
            let s = row
                .iter()
                .zip(&b[i + 1..])
                .fold(b[i], |s, (u, x)| s.sub(u.mul(*x)));
            b[i] = s.div(self.a[i * n + i]);
        }
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
