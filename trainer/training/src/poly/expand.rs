//! "The equation learned": a trained Π-net expanded exactly into one polynomial per state, by
//! multiplying out its affine forms in f64, printed like paper 002's tables and kept as
//! monomial → coefficient maps for comparison with the true coefficients.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{PiNetDef, PolyError};

/// Exponents of each input variable (`[x.., u]`), e.g. `[1, 1, 0]` is `y1*y2`.
pub type Monomial = Vec<u8>;

/// A polynomial in `vars` variables: monomial → coefficient (zero terms absent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Polynomial {
    /// Number of variables.
    pub vars: usize,
    /// Coefficients.
    pub terms: BTreeMap<Monomial, f64>,
}

impl Polynomial {
    /// The zero polynomial.
    pub fn zero(vars: usize) -> Self {
        Polynomial {
            vars,
            terms: BTreeMap::new(),
        }
    }

    /// `c + Σ w_i z_i`.
    pub fn affine(constant: f64, weights: &[f64]) -> Self {
        let mut p = Polynomial::zero(weights.len());
        p.add_term(vec![0; weights.len()], constant);
        for (i, &w) in weights.iter().enumerate() {
            let mut m = vec![0; weights.len()];
            m[i] = 1;
            p.add_term(m, w);
        }
        p
    }

    /// Adds `c * m`.
    pub fn add_term(&mut self, m: Monomial, c: f64) {
        if c != 0.0 {
            *self.terms.entry(m).or_insert(0.0) += c;
        }
    }

    /// `self + k * other`.
    pub fn add_scaled(&mut self, other: &Polynomial, k: f64) {
        for (m, &c) in &other.terms {
            self.add_term(m.clone(), k * c);
        }
    }

    /// The product.
    pub fn mul(&self, other: &Polynomial) -> Polynomial {
        let mut p = Polynomial::zero(self.vars);
        for (ma, &ca) in &self.terms {
            for (mb, &cb) in &other.terms {
                let m: Monomial = ma.iter().zip(mb).map(|(a, b)| a + b).collect();
                p.add_term(m, ca * cb);
            }
        }
        p
    }

    /// The value at `z`.
    pub fn eval(&self, z: &[f64]) -> f64 {
        self.terms
            .iter()
            .map(|(m, &c)| {
                c * m
                    .iter()
                    .zip(z)
                    .map(|(&e, &v)| v.powi(i32::from(e)))
                    .product::<f64>()
            })
            .sum()
    }

    /// The coefficient of `m` (zero if absent).
    pub fn coef(&self, m: &[u8]) -> f64 {
        self.terms.get(m).copied().unwrap_or(0.0)
    }

    /// The terms that do not involve variable `var` (setting it to zero).
    pub fn without_var(&self, var: usize) -> Polynomial {
        Polynomial {
            vars: self.vars,
            terms: self
                .terms
                .iter()
                .filter(|(m, _)| m[var] == 0)
                .map(|(m, &c)| (m.clone(), c))
                .collect(),
        }
    }
}

/// One polynomial per state: `d(vars[i])/dt = rows[i]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Equations {
    /// Variable names, inputs in order (states then the drive).
    pub vars: Vec<String>,
    /// Right-hand sides, one per state.
    pub rows: Vec<Polynomial>,
}

/// Expands the net with parameters `values` exactly (f64 arithmetic on the f32 weights, the
/// output and input scales folded in). `vars` names the inputs.
pub fn expand(
    def: &PiNetDef,
    values: &[Vec<f32>],
    vars: &[String],
) -> Result<Equations, PolyError> {
    def.validate()?;
    def.check_values(values)?;
    if vars.len() != def.inputs {
        return Err(PolyError::Shape(format!(
            "{} variable names for {} inputs",
            vars.len(),
            def.inputs
        )));
    }
    let (w, ni) = (def.width, def.inputs);
    let inv = def.inv_in_scale();
    let affine = |k: usize, j: usize| -> Polynomial {
        let u = &values[2 * k];
        let weights: Vec<f64> = (0..ni).map(|i| f64::from(u[i * w + j]) * inv[i]).collect();
        Polynomial::affine(f64::from(values[2 * k + 1][j]), &weights)
    };
    let mut h: Vec<Polynomial> = (0..w).map(|j| affine(0, j)).collect();
    for k in 1..def.degree {
        for (j, hj) in h.iter_mut().enumerate() {
            let mut next = affine(k, j).mul(hj);
            next.add_scaled(hj, 1.0);
            *hj = next;
        }
    }
    let d = def.degree;
    let (c, beta) = (&values[2 * d], &values[2 * d + 1]);
    let scale = def.total_scale(values);
    let rows = (0..def.outputs)
        .map(|o| {
            let s = scale[o];
            let mut p = Polynomial::zero(ni);
            p.add_term(vec![0; ni], f64::from(beta[o]) * s);
            for (j, hj) in h.iter().enumerate() {
                p.add_scaled(hj, f64::from(c[j * def.outputs + o]) * s);
            }
            p
        })
        .collect();
    Ok(Equations {
        vars: vars.to_vec(),
        rows,
    })
}

/// Default names: `y1..yn` and `u`.
pub fn default_vars(n: usize) -> Vec<String> {
    let mut v: Vec<String> = (1..=n).map(|i| format!("y{i}")).collect();
    v.push("u".into());
    v
}

/// A coefficient as in paper 002's tables: plain decimals between 0.01 and 1e4 with at most five
/// significant digits (`3.0`, `-999.87`), scientific otherwise (`-1.0001e4`, `7.0012e-4`).
pub fn format_coef(c: f64) -> String {
    let a = c.abs();
    if a != 0.0 && !(1e-2..1e4).contains(&a) {
        let s = format!("{c:.4e}");
        // `-1.0001e4` as Rust writes it; trim trailing zeros of the mantissa.
        match s.split_once('e') {
            Some((mant, exp)) => {
                let mant = mant.trim_end_matches('0');
                let mant = if mant.ends_with('.') {
                    format!("{mant}0")
                } else {
                    mant.to_string()
                };
                format!("{mant}e{exp}")
            }
            None => s,
        }
    } else {
        let digits = if a == 0.0 {
            1
        } else {
            (4 - a.log10().floor() as i32).clamp(1, 6) as usize
        };
        let s = format!("{c:.digits$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').to_string()
        } else {
            s
        };
        if s.ends_with('.') {
            format!("{s}0")
        } else {
            s
        }
    }
}

fn monomial_name(m: &[u8], vars: &[String]) -> String {
    let mut parts = Vec::new();
    for (i, &e) in m.iter().enumerate() {
        match e {
            0 => {}
            1 => parts.push(vars[i].clone()),
            _ => parts.push(format!("{}^{e}", vars[i])),
        }
    }
    parts.join("*")
}

/// Total degree, then variables in order: constant, `y1`, `y2`, ..., `y1^2`, `y1*y2`, ...
fn order_key(m: &[u8]) -> (u32, Vec<std::cmp::Reverse<u8>>) {
    (
        m.iter().map(|&e| u32::from(e)).sum(),
        m.iter().map(|&e| std::cmp::Reverse(e)).collect(),
    )
}

impl Equations {
    /// The terms of row `i` with `|c| >= threshold`, in print order.
    pub fn kept_terms(&self, i: usize, threshold: f64) -> Vec<(Monomial, f64)> {
        let mut t: Vec<(Monomial, f64)> = self.rows[i]
            .terms
            .iter()
            .filter(|(_, c)| c.abs() >= threshold)
            .map(|(m, &c)| (m.clone(), c))
            .collect();
        t.sort_by_key(|(m, _)| order_key(m));
        t
    }

    /// One line per state, `dy1/dt = -1.0001e4*y1 + 3.0*y1*y2`, dropping `|c| < threshold`.
    pub fn print(&self, threshold: f64) -> Vec<String> {
        (0..self.rows.len())
            .map(|i| {
                let mut s = format!("d{}/dt =", self.vars[i]);
                let terms = self.kept_terms(i, threshold);
                if terms.is_empty() {
                    s.push_str(" 0");
                }
                for (k, (m, c)) in terms.iter().enumerate() {
                    let name = monomial_name(m, &self.vars);
                    let mag = format_coef(c.abs());
                    let sign = if *c < 0.0 { "-" } else { "+" };
                    match (k, name.is_empty()) {
                        (0, true) => write!(s, " {}", format_coef(*c)),
                        (0, false) => write!(s, " {}*{name}", format_coef(*c)),
                        (_, true) => write!(s, " {sign} {mag}"),
                        (_, false) => write!(s, " {sign} {mag}*{name}"),
                    }
                    .ok();
                }
                s
            })
            .collect()
    }

    /// Row `i` as `"y1*y2" -> coefficient` (terms with `|c| >= threshold`), for JSON reports.
    pub fn named_terms(&self, i: usize, threshold: f64) -> BTreeMap<String, f64> {
        self.kept_terms(i, threshold)
            .into_iter()
            .map(|(m, c)| {
                let n = monomial_name(&m, &self.vars);
                (if n.is_empty() { "1".into() } else { n }, c)
            })
            .collect()
    }

    /// The same equations with every term involving variable `var` dropped (the drive of an
    /// autonomous problem: those coefficients multiply zero and are not identified by the data).
    pub fn without_var(&self, var: usize) -> Equations {
        Equations {
            vars: self.vars.clone(),
            rows: self.rows.iter().map(|p| p.without_var(var)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odeflash_reference::rng::Rng;

    #[test]
    fn expansion_equals_the_net_at_random_points() {
        for (n, width, degree) in [(1, 3, 1), (2, 6, 2), (3, 8, 3), (8, 10, 2)] {
            let mut def = PiNetDef::new(n, width, degree).unwrap();
            def.out_scale = (0..n).map(|i| 10f64.powi(i as i32 - 1)).collect();
            def.in_scale = (0..=n).map(|i| 3f64.powi(1 - i as i32)).collect();
            let mut rng = Rng::new(11 + n as u64);
            let mut values = def.init(&mut rng);
            for v in values.iter_mut() {
                for x in v.iter_mut() {
                    *x += (rng.normal() * 0.5) as f32;
                }
            }
            let eq = expand(&def, &values, &default_vars(n)).unwrap();
            for _ in 0..20 {
                let z: Vec<f64> = (0..=n).map(|_| 2.0 * rng.normal()).collect();
                let net = def.eval_f64(&values, &z);
                for (o, &fo) in net.iter().enumerate() {
                    let p = eq.rows[o].eval(&z);
                    let scale = fo.abs().max(1e-3 * def.total_scale(&values)[o]);
                    assert!(
                        (p - fo).abs() <= 1e-10 * scale,
                        "n={n} d={degree} out {o}: expansion {p} vs net {fo}"
                    );
                }
            }
            // No monomial above the degree.
            for row in &eq.rows {
                for m in row.terms.keys() {
                    assert!(m.iter().map(|&e| e as usize).sum::<usize>() <= degree);
                }
            }
        }
    }

    /// A net built by hand: width 2, degree 2, one state and the drive.
    /// h1 = [y + 1, 2y], g2 = [y, u - 3]; h2 = g2∘h1 + h1 = [y^2 + 2y + 1, 2yu - 4y];
    /// f = 3*h2[0] - h2[1] + 0.5 = 3y^2 + 10y - 2yu + 3.5.
    #[test]
    fn hand_built_net_gives_its_polynomial() {
        let def = PiNetDef::new(1, 2, 2).unwrap();
        let values = vec![
            vec![1.0, 2.0, 0.0, 0.0], // U1 [inputs=2 (y,u), width=2]
            vec![1.0, 0.0],           // a1
            vec![1.0, 0.0, 0.0, 1.0], // U2
            vec![0.0, -3.0],          // a2
            vec![3.0, -1.0],          // C [2, 1]
            vec![0.5],                // beta
            vec![0.0],                // log-scale
        ];
        let eq = expand(&def, &values, &default_vars(1)).unwrap();
        let mut want = BTreeMap::new();
        want.insert(vec![0, 0], 3.5);
        want.insert(vec![1, 0], 10.0);
        want.insert(vec![2, 0], 3.0);
        want.insert(vec![1, 1], -2.0);
        assert_eq!(eq.rows[0].terms, want);
        assert_eq!(
            eq.print(1e-9),
            vec!["dy1/dt = 3.5 + 10.0*y1 + 3.0*y1^2 - 2.0*y1*u"]
        );
        assert_eq!(
            eq.without_var(1).print(1e-9),
            vec!["dy1/dt = 3.5 + 10.0*y1 + 3.0*y1^2"]
        );
        // Pruning drops the small terms only.
        assert_eq!(eq.print(4.0), vec!["dy1/dt = 10.0*y1"]);
    }

    #[test]
    fn coefficients_print_like_the_tables() {
        assert_eq!(format_coef(-10001.0), "-1.0001e4");
        assert_eq!(format_coef(3.0), "3.0");
        assert_eq!(format_coef(-999.87), "-999.87");
        assert_eq!(format_coef(0.0007), "7.0e-4");
        assert_eq!(format_coef(1.71), "1.71");
        assert_eq!(format_coef(280.0), "280.0");
    }
}
