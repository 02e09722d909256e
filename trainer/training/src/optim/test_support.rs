//! Shared harnesses for the optimizer tests.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};

use super::{Optimizer, OptimizerConfig, OptimizerState};

/// The test backend (CPU).
pub(crate) type Tb = Flex;

/// Shapes of the test parameters: a weight matrix and a bias row.
pub(crate) const SHAPES: [[usize; 2]; 2] = [[3, 4], [1, 5]];

/// The workspace's seeded generator, drawing test parameters.
pub(crate) struct Rng(odeflash_reference::rng::Rng);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(odeflash_reference::rng::Rng::new(seed))
    }

    /// Uniform in `[lo, hi)`, as `f32`.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    pub(crate) fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = self.0.uniform();
        (f64::from(lo) + unit * f64::from(hi - lo)) as f32
    }

    /// One random value list per shape of [`SHAPES`].
    pub(crate) fn values_for_shapes(&mut self, lo: f32, hi: f32) -> Vec<Vec<f32>> {
        SHAPES
            .iter()
            .map(|[r, c]| (0..r * c).map(|_| self.uniform(lo, hi)).collect())
            .collect()
    }
}

/// A tensor of the test backend from row-major values.
pub(crate) fn tensor(values: &[f32], shape: [usize; 2]) -> Tensor<Tb, 2> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
}

/// A tensor's values, row-major.
pub(crate) fn values(t: &Tensor<Tb, 2>) -> Vec<f32> {
    t.to_data().into_vec::<f32>().unwrap()
}

fn tensors(values: &[Vec<f32>]) -> Vec<Tensor<Tb, 2>> {
    values
        .iter()
        .zip(SHAPES)
        .map(|(v, s)| tensor(v, s))
        .collect()
}

/// An independent implementation of an optimizer in `f64`, over all parameters concatenated
/// (the optimizers are elementwise).
pub(crate) trait Reference {
    fn step(&mut self, lr: f64, params: &mut [f64], grads: &[f64]);
}

/// The learning rate of step `t` (0-based) in the harnesses: it varies, as under a scheduler.
#[allow(clippy::cast_precision_loss)]
fn lr_at(t: usize) -> f64 {
    0.01 * (1.0 + 0.5 * (t % 3) as f64)
}

/// Runs `opt` and `reference` for 20 steps from the same random parameters with the same
/// random gradients (both shapes of [`SHAPES`]), asserting after every step that every
/// parameter agrees to `1e-5` relative (to `max(|reference|, 1e-2)`).
pub(crate) fn assert_matches_reference(
    opt: &mut dyn Optimizer<Tb>,
    reference: &mut dyn Reference,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let init = rng.values_for_shapes(-1.0, 1.0);
    let mut params = tensors(&init);
    let mut flat: Vec<f64> = init.iter().flatten().map(|&v| f64::from(v)).collect();
    let mut worst = 0.0f64;
    for t in 0..20 {
        let lr = lr_at(t);
        let g = rng.values_for_shapes(-1.0, 1.0);
        let g_flat: Vec<f64> = g.iter().flatten().map(|&v| f64::from(v)).collect();
        opt.step(lr, &mut params, &tensors(&g));
        reference.step(lr, &mut flat, &g_flat);
        let got: Vec<f32> = params.iter().flat_map(values).collect();
        assert_eq!(got.len(), flat.len());
        for (i, (&a, &b)) in got.iter().zip(&flat).enumerate() {
            let err = (f64::from(a) - b).abs() / b.abs().max(1e-2);
            worst = worst.max(err);
            assert!(
                err <= 1e-5,
                "{}: step {}, element {i}: got {a}, reference {b} (relative error {err:e})",
                opt.name(),
                t + 1
            );
        }
    }
    assert_eq!(opt.state().step, 20);
    eprintln!(
        "{}: worst relative error over 20 steps {worst:e}",
        opt.name()
    );
}

/// Minimizes `0.5 * sum(a * (p - c)^2)` over two parameters of the shapes of [`SHAPES`]
/// (curvatures `a` in `[1, 10]`), with gradients from burn's autodiff as in training, for
/// `steps` steps at learning rate `lr`; asserts the loss falls by at least 100x.
pub(crate) fn assert_minimizes_quadratic(opt: &mut dyn Optimizer<Tb>, lr: f64, steps: usize) {
    type Ad = Autodiff<Flex>;
    let mut rng = Rng::new(99);
    let mut params = tensors(&rng.values_for_shapes(-1.0, 1.0));
    let targets = tensors(&rng.values_for_shapes(-1.0, 1.0));
    let curvatures = tensors(&rng.values_for_shapes(1.0, 10.0));
    let loss_of = |params: &[Tensor<Tb, 2>]| -> f64 {
        params
            .iter()
            .zip(&targets)
            .zip(&curvatures)
            .map(|((p, c), a)| {
                let d = p.clone().sub(c.clone());
                let l = d.clone().mul(d).mul(a.clone()).sum().mul_scalar(0.5);
                f64::from(l.into_scalar())
            })
            .sum()
    };
    let initial = loss_of(&params);
    for _ in 0..steps {
        let leaves: Vec<Tensor<Ad, 2>> = params
            .iter()
            .map(|p| Tensor::<Ad, 2>::from_inner(p.clone()).require_grad())
            .collect();
        let loss = leaves
            .iter()
            .zip(&targets)
            .zip(&curvatures)
            .map(|((p, c), a)| {
                let d = p.clone().sub(Tensor::from_inner(c.clone()));
                d.clone()
                    .mul(d)
                    .mul(Tensor::from_inner(a.clone()))
                    .sum()
                    .mul_scalar(0.5)
            })
            .reduce(|a, b| a.add(b))
            .unwrap();
        let grads = loss.backward();
        let grads: Vec<Tensor<Tb, 2>> = leaves.iter().map(|p| p.grad(&grads).unwrap()).collect();
        opt.step(lr, &mut params, &grads);
    }
    let last = loss_of(&params);
    eprintln!(
        "{}: quadratic loss {initial:.4e} -> {last:.4e} in {steps} steps",
        opt.name()
    );
    assert!(
        last * 100.0 <= initial,
        "{}: loss only fell from {initial} to {last}",
        opt.name()
    );
}

fn bits(params: &[Tensor<Tb, 2>]) -> Vec<Vec<u32>> {
    params
        .iter()
        .map(|t| values(t).iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// Per buffer: its name, shapes and value bits.
type StateBits = Vec<(String, Vec<[usize; 2]>, Vec<Vec<u32>>)>;

fn state_bits(s: &OptimizerState) -> StateBits {
    s.buffers
        .iter()
        .map(|(name, list)| {
            (
                name.clone(),
                list.iter().map(|b| b.shape).collect(),
                list.iter()
                    .map(|b| b.values.iter().map(|v| v.to_bits()).collect())
                    .collect(),
            )
        })
        .collect()
}

/// 10 uninterrupted steps versus 5 steps, export, JSON round trip, load into a fresh optimizer
/// built from `config`, 5 more steps: parameters and final states must agree bit for bit.
pub(crate) fn assert_resume_is_bit_exact(config: &OptimizerConfig) {
    let device = Default::default();
    let mut rng = Rng::new(7);
    let init = rng.values_for_shapes(-1.0, 1.0);
    let grads: Vec<Vec<Tensor<Tb, 2>>> = (0..10)
        .map(|_| tensors(&rng.values_for_shapes(-1.0, 1.0)))
        .collect();

    let mut whole = config.build::<Tb>();
    let mut p_whole = tensors(&init);
    for (t, g) in grads.iter().enumerate() {
        whole.step(lr_at(t), &mut p_whole, g);
    }

    let mut first = config.build::<Tb>();
    let mut p = tensors(&init);
    for (t, g) in grads.iter().enumerate().take(5) {
        first.step(lr_at(t), &mut p, g);
    }
    let saved = first.state();
    assert_eq!(saved.step, 5);
    let json = serde_json::to_string(&saved).unwrap();
    let loaded: OptimizerState = serde_json::from_str(&json).unwrap();
    assert_eq!(
        state_bits(&loaded),
        state_bits(&saved),
        "JSON changed the state"
    );
    drop(first);

    let mut second = config.build::<Tb>();
    second.load_state(loaded, &device).unwrap();
    for (t, g) in grads.iter().enumerate().skip(5) {
        second.step(lr_at(t), &mut p, g);
    }
    assert_eq!(
        bits(&p),
        bits(&p_whole),
        "{}: parameters differ",
        config.name()
    );
    let (a, b) = (second.state(), whole.state());
    assert_eq!(a.step, 10);
    assert_eq!(a.step, b.step);
    assert_eq!(
        state_bits(&a),
        state_bits(&b),
        "{}: states differ",
        config.name()
    );
}
