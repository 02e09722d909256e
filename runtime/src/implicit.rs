//! Implicit single-step methods for stiff dynamics: their Butcher tableaux, in one place.
//!
//! The trainer (Newton + implicit-function-theorem gradients, adaptive Radau5) and the runtime's
//! fixed-Newton device steps both read these constants, so a model trained with a method runs on
//! the device with exactly the same coefficients. Values from Hairer & Wanner, *Solving Ordinary
//! Differential Equations II*, sec. IV.5 (Radau IIA) and the trapezoid rule written as the
//! two-stage Lobatto IIIA method (its first stage is explicit: `Y1 = y0`).

/// Most stages of any implicit tableau here (Radau IIA order 5).
pub const MAX_IMPLICIT_STAGES: usize = 3;

/// A fully implicit Butcher tableau: stage equations `Y_i = y0 + h Σ_j a[i][j] f(Y_j)`, solution
/// `y1 = y0 + h Σ_j b[j] f(Y_j)`. Every method here is stiffly accurate except the trapezoid
/// rule, whose last row of `a` is `b` as well, so `y1` is the last stage in all four.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImplicitTableau {
    /// Name as in the literature.
    pub name: &'static str,
    /// Number of stages.
    pub stages: usize,
    /// Classical order of the solution.
    pub order: u8,
    /// Stage coefficients.
    pub a: [[f64; MAX_IMPLICIT_STAGES]; MAX_IMPLICIT_STAGES],
    /// Weights.
    pub b: [f64; MAX_IMPLICIT_STAGES],
    /// Nodes: stage `i` is at `t + c[i] h`.
    pub c: [f64; MAX_IMPLICIT_STAGES],
    /// Index of the first stage that is implicit (1 for the trapezoid rule, whose first stage is
    /// the step start, 0 otherwise).
    pub first_implicit: usize,
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
