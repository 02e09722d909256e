//! Fixed-step explicit Runge-Kutta methods, named after the literature, and the solver choice
//! (explicit or implicit, see [`crate::implicit`]).
//!
//! One generic stepper ([`rk_step`]) runs every tableau; it is generic over the scalar so that
//! the same code is checked for convergence order in f64 (where a 5th-order method's error is not
//! drowned by rounding) and runs in f32 on the device. The trainer uses the same tableaux.

use serde::{Deserialize, Serialize};

use crate::implicit::{self, ImplicitTableau};

/// Most stages of any tableau here (Tsit5 and Dormand-Prince 5 without their FSAL stage).
pub const MAX_STAGES: usize = 6;

/// An explicit Butcher tableau (lower-triangular `a`, weights `b`, nodes `c`), in f64 as
/// published, or converted to f32 at compile time for the device (no soft-float f64 at run time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tableau<T = f64> {
    /// Name as in the literature.
    pub name: &'static str,
    /// Number of stages used.
    pub stages: usize,
    /// Classical order of the solution.
    pub order: u8,
    /// `a[i][j]`, `j < i`.
    pub a: [[T; MAX_STAGES]; MAX_STAGES],
    /// Weights.
    pub b: [T; MAX_STAGES],
    /// Nodes: stage `i` is evaluated at `t + c[i] h`.
    pub c: [T; MAX_STAGES],
}

const fn row_f32(r: &[f64; MAX_STAGES]) -> [f32; MAX_STAGES] {
    let mut out = [0.0f32; MAX_STAGES];
    let mut i = 0;
    while i < MAX_STAGES {
        out[i] = r[i] as f32;
        i += 1;
    }
    out
}

impl Tableau<f64> {
    /// The same tableau rounded to f32.
    pub const fn to_f32(&self) -> Tableau<f32> {
        let mut a = [[0.0f32; MAX_STAGES]; MAX_STAGES];
        let mut i = 0;
        while i < MAX_STAGES {
            a[i] = row_f32(&self.a[i]);
            i += 1;
        }
        Tableau {
            name: self.name,
            stages: self.stages,
            order: self.order,
            a,
            b: row_f32(&self.b),
            c: row_f32(&self.c),
        }
    }
}

const Z: [f64; MAX_STAGES] = [0.0; MAX_STAGES];

/// Forward Euler, order 1.
pub const EULER: Tableau = Tableau {
    name: "Euler",
    stages: 1,
    order: 1,
    a: [Z; MAX_STAGES],
    b: [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    c: Z,
};

/// Heun's method (explicit trapezoid), order 2.
pub const HEUN: Tableau = Tableau {
    name: "Heun",
    stages: 2,
    order: 2,
    a: [[0.0; 6], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], Z, Z, Z, Z],
    b: [0.5, 0.5, 0.0, 0.0, 0.0, 0.0],
    c: [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
};

/// The classical Runge-Kutta method, order 4.
pub const RK4: Tableau = Tableau {
    name: "RK4",
    stages: 4,
    order: 4,
    a: [
        Z,
        [0.5, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.5, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        Z,
        Z,
    ],
    b: [1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0, 0.0, 0.0],
    c: [0.0, 0.5, 0.5, 1.0, 0.0, 0.0],
};

/// Tsitouras 5(4) (Ch. Tsitouras, Comput. Math. Appl. 62 (2011) 770-775), the 5th-order
/// solution; the 7th (FSAL) stage only serves the error estimate and is not needed at fixed step.
pub const TSIT5: Tableau = Tableau {
    name: "Tsit5",
    stages: 6,
    order: 5,
    a: [
        Z,
        [0.161, 0.0, 0.0, 0.0, 0.0, 0.0],
        [
            -0.008_480_655_492_356_989,
            0.335_480_655_492_357,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            2.897_153_057_105_493,
            -6.359_448_489_975_075,
            4.362_295_432_869_581_5,
            0.0,
            0.0,
            0.0,
        ],
        [
            5.325_864_828_439_257,
            -11.748_883_564_062_828,
            7.495_539_342_889_836_5,
            -0.092_495_066_361_755_25,
            0.0,
            0.0,
        ],
        [
            5.861_455_442_946_42,
            -12.920_969_317_847_11,
            8.159_367_898_576_159,
            -0.071_584_973_281_401,
            -0.028_269_050_394_068_383,
            0.0,
        ],
    ],
    b: [
        0.096_460_766_818_065_23,
        0.01,
        0.479_889_650_414_499_6,
        1.379_008_574_103_742,
        -3.290_069_515_436_081,
        2.324_710_524_099_774,
    ],
    c: [0.0, 0.161, 0.327, 0.9, 0.980_025_540_904_509_7, 1.0],
};

/// Dormand-Prince 5(4) (J. R. Dormand, P. J. Prince, J. Comput. Appl. Math. 6 (1980) 19-26), the
/// 5th-order solution.
pub const DOPRI5: Tableau = Tableau {
    name: "Dopri5",
    stages: 6,
    order: 5,
    a: [
        Z,
        [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
        [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
        [
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
            0.0,
            0.0,
        ],
        [
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
            0.0,
        ],
    ],
    b: [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
    c: [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0],
};

/// Error estimator of Tsit5 (`b - b_hat` over its seven stages, the seventh being the FSAL stage
/// `f(x_next)`), for adaptive stepping on the host. Coefficients as in Tsitouras (2011).
#[allow(clippy::excessive_precision)] // the published digits
pub const TSIT5_ERROR: [f64; 7] = [
    -0.001_780_011_052_225_777_14,
    -0.000_816_434_459_656_746_9,
    0.007_880_878_010_261_995,
    -0.144_711_007_173_262_9,
    0.582_357_165_452_555_2,
    -0.458_082_105_929_186_97,
    1.0 / 66.0,
];

/// Error estimator of Dormand-Prince 5(4), `b - b_hat` over its seven stages (FSAL).
pub const DOPRI5_ERROR: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

/// The fixed-step method a simulation uses. Iterator nets ignore it: they step by their net.
///
/// The first five are explicit Runge-Kutta methods ([`Solver::ALL`]); the last four are implicit
/// single-step methods for stiff dynamics (paper 002), run with a fixed number of Newton
/// iterations ([`crate::SimConfig::newton_iters`]). Variants are only ever appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// Forward Euler.
    Euler,
    /// Heun (explicit trapezoid).
    Heun,
    /// Classical RK4.
    Rk4,
    /// Tsitouras 5, the "rk5" of the CLI.
    Tsit5,
    /// Dormand-Prince 5.
    Dopri5,
    /// Backward (implicit) Euler, order 1, L-stable.
    BackwardEuler,
    /// Implicit trapezoid rule (Crank-Nicolson), order 2, A-stable.
    Trapezoid,
    /// Radau IIA with two stages, order 3, L-stable.
    Radau3,
    /// Radau IIA with three stages, order 5, L-stable.
    Radau5,
}

/// What [`Solver::tableau`] gives for an implicit solver: no stages, so [`rk_step`] leaves the
/// state unchanged. Implicit solvers are run by [`crate::implicit::implicit_step`] with
/// [`Solver::implicit_tableau`].
pub const NO_EXPLICIT_TABLEAU: Tableau = Tableau {
    name: "implicit (no explicit tableau)",
    stages: 0,
    order: 0,
    a: [Z; MAX_STAGES],
    b: Z,
    c: Z,
};

impl Solver {
    /// Every explicit Runge-Kutta solver: the set the trainer differentiates through and the
    /// batched host path runs.
    pub const ALL: [Solver; 5] = [
        Solver::Euler,
        Solver::Heun,
        Solver::Rk4,
        Solver::Tsit5,
        Solver::Dopri5,
    ];

    /// Every implicit solver.
    pub const IMPLICIT: [Solver; 4] = [
        Solver::BackwardEuler,
        Solver::Trapezoid,
        Solver::Radau3,
        Solver::Radau5,
    ];

    /// Every solver, explicit then implicit.
    pub const EVERY: [Solver; 9] = [
        Solver::Euler,
        Solver::Heun,
        Solver::Rk4,
        Solver::Tsit5,
        Solver::Dopri5,
        Solver::BackwardEuler,
        Solver::Trapezoid,
        Solver::Radau3,
        Solver::Radau5,
    ];

    /// Whether the method is implicit (needs Newton iterations and a Jacobian).
    pub const fn is_implicit(self) -> bool {
        matches!(
            self,
            Solver::BackwardEuler | Solver::Trapezoid | Solver::Radau3 | Solver::Radau5
        )
    }

    /// The explicit tableau as published (f64); [`NO_EXPLICIT_TABLEAU`] for implicit solvers
    /// (kept infallible so explicit callers need no change; see [`Solver::explicit_tableau`]).
    pub const fn tableau(self) -> &'static Tableau {
        match self.explicit_tableau() {
            Some(t) => t,
            None => &NO_EXPLICIT_TABLEAU,
        }
    }

    /// The explicit tableau as published (f64), `None` for implicit solvers.
    pub const fn explicit_tableau(self) -> Option<&'static Tableau> {
        Some(match self {
            Solver::Euler => &EULER,
            Solver::Heun => &HEUN,
            Solver::Rk4 => &RK4,
            Solver::Tsit5 => &TSIT5,
            Solver::Dopri5 => &DOPRI5,
            _ => return None,
        })
    }

    /// The implicit tableau as published (f64), `None` for explicit solvers.
    pub const fn implicit_tableau(self) -> Option<&'static ImplicitTableau> {
        Some(match self {
            Solver::BackwardEuler => &implicit::BACKWARD_EULER,
            Solver::Trapezoid => &implicit::TRAPEZOID,
            Solver::Radau3 => &implicit::RADAU_IIA3,
            Solver::Radau5 => &implicit::RADAU_IIA5,
            _ => return None,
        })
    }

    /// The implicit tableau rounded to f32, as the device runs it.
    pub const fn implicit_tableau_f32(self) -> Option<&'static ImplicitTableau<f32>> {
        const T: [ImplicitTableau<f32>; 4] = [
            implicit::BACKWARD_EULER.to_f32(),
            implicit::TRAPEZOID.to_f32(),
            implicit::RADAU_IIA3.to_f32(),
            implicit::RADAU_IIA5.to_f32(),
        ];
        Some(match self {
            Solver::BackwardEuler => &T[0],
            Solver::Trapezoid => &T[1],
            Solver::Radau3 => &T[2],
            Solver::Radau5 => &T[3],
            _ => return None,
        })
    }

    /// The explicit tableau rounded to f32, as the device runs it; `None` for implicit solvers.
    pub const fn explicit_tableau_f32(self) -> Option<&'static Tableau<f32>> {
        const T: [Tableau<f32>; 5] = [
            EULER.to_f32(),
            HEUN.to_f32(),
            RK4.to_f32(),
            TSIT5.to_f32(),
            DOPRI5.to_f32(),
        ];
        Some(match self {
            Solver::Euler => &T[0],
            Solver::Heun => &T[1],
            Solver::Rk4 => &T[2],
            Solver::Tsit5 => &T[3],
            Solver::Dopri5 => &T[4],
            _ => return None,
        })
    }

    /// Stages per step: vector-field evaluations of an explicit step; for an implicit method
    /// the stages of its tableau (each evaluated once per Newton iteration if implicit).
    pub const fn stages(self) -> usize {
        // Read from the tableaux at compile time: a lookup through the tableaux at run time
        // would link every f64 tableau into the firmware's flash (measured: 3.9 KB).
        const S: [usize; 9] = [
            EULER.stages,
            HEUN.stages,
            RK4.stages,
            TSIT5.stages,
            DOPRI5.stages,
            implicit::BACKWARD_EULER.stages,
            implicit::TRAPEZOID.stages,
            implicit::RADAU_IIA3.stages,
            implicit::RADAU_IIA5.stages,
        ];
        S[self as usize]
    }

    /// Classical order.
    pub const fn order(self) -> u8 {
        const O: [u8; 9] = [
            EULER.order,
            HEUN.order,
            RK4.order,
            TSIT5.order,
            DOPRI5.order,
            implicit::BACKWARD_EULER.order,
            implicit::TRAPEZOID.order,
            implicit::RADAU_IIA3.order,
            implicit::RADAU_IIA5.order,
        ];
        O[self as usize]
    }

    /// The CLI name, as [`Solver::from_name`] reads it.
    pub const fn cli_name(self) -> &'static str {
        match self {
            Solver::Euler => "euler",
            Solver::Heun => "heun",
            Solver::Rk4 => "rk4",
            Solver::Tsit5 => "rk5",
            Solver::Dopri5 => "dopri5",
            Solver::BackwardEuler => "backward-euler",
            Solver::Trapezoid => "trapezoid",
            Solver::Radau3 => "radau3",
            Solver::Radau5 => "radau5",
        }
    }

    /// The embedded error estimator of the adaptive 5(4) pairs (seven stages, FSAL).
    pub const fn error_estimator(self) -> Option<&'static [f64; 7]> {
        match self {
            Solver::Tsit5 => Some(&TSIT5_ERROR),
            Solver::Dopri5 => Some(&DOPRI5_ERROR),
            _ => None,
        }
    }

    /// Parses a CLI name (`euler`, `heun`, `rk4`, `rk5`/`tsit5`, `dopri5`, `backward-euler`,
    /// `trapezoid`, `radau3`, `radau5`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "euler" => Solver::Euler,
            "heun" => Solver::Heun,
            "rk4" => Solver::Rk4,
            "rk5" | "tsit5" => Solver::Tsit5,
            "dopri5" => Solver::Dopri5,
            "backward-euler" | "backward_euler" => Solver::BackwardEuler,
            "trapezoid" => Solver::Trapezoid,
            "radau3" => Solver::Radau3,
            "radau5" => Solver::Radau5,
            _ => return None,
        })
    }
}

/// Scalar arithmetic the steppers need; implemented for `f32` (device) and `f64` (reference).
pub trait Real:
    Copy
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self>
    + PartialEq
    + PartialOrd
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Neither infinite nor NaN.
    fn is_finite(self) -> bool;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const EPSILON: Self = f32::EPSILON;
    fn abs(self) -> Self {
        libm::fabsf(self)
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const EPSILON: Self = f64::EPSILON;
    fn abs(self) -> Self {
        libm::fabs(self)
    }
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// One explicit Runge-Kutta step of size `h` from `x` into `out`.
///
/// `k` holds `tab.stages * n` values, `tmp` holds `n`. `f(c, x_stage, dx)` evaluates the vector
/// field at stage node `c` (a fraction of the step, so the caller can interpolate its drive).
/// Zero tableau entries are skipped, so Euler and RK4 cost exactly their textbook operations.
pub fn rk_step<T: Real, E>(
    tab: &Tableau<T>,
    h: T,
    x: &[T],
    k: &mut [T],
    tmp: &mut [T],
    out: &mut [T],
    mut f: impl FnMut(T, &[T], &mut [T]) -> Result<(), E>,
) -> Result<(), E> {
    let n = x.len();
    let stages = tab.stages.min(MAX_STAGES);
    for s in 0..stages {
        let (done, rest) = k.split_at_mut(s * n);
        let Some(ks) = rest.get_mut(..n) else {
            return Ok(());
        };
        tmp.copy_from_slice(x);
        for (j, kj) in done.chunks_exact(n).enumerate() {
            let a = tab.a[s][j];
            if a != T::ZERO {
                let ha = h * a;
                for (t, &kv) in tmp.iter_mut().zip(kj) {
                    *t = *t + ha * kv;
                }
            }
        }
        f(tab.c[s], tmp, ks)?;
    }
    out.copy_from_slice(x);
    for (s, ks) in k.chunks_exact(n).take(stages).enumerate() {
        let b = tab.b[s];
        if b != T::ZERO {
            let hb = h * b;
            for (o, &kv) in out.iter_mut().zip(ks) {
                *o = *o + hb * kv;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `stages` and `order` index by discriminant: they must agree with the tableaux.
    #[test]
    fn stages_and_order_agree_with_the_tableaux() {
        for (k, s) in Solver::EVERY.into_iter().enumerate() {
            assert_eq!(s as usize, k);
            let (stages, order) = match s.implicit_tableau() {
                Some(t) => (t.stages, t.order),
                None => (s.tableau().stages, s.tableau().order),
            };
            assert_eq!((s.stages(), s.order()), (stages, order), "{s:?}");
            assert_eq!(s.is_implicit(), s.implicit_tableau().is_some());
        }
    }

    use super::*;

    #[test]
    fn error_estimators_sum_to_zero() {
        // b and b_hat both sum to one, so their difference sums to zero.
        for e in [TSIT5_ERROR, DOPRI5_ERROR] {
            assert!(e.iter().sum::<f64>().abs() < 1e-12);
        }
    }

    #[test]
    fn tableaux_are_consistent() {
        for s in Solver::ALL {
            let t = s.tableau();
            let sum_b: f64 = t.b.iter().sum();
            assert!((sum_b - 1.0).abs() < 1e-12, "{} weights", t.name);
            for i in 0..t.stages {
                let row: f64 = t.a[i].iter().sum();
                assert!((row - t.c[i]).abs() < 1e-12, "{} row {i}", t.name);
                for j in i..MAX_STAGES {
                    assert_eq!(t.a[i][j], 0.0, "{} is explicit", t.name);
                }
            }
        }
    }
}
