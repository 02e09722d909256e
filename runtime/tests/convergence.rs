//! Every solver against problems with exact solutions: the observed order of convergence must
//! match the tableau's order. Run in f64 through the same generic stepper the device uses in f32,
//! so a 5th-order method's error is not drowned by f32 rounding; then once more in f32 through
//! the whole simulator, where orders 1 and 2 are still visible.

use odeflash_runtime::convergence::{check_orders, explicit_problems, TestProblem};
use odeflash_runtime::solver::rk_step;
use odeflash_runtime::spec::{BoundSpec, DynamicsSpec, MlpSpec, ModelSpec, ReadoutSpec};
use odeflash_runtime::{Activation, SimConfig, Simulator, Solver};

fn integrate(solver: Solver, p: &TestProblem, t_end: f64, steps: usize) -> f64 {
    let n = p.y0.len();
    let tab = solver.tableau();
    let h = t_end / steps as f64;
    let mut x = p.y0.to_vec();
    let mut k = vec![0.0; tab.stages * n];
    let (mut tmp, mut out) = (vec![0.0; n], vec![0.0; n]);
    // Maximum error over the grid: a final-time error alone can vanish by coincidence.
    let mut worst = 0.0f64;
    for s in 0..steps {
        let t0 = s as f64 * h;
        rk_step::<f64, ()>(tab, h, &x, &mut k, &mut tmp, &mut out, |c, xs, dx| {
            (p.f)(t0 + c * h, xs, dx);
            Ok(())
        })
        .unwrap();
        x.copy_from_slice(&out);
        worst = worst.max(p.error(t0 + h, &x));
    }
    worst
}

#[test]
fn observed_order_matches_tableau_f64() {
    for solver in Solver::ALL {
        let order = solver.tableau().order as f64;
        // Coarse enough that a 5th-order error stays far above f64 rounding; Tsit5 is still
        // slightly pre-asymptotic there (its leading error term is minimised), hence 0.4.
        let problems = explicit_problems(solver.tableau().order);
        check_orders(
            solver.cli_name(),
            order,
            0.4,
            problems,
            &[8, 16, 32, 64],
            |p, n| integrate(solver, p, p.t_end, n),
        );
    }
}

/// `dx/dt = -x + u` with `u(t) = t`: one identity layer, so the runtime's whole path (MLP, drive
/// interpolation, sub-steps) is exercised. Exact solution `x = t - 1 + (x0 + 1) e^-t`; linear
/// drive interpolation is exact for a linear drive.
fn linear_model() -> ModelSpec {
    let f = MlpSpec::dense(2, &[(1, Activation::Identity)], |_, k| match k {
        0 => -1.0, // weight on x
        1 => 1.0,  // weight on u
        _ => 0.0,  // bias
    });
    ModelSpec {
        format_version: 1,
        name: "linear".into(),
        dynamics: DynamicsSpec::Ode { f },
        readout: ReadoutSpec::None,
        circuit: None,
        x0: vec![0.5],
        bounds: vec![BoundSpec::default()],
    }
}

fn sim_error(solver: Solver, samples: usize, substeps: u16) -> f64 {
    let blob = linear_model().encode(odeflash_runtime::spec::Quant::F32);
    let model = blob.model().unwrap();
    let t_end = 1.0f64;
    let dt = t_end / samples as f64;
    let vs: Vec<f32> = (0..=samples).map(|k| (k as f64 * dt) as f32).collect();
    let mut scratch = vec![0.0f32; model.cost(solver, substeps).scratch_f32];
    let cfg = SimConfig {
        dt: dt as f32,
        solver,
        substeps,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let mut sim = Simulator::new(&model, cfg, &mut scratch).unwrap();
    let n = vs.len();
    let (mut v, mut i, mut x) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    sim.run(&vs, &mut v, &mut i, &mut x).unwrap();
    let exact = t_end - 1.0 + 1.5 * (-t_end).exp();
    (x[n - 1] as f64 - exact).abs()
}

#[test]
fn simulator_f32_orders_one_and_two() {
    for (solver, order) in [(Solver::Euler, 1.0), (Solver::Heun, 2.0)] {
        let e1 = sim_error(solver, 32, 1);
        let e2 = sim_error(solver, 64, 1);
        let observed = (e1 / e2).log2();
        assert!(
            (observed - order).abs() < 0.25,
            "{solver:?}: observed {observed} ({e1}, {e2})"
        );
    }
}

#[test]
fn simulator_f32_high_order_reaches_rounding_level() {
    for solver in [Solver::Rk4, Solver::Tsit5, Solver::Dopri5] {
        let e = sim_error(solver, 100, 1);
        assert!(e < 2e-6, "{solver:?}: error {e}");
    }
}

#[test]
fn substeps_equal_a_finer_sample_grid() {
    // Two Euler sub-steps per sample follow the same arithmetic as twice the samples, up to the
    // rounding of the interpolated drive.
    let coarse = sim_error(Solver::Euler, 50, 2);
    let fine = sim_error(Solver::Euler, 100, 1);
    assert!((coarse - fine).abs() < 1e-6, "{coarse} vs {fine}");
}
