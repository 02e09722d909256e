//! The solvers against independent references: published reference solutions (HIRES,
//! Robertson), exact solutions (linear, Kaps), invariants, self-convergence (van der Pol) and
//! convergence order.

use odeflash_runtime::convergence::{check_orders, explicit_problems, TEST_PROBLEMS};
use odeflash_runtime::Solver;

use super::problems::{Kaps, Linear, Robertson, VanDerPol};
use super::*;

fn opts(rtol: f64, atol: f64) -> Options {
    Options {
        rtol,
        atol,
        ..Options::default()
    }
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| {
            if k + 1 == n {
                b
            } else {
                a + (b - a) * k as f64 / (n - 1) as f64
            }
        })
        .collect()
}

#[test]
fn hires_matches_the_published_reference() {
    let p = problems::Hires;
    let sol = solve_adaptive(
        &p,
        &p.initial(),
        0.0,
        &[HIRES_REFERENCE_T],
        &opts(1e-10, 1e-14),
    )
    .unwrap();
    let y = &sol.y[0];
    let mut worst: f64 = 0.0;
    for (i, (a, r)) in y.iter().zip(HIRES_REFERENCE).enumerate() {
        let rel = ((a - r) / r).abs();
        worst = worst.max(rel);
        assert!(rel <= 1e-6, "y{}: {a} vs {r} (relative {rel:e})", i + 1);
    }
    eprintln!(
        "HIRES rtol 1e-10 atol 1e-14: worst relative error {worst:.2e}, {:?}",
        sol.stats
    );
    // A loose tolerance costs far fewer steps and still gets the digits the data needs.
    let loose = solve_adaptive(
        &p,
        &p.initial(),
        0.0,
        &[HIRES_REFERENCE_T],
        &opts(1e-6, 1e-10),
    )
    .unwrap();
    let worst_loose = loose.y[0]
        .iter()
        .zip(HIRES_REFERENCE)
        .map(|(a, r)| ((a - r) / r).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "HIRES rtol 1e-6 atol 1e-10: worst relative error {worst_loose:.2e}, {:?}",
        loose.stats
    );
    assert!(worst_loose < 1e-3);
    assert!(loose.stats.steps < sol.stats.steps);
}

#[test]
fn hires_training_trajectories_conserve_y7_plus_y8() {
    // y7' + y8' = 0 exactly, so y7 + y8 is an invariant every trajectory must keep.
    let p = problems::Hires;
    let t_out = linspace(0.0, HIRES_REFERENCE_T, 51);
    for (k, y0) in hires_initial_conditions().iter().enumerate() {
        let sol = solve_adaptive(&p, y0, 0.0, &t_out, &opts(1e-8, 1e-12)).unwrap();
        let inv = y0[6] + y0[7];
        for y in &sol.y {
            assert!(y.iter().all(|v| v.is_finite()));
            assert!(
                (y[6] + y[7] - inv).abs() < 1e-9 * inv.max(1e-3),
                "run {}",
                k + 1
            );
        }
    }
}

#[test]
fn robertson_matches_reference_and_conserves_mass() {
    // Reference at t = 40 (Hairer & Wanner II, sec. IV.10 / the Bari test set's Robertson runs):
    // y = (0.7158270687, 9.185534765e-6, 0.2841637457).
    let reference = [0.715_827_068_7, 9.185_534_765e-6, 0.284_163_745_7];
    let p = Robertson;
    let t_out = linspace(0.0, 40.0, 41);
    let sol = solve_adaptive(&p, &p.initial(), 0.0, &t_out, &opts(1e-10, 1e-14)).unwrap();
    let y = sol.y.last().unwrap();
    for i in 0..3 {
        let rel = ((y[i] - reference[i]) / reference[i]).abs();
        assert!(
            rel < 1e-8,
            "y{}: {} vs {} ({rel:e})",
            i + 1,
            y[i],
            reference[i]
        );
    }
    for y in &sol.y {
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    eprintln!("Robertson to t = 40: {:?}", sol.stats);
}

#[test]
fn robertson_to_1e11_matches_the_long_time_reference() {
    // Bari test set reference at t = 1e11, where y2 has fallen to 1e-13: the hard end of the
    // problem, where solvers with poor stiff error control go negative and blow up.
    let reference = [
        0.208_334_014_970_107_1e-7,
        0.833_336_077_033_472_7e-13,
        0.999_999_979_166_505,
    ];
    let p = Robertson;
    let t_out = [0.0, 1e11];
    let sol = solve_adaptive(&p, &p.initial(), 0.0, &t_out, &opts(1e-8, 1e-20)).unwrap();
    let y = &sol.y[1];
    for i in 0..3 {
        let rel = ((y[i] - reference[i]) / reference[i]).abs();
        assert!(
            rel < 1e-5,
            "y{}: {} vs {} ({rel:e})",
            i + 1,
            y[i],
            reference[i]
        );
    }
    eprintln!("Robertson to t = 1e11: {:?}", sol.stats);
}

#[test]
fn linear_and_kaps_match_their_exact_solutions_between_steps_too() {
    // Many outputs per step: the dense output, not only the step ends, must be accurate.
    let lin = Linear::default();
    let t_out = linspace(0.0, 4.0, 401);
    let sol = solve_adaptive(&lin, &lin.initial(), 0.0, &t_out, &opts(1e-8, 1e-10)).unwrap();
    assert!(sol.stats.steps < 200, "{:?}", sol.stats);
    for (t, y) in sol.t.iter().zip(&sol.y) {
        let e = lin.exact(*t);
        assert!(
            (y[0] - e).abs() < 1e-6 * e.abs().max(1e-3),
            "t = {t}: {} vs {e}",
            y[0]
        );
    }

    let kaps = Kaps { mu: 1e6 };
    let t_out = linspace(0.0, 5.0, 101);
    let sol = solve_adaptive(&kaps, &[1.0, 1.0], 0.0, &t_out, &opts(1e-8, 1e-12)).unwrap();
    for (t, y) in sol.t.iter().zip(&sol.y) {
        let e = Kaps::exact(*t);
        for i in 0..2 {
            assert!(
                (y[i] - e[i]).abs() < 1e-6 * e[i],
                "t = {t}, y{}: {} vs {}",
                i + 1,
                y[i],
                e[i]
            );
        }
    }
    eprintln!("Kaps mu = 1e6: {:?}", sol.stats);
}

#[test]
fn van_der_pol_self_converges_in_few_steps_where_rk4_needs_millions() {
    let p = VanDerPol::default();
    let t_out = linspace(0.0, 3000.0, 31);
    let coarse = solve_adaptive(&p, &p.initial(), 0.0, &t_out, &opts(1e-6, 1e-6)).unwrap();
    let fine = solve_adaptive(&p, &p.initial(), 0.0, &t_out, &opts(1e-11, 1e-11)).unwrap();
    let finer = solve_adaptive(&p, &p.initial(), 0.0, &t_out, &opts(1e-12, 1e-12)).unwrap();
    let diff = |a: &Solution, b: &Solution| {
        a.y.iter()
            .zip(&b.y)
            .map(|(u, v)| (u[0] - v[0]).abs())
            .fold(0.0, f64::max)
    };
    let (e_coarse, e_fine) = (diff(&coarse, &finer), diff(&fine, &finer));
    eprintln!(
        "vdp mu=1000 to t=3000: rtol 1e-6 {:?}, max |dy1| {e_coarse:.1e}; rtol 1e-11 {:?}, {e_fine:.1e}",
        coarse.stats, fine.stats
    );
    assert!(e_fine < 1e-6, "{e_fine}");
    assert!(e_coarse < 1e-2, "{e_coarse}");
    assert!(coarse.stats.steps < 2_000, "{:?}", coarse.stats);

    // RK4 must keep h |λ| inside its stability interval (|λ| up to 3000 here): at a step ten
    // times below the average Radau5 step it still explodes.
    let avg = 3000.0 / coarse.stats.steps as f64;
    let err = solve_fixed(
        &p,
        FixedMethod::Explicit(Solver::Rk4),
        &p.initial(),
        0.0,
        &[3000.0],
        avg / 10.0,
    )
    .unwrap_err();
    assert!(matches!(err, StiffError::NonFinite { .. }), "{err}");
    // Over the first slow branch (to t = 300) RK4 at 5e-4 (600 000 steps) agrees with Radau5.
    let rk4 = solve_fixed(
        &p,
        FixedMethod::Explicit(Solver::Rk4),
        &p.initial(),
        0.0,
        &[300.0],
        5e-4,
    )
    .unwrap();
    let radau = solve_adaptive(&p, &p.initial(), 0.0, &[300.0], &opts(1e-10, 1e-10)).unwrap();
    assert!((rk4.y[0][0] - radau.y[0][0]).abs() < 1e-8);
    assert!(
        rk4.stats.steps > 1000 * radau.stats.steps,
        "{} vs {}",
        rk4.stats.steps,
        radau.stats.steps
    );
}

#[test]
fn fixed_step_methods_converge_at_their_order() {
    // Steps h and h/2 over [0, 1] on the workspace's test problems: the implicit methods on all
    // of them (Kaps' among them, mildly stiff), the explicit ones on `explicit_problems`.
    let cases = [
        ("backward-euler", 0.01),
        ("trapezoid", 0.01),
        ("radau3", 0.02),
        ("radau5-fixed", 0.1),
        ("euler", 0.025),
        ("heun", 0.025),
        ("rk4", 0.025),
        ("tsit5", 0.05),
        ("dopri5", 0.05),
    ];
    for (name, h) in cases {
        let m = FixedMethod::from_name(name).unwrap();
        let order = m.order() as f64;
        let problems: Vec<_> = match m {
            FixedMethod::Explicit(_) => explicit_problems(m.order()).collect(),
            _ => TEST_PROBLEMS.iter().collect(),
        };
        let n = (1.0f64 / h).round() as usize;
        check_orders(name, order, 0.25, problems, &[n, 2 * n], |p, steps| {
            let s = solve_fixed(p, m, p.y0, 0.0, &[p.t_end], p.t_end / steps as f64).unwrap();
            p.error(p.t_end, &s.y[0])
        });
    }
}

#[test]
fn implicit_methods_stay_stable_where_explicit_euler_explodes() {
    // h λ = 100: far outside explicit Euler's stability region.
    let lin = Linear::default();
    let t_out = linspace(0.0, 4.0, 41);
    // Each explicit Euler step multiplies the transient by 1 - 100 = -99.
    let euler = solve_fixed(
        &lin,
        FixedMethod::Explicit(Solver::Euler),
        &[0.0],
        0.0,
        &t_out,
        0.1,
    )
    .unwrap();
    assert!(euler.y[40][0].abs() > 1e70, "{}", euler.y[40][0]);
    for name in ["backward-euler", "radau3", "radau5-fixed"] {
        let m = FixedMethod::from_name(name).unwrap();
        let s = solve_fixed(&lin, m, &[0.0], 0.0, &t_out, 0.1).unwrap();
        // L-stable: the transient is damped away in one step; what remains is the method's
        // error on the slow e^(-t) part.
        let worst = s.t[1..]
            .iter()
            .zip(&s.y[1..])
            .map(|(t, y)| (y[0] - lin.exact(*t)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 0.1, "{name}: {worst}");
    }
    // The trapezoid rule is A- but not L-stable: the transient's factor is (1 - 50)/(1 + 50)
    // per step, an oscillation that decays only slowly.
    let s = solve_fixed(
        &lin,
        FixedMethod::from_name("trapezoid").unwrap(),
        &[0.0],
        0.0,
        &t_out,
        0.1,
    )
    .unwrap();
    let e1 = s.y[1][0] - lin.exact(0.1);
    let e2 = s.y[2][0] - lin.exact(0.2);
    assert!(e1 * e2 < 0.0 && e2.abs() > 0.5 * e1.abs(), "{e1} {e2}");
}

/// `y' = y^2`: blows up at `t = 1` from `y(0) = 1`; Jacobian left to the default differences.
struct Blowup;

impl OdeSystem for Blowup {
    fn dim(&self) -> usize {
        1
    }
    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = y[0] * y[0];
    }
}

#[test]
fn failures_are_typed_errors() {
    let err = solve_adaptive(&Blowup, &[1.0], 0.0, &[2.0], &Options::default()).unwrap_err();
    match err {
        StiffError::StepSizeUnderflow { t, .. } | StiffError::NonFinite { t } => {
            assert!((t - 1.0).abs() < 1e-3, "{err}")
        }
        other => panic!("{other}"),
    }
    // Backward Euler from y = 1 with h = 2: y1 = 1 + 2 y1^2 has no real root.
    let err = solve_fixed(
        &Blowup,
        FixedMethod::from_name("backward-euler").unwrap(),
        &[1.0],
        0.0,
        &[2.0],
        2.0,
    )
    .unwrap_err();
    assert!(matches!(err, StiffError::NewtonFailure { .. }), "{err}");
    let p = problems::Hires;
    let few = Options {
        max_steps: 5,
        ..Options::default()
    };
    let err = solve_adaptive(&p, &p.initial(), 0.0, &[321.8122], &few).unwrap_err();
    assert!(
        matches!(err, StiffError::TooManySteps { max_steps: 5, .. }),
        "{err}"
    );
    for bad in [opts(0.0, 1e-6), opts(1e-6, -1.0), opts(f64::NAN, 1e-6)] {
        let err = solve_adaptive(&p, &p.initial(), 0.0, &[1.0], &bad).unwrap_err();
        assert!(matches!(err, StiffError::InvalidInput(_)), "{err}");
    }
    let err = solve_adaptive(&p, &[1.0], 0.0, &[1.0], &Options::default()).unwrap_err();
    assert!(err.to_string().contains("8 states"), "{err}");
    let err = solve_adaptive(&p, &p.initial(), 0.0, &[2.0, 1.0], &Options::default()).unwrap_err();
    assert!(matches!(err, StiffError::InvalidInput(_)), "{err}");
    let err = solve_fixed(
        &p,
        FixedMethod::from_name("rk4").unwrap(),
        &p.initial(),
        0.0,
        &[1.0],
        0.0,
    )
    .unwrap_err();
    assert!(matches!(err, StiffError::InvalidInput(_)), "{err}");
}

#[test]
fn output_at_the_start_is_the_initial_state_and_the_last_row_is_exact() {
    let p = problems::Hires;
    let y0 = p.initial();
    let t_out = [0.0, 0.0, 1.0, 5.0];
    let sol = solve_adaptive(&p, &y0, 0.0, &t_out, &Options::default()).unwrap();
    assert_eq!(sol.y[0], y0);
    assert_eq!(sol.y[1], y0);
    // Stopping at 1.0 instead of 5.0 lands on 1.0 exactly: same value as the dense output of the
    // longer run, to the tolerance.
    let short = solve_adaptive(&p, &y0, 0.0, &[1.0], &Options::default()).unwrap();
    for (a, b) in short.y[0].iter().zip(&sol.y[2]) {
        assert!((a - b).abs() < 1e-6 * a.abs().max(1e-6));
    }
}
