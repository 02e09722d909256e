//! The simulator's electrical coupling, bounds and error paths against independent references.

use odeflash_runtime::spec::{
    examples, BoundSpec, DynamicsSpec, LayerSpec, MlpSpec, ModelSpec, Quant, ReadoutSpec,
};
use odeflash_runtime::{
    Activation, Circuit, IteratorForm, Model, SimConfig, SimError, Simulator, Solver,
};

fn run(model: &Model<'_>, cfg: SimConfig, vs: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>, u32) {
    let mut scratch = vec![0.0f32; model.cost(cfg.solver, cfg.substeps).scratch_f32];
    let mut sim = Simulator::new(model, cfg, &mut scratch).unwrap();
    let n = vs.len();
    let (mut v, mut i, mut x) = (vec![0.0; n], vec![0.0; n], vec![0.0; n * model.n_states()]);
    sim.run(vs, &mut v, &mut i, &mut x).unwrap();
    (v, i, x, sim.clamp_count())
}

/// SingleNN-MemODE whose "net" is the linear map `dx/dt = k v`.
fn linear_memristor(k: f32) -> ModelSpec {
    let f = MlpSpec::dense(2, &[(1, Activation::Identity)], move |_, i| match i {
        1 => k,
        _ => 0.0,
    });
    ModelSpec {
        format_version: 1,
        name: "linear memristor".into(),
        dynamics: DynamicsSpec::Ode { f },
        readout: ReadoutSpec::Linear {
            r_on: 1.0e3,
            r_off: 1.0e5,
        },
        circuit: Some(Circuit {
            series_resistance: 2.0e3,
        }),
        x0: vec![0.2],
        bounds: vec![BoundSpec {
            lower: Some(0.0),
            upper: Some(1.0),
        }],
    }
}

/// f64 reference: RK4 with 100 steps per sample on `dx/dt = k v_s(t) / (1 + R_s G(x))`.
fn reference(k: f64, vs: &[f32], dt: f64) -> Vec<(f64, f64)> {
    let (r_on, r_off, r_s) = (1.0e3, 1.0e5, 2.0e3);
    let g = |x: f64| x / r_on + (1.0 - x) / r_off;
    let rhs = |x: f64, v_s: f64| k * v_s / (1.0 + r_s * g(x));
    let obs = |x: f64, v_s: f64| {
        let v = v_s / (1.0 + r_s * g(x));
        (v, g(x) * v)
    };
    let mut x = 0.2f64;
    let mut out = vec![obs(x, vs[0] as f64)];
    let m = 100;
    let h = dt / m as f64;
    for w in vs.windows(2) {
        let (a, b) = (w[0] as f64, w[1] as f64);
        let drive = |s: f64| a + s * (b - a);
        for j in 0..m {
            let s0 = j as f64 / m as f64;
            let sh = 1.0 / m as f64;
            let k1 = rhs(x, drive(s0));
            let k2 = rhs(x + 0.5 * h * k1, drive(s0 + 0.5 * sh));
            let k3 = rhs(x + 0.5 * h * k2, drive(s0 + 0.5 * sh));
            let k4 = rhs(x + h * k3, drive(s0 + sh));
            x += h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
            x = x.clamp(0.0, 1.0);
        }
        out.push(obs(x, b));
    }
    out
}

fn sine(amplitude: f32, freq: f32, dt: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|k| amplitude * (2.0 * std::f32::consts::PI * freq * k as f32 * dt).sin())
        .collect()
}

#[test]
fn series_resistor_coupling_matches_f64_reference() {
    let k = 5.0;
    let blob = linear_memristor(k).encode(Quant::F32);
    let model = blob.model().unwrap();
    let dt = 1e-3;
    let vs = sine(1.0, 2.0, dt, 1001);
    let cfg = SimConfig {
        dt,
        solver: Solver::Rk4,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let (v, i, _, clamped) = run(&model, cfg, &vs);
    let r = reference(k as f64, &vs, dt as f64);
    let i_max = r.iter().map(|p| p.1.abs()).fold(0.0, f64::max);
    for (n, (&(rv, ri), (&sv, &si))) in r.iter().zip(v.iter().zip(&i)).enumerate() {
        assert!((sv as f64 - rv).abs() < 1e-5, "v at {n}: {sv} vs {rv}");
        assert!(
            (si as f64 - ri).abs() < 1e-4 * i_max,
            "i at {n}: {si} vs {ri}"
        );
    }
    // The state never reaches a bound in this run.
    assert_eq!(clamped, 0);
    // The memristor sees less than the supply once the device conducts.
    assert!(v.iter().zip(&vs).all(|(v, s)| v.abs() <= s.abs() + 1e-7));
}

#[test]
fn states_are_clamped_and_counted() {
    // A strong drive pushes x against its upper bound of 1.
    let blob = linear_memristor(500.0).encode(Quant::F32);
    let model = blob.model().unwrap();
    let vs = vec![1.0f32; 200];
    let cfg = SimConfig {
        dt: 1e-3,
        solver: Solver::Euler,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let (_, i, x, clamped) = run(&model, cfg, &vs);
    assert!(clamped > 0);
    assert_eq!(*x.last().unwrap(), 1.0);
    // At x = 1, G = 1/R_on: i = v_s / (R_on + R_s).
    let want = 1.0 / (1.0e3 + 2.0e3);
    assert!((i.last().unwrap() - want).abs() < 1e-9, "{:?}", i.last());
}

/// f64 evaluation of an MLP spec, written independently of the runtime's kernels.
fn mlp_f64(m: &MlpSpec, x: &[f64]) -> Vec<f64> {
    let mut a: Vec<f64> = x
        .iter()
        .zip(&m.input_offset)
        .zip(&m.input_scale)
        .map(|((x, o), s)| (x - *o as f64) * *s as f64)
        .collect();
    for l in &m.layers {
        a = (0..l.outputs)
            .map(|o| {
                let z: f64 = (0..l.inputs)
                    .map(|i| l.weights[o * l.inputs + i] as f64 * a[i])
                    .sum::<f64>()
                    + l.bias[o] as f64;
                match l.activation {
                    Activation::Identity => z,
                    Activation::Relu => z.max(0.0),
                    Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
                    Activation::Gelu => {
                        let c = (2.0 / std::f64::consts::PI).sqrt();
                        0.5 * z * (1.0 + (c * (z + 0.044715 * z * z * z)).tanh())
                    }
                    Activation::Silu => z / (1.0 + (-z).exp()),
                    other => panic!("reference lacks {other:?}"),
                }
            })
            .collect();
    }
    a.iter()
        .zip(&m.output_scale)
        .zip(&m.output_offset)
        .map(|((y, s), o)| y * *s as f64 + *o as f64)
        .collect()
}

#[test]
fn dual_nn_observation_and_derivative_match_f64_reference() {
    let spec = examples::dual_nn_memode(&[12, 24, 12], 10, 3, 42);
    let blob = spec.encode(Quant::F32);
    let model = blob.model().unwrap();
    let (g_spec, g_min, g_max) = match &spec.readout {
        ReadoutSpec::Net { g, g_min, g_max } => (g, *g_min as f64, *g_max as f64),
        _ => unreachable!(),
    };
    let x0 = [0.3f32, -0.7, 1.1];
    let cfg = SimConfig {
        dt: 1e-4,
        solver: Solver::Euler,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let mut scratch = vec![0.0f32; model.cost(Solver::Euler, 1).scratch_f32];
    let mut sim = Simulator::new(&model, cfg, &mut scratch).unwrap();
    sim.reset(Some(&x0)).unwrap();
    let vs = 0.8f32;
    let obs = sim.observe(vs).unwrap();
    let x64: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
    let g = g_min + (g_max - g_min) * mlp_f64(g_spec, &x64)[0];
    let v = vs as f64 / (1.0 + 1.0e3 * g);
    assert!(((obs.g as f64) - g).abs() < 1e-6 * g, "{} vs {g}", obs.g);
    assert!(((obs.v as f64) - v).abs() < 1e-6, "{} vs {v}", obs.v);
    assert!(((obs.i as f64) - g * v).abs() < 1e-6 * (g * v).abs());
    // One Euler step with a constant drive: x1 = x0 + dt f([x0, v]).
    sim.step(vs, vs).unwrap();
    let mut input = x64.clone();
    input.push(v);
    let dx = mlp_f64(spec.dynamics_net().unwrap(), &input);
    for ((got, x), d) in sim.state().iter().zip(&x64).zip(&dx) {
        let want = x + 1e-4 * d;
        assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
    }
}

fn iterator_model(form: IteratorForm) -> ModelSpec {
    let net = MlpSpec {
        input_offset: vec![0.0, 0.0],
        input_scale: vec![1.0, 1.0],
        layers: vec![LayerSpec {
            inputs: 2,
            outputs: 1,
            activation: Activation::Identity,
            weights: vec![0.5, 1.0],
            bias: vec![0.25],
            int8_scales: None,
        }],
        output_scale: vec![1.0],
        output_offset: vec![0.0],
    };
    ModelSpec {
        format_version: 1,
        name: "iterator".into(),
        dynamics: DynamicsSpec::Iterator {
            net,
            form,
            dt: 1e-3,
        },
        readout: ReadoutSpec::None,
        circuit: None,
        x0: vec![1.0],
        bounds: vec![BoundSpec::default()],
    }
}

#[test]
fn iterator_nets_follow_their_recurrence() {
    let vs: Vec<f32> = (0..20).map(|k| 0.1 * k as f32).collect();
    for form in [IteratorForm::Residual, IteratorForm::Direct] {
        let blob = iterator_model(form).encode(Quant::F32);
        let model = blob.model().unwrap();
        let cfg = SimConfig {
            dt: 1e-3,
            solver: Solver::Rk4,
            substeps: 1,
            newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        let (_, _, x, _) = run(&model, cfg, &vs);
        let mut want = 1.0f64;
        for (n, got) in x.iter().enumerate() {
            assert!(
                (*got as f64 - want).abs() < 1e-6 * want.abs().max(1.0),
                "{form:?} at {n}: {got} vs {want}"
            );
            let net = 0.5 * want + vs[n] as f64 + 0.25;
            want = match form {
                IteratorForm::Residual => want + net,
                IteratorForm::Direct => net,
            };
        }
    }
}

#[test]
fn iterator_refuses_other_sample_interval() {
    let blob = iterator_model(IteratorForm::Residual).encode(Quant::F32);
    let model = blob.model().unwrap();
    let mut scratch = vec![0.0f32; 64];
    let cfg = SimConfig {
        dt: 2e-3,
        solver: Solver::Rk4,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    assert!(matches!(
        Simulator::new(&model, cfg, &mut scratch),
        Err(SimError::SampleIntervalMismatch { .. })
    ));
}

#[test]
fn configuration_and_input_errors_are_typed() {
    let blob = examples::single_nn_memode(&[8], 1).encode(Quant::F32);
    let model = blob.model().unwrap();
    let ok = SimConfig {
        dt: 1e-3,
        solver: Solver::Rk4,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let need = model.cost(Solver::Rk4, 1).scratch_f32;
    let mut small = vec![0.0f32; need - 1];
    assert!(matches!(
        Simulator::new(&model, ok, &mut small),
        Err(SimError::ScratchTooSmall { .. })
    ));
    let mut scratch = vec![0.0f32; need];
    for bad in [
        SimConfig { dt: 0.0, ..ok },
        SimConfig { dt: f32::NAN, ..ok },
        SimConfig { substeps: 0, ..ok },
    ] {
        assert!(matches!(
            Simulator::new(&model, bad, &mut scratch),
            Err(SimError::InvalidConfig { .. })
        ));
    }
    let mut sim = Simulator::new(&model, ok, &mut scratch).unwrap();
    assert_eq!(sim.reset(Some(&[0.1, 0.2])), Err(SimError::BadInitialState));
    assert_eq!(sim.reset(Some(&[f32::NAN])), Err(SimError::BadInitialState));
    sim.reset(None).unwrap();
    assert_eq!(
        sim.step(f32::NAN, 0.0),
        Err(SimError::NonFiniteInput { step: 0 })
    );
}

#[test]
fn blow_up_is_reported_not_returned() {
    // dx/dt = 1e30 x overflows within a few steps; no bounds to clamp it.
    let f = MlpSpec::dense(2, &[(1, Activation::Identity)], |_, k| {
        if k == 0 {
            1.0e30
        } else {
            0.0
        }
    });
    let spec = ModelSpec {
        format_version: 1,
        name: "explodes".into(),
        dynamics: DynamicsSpec::Ode { f },
        readout: ReadoutSpec::None,
        circuit: None,
        x0: vec![1.0],
        bounds: vec![BoundSpec::default()],
    };
    let blob = spec.encode(Quant::F32);
    let model = blob.model().unwrap();
    let mut scratch = vec![0.0f32; 64];
    let cfg = SimConfig {
        dt: 1.0,
        solver: Solver::Euler,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let mut sim = Simulator::new(&model, cfg, &mut scratch).unwrap();
    let err = (0..10).find_map(|_| sim.step(0.0, 0.0).err());
    assert!(
        matches!(err, Some(SimError::NonFiniteState { .. })),
        "{err:?}"
    );
}

#[test]
fn cost_counts_macs_per_step() {
    let spec = examples::dual_nn_memode(&[12, 24, 12], 10, 3, 42);
    let blob = spec.encode(Quant::Int8);
    let model = blob.model().unwrap();
    let f = 4 * 12 + 12 * 24 + 24 * 12 + 12 * 3;
    let g = 3 * 10 + 10;
    let c = model.cost(Solver::Rk4, 2);
    assert_eq!(c.macs_per_eval, (f + g) as u32);
    assert_eq!(c.evals_per_step, 8);
    assert_eq!(c.macs_per_step, (8 * (f + g) + g) as u32);
    assert_eq!(c.flash_bytes as usize, blob.len());
    // Two ping-pong buffers of the widest layer plus state, next state, temporary and 4 stages.
    assert_eq!(c.scratch_f32, 2 * 24 + (3 + 4) * 3);
    assert_eq!(c.scratch_bytes, 4 * c.scratch_f32);
}
