//! Polynomial neural ODEs (paper 002): the Π-net V1 of Chrysos et al. (2022, CCP form) as the
//! vector field, its exact expansion into "the equation learned", and paper 002's training setup.
//!
//! The net, shared with the runtime format: `z = [x.., u]` (`u` is the drive, the last input, zero
//! for autonomous problems),
//!
//! ```text
//! h_1 = U_1 z + a_1
//! h_k = (U_k z + a_k) ∘ h_{k-1} + h_{k-1}      k = 2..degree
//! f   = C h_degree + β
//! ```
//!
//! so `f` is a polynomial of degree `degree` in `z`, with no activation anywhere: expanding the
//! products of affine forms gives its coefficients exactly ([`expand`]).
//!
//! Why an output scale: stiff problems have coefficients over orders of magnitude (`-1e4 y1` next
//! to `3 y1 y2`), while Adam moves every parameter by about the learning rate per step whatever
//! its gradient. The net computes `f_i = s_i e^{σ_i} (C h + β)_i`: `s_i` is a fixed per-state
//! scale read off the data (the largest observed slope `|Δx_i / Δt|`), so the trained parameters
//! start of order one, and `σ_i` is a trained log-scale. The log-scale matters for stiff data:
//! observations on the slow manifold pin the *ratios* of a row's coefficients (where the
//! manifold lies) much better than their common magnitude (how hard the fast mode pulls onto
//! it), so the loss is nearly flat along "scale the whole row", a direction that is no single
//! parameter of `C` and that Adam, adapting per parameter, crawls along. `σ_i` is that direction
//! as one parameter; measured on the stiff linear problem (RK4, 20 points, lr 0.1 → 1e-4, 2000
//! epochs), the stiff coefficient went from -60 (no `σ`, stalled) to -1000 within 1e-3. Neither
//! scale normalizes the data (paper 002 needs none): both fold exactly into `C` and `β` on export
//! and in the printed equations.

pub mod expand;
pub mod fit;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use odeflash_runtime::spec::{
    BoundSpec, DynamicsSpec, LayerSpec, ModelSpec, PiNetSpec, ReadoutSpec,
};
use odeflash_runtime::Activation;
use serde::{Deserialize, Serialize};

use crate::diffsolve::VectorField;
use odeflash_reference::rng::Rng;

/// Shape of a Π-net V1 and its fixed output scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PiNetDef {
    /// Inputs: the states and the drive, `n + 1`.
    pub inputs: usize,
    /// Hidden width (every `h_k`).
    pub width: usize,
    /// Outputs: the state derivatives, `n`.
    pub outputs: usize,
    /// Polynomial degree (number of `U_k`), >= 1.
    pub degree: usize,
    /// Fixed per-output scale `s_i` (see the module doc); ones for none.
    pub out_scale: Vec<f64>,
    /// Fixed per-input scale `c_i`: the net sees `z_i / c_i` (see the module doc); empty for
    /// none.
    #[serde(default)]
    pub in_scale: Vec<f64>,
}

/// Why a Π-net definition or its parameters were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolyError {
    /// A size is zero or inconsistent.
    #[error("invalid Π-net: {0}")]
    Shape(String),
}

impl PiNetDef {
    /// A net for `n` states (inputs `n + 1` with the drive) with unit output scale.
    pub fn new(n: usize, width: usize, degree: usize) -> Result<Self, PolyError> {
        let def = PiNetDef {
            inputs: n + 1,
            width,
            outputs: n,
            degree,
            out_scale: vec![1.0; n],
            in_scale: Vec::new(),
        };
        def.validate()?;
        Ok(def)
    }

    /// Checks sizes and the scale.
    pub fn validate(&self) -> Result<(), PolyError> {
        if self.outputs == 0 || self.inputs == 0 || self.width == 0 || self.degree == 0 {
            return Err(PolyError::Shape(format!(
                "inputs {}, width {}, outputs {} and degree {} must all be at least 1",
                self.inputs, self.width, self.outputs, self.degree
            )));
        }
        if self.out_scale.len() != self.outputs
            || self.out_scale.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(PolyError::Shape(format!(
                "out_scale needs {} positive finite values, got {:?}",
                self.outputs, self.out_scale
            )));
        }
        if !(self.in_scale.is_empty() || self.in_scale.len() == self.inputs)
            || self.in_scale.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(PolyError::Shape(format!(
                "in_scale needs none or {} positive finite values, got {:?}",
                self.inputs, self.in_scale
            )));
        }
        Ok(())
    }

    /// The reciprocal input scale `1 / c_i` of every input (ones without an input scale).
    pub fn inv_in_scale(&self) -> Vec<f64> {
        if self.in_scale.is_empty() {
            vec![1.0; self.inputs]
        } else {
            self.in_scale.iter().map(|c| 1.0 / c).collect()
        }
    }

    /// Parameter shapes in order: `U_1, a_1, ..., U_d, a_d, C, β, σ`, with `U_k: [inputs,
    /// width]`, `a_k: [1, width]`, `C: [width, outputs]`, `β, σ: [1, outputs]` (weights `[in,
    /// out]` as in [`crate::nn::MlpDef`]).
    pub fn param_shapes(&self) -> Vec<[usize; 2]> {
        let mut s = Vec::with_capacity(2 * self.degree + 2);
        for _ in 0..self.degree {
            s.push([self.inputs, self.width]);
            s.push([1, self.width]);
        }
        s.push([self.width, self.outputs]);
        s.push([1, self.outputs]);
        s.push([1, self.outputs]);
        s
    }

    /// Parameter names matching [`PiNetDef::param_shapes`].
    pub fn param_names(&self) -> Vec<String> {
        let mut s = Vec::new();
        for k in 1..=self.degree {
            s.push(format!("u{k}"));
            s.push(format!("a{k}"));
        }
        s.push("c".into());
        s.push("beta".into());
        s.push("log_scale".into());
        s
    }

    /// Checks that `values` has the shapes of [`PiNetDef::param_shapes`].
    pub fn check_values(&self, values: &[Vec<f32>]) -> Result<(), PolyError> {
        let shapes = self.param_shapes();
        if values.len() != shapes.len()
            || values
                .iter()
                .zip(&shapes)
                .any(|(v, s)| v.len() != s[0] * s[1])
        {
            return Err(PolyError::Shape(format!(
                "expected {} parameter tensors of sizes {:?}, got sizes {:?}",
                shapes.len(),
                shapes.iter().map(|s| s[0] * s[1]).collect::<Vec<_>>(),
                values.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        Ok(())
    }

    /// Seeded initial values: `U_k ~ N(0, 1/inputs)` so every factor `U_k z + a_k` starts of
    /// order one on states of order one; `a_k = 0`, so at the start `h_k ≈ h_1` (the skip path
    /// carries the linear terms, which stiff problems are dominated by); `C ~ N(0, (0.1)^2 /
    /// width)` and `β = 0`, so the initial field is a tenth of the data's slopes: a mild, stable
    /// start for every solver, explicit ones included; `σ = 0`.
    pub fn init(&self, rng: &mut Rng) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        let su = (1.0 / self.inputs as f64).sqrt();
        let sc = 0.1 / (self.width as f64).sqrt();
        for _ in 0..self.degree {
            out.push(
                (0..self.inputs * self.width)
                    .map(|_| (rng.normal() * su) as f32)
                    .collect(),
            );
            out.push(vec![0.0; self.width]);
        }
        out.push(
            (0..self.width * self.outputs)
                .map(|_| (rng.normal() * sc) as f32)
                .collect(),
        );
        out.push(vec![0.0; self.outputs]);
        out.push(vec![0.0; self.outputs]);
        out
    }

    /// The total scale of each output, `s_i e^{σ_i}`.
    pub fn total_scale(&self, values: &[Vec<f32>]) -> Vec<f64> {
        let sigma = &values[2 * self.degree + 2];
        self.out_scale
            .iter()
            .zip(sigma)
            .map(|(&s, &g)| s * f64::from(g).exp())
            .collect()
    }

    /// `f(z)` in f64 for one input `z` (`inputs` values), the reference the expansion and the
    /// burn forward pass are checked against.
    pub fn eval_f64(&self, values: &[Vec<f32>], z: &[f64]) -> Vec<f64> {
        let (w, ni) = (self.width, self.inputs);
        let z: Vec<f64> = z
            .iter()
            .zip(self.inv_in_scale())
            .map(|(a, b)| a * b)
            .collect();
        let affine = |k: usize| -> Vec<f64> {
            let u = &values[2 * k];
            let a = &values[2 * k + 1];
            (0..w)
                .map(|j| a[j] as f64 + (0..ni).map(|i| u[i * w + j] as f64 * z[i]).sum::<f64>())
                .collect()
        };
        let mut h = affine(0);
        for k in 1..self.degree {
            let g = affine(k);
            for j in 0..w {
                h[j] = g[j] * h[j] + h[j];
            }
        }
        let c = &values[2 * self.degree];
        let beta = &values[2 * self.degree + 1];
        let scale = self.total_scale(values);
        (0..self.outputs)
            .map(|o| {
                let v = beta[o] as f64
                    + (0..w)
                        .map(|j| c[j * self.outputs + o] as f64 * h[j])
                        .sum::<f64>();
                v * scale[o]
            })
            .collect()
    }

    /// The parameters with both output scales folded into `C` and `β` and the input scale into
    /// the rows of every `U_k` (the net the runtime runs): with these, `σ = 0`, a unit
    /// `out_scale` and no `in_scale` give the same field.
    pub fn fold_scale(&self, values: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let mut v = values.to_vec();
        let d = self.degree;
        let inv = self.inv_in_scale();
        for k in 0..d {
            for (idx, u) in v[2 * k].iter_mut().enumerate() {
                *u = (f64::from(*u) * inv[idx / self.width]) as f32;
            }
        }
        let scale = self.total_scale(values);
        for (k, c) in v[2 * d].iter_mut().enumerate() {
            *c = (*c as f64 * scale[k % self.outputs]) as f32;
        }
        for (o, b) in v[2 * d + 1].iter_mut().enumerate() {
            *b = (*b as f64 * scale[o]) as f32;
        }
        v[2 * d + 2] = vec![0.0; self.outputs];
        v
    }
}

impl PiNetDef {
    /// The runtime's Π-net (both scales folded into `C` and `β`; weights transposed to the
    /// runtime's row-major `[out, in]`).
    pub fn to_net_spec(&self, values: &[Vec<f32>]) -> PiNetSpec {
        let v = self.fold_scale(values);
        let layer = |w: &[f32], b: &[f32], inputs: usize, outputs: usize| {
            let mut weights = vec![0.0f32; inputs * outputs];
            for i in 0..inputs {
                for o in 0..outputs {
                    weights[o * inputs + i] = w[i * outputs + o];
                }
            }
            LayerSpec {
                inputs,
                outputs,
                activation: Activation::Identity,
                weights,
                bias: b.to_vec(),
                int8_scales: None,
            }
        };
        let d = self.degree;
        PiNetSpec {
            inputs: self.inputs,
            width: self.width,
            outputs: self.outputs,
            u: (0..d)
                .map(|k| layer(&v[2 * k], &v[2 * k + 1], self.inputs, self.width))
                .collect(),
            c: layer(&v[2 * d], &v[2 * d + 1], self.width, self.outputs),
        }
    }

    /// The runtime model `dx/dt = Π-net(x, u)` (`DynamicsSpec::PolyOde`), unbounded states.
    pub fn to_spec(&self, values: &[Vec<f32>], name: &str, x0: Vec<f32>) -> ModelSpec {
        ModelSpec {
            format_version: odeflash_runtime::FORMAT_VERSION,
            name: name.to_string(),
            dynamics: DynamicsSpec::PolyOde {
                net: self.to_net_spec(values),
            },
            readout: ReadoutSpec::None,
            circuit: None,
            x0,
            bounds: vec![BoundSpec::default(); self.outputs],
        }
    }
}

/// A Π-net with its parameters on a backend, ready to evaluate.
pub struct PiNet<'a, B: Backend> {
    /// Definition.
    pub def: &'a PiNetDef,
    /// Parameters, see [`PiNetDef::param_shapes`].
    pub params: &'a [Tensor<B, 2>],
    /// `[1, outputs]` output scale.
    scale: Tensor<B, 2>,
    /// `[1, inputs]` reciprocal input scale.
    inv_in: Tensor<B, 2>,
}

impl<'a, B: Backend> PiNet<'a, B> {
    /// Binds parameters to a definition; the scale tensor is built once here.
    pub fn new(def: &'a PiNetDef, params: &'a [Tensor<B, 2>], device: &B::Device) -> Self {
        let s: Vec<f32> = def.out_scale.iter().map(|&v| v as f32).collect();
        let inv: Vec<f32> = def.inv_in_scale().iter().map(|&v| v as f32).collect();
        PiNet {
            def,
            params,
            scale: Tensor::from_data(TensorData::new(s, [1, def.outputs]), device),
            inv_in: Tensor::from_data(TensorData::new(inv, [1, def.inputs]), device),
        }
    }

    /// `f(z)` for a batch `z: [batch, inputs]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let p = self.params;
        let z = z * self.inv_in.clone();
        let mut h = z.clone().matmul(p[0].clone()) + p[1].clone();
        for k in 1..self.def.degree {
            let g = z.clone().matmul(p[2 * k].clone()) + p[2 * k + 1].clone();
            h = g * h.clone() + h;
        }
        let d = self.def.degree;
        (h.matmul(p[2 * d].clone()) + p[2 * d + 1].clone())
            * self.scale.clone()
            * p[2 * d + 2].clone().exp()
    }

    /// `(f(z), ∂f/∂z)` with the Jacobian `[batch, outputs, inputs]`, propagated through the
    /// products: `∂h_k/∂z = U_k h_{k-1} + (U_k z + a_k + 1) ∂h_{k-1}/∂z`, on the scaled input
    /// (the chain rule's `1 / c_i` multiplies the columns at the end).
    pub fn forward_jacobian(&self, z: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 3>) {
        let p = self.params;
        let z = z * self.inv_in.clone();
        let [batch, inputs] = z.dims();
        let w = self.def.width;
        // t[b][i][w] = ∂h_w / ∂z_i.
        let mut h = z.clone().matmul(p[0].clone()) + p[1].clone();
        let mut t = p[0]
            .clone()
            .unsqueeze_dim::<3>(0)
            .expand([batch, inputs, w]);
        for k in 1..self.def.degree {
            let g = z.clone().matmul(p[2 * k].clone()) + p[2 * k + 1].clone();
            let uk = p[2 * k]
                .clone()
                .unsqueeze_dim::<3>(0)
                .expand([batch, inputs, w]);
            t = uk * h.clone().unsqueeze_dim::<3>(1) + t * (g.clone() + 1.0).unsqueeze_dim::<3>(1);
            h = g * h.clone() + h;
        }
        let d = self.def.degree;
        let o = self.def.outputs;
        let scale = self.scale.clone() * p[2 * d + 2].clone().exp();
        let f = (h.matmul(p[2 * d].clone()) + p[2 * d + 1].clone()) * scale.clone();
        let j = t
            .reshape([batch * inputs, w])
            .matmul(p[2 * d].clone())
            .reshape([batch, inputs, o])
            * scale.unsqueeze_dim::<3>(0);
        let j = j.swap_dims(1, 2) * self.inv_in.clone().unsqueeze_dim::<3>(0);
        (f, j)
    }
}

impl<B: Backend> VectorField<B> for PiNet<'_, B> {
    fn eval(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Tensor<B, 2> {
        self.forward(Tensor::cat(vec![x, u], 1))
    }

    fn linearize(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
        let n = x.dims()[1];
        let params: Vec<Tensor<B, 2>> = self.params.iter().map(|p| p.clone().detach()).collect();
        let net = PiNet {
            def: self.def,
            params: &params,
            scale: self.scale.clone(),
            inv_in: self.inv_in.clone(),
        };
        let (f, j) = net.forward_jacobian(Tensor::cat(vec![x.detach(), u.detach()], 1));
        Some((f, j.narrow(2, 0, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use crate::nn::upload;

    #[test]
    fn burn_forward_matches_f64_reference() {
        let mut def = PiNetDef::new(3, 5, 3).unwrap();
        def.out_scale = vec![2.0, 300.0, 0.5];
        def.in_scale = vec![0.5, 3.0, 1e-2, 1.0];
        let mut rng = Rng::new(7);
        let mut values = def.init(&mut rng);
        for v in values.iter_mut() {
            for x in v.iter_mut() {
                *x += (rng.normal() * 0.3) as f32;
            }
        }
        let device = Default::default();
        let p = upload::<Cpu>(&values, &def.param_shapes(), &device);
        let net = PiNet::new(&def, &p, &device);
        let zs: Vec<Vec<f64>> = (0..6)
            .map(|_| (0..4).map(|_| rng.normal()).collect())
            .collect();
        let flat: Vec<f32> = zs.iter().flatten().map(|&v| v as f32).collect();
        let out = net
            .forward(Tensor::from_data(TensorData::new(flat, [6, 4]), &device))
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap();
        for (b, z) in zs.iter().enumerate() {
            let r = def.eval_f64(&values, z);
            for o in 0..3 {
                let got = out[b * 3 + o] as f64;
                assert!(
                    (got - r[o]).abs() <= 1e-4 * (1.0 + r[o].abs()),
                    "row {b} output {o}: burn {got} vs f64 {}",
                    r[o]
                );
            }
        }
        // Folding the scales in leaves the field unchanged.
        let mut unit = def.clone();
        unit.out_scale = vec![1.0; 3];
        unit.in_scale = Vec::new();
        let folded = def.fold_scale(&values);
        for z in &zs {
            let a = def.eval_f64(&values, z);
            let b = unit.eval_f64(&folded, z);
            for o in 0..3 {
                assert!((a[o] - b[o]).abs() <= 1e-5 * (1.0 + a[o].abs()));
            }
        }
    }

    /// The exported model run by the runtime follows the trainer's own trajectory of the same
    /// net: RK4 with two substeps, and Radau IIA 5 (the runtime's fixed four Newton iterations
    /// against the trainer's Newton to tolerance).
    #[test]
    fn runtime_reproduces_the_trainer_trajectory() {
        use crate::diffsolve::implicit::{Implicit, ImplicitMethod};
        use crate::diffsolve::{integrate_fixed, Drive, ExplicitRk, FixedGrid, Stepper};
        use odeflash_runtime::spec::Quant;
        use odeflash_runtime::{SimConfig, Simulator, Solver};

        let mut def = PiNetDef::new(2, 4, 2).unwrap();
        def.out_scale = vec![5.0, 0.5];
        def.in_scale = vec![2.0, 0.25, 1.0];
        let mut rng = Rng::new(3);
        let mut values = def.init(&mut rng);
        values[2 * def.degree + 2] = vec![0.3, -0.2];
        let x0 = vec![0.7f32, -0.4];
        let (dt, samples) = (0.05, 40);
        let device = Default::default();
        let p = upload::<Cpu>(&values, &def.param_shapes(), &device);
        let net = PiNet::new(&def, &p, &device);
        let blob = def
            .to_spec(&values, "pinet", x0.clone())
            .try_encode(Quant::F32)
            .unwrap();
        let model = blob.model().unwrap();
        let radau5 = Implicit::new(ImplicitMethod::RadauIIA5);
        let cases: [(&dyn Stepper<Cpu>, Solver, usize, f32); 2] = [
            (&ExplicitRk(Solver::Rk4), Solver::Rk4, 2, 1e-5),
            (&radau5, Solver::Radau5, 1, 1e-4),
        ];
        for (stepper, solver, substeps, tol) in cases {
            let grid = FixedGrid {
                stride: 1,
                substeps,
            };
            let xs = integrate_fixed(
                &net,
                stepper,
                Tensor::from_data(TensorData::new(x0.clone(), [1, 2]), &device),
                &Drive::zeros(1, samples),
                dt,
                samples,
                grid,
                None,
            )
            .unwrap()
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap();
            let drive = vec![0.0f32; samples];
            let cfg = SimConfig::new(dt as f32, solver, substeps as u16);
            let mut scratch = vec![0.0f32; model.cost_for(&cfg).scratch_f32];
            let mut sim = Simulator::new(&model, cfg, &mut scratch).unwrap();
            sim.reset(Some(&x0)).unwrap();
            let (mut v, mut i, mut x) = (
                vec![0.0; samples],
                vec![0.0; samples],
                vec![0.0; 2 * samples],
            );
            sim.run(&drive, &mut v, &mut i, &mut x).unwrap();
            assert_eq!(xs.len(), x.len());
            let mut worst = 0.0f32;
            for (a, b) in xs.iter().zip(&x) {
                worst = worst.max((a - b).abs() / (1.0 + b.abs()));
            }
            assert!(worst < tol, "{solver:?}: runtime vs trainer {worst}");
            assert!(
                xs.iter().any(|v| (v - x0[0]).abs() > 1e-2),
                "trajectory moves"
            );
        }
    }

    /// The Jacobian the implicit steps use against central differences of the f64 net.
    #[test]
    fn jacobian_matches_finite_differences() {
        let mut def = PiNetDef::new(3, 5, 3).unwrap();
        def.out_scale = vec![2.0, 30.0, 0.5];
        def.in_scale = vec![0.5, 3.0, 0.1, 2.0];
        let mut rng = Rng::new(9);
        let mut values = def.init(&mut rng);
        for v in values.iter_mut() {
            for x in v.iter_mut() {
                *x += (rng.normal() * 0.3) as f32;
            }
        }
        let device = Default::default();
        let p = upload::<Cpu>(&values, &def.param_shapes(), &device);
        let net = PiNet::new(&def, &p, &device);
        let z: Vec<f64> = vec![0.4, -0.3, 0.8, 0.2];
        let zt: Vec<f32> = z.iter().map(|&v| v as f32).collect();
        let x = Tensor::<Cpu, 2>::from_data(TensorData::new(zt[..3].to_vec(), [1, 3]), &device);
        let u = Tensor::<Cpu, 2>::from_data(TensorData::new(vec![zt[3]], [1, 1]), &device);
        let (_, j) = net.linearize(x, u).unwrap();
        assert_eq!(j.dims(), [1, 3, 3]);
        let j = j.into_data().convert::<f32>().into_vec::<f32>().unwrap();
        let eps = 1e-6;
        for c in 0..3 {
            let (mut zp, mut zm) = (z.clone(), z.clone());
            zp[c] += eps;
            zm[c] -= eps;
            let (fp, fm) = (def.eval_f64(&values, &zp), def.eval_f64(&values, &zm));
            for r in 0..3 {
                let fd = (fp[r] - fm[r]) / (2.0 * eps);
                let got = j[r * 3 + c] as f64;
                assert!(
                    (got - fd).abs() <= 1e-4 * (1.0 + fd.abs()),
                    "J[{r}][{c}]: {got} vs finite difference {fd}"
                );
            }
        }
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(PiNetDef::new(0, 4, 2).is_err());
        assert!(PiNetDef::new(2, 4, 0).is_err());
        let def = PiNetDef::new(2, 4, 2).unwrap();
        assert!(def.check_values(&[vec![0.0; 3]]).is_err());
        let mut rng = Rng::new(1);
        assert!(def.check_values(&def.init(&mut rng)).is_ok());
    }
}
