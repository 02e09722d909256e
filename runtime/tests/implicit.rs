//! Implicit solvers and the Π-net vector field: convergence order, stiff stability, the Newton
//! Jacobian against finite differences, the Π-net against its expanded polynomial, the device
//! simulator against the f64 generic step, and typed errors for singular Newton systems.

use std::collections::HashMap;

use odeflash_runtime::implicit::{
    implicit_scratch_len, implicit_step, solve_augmented, ImplicitTableau, NewtonFailure,
    BACKWARD_EULER, RADAU_IIA3, RADAU_IIA5, TRAPEZOID,
};
use odeflash_runtime::sim::{field, field_jacobian};
use odeflash_runtime::solver::{rk_step, RK4};
use odeflash_runtime::spec::examples::{self, random_mlp};
use odeflash_runtime::spec::{
    BoundSpec, DynamicsSpec, LayerSpec, ModelSpec, PiNetSpec, Quant, ReadoutSpec,
};
use odeflash_runtime::{Activation, Dynamics, Model, SimConfig, SimError, Simulator, Solver};

const METHODS: [(&ImplicitTableau, Solver); 4] = [
    (&BACKWARD_EULER, Solver::BackwardEuler),
    (&TRAPEZOID, Solver::Trapezoid),
    (&RADAU_IIA3, Solver::Radau3),
    (&RADAU_IIA5, Solver::Radau5),
];

/// Integrates `y' = f(t, y)` from `y0` over `[0, t_end]` in `steps` implicit steps (f64).
fn integrate(
    tab: &ImplicitTableau,
    iters: u8,
    y0: &[f64],
    t_end: f64,
    steps: usize,
    f: impl Fn(f64, &[f64], &mut [f64], Option<&mut [f64]>),
) -> Result<Vec<f64>, NewtonFailure> {
    let n = y0.len();
    let h = t_end / steps as f64;
    let mut y = y0.to_vec();
    let mut next = vec![0.0; n];
    let mut scratch = vec![0.0; implicit_scratch_len(n, tab.stages, tab.implicit_stages())];
    for k in 0..steps {
        let t0 = k as f64 * h;
        implicit_step::<f64, NewtonFailure>(
            tab,
            h,
            iters,
            &y,
            &mut scratch,
            &mut next,
            |c, ys, dy, jac| {
                f(t0 + c * h, ys, dy, jac);
                Ok(())
            },
        )?;
        y.copy_from_slice(&next);
    }
    Ok(y)
}

use odeflash_runtime::convergence::{check_orders, TEST_PROBLEMS};

#[test]
fn convergence_order_of_each_implicit_method_in_f64() {
    for (tab, _) in METHODS {
        // Radau IIA 5 reaches rounding level early; coarser grids keep its errors measurable.
        let steps: &[usize] = if tab.order == 5 {
            &[4, 6, 8, 12, 16]
        } else {
            &[10, 20, 40, 80, 160]
        };
        check_orders(
            tab.name,
            tab.order as f64,
            0.2,
            &TEST_PROBLEMS,
            steps,
            |p, n| {
                let y = integrate(tab, 8, p.y0, p.t_end, n, |t, y, dy, jac| {
                    p.eval(t, y, dy, jac)
                })
                .unwrap();
                p.error(p.t_end, &y)
            },
        );
    }
}

#[test]
fn default_newton_iterations_keep_the_order() {
    // With the device's default iteration count the Newton error must stay below the method's.
    let t_end: f64 = 1.0;
    let p = TEST_PROBLEMS
        .iter()
        .find(|p| p.name == "coupled nonlinear")
        .expect("in the set");
    let nonlinear =
        |t: f64, y: &[f64], dy: &mut [f64], jac: Option<&mut [f64]>| p.eval(t, y, dy, jac);
    for (tab, _) in METHODS {
        for n in [8usize, 32] {
            let converged = integrate(tab, 12, &[1.0, 1.0], t_end, n, nonlinear).unwrap();
            let fixed = integrate(
                tab,
                SimConfig::DEFAULT_NEWTON_ITERS,
                &[1.0, 1.0],
                t_end,
                n,
                nonlinear,
            )
            .unwrap();
            let exact = [1.0 / (1.0 + t_end), (-t_end).exp() + t_end.sin()];
            let method_err = (converged[0] - exact[0])
                .abs()
                .max((converged[1] - exact[1]).abs());
            let newton_err = (converged[0] - fixed[0])
                .abs()
                .max((converged[1] - fixed[1]).abs());
            assert!(
                newton_err <= 1e-3 * method_err + 1e-15,
                "{} n={n}: Newton {newton_err:e} vs method {method_err:e}",
                tab.name
            );
        }
    }
}

/// Paper 002's stiff van der Pol (mu = 1000) over most of a period (t in [0, 2000], the first
/// relaxation jump included) at h = 1e-3: how many full Newton iterations each step needs from a
/// zero start to agree with 30 iterations within 1e-7, the basis of
/// `SimConfig::DEFAULT_NEWTON_ITERS`. Two million steps, so run on demand (`--ignored`, in
/// release: about a minute).
#[test]
#[ignore]
fn stiff_van_der_pol_newton_iterations_needed() {
    let mu = 1000.0;
    let vdp = |y: &[f64], dy: &mut [f64], jac: Option<&mut [f64]>| {
        dy[0] = y[1];
        dy[1] = mu * (1.0 - y[0] * y[0]) * y[1] - y[0];
        if let Some(j) = jac {
            j[0] = 0.0;
            j[1] = 1.0;
            j[2] = -2.0 * mu * y[0] * y[1] - 1.0;
            j[3] = mu * (1.0 - y[0] * y[0]);
        }
    };
    let h = 1e-3;
    for (tab, _) in METHODS {
        let mut y = vec![2.0, 0.0];
        let (mut reference, mut trial) = (vec![0.0; 2], vec![0.0; 2]);
        let mut scratch = vec![0.0; implicit_scratch_len(2, tab.stages, tab.implicit_stages())];
        // hist[k - 1]: steps that need k iterations; the last bin is "more than 8".
        let mut hist = [0usize; 9];
        for _ in 0..(2000.0 / h) as usize {
            let mut step = |k: u8, out: &mut [f64]| {
                implicit_step::<f64, NewtonFailure>(
                    tab,
                    h,
                    k,
                    &y,
                    &mut scratch,
                    out,
                    |_, ys, dy, j| {
                        vdp(ys, dy, j);
                        Ok(())
                    },
                )
                .is_ok()
            };
            step(30, &mut reference);
            let scale = reference[0].abs().max(reference[1].abs());
            let need = (1..=8u8)
                .find(|&k| {
                    step(k, &mut trial)
                        && (trial[0] - reference[0])
                            .abs()
                            .max((trial[1] - reference[1]).abs())
                            < 1e-7 * scale
                })
                .map_or(9, |k| k as usize);
            hist[need - 1] += 1;
            y.copy_from_slice(&reference);
        }
        println!("{}: steps needing 1..8, >8 iterations: {hist:?}", tab.name);
        if tab.order >= 3 {
            let beyond: usize = hist[SimConfig::DEFAULT_NEWTON_ITERS as usize..]
                .iter()
                .sum();
            assert_eq!(beyond, 0, "{}: {hist:?}", tab.name);
        }
    }
}

/// `y' = λ (y - cos t) - sin t`, `y(0) = 1`: the solution is `cos t` for every λ.
fn stiff_linear(lambda: f64) -> impl Fn(f64, &[f64], &mut [f64], Option<&mut [f64]>) {
    move |t, y, dy, jac| {
        dy[0] = lambda * (y[0] - t.cos()) - t.sin();
        if let Some(j) = jac {
            j[0] = lambda;
        }
    }
}

#[test]
fn stiff_linear_problem_stays_accurate_where_rk4_diverges() {
    let (lambda, h, steps) = (-1e4, 0.05, 40);
    let t_end = h * steps as f64;
    for (tab, _) in METHODS {
        let y = integrate(
            tab,
            SimConfig::DEFAULT_NEWTON_ITERS,
            &[1.0],
            t_end,
            steps,
            stiff_linear(lambda),
        )
        .unwrap();
        let err = (y[0] - t_end.cos()).abs();
        println!(
            "{}: error {err:.2e} at h = {h}, h λ = {}",
            tab.name,
            h * lambda
        );
        assert!(err < 1e-4, "{}: error {err}", tab.name);
    }
    // RK4's stability region ends at h λ ≈ -2.79; here h λ = -500.
    let f = stiff_linear(lambda);
    let mut y = vec![1.0f64];
    let (mut k, mut tmp, mut next) = (vec![0.0; 4], vec![0.0; 1], vec![0.0; 1]);
    for s in 0..steps {
        let t0 = s as f64 * h;
        rk_step::<f64, ()>(&RK4, h, &y, &mut k, &mut tmp, &mut next, |c, ys, dy| {
            f(t0 + c * h, ys, dy, None);
            Ok(())
        })
        .unwrap();
        y.copy_from_slice(&next);
    }
    assert!(
        !y[0].is_finite() || (y[0] - t_end.cos()).abs() > 1e10,
        "RK4 should diverge, got {}",
        y[0]
    );
}

/// A degree-1 Π-net with `dx/dt = λ (x - u)`: `U = [1, -1]`, `C = λ`.
fn linear_poly(lambda: f32, dt_lower: Option<f32>) -> ModelSpec {
    ModelSpec {
        format_version: 1,
        name: "linear-poly".into(),
        dynamics: DynamicsSpec::PolyOde {
            net: PiNetSpec {
                inputs: 2,
                width: 1,
                outputs: 1,
                u: vec![LayerSpec {
                    inputs: 2,
                    outputs: 1,
                    activation: Activation::Identity,
                    weights: vec![1.0, -1.0],
                    bias: vec![0.0],
                    int8_scales: None,
                }],
                c: LayerSpec {
                    inputs: 1,
                    outputs: 1,
                    activation: Activation::Identity,
                    weights: vec![lambda],
                    bias: vec![0.0],
                    int8_scales: None,
                },
            },
        },
        readout: ReadoutSpec::None,
        circuit: None,
        x0: vec![1.0],
        bounds: vec![BoundSpec {
            lower: dt_lower,
            upper: None,
        }],
    }
}

#[test]
fn stiff_model_on_the_device_path_tracks_its_drive() {
    // x' = -1e4 (x - u), u = cos t sampled every 50 ms: x follows u within |u'| / |λ| plus the
    // drive's linear interpolation. RK4 at h λ = -500 blows up.
    let blob = linear_poly(-1e4, None).encode(Quant::F32);
    let model = blob.model().unwrap();
    let dt = 0.05f32;
    let vs: Vec<f32> = (0..40).map(|k| (k as f32 * dt).cos()).collect();
    for solver in [Solver::BackwardEuler, Solver::Radau3, Solver::Radau5] {
        let cfg = SimConfig::new(dt, solver, 1);
        let mut scratch = vec![0.0f32; model.cost_for(&cfg).scratch_f32];
        let mut sim = Simulator::new(&model, cfg, &mut scratch).unwrap();
        let n = vs.len();
        let (mut v, mut i, mut x) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        sim.run(&vs, &mut v, &mut i, &mut x).unwrap();
        let worst = x
            .iter()
            .zip(&vs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{solver:?}: worst {worst}");
    }
    let cfg = SimConfig::new(dt, Solver::Rk4, 1);
    let mut scratch = vec![0.0f32; model.cost_for(&cfg).scratch_f32];
    let mut sim = Simulator::new(&model, cfg, &mut scratch).unwrap();
    let mut failed = false;
    let mut last = 0.0f32;
    for k in 1..vs.len() {
        match sim.step(vs[k - 1], vs[k]) {
            Ok(_) => last = sim.state()[0],
            Err(SimError::NonFiniteState { .. }) => {
                failed = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        failed || last.abs() > 1e6,
        "RK4 should blow up, ended at {last}"
    );
}

#[test]
fn singular_newton_matrix_is_a_typed_error() {
    // x' = 2 x (U = [1, 0], C = 2) with backward Euler at h = 0.5: I - h J = 1 - 0.5 * 2 = 0.
    let mut spec = linear_poly(2.0, None);
    if let DynamicsSpec::PolyOde { net } = &mut spec.dynamics {
        net.u[0].weights = vec![1.0, 0.0];
    }
    let blob = spec.encode(Quant::F32);
    let model = blob.model().unwrap();
    let cfg = SimConfig::new(0.5, Solver::BackwardEuler, 1);
    let mut scratch = vec![0.0f32; model.cost_for(&cfg).scratch_f32];
    let mut sim = Simulator::new(&model, cfg, &mut scratch).unwrap();
    assert_eq!(
        sim.step(0.0, 0.0),
        Err(SimError::NewtonFailed {
            step: 0,
            reason: NewtonFailure::Singular
        })
    );
    // The same system by hand, and a non-finite one.
    let mut m = [0.0f64, 1.0];
    assert_eq!(solve_augmented(&mut m, 1), Err(NewtonFailure::Singular));
    let mut m = [1.0f64, 2.0, 1.0, 2.0, 4.0, 1.0];
    assert_eq!(solve_augmented(&mut m, 2), Err(NewtonFailure::Singular));
    let mut m = [1.0f64, f64::NAN, 0.0, 1.0, 1.0, 1.0];
    assert_eq!(solve_augmented(&mut m, 2), Err(NewtonFailure::NonFinite));
    // A well-posed one needing a row swap: [[0, 1], [2, 1]] u = [3, 5] gives u = [1, 3].
    let mut m = [0.0f64, 1.0, 3.0, 2.0, 1.0, 5.0];
    solve_augmented(&mut m, 2).unwrap();
    assert_eq!((m[2], m[5]), (1.0, 3.0));
    // Newton iterations out of range are refused up front.
    let cfg = SimConfig {
        newton_iters: 0,
        ..SimConfig::new(0.5, Solver::Radau3, 1)
    };
    assert!(matches!(
        Simulator::new(&model, cfg, &mut scratch),
        Err(SimError::InvalidConfig { .. })
    ));
}

/// Models of every kind the implicit solvers can meet, int8 included.
fn jacobian_models() -> Vec<(&'static str, ModelSpec, Quant)> {
    let mut ode = examples::dual_nn_memode(&[6], 4, 2, 9);
    ode.name = "neural-ode".into();
    ode.readout = ReadoutSpec::None;
    ode.circuit = None;
    if let DynamicsSpec::Ode { f } = &mut ode.dynamics {
        *f = random_mlp(
            3,
            &[
                (8, Activation::Elu { alpha: 1.0 }),
                (8, Activation::Sin),
                (8, Activation::Softplus),
                (8, Activation::Tanh),
                (8, Activation::Sigmoid),
                (8, Activation::LeakyRelu { slope: 0.1 }),
                (2, Activation::Identity),
            ],
            5,
        );
        f.input_offset = vec![0.1, -0.2, 0.0];
        f.input_scale = vec![2.0, 0.5, 1.5];
        f.output_scale = vec![3.0, 0.5];
        f.output_offset = vec![0.0, -0.5];
    }
    vec![
        (
            "single-nn",
            examples::single_nn_memode(&[8, 8], 7),
            Quant::F32,
        ),
        (
            "single-nn int8",
            examples::single_nn_memode(&[8, 8], 7),
            Quant::Int8,
        ),
        (
            "dual-nn",
            examples::dual_nn_memode(&[6, 6], 5, 3, 3),
            Quant::F32,
        ),
        ("neural-ode", ode, Quant::F32),
        ("poly-ode", examples::poly_ode(3, 4, 8, 5.0, 2), Quant::F32),
        (
            "poly-ode int8",
            examples::poly_ode(3, 4, 8, 5.0, 2),
            Quant::Int8,
        ),
        // Narrower than its state count.
        (
            "poly-ode narrow",
            examples::poly_ode(3, 3, 2, 5.0, 4),
            Quant::F32,
        ),
    ]
}

#[test]
fn jacobian_by_forward_tangents_matches_central_differences() {
    for (name, spec, quant) in jacobian_models() {
        let blob = spec.encode(quant);
        let model = blob.model().unwrap();
        let n = model.n_states();
        let w = model.max_width();
        let (mut a, mut b) = (vec![0.0f32; w], vec![0.0f32; w]);
        let mut work = vec![0.0f32; model.jacobian_work_len()];
        let mut jfull = vec![0.0f32; n * (n + 1)];
        let mut rng = examples::Rng::new(17);
        let mut worst = 0.0f64;
        for _ in 0..20 {
            let x: Vec<f32> = (0..n).map(|_| 0.8 * rng.next_f32()).collect();
            let x: Vec<f32> = if matches!(spec.readout, ReadoutSpec::Linear { .. }) {
                x.iter().map(|v| 0.5 + 0.5 * v).collect()
            } else {
                x
            };
            let vs = 0.9 * rng.next_f32();
            let (mut f0, mut f1) = (vec![0.0f32; n], vec![0.0f32; n]);
            let mut jac = vec![0.0f32; n * n];
            field_jacobian(
                &model, &mut a, &mut b, &mut work, &mut jfull, &x, vs, &mut f0, &mut jac,
            );
            // The value is the plain evaluation's, bit for bit.
            field(&model, &mut a, &mut b, &x, vs, &mut f1);
            assert_eq!(f0, f1, "{name}");
            // Central differences of the f32 field with step d: truncation d^2 |f'''| / 6
            // (about 1e-7 here) plus rounding eps |f| / d (about 1e-4 |f|): a tolerance of
            // 2e-3 (1 + |f| + |J|) is far above both and far below any wrong term.
            let d = 1e-3f32;
            let scale = 1.0 + f0.iter().chain(&jac).fold(0.0f32, |m, v| m.max(v.abs())) as f64;
            for q in 0..n {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[q] += d;
                xm[q] -= d;
                let (mut fp, mut fm) = (vec![0.0f32; n], vec![0.0f32; n]);
                field(&model, &mut a, &mut b, &xp, vs, &mut fp);
                field(&model, &mut a, &mut b, &xm, vs, &mut fm);
                for p in 0..n {
                    let fd = (fp[p] as f64 - fm[p] as f64) / (xp[q] as f64 - xm[q] as f64);
                    let err = (jac[p * n + q] as f64 - fd).abs() / scale;
                    worst = worst.max(err);
                    assert!(
                        err < 2e-3,
                        "{name} d f{p}/d x{q}: {} vs {fd}",
                        jac[p * n + q]
                    );
                }
            }
        }
        println!("{name}: worst scaled Jacobian error {worst:.1e}");
    }
}

/// A polynomial as monomial exponents -> coefficient, in f64.
type Poly = HashMap<Vec<u8>, f64>;

fn poly_mul(a: &Poly, b: &Poly) -> Poly {
    let mut out = Poly::new();
    for (ea, ca) in a {
        for (eb, cb) in b {
            let e: Vec<u8> = ea.iter().zip(eb).map(|(x, y)| x + y).collect();
            *out.entry(e).or_insert(0.0) += ca * cb;
        }
    }
    out
}

/// `Σ_i w_i z_i + bias` as a polynomial in `n` variables.
fn affine(w: &[f32], bias: f32, n: usize) -> Poly {
    let mut p = Poly::new();
    p.insert(vec![0; n], bias as f64);
    for (i, &wi) in w.iter().enumerate() {
        let mut e = vec![0; n];
        e[i] = 1;
        p.insert(e, wi as f64);
    }
    p
}

#[test]
fn pi_net_equals_its_expanded_polynomial() {
    // h_D = (U_1 z + a_1) ∘ Π_{k>=2} (U_k z + a_k + 1), expanded into monomials in f64, then
    // evaluated at random points: an independent route to the same polynomial.
    for (degree, quant) in [
        (1, Quant::F32),
        (2, Quant::F32),
        (3, Quant::F32),
        (4, Quant::Int8),
    ] {
        let spec = examples::poly_ode(2, degree, 5, 3.0, 40 + degree as u64);
        let blob = spec.encode(quant);
        let model = blob.model().unwrap();
        // The weights the blob holds (dequantized for int8).
        let back = ModelSpec::from_model(&model);
        let DynamicsSpec::PolyOde { net } = &back.dynamics else {
            panic!("not a Π-net");
        };
        let nz = net.inputs;
        let mut outputs: Vec<Poly> = Vec::new();
        let neurons: Vec<Poly> = (0..net.width)
            .map(|k| {
                let row = |l: &LayerSpec| affine(&l.weights[k * nz..(k + 1) * nz], l.bias[k], nz);
                let mut p = row(&net.u[0]);
                for l in &net.u[1..] {
                    let mut factor = row(l);
                    *factor.get_mut(&vec![0; nz]).unwrap() += 1.0;
                    p = poly_mul(&p, &factor);
                }
                p
            })
            .collect();
        for r in 0..net.outputs {
            let mut p = Poly::new();
            p.insert(vec![0; nz], net.c.bias[r] as f64);
            for (k, nk) in neurons.iter().enumerate() {
                let c = net.c.weights[r * net.width + k] as f64;
                for (e, v) in nk {
                    *p.entry(e.clone()).or_insert(0.0) += c * v;
                }
            }
            outputs.push(p);
        }
        // Its degree is the net's.
        let top = outputs[0]
            .iter()
            .filter(|(_, c)| c.abs() > 1e-12)
            .map(|(e, _)| e.iter().map(|&v| v as usize).sum::<usize>())
            .max()
            .unwrap();
        assert_eq!(top, degree);
        let Dynamics::PolyOde { net: pi } = &model.dynamics else {
            panic!("not a Π-net");
        };
        let w = pi.max_width();
        let (mut a, mut b) = (vec![0.0f32; w], vec![0.0f32; w]);
        let mut rng = examples::Rng::new(3);
        for _ in 0..50 {
            let z: Vec<f32> = (0..nz).map(|_| 1.5 * rng.next_f32()).collect();
            let mut out = vec![0.0f32; net.outputs];
            pi.eval(&z, &mut a, &mut b, &mut out);
            for (r, p) in outputs.iter().enumerate() {
                let (mut want, mut mag) = (0.0f64, 0.0f64);
                for (e, c) in p {
                    let m: f64 = e
                        .iter()
                        .zip(&z)
                        .map(|(&k, &v)| (v as f64).powi(k as i32))
                        .product();
                    want += c * m;
                    mag += (c * m).abs();
                }
                assert!(
                    (out[r] as f64 - want).abs() <= 1e-5 * (1.0 + mag),
                    "degree {degree} out {r}: {} vs {want}",
                    out[r]
                );
            }
        }
    }
}

/// The Π-net in f64 straight from its spec, and its Jacobian in `x` by central differences.
fn pi_f64(net: &PiNetSpec, z: &[f64]) -> Vec<f64> {
    let dense = |l: &LayerSpec, x: &[f64]| -> Vec<f64> {
        (0..l.outputs)
            .map(|o| {
                (0..l.inputs)
                    .map(|i| l.weights[o * l.inputs + i] as f64 * x[i])
                    .sum::<f64>()
                    + l.bias[o] as f64
            })
            .collect()
    };
    let mut h = dense(&net.u[0], z);
    for l in &net.u[1..] {
        let p = dense(l, z);
        for (hv, pv) in h.iter_mut().zip(&p) {
            *hv = pv * *hv + *hv;
        }
    }
    dense(&net.c, &h)
}

#[test]
fn device_simulator_agrees_with_the_f64_generic_step_on_a_pi_net() {
    let spec = examples::poly_ode(2, 3, 8, 20.0, 11);
    let DynamicsSpec::PolyOde { net } = &spec.dynamics else {
        unreachable!()
    };
    let blob = spec.encode(Quant::F32);
    let model = blob.model().unwrap();
    let dt = 2e-3f32;
    let samples = 150;
    let vs: Vec<f32> = (0..samples).map(|k| (40.0 * k as f32 * dt).sin()).collect();
    for (tab, solver) in METHODS {
        let substeps = 2u16;
        let cfg = SimConfig::new(dt, solver, substeps);
        let cost = model.cost_for(&cfg);
        let mut scratch = vec![0.0f32; cost.scratch_f32];
        let mut sim = Simulator::new(&model, cfg, &mut scratch).unwrap();
        let (mut v, mut i, mut x) = (
            vec![0.0; samples],
            vec![0.0; samples],
            vec![0.0; 2 * samples],
        );
        sim.run(&vs, &mut v, &mut i, &mut x).unwrap();
        assert_eq!(sim.clamp_count(), 0);
        // f64: the same steps, drive interpolation and iteration count, Jacobian by differences.
        let mut y: Vec<f64> = spec.x0.iter().map(|&v| v as f64).collect();
        let h = dt as f64 / substeps as f64;
        let mut scratch64 =
            vec![0.0f64; implicit_scratch_len(2, tab.stages, tab.implicit_stages())];
        let mut next = vec![0.0; 2];
        let mut worst = 0.0f64;
        for k in 1..samples {
            let (v0, v1) = (vs[k - 1] as f64, vs[k] as f64);
            for s in 0..substeps {
                implicit_step::<f64, NewtonFailure>(
                    tab,
                    h,
                    cfg.newton_iters,
                    &y,
                    &mut scratch64,
                    &mut next,
                    |c, ys, dy, jac| {
                        let u = v0 + (s as f64 + c) / substeps as f64 * (v1 - v0);
                        let at = |x: &[f64]| pi_f64(net, &[x[0], x[1], u]);
                        dy.copy_from_slice(&at(ys));
                        if let Some(j) = jac {
                            for q in 0..2 {
                                let d = 1e-6;
                                let (mut p, mut m) = (ys.to_vec(), ys.to_vec());
                                p[q] += d;
                                m[q] -= d;
                                let (fp, fm) = (at(&p), at(&m));
                                for r in 0..2 {
                                    j[r * 2 + q] = (fp[r] - fm[r]) / (2.0 * d);
                                }
                            }
                        }
                        Ok(())
                    },
                )
                .unwrap();
                y.copy_from_slice(&next);
            }
            for q in 0..2 {
                let err = (x[2 * k + q] as f64 - y[q]).abs();
                worst = worst.max(err);
            }
        }
        println!("{}: worst |f32 device - f64| = {worst:.1e}", tab.name);
        // f32 rounding of weights, state and stage sums over 300 steps of a contracting field.
        assert!(worst < 1e-4, "{}: {worst}", tab.name);
        // The cost accounts for what the step does.
        let m = tab.implicit_stages() as u32;
        let explicit = (tab.stages - tab.implicit_stages()) as u32;
        assert_eq!(cost.newton_iters, SimConfig::DEFAULT_NEWTON_ITERS);
        assert_eq!(
            cost.evals_per_step,
            (explicit + m * SimConfig::DEFAULT_NEWTON_ITERS as u32) * substeps as u32
        );
        assert_eq!(
            cost.jacobians_per_step,
            m * SimConfig::DEFAULT_NEWTON_ITERS as u32 * substeps as u32
        );
    }
}

#[test]
fn scratch_is_checked_and_counted() {
    let spec = examples::poly_ode(3, 2, 6, 1.0, 1);
    let blob = spec.encode(Quant::F32);
    let model = blob.model().unwrap();
    for solver in Solver::IMPLICIT {
        let cfg = SimConfig::new(1e-3, solver, 1);
        let need = model.cost_for(&cfg).scratch_f32;
        let mut short = vec![0.0f32; need - 1];
        assert_eq!(
            Simulator::new(&model, cfg, &mut short).err(),
            Some(SimError::ScratchTooSmall {
                needed: need as u32,
                available: need as u32 - 1
            })
        );
        let mut ok = vec![0.0f32; need];
        Simulator::new(&model, cfg, &mut ok)
            .unwrap()
            .step(0.1, 0.2)
            .unwrap();
    }
    // Largest case the limits allow: Radau IIA 5 on 16 states is a 48 x 49 Newton matrix.
    assert_eq!(
        implicit_scratch_len(16, 3, 3),
        48 * 49 + 3 * 16 + 3 * 16 + 16 * 16 + 16
    );
}

#[test]
fn solver_names_round_trip() {
    for s in Solver::EVERY {
        assert_eq!(Solver::from_name(s.cli_name()), Some(s));
        assert_eq!(s.is_implicit(), Solver::IMPLICIT.contains(&s));
        assert_eq!(
            s.implicit_tableau().is_some(),
            s.explicit_tableau().is_none()
        );
    }
    assert_eq!(Solver::Radau5.stages(), 3);
    assert_eq!(Solver::Trapezoid.order(), 2);
    assert_eq!(
        serde_json::to_string(&Solver::BackwardEuler).unwrap(),
        "\"backward_euler\""
    );
}

#[test]
fn pi_net_spec_json_round_trips_and_refuses_activations() {
    let spec = examples::poly_ode(2, 3, 4, 1.0, 8);
    let json = serde_json::to_string(&spec).unwrap();
    assert!(json.contains("\"kind\":\"poly_ode\""));
    let back: ModelSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    let blob = spec.encode(Quant::F32);
    assert_eq!(ModelSpec::from_model(&blob.model().unwrap()), spec);
    let mut bad = spec.clone();
    if let DynamicsSpec::PolyOde { net } = &mut bad.dynamics {
        net.u[1].activation = Activation::Tanh;
    }
    assert!(matches!(
        bad.try_encode(Quant::F32),
        Err(odeflash_runtime::DecodeError::InvalidValue { .. })
    ));
    let mut bad = spec;
    if let DynamicsSpec::PolyOde { net } = &mut bad.dynamics {
        net.u[2].outputs = 3;
        net.u[2].weights.truncate(3 * 3);
        net.u[2].bias.truncate(3);
    }
    assert!(matches!(
        bad.try_encode(Quant::F32),
        Err(odeflash_runtime::DecodeError::ShapeMismatch { .. })
    ));
    let _ = Model::decode;
}

#[test]
fn batch_path_runs_implicit_solvers_and_pi_nets_like_the_simulator() {
    use odeflash_runtime::batch::{simulate_batch, BatchOptions, Input};
    let drives: Vec<Vec<f32>> = (0..5)
        .map(|k| {
            (0..40)
                .map(|s| 0.8 * ((s + 3 * k) as f32 * 0.3).sin())
                .collect()
        })
        .collect();
    let single = examples::single_nn_memode(&[4], 1).encode(Quant::F32);
    let single = single.model().unwrap();
    let poly = examples::poly_ode(2, 2, 4, 1.0, 1).encode(Quant::F32);
    let poly = poly.model().unwrap();
    for (m, solver) in [
        (&single, Solver::Radau3),
        (&single, Solver::BackwardEuler),
        (&poly, Solver::Rk4),
        (&poly, Solver::Trapezoid),
    ] {
        let dts = [1e-3f32, 2e-3, 1e-3, 5e-4, 1e-3];
        let inputs: Vec<Input<'_>> = drives
            .iter()
            .zip(dts)
            .map(|(d, dt)| Input::new(d).with_dt(dt))
            .collect();
        let cfg = SimConfig::new(1e-3, solver, 2);
        for threads in [1, 3] {
            let got = simulate_batch(
                m,
                cfg,
                &inputs,
                BatchOptions {
                    threads,
                    ..BatchOptions::default()
                },
            )
            .unwrap();
            for (k, (d, dt)) in drives.iter().zip(dts).enumerate() {
                let mut scratch = vec![0.0f32; m.cost_for(&cfg).scratch_f32];
                let mut sim = Simulator::new(m, SimConfig { dt, ..cfg }, &mut scratch).unwrap();
                sim.reset(None).unwrap();
                let n = sim.state().len();
                let (mut v, mut i, mut x) = (vec![0.0; 40], vec![0.0; 40], vec![0.0; 40 * n]);
                sim.run(d, &mut v, &mut i, &mut x).unwrap();
                assert_eq!(got[k].v, v, "{solver:?} trajectory {k}");
                assert_eq!(got[k].i, i);
                assert_eq!(got[k].x, x);
                assert_eq!(got[k].clamped, sim.clamp_count());
            }
        }
    }
}

#[test]
fn cost_adds_up_and_explicit_costs_are_unchanged() {
    let models = [
        ("single-nn 2-8-8-1", examples::single_nn_memode(&[8, 8], 7)),
        (
            "dual-nn 3 states",
            examples::dual_nn_memode(&[16, 16], 8, 3, 3),
        ),
        (
            "poly-ode 2 states deg 3 w 8",
            examples::poly_ode(2, 3, 8, 20.0, 13),
        ),
    ];
    for (name, spec) in models {
        let blob = spec.encode(Quant::F32);
        let model = blob.model().unwrap();
        for solver in Solver::EVERY {
            let c = model.cost(solver, 1);
            assert_eq!(
                c.macs_per_step,
                c.evals_per_step * c.macs_per_eval
                    + c.jacobians_per_step * c.macs_per_jacobian
                    + c.newton_macs_per_step
                    + model.readout_macs(),
                "{name} {solver:?}"
            );
            if !solver.is_implicit() {
                assert_eq!((c.newton_iters, c.jacobians_per_step), (0, 0));
                assert_eq!(c.evals_per_step, solver.stages() as u32);
            }
            println!(
                "{name:<28} {:<14} scratch {:>6} B  evals {:>2}  MACs/step {:>7}",
                solver.cli_name(),
                c.scratch_bytes,
                c.evals_per_step,
                c.macs_per_step
            );
        }
    }
}
