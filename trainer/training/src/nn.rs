//! Networks as plain parameter tensors: an [`MlpDef`] says what the net is (widths, activations,
//! physical-unit scaling), a slice of `Tensor<B, 2>` holds its weights. Keeping parameters out of
//! burn's `Module` machinery lets one forward pass run on the inner backend (no graph), on the
//! autodiff backend (training), or carry forward tangents (physics residuals), and makes the
//! export to the runtime's format a copy of numbers.

use burn::tensor::{activation, backend::Backend, Tensor, TensorData};
use odeflash_runtime::spec::{LayerSpec, MlpSpec};
use odeflash_runtime::Activation;
use serde::{Deserialize, Serialize};

use odeflash_reference::rng::Rng;

/// Applies an activation to a tensor, with the runtime's exact definitions.
pub fn act<B: Backend, const D: usize>(a: &Activation, z: Tensor<B, D>) -> Tensor<B, D> {
    match *a {
        Activation::Identity => z,
        Activation::Relu => activation::relu(z),
        Activation::LeakyRelu { slope } => activation::leaky_relu(z, slope as f64),
        Activation::Elu { alpha } => activation::elu(z, alpha as f64),
        Activation::Gelu => activation::gelu_approximate(z),
        Activation::Silu => activation::silu(z),
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => activation::sigmoid(z),
        Activation::Sin => z.sin(),
        // max(z, 0) + log(1 + exp(-|z|)): never overflows, unlike log(1 + exp(z)).
        Activation::Softplus => activation::relu(z.clone()) + (z.abs().neg().exp() + 1.0).log(),
    }
}

/// Derivative of the activation at pre-activation `z`, for forward tangents.
pub fn act_prime<B: Backend, const D: usize>(a: &Activation, z: Tensor<B, D>) -> Tensor<B, D> {
    match *a {
        Activation::Identity => z.ones_like(),
        Activation::Relu => z.clone().greater_elem(0.0).float(),
        Activation::LeakyRelu { slope } => {
            let pos = z.clone().greater_elem(0.0);
            z.ones_like().mul_scalar(slope).mask_fill(pos, 1.0)
        }
        Activation::Elu { alpha } => {
            let pos = z.clone().greater_elem(0.0);
            z.exp().mul_scalar(alpha).mask_fill(pos, 1.0)
        }
        Activation::Gelu => {
            const K: f64 = 0.797_884_560_802_865_4; // sqrt(2/pi)
            const C: f64 = 0.044_715;
            let z2 = z.clone().powi_scalar(2);
            let t = ((z2.clone() * C + 1.0) * z.clone() * K).tanh();
            let sech2 = t.clone().powi_scalar(2).neg() + 1.0;
            (t + 1.0) * 0.5 + z * sech2 * (z2 * (3.0 * C) + 1.0) * (0.5 * K)
        }
        Activation::Silu => {
            let s = activation::sigmoid(z.clone());
            s.clone() * (z * (s.neg() + 1.0) + 1.0)
        }
        Activation::Tanh => z.tanh().powi_scalar(2).neg() + 1.0,
        Activation::Sigmoid => {
            let s = activation::sigmoid(z);
            s.clone() * (s.neg() + 1.0)
        }
        Activation::Sin => z.cos(),
        Activation::Softplus => activation::sigmoid(z),
    }
}

/// Named layer-width patterns: paper 000 Fig. 5 (diamond) and thesis sec. 4.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// All hidden layers `N` wide.
    Rectangle,
    /// Paper 000: `N/2, N, ..., N, N/2` (expansion then compression).
    Diamond,
    /// Progressively narrower: `N, N/2, N/4, ...`.
    Funnel,
    /// Thesis naming: progressively wider, `..., N/4, N/2, N`.
    Bottleneck,
    /// Wide outside, narrow inside: `N, N/2, ..., N/2, N`.
    Bowtie,
}

impl Shape {
    /// Hidden widths for `depth` hidden layers around base width `n` (never below 1).
    pub fn widths(self, n: usize, depth: usize) -> Vec<usize> {
        let half = (n / 2).max(1);
        let halve = |k: usize| (n >> k.min(usize::BITS as usize - 1)).max(1);
        (0..depth)
            .map(|i| match self {
                Shape::Rectangle => n,
                Shape::Diamond => {
                    if depth >= 2 && (i == 0 || i + 1 == depth) {
                        half
                    } else {
                        n
                    }
                }
                Shape::Funnel => halve(i),
                Shape::Bottleneck => halve(depth - 1 - i),
                Shape::Bowtie => {
                    if depth >= 3 && i != 0 && i + 1 != depth {
                        half
                    } else {
                        n
                    }
                }
            })
            .collect()
    }
}

/// What a net is, apart from its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpDef {
    /// Number of inputs.
    pub inputs: usize,
    /// `(width, activation)` of every layer, the output layer last.
    pub layers: Vec<(usize, Activation)>,
    /// Input normalization: `(x - offset) * scale`.
    pub input_offset: Vec<f32>,
    /// See `input_offset`.
    pub input_scale: Vec<f32>,
    /// Output de-normalization: `y * scale + offset`.
    pub output_scale: Vec<f32>,
    /// See `output_scale`.
    pub output_offset: Vec<f32>,
}

impl MlpDef {
    /// A net with unit scaling.
    pub fn new(inputs: usize, layers: Vec<(usize, Activation)>) -> Self {
        let outputs = layers.last().map_or(inputs, |l| l.0);
        MlpDef {
            inputs,
            layers,
            input_offset: vec![0.0; inputs],
            input_scale: vec![1.0; inputs],
            output_scale: vec![1.0; outputs],
            output_offset: vec![0.0; outputs],
        }
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(self.inputs, |l| l.0)
    }

    /// Parameter tensors: a `[in, out]` weight and a `[1, out]` bias per layer.
    pub fn n_params(&self) -> usize {
        2 * self.layers.len()
    }

    /// Shapes of the parameter tensors, in order.
    pub fn param_shapes(&self) -> Vec<[usize; 2]> {
        let mut w = self.inputs;
        let mut out = Vec::new();
        for &(n, _) in &self.layers {
            out.push([w, n]);
            out.push([1, n]);
            w = n;
        }
        out
    }

    /// Glorot-uniform weights and zero biases, the PyTorch/Equinox default family.
    pub fn init(&self, rng: &mut Rng) -> Vec<Vec<f32>> {
        self.param_shapes()
            .into_iter()
            .map(|[r, c]| {
                if r == 1 {
                    vec![0.0; c]
                } else {
                    let limit = (6.0 / (r + c) as f64).sqrt();
                    (0..r * c)
                        .map(|_| (rng.uniform() * 2.0 - 1.0) * limit)
                        .map(|v| v as f32)
                        .collect()
                }
            })
            .collect()
    }

    /// The runtime spec of this net with the given parameter values (weights stored `[in, out]`
    /// here, row-major `[out, in]` in the runtime).
    pub fn to_spec(&self, params: &[Vec<f32>]) -> MlpSpec {
        let mut layers = Vec::new();
        let mut w_in = self.inputs;
        for (l, &(n, activation)) in self.layers.iter().enumerate() {
            let w = &params[2 * l];
            let mut weights = vec![0.0f32; n * w_in];
            for i in 0..w_in {
                for o in 0..n {
                    weights[o * w_in + i] = w[i * n + o];
                }
            }
            layers.push(LayerSpec {
                inputs: w_in,
                outputs: n,
                activation,
                weights,
                bias: params[2 * l + 1].clone(),
                int8_scales: None,
            });
            w_in = n;
        }
        MlpSpec {
            input_offset: self.input_offset.clone(),
            input_scale: self.input_scale.clone(),
            layers,
            output_scale: self.output_scale.clone(),
            output_offset: self.output_offset.clone(),
        }
    }
}

/// Constant scaling tensors of a net on a device, built once per pass, not per evaluation.
#[derive(Clone, Debug)]
pub struct Scaling<B: Backend> {
    in_offset: Tensor<B, 2>,
    in_scale: Tensor<B, 2>,
    out_scale: Tensor<B, 2>,
    out_offset: Tensor<B, 2>,
    identity_in: bool,
    identity_out: bool,
}

fn row<B: Backend>(v: &[f32], device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), device)
}

impl<B: Backend> Scaling<B> {
    /// Uploads the scaling of `def`.
    pub fn new(def: &MlpDef, device: &B::Device) -> Self {
        Scaling {
            in_offset: row(&def.input_offset, device),
            in_scale: row(&def.input_scale, device),
            out_scale: row(&def.output_scale, device),
            out_offset: row(&def.output_offset, device),
            identity_in: def.input_offset.iter().all(|&v| v == 0.0)
                && def.input_scale.iter().all(|&v| v == 1.0),
            identity_out: def.output_offset.iter().all(|&v| v == 0.0)
                && def.output_scale.iter().all(|&v| v == 1.0),
        }
    }
}

/// A net ready to evaluate: its definition, its parameters and its scaling on one backend.
pub struct Mlp<'a, B: Backend> {
    /// Definition.
    pub def: &'a MlpDef,
    /// `2 * layers` tensors, see [`MlpDef::param_shapes`].
    pub params: &'a [Tensor<B, 2>],
    /// Scaling.
    pub scaling: &'a Scaling<B>,
}

impl<B: Backend> Mlp<'_, B> {
    /// `y = net(x)` for a batch `x: [batch, inputs]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let s = self.scaling;
        let mut h = if s.identity_in {
            x
        } else {
            (x - s.in_offset.clone()) * s.in_scale.clone()
        };
        for (l, (_, a)) in self.def.layers.iter().enumerate() {
            let z = h.matmul(self.params[2 * l].clone()) + self.params[2 * l + 1].clone();
            h = act(a, z);
        }
        if s.identity_out {
            h
        } else {
            h * s.out_scale.clone() + s.out_offset.clone()
        }
    }

    /// `(net(x), J_net(x) dx)`: the value and a forward (Jacobian-vector) tangent, propagated
    /// layer by layer in tensor ops, so a physics residual can use `d net / dt` inside a loss that
    /// is itself differentiated (burn has no second-order autodiff).
    pub fn forward_tangent(
        &self,
        x: Tensor<B, 2>,
        dx: Tensor<B, 2>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let s = self.scaling;
        let (mut h, mut dh) = if s.identity_in {
            (x, dx)
        } else {
            (
                (x - s.in_offset.clone()) * s.in_scale.clone(),
                dx * s.in_scale.clone(),
            )
        };
        for (l, (_, a)) in self.def.layers.iter().enumerate() {
            let w = self.params[2 * l].clone();
            let z = h.matmul(w.clone()) + self.params[2 * l + 1].clone();
            dh = act_prime(a, z.clone()) * dh.matmul(w);
            h = act(a, z);
        }
        if s.identity_out {
            (h, dh)
        } else {
            (
                h * s.out_scale.clone() + s.out_offset.clone(),
                dh * s.out_scale.clone(),
            )
        }
    }
}

impl<B: Backend> Mlp<'_, B> {
    /// `(net(x), ∂net/∂x)` with the Jacobian as `[batch, outputs, inputs]`: all input directions
    /// at once, one tangent matrix per row pushed through the layers (implicit steps need the
    /// whole Jacobian in every Newton iteration; `inputs` forward tangents would cost as much in
    /// `inputs` times the op count).
    pub fn forward_jacobian(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 3>) {
        let s = self.scaling;
        let [batch, inputs] = x.dims();
        let device = x.device();
        let eye = Tensor::<B, 2>::eye(inputs, &device).unsqueeze_dim::<3>(0);
        // t[b][i][w] = ∂h_w / ∂x_i.
        let (mut h, mut t) = if s.identity_in {
            (x, eye.expand([batch, inputs, inputs]))
        } else {
            (
                (x - s.in_offset.clone()) * s.in_scale.clone(),
                (eye * s.in_scale.clone().unsqueeze_dim::<3>(0)).expand([batch, inputs, inputs]),
            )
        };
        for (l, (width, a)) in self.def.layers.iter().enumerate() {
            let w = self.params[2 * l].clone();
            let w_in = t.dims()[2];
            let z = h.matmul(w.clone()) + self.params[2 * l + 1].clone();
            t = t
                .reshape([batch * inputs, w_in])
                .matmul(w)
                .reshape([batch, inputs, *width])
                * act_prime(a, z.clone()).unsqueeze_dim::<3>(1);
            h = act(a, z);
        }
        let (y, t) = if s.identity_out {
            (h, t)
        } else {
            (
                h * s.out_scale.clone() + s.out_offset.clone(),
                t * s.out_scale.clone().unsqueeze_dim::<3>(0),
            )
        };
        (y, t.swap_dims(1, 2))
    }
}

/// Uploads parameter values as tensors with the given shapes.
pub fn upload<B: Backend>(
    values: &[Vec<f32>],
    shapes: &[[usize; 2]],
    device: &B::Device,
) -> Vec<Tensor<B, 2>> {
    values
        .iter()
        .zip(shapes)
        .map(|(v, s)| Tensor::from_data(TensorData::new(v.clone(), *s), device))
        .collect()
}

/// Downloads parameter tensors as plain values.
pub fn download<B: Backend>(params: &[Tensor<B, 2>]) -> Vec<Vec<f32>> {
    params
        .iter()
        .map(|p| {
            p.clone()
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use odeflash_runtime::spec::Quant;

    const ALL: [Activation; 10] = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu { slope: 0.05 },
        Activation::Elu { alpha: 0.7 },
        Activation::Gelu,
        Activation::Silu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Sin,
        Activation::Softplus,
    ];

    fn t(v: &[f32]) -> Tensor<Cpu, 2> {
        Tensor::from_data(
            TensorData::new(v.to_vec(), [1, v.len()]),
            &Default::default(),
        )
    }

    fn vals(x: Tensor<Cpu, 2>) -> Vec<f32> {
        x.into_data().into_vec::<f32>().unwrap()
    }

    #[test]
    fn activations_match_the_runtime() {
        let xs: Vec<f32> = (-60..=60).map(|i| i as f32 * 0.1 + 0.013).collect();
        for a in &ALL {
            let got = vals(act(a, t(&xs)));
            for (x, g) in xs.iter().zip(&got) {
                let want = a.apply(*x);
                assert!(
                    (g - want).abs() <= 2e-6 * (1.0 + want.abs()),
                    "{} at {x}: {g} vs {want}",
                    a.name()
                );
            }
        }
    }

    #[test]
    fn activation_derivatives_match_finite_differences() {
        let xs: Vec<f64> = (-40..=40).map(|i| i as f64 * 0.15 + 0.0137).collect();
        let xf: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
        for a in &ALL {
            let d = vals(act_prime(a, t(&xf)));
            for (x, g) in xs.iter().zip(&d) {
                let h = 1e-3;
                let fd =
                    (a.apply((x + h) as f32) as f64 - a.apply((x - h) as f32) as f64) / (2.0 * h);
                assert!(
                    (*g as f64 - fd).abs() < 2e-3,
                    "{} at {x}: {g} vs {fd}",
                    a.name()
                );
            }
        }
    }

    #[test]
    fn shapes_follow_their_definitions() {
        assert_eq!(Shape::Diamond.widths(128, 4), vec![64, 128, 128, 64]);
        assert_eq!(Shape::Rectangle.widths(32, 3), vec![32, 32, 32]);
        assert_eq!(Shape::Funnel.widths(64, 3), vec![64, 32, 16]);
        assert_eq!(Shape::Bottleneck.widths(64, 3), vec![16, 32, 64]);
        assert_eq!(Shape::Bowtie.widths(64, 3), vec![64, 32, 64]);
    }

    fn test_def() -> MlpDef {
        let mut def = MlpDef::new(
            3,
            vec![
                (7, Activation::Silu),
                (5, Activation::Gelu),
                (4, Activation::Elu { alpha: 1.0 }),
                (2, Activation::Identity),
            ],
        );
        def.input_offset = vec![0.1, -0.2, 0.3];
        def.input_scale = vec![2.0, 0.5, 1.5];
        def.output_scale = vec![3.0, 0.25];
        def.output_offset = vec![-1.0, 0.5];
        def
    }

    #[test]
    fn burn_forward_equals_runtime_forward() {
        let def = test_def();
        let values = def.init(&mut Rng::new(3));
        let dev = Default::default();
        let params = upload::<Cpu>(&values, &def.param_shapes(), &dev);
        let scaling = Scaling::new(&def, &dev);
        let mlp = Mlp {
            def: &def,
            params: &params,
            scaling: &scaling,
        };
        let spec = odeflash_runtime::spec::ModelSpec {
            format_version: 1,
            name: "t".into(),
            dynamics: odeflash_runtime::spec::DynamicsSpec::Ode {
                f: def.to_spec(&values),
            },
            readout: odeflash_runtime::spec::ReadoutSpec::None,
            circuit: None,
            x0: vec![0.0, 0.0],
            bounds: vec![Default::default(); 2],
        };
        let blob = spec.try_encode(Quant::F32).unwrap();
        let model = blob.model().unwrap();
        let net = model.dynamics.net().unwrap();
        let w = net.max_width();
        let (mut a, mut b) = (vec![0.0; w], vec![0.0; w]);
        for k in 0..20 {
            let x = [0.3 * k as f32 - 2.0, 1.0 - 0.1 * k as f32, (k as f32).sin()];
            let got = vals(mlp.forward(t(&x)));
            let mut want = [0.0f32; 2];
            net.eval(&x, &mut a, &mut b, &mut want);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn forward_tangent_matches_finite_differences() {
        let def = test_def();
        let values = def.init(&mut Rng::new(5));
        let dev = Default::default();
        let params = upload::<crate::backend::Cpu>(&values, &def.param_shapes(), &dev);
        let scaling = Scaling::new(&def, &dev);
        let mlp = Mlp {
            def: &def,
            params: &params,
            scaling: &scaling,
        };
        let x = [0.4f32, -0.3, 0.8];
        let dx = [0.5f32, 1.0, -0.25];
        let (_, tangent) = mlp.forward_tangent(t(&x), t(&dx));
        let tangent = vals(tangent);
        let h = 1e-2f32;
        let shift = |s: f32| -> Vec<f32> {
            let xs: Vec<f32> = x.iter().zip(&dx).map(|(a, b)| a + s * b).collect();
            vals(mlp.forward(t(&xs)))
        };
        // The full Jacobian applied to dx is the forward tangent.
        let (_, jac) = mlp.forward_jacobian(t(&x));
        let jdx = vals(jac.matmul(t(&dx).reshape([1, 3, 1])).reshape([1, 2]));
        for o in 0..2 {
            assert!((jdx[o] - tangent[o]).abs() < 1e-5 * (1.0 + tangent[o].abs()));
        }
        // Fourth-order central difference, so f32 rounding dominates the comparison.
        let (p1, m1, p2, m2) = (shift(h), shift(-h), shift(2.0 * h), shift(-2.0 * h));
        for o in 0..2 {
            let fd = (8.0 * (p1[o] - m1[o]) - (p2[o] - m2[o])) / (12.0 * h);
            assert!(
                (tangent[o] - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                "{o}: {} vs {fd}",
                tangent[o]
            );
        }
    }
}
