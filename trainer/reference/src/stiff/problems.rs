//! The stiff test problems of paper 002 (Fronk & Petzold, "Neural ODEs for stiff systems:
//! implicit single-step methods", 2024), in their standard published forms.
//!
//! The paper's equations did not survive its text conversion, so each problem here is the
//! published form the paper describes, with its source:
//!
//! | name | system | source |
//! | --- | --- | --- |
//! | `linear` | `y' = -1000 y + 3000 - 2000 e^(-t)`, `y(0) = 0`, `t` in `[0, 4]` | Chapra & Canale, *Numerical Methods for Engineers*, stiff example of ch. 26 |
//! | `toy2d` | Kaps' problem, `mu = 1000`, `t` in `[0, 5]` | Kaps (1981); Hairer & Wanner II |
//! | `toy3d` | Robertson's reaction kinetics, `t` in `[0, 40]` | Robertson (1966); Hairer & Wanner II, sec. IV.1 |
//! | `hires` | HIRES, 8 species, `t` in `[0, 321.8122]` | Schäfer (1975); Hairer & Wanner II, sec. IV.10; Bari IVP test set |
//! | `vdp` | van der Pol, `mu = 1000`, `y(0) = (2, 0)`, `t` in `[0, 3000]` | Hairer & Wanner II, sec. IV.1; Shampine & Reichelt (1997), `vdp1000` |
//!
//! `linear` is the paper's "stiff linear test equation with a large negative coefficient": a fast
//! transient `-0.998 e^(-1000 t)` over the first few milliseconds, then the slow `-2.002 e^(-t)`
//! decay towards the equilibrium 3. Its exact solution is [`Linear::exact`].
//!
//! `toy2d` and `toy3d` stand in for the paper's own 2-D and 3-D toy systems, whose coefficients
//! were lost with its equations and tables. Both replacements have what the paper asks of its toys:
//! only linear and quadratic terms, and one large coefficient that sets the stiffness. Kaps'
//! problem has the exact solution `(e^(-2t), e^(-t))` for every `mu` ([`Kaps::exact`]); Robertson
//! conserves `y1 + y2 + y3 = 1`.
//!
//! Every problem also gives its right-hand side as a table of polynomial terms
//! ([`Problem::polynomial`], plus a known non-polynomial forcing for `linear`): the coefficients
//! a polynomial neural ODE (Π-net) should recover.

/// An ODE system `y' = f(t, y)` as the solvers see it: the right-hand side and its Jacobian.
///
/// Separate from [`Problem`] so that a learned model (say a polynomial neural ODE evaluated in
/// f64) can be integrated by [`super::solve_adaptive`] without pretending to be a named problem.
pub trait OdeSystem: Send + Sync {
    /// Number of states.
    fn dim(&self) -> usize;
    /// `dy = f(t, y)`.
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]);
    /// `jac[i * n + j] = ∂f_i / ∂y_j` (row-major n×n). The default is forward differences (n extra
    /// right-hand-side evaluations); the problems here override it with the analytic Jacobian.
    fn jacobian(&self, t: f64, y: &[f64], jac: &mut [f64]) {
        finite_difference_jacobian(self, t, y, jac);
    }
}

/// The workspace's convergence test problems run through the reference solvers too.
impl OdeSystem for odeflash_runtime::convergence::TestProblem {
    fn dim(&self) -> usize {
        self.y0.len()
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        (self.f)(t, y, dy);
    }
    fn jacobian(&self, t: f64, y: &[f64], jac: &mut [f64]) {
        (self.jac)(t, y, jac);
    }
}

/// A named test problem: an [`OdeSystem`] with its standard initial state, interval, source and
/// coefficient table.
pub trait Problem: OdeSystem {
    /// The CLI name (one of [`PROBLEMS`]).
    fn name(&self) -> &'static str;
    /// The standard initial state.
    fn initial(&self) -> Vec<f64>;
    /// The standard end of the interval (the interval starts at 0).
    fn t_end(&self) -> f64;
    /// Where the problem is published.
    fn citation(&self) -> &'static str;
    /// State names, for CSV headers: `y1`, `y2`, ... unless the problem has better ones.
    fn state_names(&self) -> Vec<String> {
        (1..=self.dim()).map(|i| format!("y{i}")).collect()
    }
    /// The right-hand side's polynomial part, one list of terms per equation: what a polynomial
    /// neural ODE should recover.
    fn polynomial(&self) -> Vec<Vec<Term>>;
    /// The part of the right-hand side that is not a polynomial in `y` (a known forcing in `t`),
    /// added to `out`; zero for every problem but `linear`.
    fn forcing(&self, _t: f64, _out: &mut [f64]) {}
    /// The forcing of each equation as text (empty where there is none).
    fn forcing_text(&self) -> Vec<&'static str> {
        vec![""; self.dim()]
    }
    /// The equations as text, e.g. `y1' = -0.04*y1 + 10000*y2*y3`, from [`Problem::polynomial`]
    /// and [`Problem::forcing_text`].
    fn true_equations(&self) -> Vec<String> {
        let names = self.state_names();
        self.polynomial()
            .iter()
            .zip(self.forcing_text())
            .zip(&names)
            .map(|((terms, forcing), name)| {
                let mut s = format!("{name}' =");
                for (k, term) in terms.iter().enumerate() {
                    let c = term.coefficient;
                    let prefix = match (k, c < 0.0) {
                        (0, true) => " -",
                        (0, false) => " ",
                        (_, true) => " - ",
                        (_, false) => " + ",
                    };
                    let mono = term.monomial(&names);
                    let mag = c.abs();
                    let body = match (mono.is_empty(), mag == 1.0) {
                        (true, _) => format!("{mag}"),
                        (false, true) => mono,
                        (false, false) => format!("{mag}*{mono}"),
                    };
                    s.push_str(prefix);
                    s.push_str(&body);
                }
                if !forcing.is_empty() {
                    s.push_str(&format!(" {forcing}"));
                }
                s
            })
            .collect()
    }
}

/// One term `coefficient * Π y_i^powers[i]` of a polynomial right-hand side.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// The coefficient.
    pub coefficient: f64,
    /// The power of each state (as many entries as the system has states; all zero for a
    /// constant).
    pub powers: Vec<u32>,
}

impl Term {
    /// `coefficient` times the product of the states listed in `factors` (indices from 0, repeated
    /// for powers), in a system of `n` states.
    pub fn new(coefficient: f64, n: usize, factors: &[usize]) -> Self {
        let mut powers = vec![0; n];
        for &i in factors {
            powers[i] += 1;
        }
        Term {
            coefficient,
            powers,
        }
    }

    /// Total degree.
    pub fn degree(&self) -> u32 {
        self.powers.iter().sum()
    }

    /// The term's value at `y`.
    pub fn eval(&self, y: &[f64]) -> f64 {
        self.powers
            .iter()
            .zip(y)
            .fold(self.coefficient, |acc, (&p, &v)| acc * v.powi(p as i32))
    }

    /// The monomial as text (`y1*y2^2`; empty for a constant).
    pub fn monomial(&self, names: &[String]) -> String {
        let parts: Vec<String> = self
            .powers
            .iter()
            .zip(names)
            .filter(|(&p, _)| p > 0)
            .map(|(&p, name)| {
                if p == 1 {
                    name.clone()
                } else {
                    format!("{name}^{p}")
                }
            })
            .collect();
        parts.join("*")
    }
}

/// Evaluates a polynomial right-hand side (as [`Problem::polynomial`] gives it) at `y`.
pub fn eval_polynomial(poly: &[Vec<Term>], y: &[f64], out: &mut [f64]) {
    for (o, terms) in out.iter_mut().zip(poly) {
        *o = terms.iter().map(|t| t.eval(y)).sum();
    }
}

/// Forward-difference Jacobian, step `sqrt(eps) * max(|y_j|, 1e-5)`: for systems without an
/// analytic one, and to check the analytic ones.
pub fn finite_difference_jacobian<S: OdeSystem + ?Sized>(
    system: &S,
    t: f64,
    y: &[f64],
    jac: &mut [f64],
) {
    let n = y.len();
    let mut f0 = vec![0.0; n];
    let mut f1 = vec![0.0; n];
    let mut yp = y.to_vec();
    system.rhs(t, y, &mut f0);
    for j in 0..n {
        let h = f64::EPSILON.sqrt() * y[j].abs().max(1e-5);
        yp[j] = y[j] + h;
        let h = yp[j] - y[j];
        system.rhs(t, &yp, &mut f1);
        for i in 0..n {
            jac[i * n + j] = (f1[i] - f0[i]) / h;
        }
        yp[j] = y[j];
    }
}

/// Every problem name [`problem`] accepts.
pub const PROBLEMS: &[&str] = &["linear", "toy2d", "toy3d", "hires", "vdp"];

/// The problem called `name` (one of [`PROBLEMS`]), with its standard parameters.
pub fn problem(name: &str) -> Option<Box<dyn Problem>> {
    Some(match name {
        "linear" => Box::new(Linear::default()),
        "toy2d" => Box::new(Kaps::default()),
        "toy3d" => Box::new(Robertson),
        "hires" => Box::new(Hires),
        "vdp" => Box::new(VanDerPol::default()),
        _ => return None,
    })
}

/// The stiff linear test equation `y' = -lambda y + a + b e^(-t)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linear {
    /// Stiffness: the fast transient decays like `e^(-lambda t)`.
    pub lambda: f64,
    /// Constant source.
    pub a: f64,
    /// Amplitude of the slowly decaying forcing.
    pub b: f64,
    /// Initial value.
    pub y0: f64,
}

impl Default for Linear {
    /// Chapra & Canale's example: `lambda = 1000`, `a = 3000`, `b = -2000`, `y(0) = 0`.
    fn default() -> Self {
        Linear {
            lambda: 1000.0,
            a: 3000.0,
            b: -2000.0,
            y0: 0.0,
        }
    }
}

impl Linear {
    /// The exact solution `a/lambda + b/(lambda-1) e^(-t) + C e^(-lambda t)` (lambda ≠ 1).
    pub fn exact(&self, t: f64) -> f64 {
        let p = self.a / self.lambda;
        let q = self.b / (self.lambda - 1.0);
        p + q * (-t).exp() + (self.y0 - p - q) * (-self.lambda * t).exp()
    }
}

impl OdeSystem for Linear {
    fn dim(&self) -> usize {
        1
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = -self.lambda * y[0] + self.a + self.b * (-t).exp();
    }
    fn jacobian(&self, _t: f64, _y: &[f64], jac: &mut [f64]) {
        jac[0] = -self.lambda;
    }
}

impl Problem for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn initial(&self) -> Vec<f64> {
        vec![self.y0]
    }
    fn t_end(&self) -> f64 {
        4.0
    }
    fn citation(&self) -> &'static str {
        "S. C. Chapra and R. P. Canale, Numerical Methods for Engineers, McGraw-Hill \
         (stiff example y' = -1000 y + 3000 - 2000 exp(-t), ch. 26)"
    }
    fn state_names(&self) -> Vec<String> {
        vec!["y".into()]
    }
    fn polynomial(&self) -> Vec<Vec<Term>> {
        vec![vec![
            Term::new(self.a, 1, &[]),
            Term::new(-self.lambda, 1, &[0]),
        ]]
    }
    fn forcing(&self, t: f64, out: &mut [f64]) {
        out[0] += self.b * (-t).exp();
    }
    fn forcing_text(&self) -> Vec<&'static str> {
        if self.b == -2000.0 {
            vec!["- 2000*exp(-t)"]
        } else {
            vec!["+ b*exp(-t)"]
        }
    }
}

/// Kaps' singularly perturbed problem `y1' = -(mu+2) y1 + mu y2^2`, `y2' = y1 - y2 - y2^2`; from
/// `y(0) = (1, 1)` its solution is `(e^(-2t), e^(-t))` whatever `mu`, so `mu` tunes the stiffness
/// (the Jacobian has an eigenvalue near `-mu`) without changing the answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kaps {
    /// Stiffness parameter (`1/epsilon` in Hairer & Wanner).
    pub mu: f64,
}

impl Default for Kaps {
    fn default() -> Self {
        Kaps { mu: 1000.0 }
    }
}

impl Kaps {
    /// The exact solution from `(1, 1)`.
    pub fn exact(t: f64) -> [f64; 2] {
        [(-2.0 * t).exp(), (-t).exp()]
    }
}

impl OdeSystem for Kaps {
    fn dim(&self) -> usize {
        2
    }
    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = -(self.mu + 2.0) * y[0] + self.mu * y[1] * y[1];
        dy[1] = y[0] - y[1] - y[1] * y[1];
    }
    fn jacobian(&self, _t: f64, y: &[f64], jac: &mut [f64]) {
        jac.copy_from_slice(&[
            -(self.mu + 2.0),
            2.0 * self.mu * y[1],
            1.0,
            -1.0 - 2.0 * y[1],
        ]);
    }
}

impl Problem for Kaps {
    fn name(&self) -> &'static str {
        "toy2d"
    }
    fn initial(&self) -> Vec<f64> {
        vec![1.0, 1.0]
    }
    fn t_end(&self) -> f64 {
        5.0
    }
    fn citation(&self) -> &'static str {
        "P. Kaps, Rosenbrock-type methods, in G. Dahlquist and R. Jeltsch (eds.), Numerical \
         Methods for Solving Stiff Initial Value Problems, Bericht 9, IGPM, RWTH Aachen (1981); \
         E. Hairer and G. Wanner, Solving Ordinary Differential Equations II, Springer (1996)"
    }
    fn polynomial(&self) -> Vec<Vec<Term>> {
        vec![
            vec![
                Term::new(-(self.mu + 2.0), 2, &[0]),
                Term::new(self.mu, 2, &[1, 1]),
            ],
            vec![
                Term::new(1.0, 2, &[0]),
                Term::new(-1.0, 2, &[1]),
                Term::new(-1.0, 2, &[1, 1]),
            ],
        ]
    }
}

/// Robertson's autocatalytic reaction `A -> B` (0.04), `2B -> B + C` (3e7), `B + C -> A + C`
/// (1e4), from `y(0) = (1, 0, 0)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Robertson;

impl OdeSystem for Robertson {
    fn dim(&self) -> usize {
        3
    }
    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        let r1 = 0.04 * y[0];
        let r2 = 3e7 * y[1] * y[1];
        let r3 = 1e4 * y[1] * y[2];
        dy[0] = -r1 + r3;
        dy[1] = r1 - r2 - r3;
        dy[2] = r2;
    }
    fn jacobian(&self, _t: f64, y: &[f64], jac: &mut [f64]) {
        jac.copy_from_slice(&[
            -0.04,
            1e4 * y[2],
            1e4 * y[1],
            0.04,
            -6e7 * y[1] - 1e4 * y[2],
            -1e4 * y[1],
            0.0,
            6e7 * y[1],
            0.0,
        ]);
    }
}

impl Problem for Robertson {
    fn name(&self) -> &'static str {
        "toy3d"
    }
    fn initial(&self) -> Vec<f64> {
        vec![1.0, 0.0, 0.0]
    }
    fn t_end(&self) -> f64 {
        40.0
    }
    fn citation(&self) -> &'static str {
        "H. H. Robertson, The solution of a set of reaction rate equations, in J. Walsh (ed.), \
         Numerical Analysis: An Introduction, Academic Press (1966) 178-182; Hairer & Wanner, \
         Solving Ordinary Differential Equations II, sec. IV.1"
    }
    fn polynomial(&self) -> Vec<Vec<Term>> {
        vec![
            vec![Term::new(-0.04, 3, &[0]), Term::new(1e4, 3, &[1, 2])],
            vec![
                Term::new(0.04, 3, &[0]),
                Term::new(-3e7, 3, &[1, 1]),
                Term::new(-1e4, 3, &[1, 2]),
            ],
            vec![Term::new(3e7, 3, &[1, 1])],
        ]
    }
}

/// HIRES: "High Irradiance RESponse" of photomorphogenesis (Schäfer 1975), 8 species, in the
/// form of the Bari IVP test set (Mazzia & Magherini) and Hairer & Wanner II, sec. IV.10.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Hires;

/// End of the HIRES test interval, where [`HIRES_REFERENCE`] holds.
pub const HIRES_REFERENCE_T: f64 = 321.8122;

/// The HIRES reference solution at [`HIRES_REFERENCE_T`] from the standard initial state, as
/// published with the Bari IVP test set (Mazzia & Magherini, "Test Set for IVP Solvers", 2008).
pub const HIRES_REFERENCE: [f64; 8] = [
    7.371312573325668e-4,
    1.442485726316185e-4,
    5.888729740967575e-5,
    1.175651343283149e-3,
    2.386356198831331e-3,
    6.238968252742796e-3,
    2.849998395185769e-3,
    2.850001604814231e-3,
];

impl OdeSystem for Hires {
    fn dim(&self) -> usize {
        8
    }
    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        let r = 280.0 * y[5] * y[7];
        dy[0] = -1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007;
        dy[1] = 1.71 * y[0] - 8.75 * y[1];
        dy[2] = -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4];
        dy[3] = 8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3];
        dy[4] = -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6];
        dy[5] = -r + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6];
        dy[6] = r - 1.81 * y[6];
        dy[7] = -r + 1.81 * y[6];
    }
    fn jacobian(&self, _t: f64, y: &[f64], jac: &mut [f64]) {
        jac.fill(0.0);
        let mut set = |i: usize, j: usize, v: f64| jac[i * 8 + j] = v;
        set(0, 0, -1.71);
        set(0, 1, 0.43);
        set(0, 2, 8.32);
        set(1, 0, 1.71);
        set(1, 1, -8.75);
        set(2, 2, -10.03);
        set(2, 3, 0.43);
        set(2, 4, 0.035);
        set(3, 1, 8.32);
        set(3, 2, 1.71);
        set(3, 3, -1.12);
        set(4, 4, -1.745);
        set(4, 5, 0.43);
        set(4, 6, 0.43);
        set(5, 3, 0.69);
        set(5, 4, 1.71);
        set(5, 5, -0.43 - 280.0 * y[7]);
        set(5, 6, 0.69);
        set(5, 7, -280.0 * y[5]);
        set(6, 5, 280.0 * y[7]);
        set(6, 6, -1.81);
        set(6, 7, 280.0 * y[5]);
        set(7, 5, -280.0 * y[7]);
        set(7, 6, 1.81);
        set(7, 7, -280.0 * y[5]);
    }
}

impl Problem for Hires {
    fn name(&self) -> &'static str {
        "hires"
    }
    fn initial(&self) -> Vec<f64> {
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057]
    }
    fn t_end(&self) -> f64 {
        HIRES_REFERENCE_T
    }
    fn citation(&self) -> &'static str {
        "E. Schäfer, A new approach to explain the 'high irradiance responses' of \
         photomorphogenesis on the basis of phytochrome, J. Math. Biology 2 (1975) 41-56; \
         Hairer & Wanner, Solving Ordinary Differential Equations II, sec. IV.10; \
         F. Mazzia and C. Magherini, Test Set for Initial Value Problem Solvers, Univ. Bari (2008)"
    }
    fn polynomial(&self) -> Vec<Vec<Term>> {
        let t = |c: f64, f: &[usize]| Term::new(c, 8, f);
        vec![
            vec![t(0.0007, &[]), t(-1.71, &[0]), t(0.43, &[1]), t(8.32, &[2])],
            vec![t(1.71, &[0]), t(-8.75, &[1])],
            vec![t(-10.03, &[2]), t(0.43, &[3]), t(0.035, &[4])],
            vec![t(8.32, &[1]), t(1.71, &[2]), t(-1.12, &[3])],
            vec![t(-1.745, &[4]), t(0.43, &[5]), t(0.43, &[6])],
            vec![
                t(0.69, &[3]),
                t(1.71, &[4]),
                t(-0.43, &[5]),
                t(0.69, &[6]),
                t(-280.0, &[5, 7]),
            ],
            vec![t(-1.81, &[6]), t(280.0, &[5, 7])],
            vec![t(1.81, &[6]), t(-280.0, &[5, 7])],
        ]
    }
}

/// The 20 HIRES initial states of paper 002's Table 7 (Latin hypercube samples), from which its
/// HIRES training trajectories start; rows in the table's order (run 1 first).
pub fn hires_initial_conditions() -> Vec<[f64; 8]> {
    vec![
        [
            0.412503, 0.906411, 0.412933, 0.213609, 0.064925, 0.293734, 0.739312, 0.043381,
        ],
        [
            0.378101, 0.391340, 0.156641, 0.503148, 0.817612, 0.433931, 0.191203, 0.007282,
        ],
        [
            0.153447, 0.071013, 0.257224, 0.455062, 0.594616, 0.367467, 0.079906, 0.047136,
        ],
        [
            1.366815, 0.236463, 0.873612, 0.893106, 0.150143, 0.115366, 0.968644, 0.000806,
        ],
        [
            1.464978, 0.993025, 0.537866, 0.611333, 0.113295, 0.245616, 0.548675, 0.009430,
        ],
        [
            0.174331, 0.570303, 0.497073, 0.406965, 0.047271, 0.616831, 0.686488, 0.012478,
        ],
        [
            0.677526, 0.659252, 0.589131, 0.925035, 0.517411, 0.966685, 0.301191, 0.029454,
        ],
        [
            0.574262, 0.329074, 0.033387, 0.339584, 0.992378, 0.006706, 0.446191, 0.022913,
        ],
        [
            1.065735, 0.518636, 0.758506, 0.998593, 0.455977, 0.483815, 0.030678, 0.004377,
        ],
        [
            0.638101, 0.703107, 0.846135, 0.816864, 0.216076, 0.860064, 0.613366, 0.019588,
        ],
        [
            1.158734, 0.012780, 0.326158, 0.561438, 0.609144, 0.518287, 0.352820, 0.034432,
        ],
        [
            0.949418, 0.460502, 0.961568, 0.157100, 0.282788, 0.075279, 0.806771, 0.040494,
        ],
        [
            1.321282, 0.269435, 0.720024, 0.122634, 0.679448, 0.838694, 0.291664, 0.025704,
        ],
        [
            0.802005, 0.760407, 0.901060, 0.000216, 0.427964, 0.304100, 0.116146, 0.031622,
        ],
        [
            0.486976, 0.815268, 0.606734, 0.081858, 0.338174, 0.582653, 0.571258, 0.014153,
        ],
        [
            0.792132, 0.410891, 0.392693, 0.374081, 0.764888, 0.188351, 0.923021, 0.035935,
        ],
        [
            1.234614, 0.605145, 0.671905, 0.660786, 0.899778, 0.751559, 0.237024, 0.015888,
        ],
        [
            1.082288, 0.150662, 0.070913, 0.270047, 0.362950, 0.731098, 0.485404, 0.049797,
        ],
        [
            0.302551, 0.136653, 0.118964, 0.763691, 0.746139, 0.900857, 0.791212, 0.022706,
        ],
        [
            0.895915, 0.886628, 0.236694, 0.705427, 0.934826, 0.652669, 0.889384, 0.038102,
        ],
    ]
}

/// The van der Pol oscillator `y1' = y2`, `y2' = mu (1 - y1^2) y2 - y1`, in the unscaled form of
/// the MATLAB ODE suite (`vdp1000`); stiff for large `mu` (relaxation oscillations of period
/// about `(3 - 2 ln 2) mu`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VanDerPol {
    /// Damping parameter.
    pub mu: f64,
}

impl Default for VanDerPol {
    fn default() -> Self {
        VanDerPol { mu: 1000.0 }
    }
}

impl OdeSystem for VanDerPol {
    fn dim(&self) -> usize {
        2
    }
    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = y[1];
        dy[1] = self.mu * (1.0 - y[0] * y[0]) * y[1] - y[0];
    }
    fn jacobian(&self, _t: f64, y: &[f64], jac: &mut [f64]) {
        jac.copy_from_slice(&[
            0.0,
            1.0,
            -2.0 * self.mu * y[0] * y[1] - 1.0,
            self.mu * (1.0 - y[0] * y[0]),
        ]);
    }
}

impl Problem for VanDerPol {
    fn name(&self) -> &'static str {
        "vdp"
    }
    fn initial(&self) -> Vec<f64> {
        vec![2.0, 0.0]
    }
    fn t_end(&self) -> f64 {
        3000.0
    }
    fn citation(&self) -> &'static str {
        "B. van der Pol, On relaxation-oscillations, Phil. Mag. 2 (1926) 978-992; Hairer & \
         Wanner, Solving Ordinary Differential Equations II, sec. IV.1; L. F. Shampine and \
         M. W. Reichelt, The MATLAB ODE Suite, SIAM J. Sci. Comput. 18 (1997) 1-22 (vdp1000)"
    }
    fn polynomial(&self) -> Vec<Vec<Term>> {
        vec![
            vec![Term::new(1.0, 2, &[1])],
            vec![
                Term::new(-1.0, 2, &[0]),
                Term::new(self.mu, 2, &[1]),
                Term::new(-self.mu, 2, &[0, 0, 1]),
            ],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few states spread over each problem's range, away from special values like 0.
    fn sample_states(p: &dyn Problem) -> Vec<Vec<f64>> {
        let n = p.dim();
        let mut out = vec![p.initial()];
        for k in 1..=4 {
            out.push(
                (0..n)
                    .map(|i| 0.1 + 0.37 * ((k * 7 + i * 3) % 11) as f64 / 11.0)
                    .collect(),
            );
        }
        out
    }

    #[test]
    fn analytic_jacobians_match_finite_differences() {
        for name in PROBLEMS {
            let p = problem(name).unwrap();
            let n = p.dim();
            for (k, y) in sample_states(p.as_ref()).iter().enumerate() {
                let t = 0.3 * k as f64;
                let mut ja = vec![0.0; n * n];
                let mut jf = vec![0.0; n * n];
                p.jacobian(t, y, &mut ja);
                // Central differences, error O(h^2), independent of the default forward ones.
                let mut yp = y.clone();
                let mut fp = vec![0.0; n];
                let mut fm = vec![0.0; n];
                for j in 0..n {
                    let h = 1e-6 * y[j].abs().max(1e-3);
                    yp[j] = y[j] + h;
                    p.rhs(t, &yp, &mut fp);
                    yp[j] = y[j] - h;
                    p.rhs(t, &yp, &mut fm);
                    yp[j] = y[j];
                    for i in 0..n {
                        jf[i * n + j] = (fp[i] - fm[i]) / (2.0 * h);
                    }
                }
                let scale = ja.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for (idx, (a, f)) in ja.iter().zip(&jf).enumerate() {
                    assert!(
                        (a - f).abs() <= 1e-6 * scale,
                        "{name}: d f{} / d y{} analytic {a} vs finite differences {f} at {y:?}",
                        idx / n + 1,
                        idx % n + 1
                    );
                }
            }
        }
    }

    #[test]
    fn coefficient_tables_reproduce_the_right_hand_sides() {
        for name in PROBLEMS {
            let p = problem(name).unwrap();
            let n = p.dim();
            let poly = p.polynomial();
            assert_eq!(poly.len(), n, "{name}");
            for terms in &poly {
                assert!(terms.iter().all(|t| t.powers.len() == n), "{name}");
            }
            for (k, y) in sample_states(p.as_ref()).iter().enumerate() {
                let t = 0.7 * k as f64;
                let mut a = vec![0.0; n];
                let mut b = vec![0.0; n];
                p.rhs(t, y, &mut a);
                eval_polynomial(&poly, y, &mut b);
                p.forcing(t, &mut b);
                for i in 0..n {
                    let tol = 1e-12 * a[i].abs().max(1.0);
                    assert!(
                        (a[i] - b[i]).abs() <= tol,
                        "{name} eq {i}: {} vs {}",
                        a[i],
                        b[i]
                    );
                }
            }
            assert_eq!(p.true_equations().len(), n);
            assert!(!p.citation().is_empty());
        }
    }

    #[test]
    fn equations_render_readably() {
        let eq = problem("toy3d").unwrap().true_equations();
        assert_eq!(eq[0], "y1' = -0.04*y1 + 10000*y2*y3");
        assert_eq!(eq[2], "y3' = 30000000*y2^2");
        let eq = problem("linear").unwrap().true_equations();
        assert_eq!(eq[0], "y' = 3000 - 1000*y - 2000*exp(-t)");
        let eq = problem("vdp").unwrap().true_equations();
        assert_eq!(eq[1], "y2' = -y1 + 1000*y2 - 1000*y1^2*y2");
    }

    #[test]
    fn linear_exact_solution_solves_the_equation() {
        let p = Linear::default();
        assert!((p.exact(0.0) - p.y0).abs() < 1e-15);
        // Chapra's closed form 3 - 0.998 e^(-1000t) - 2.002 e^(-t), to its printed digits.
        for t in [0.001f64, 0.01, 1.0, 4.0] {
            let chapra = 3.0 - 0.998 * (-1000.0 * t).exp() - 2.002 * (-t).exp();
            assert!((p.exact(t) - chapra).abs() < 1e-5, "t = {t}");
            let h = 1e-6;
            let dydt = (p.exact(t + h) - p.exact(t - h)) / (2.0 * h);
            let mut f = [0.0];
            p.rhs(t, &[p.exact(t)], &mut f);
            assert!((dydt - f[0]).abs() < 1e-4 * f[0].abs().max(1.0), "t = {t}");
        }
    }

    #[test]
    fn hires_table_has_twenty_states_of_positive_values() {
        let ics = hires_initial_conditions();
        assert_eq!(ics.len(), 20);
        assert!(ics.iter().flatten().all(|&v| v > 0.0 && v < 1.5));
        assert_eq!(ics[0][0], 0.412503);
        assert_eq!(ics[19][7], 0.038102);
    }
}
