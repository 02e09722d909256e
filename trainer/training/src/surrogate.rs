//! Memristor surrogates of paper 000, trained through the series-resistor circuit of its Fig. 1:
//!
//! - **SingleNN-MemODE** (Fig. 3): `dx/dt = f(x, v)` with one state and the memductance of eq. 10,
//!   `G = x / R_on + (1 - x) / R_off`, `R_on` and `R_off` trained jointly under the constraint
//!   loss (eq. 8) `R_on in (500 Ohm, R_off)`, `R_off in (R_on, 200 kOhm)`, `x in (0, 1)`.
//! - **DualNN-MemODE** (Fig. 4): `n` latent states and a second net for `G(x)`, whose sigmoid
//!   output is mapped onto `[G_min, G_max]` (5 uS to 2 mS by default), so the paper's
//!   constraint on `G` holds by construction.
//! - **Iterator net**: one net evaluation per sample, `x[n+1] = x[n] + net(x[n], v[n])`, with the
//!   SingleNN memductance; tied to its sample interval, which the exported model records.
//!
//! In every case the memristor voltage follows from the supply through the series resistor,
//! `v = v_s / (1 + R_s G(x))`, and `i = G v`. The series resistance is a per-trajectory constant
//! (`consts[0]`), so one model trains on rigs with different resistors.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use odeflash_runtime::spec::{BoundSpec, DynamicsSpec, ModelSpec, ReadoutSpec};
use odeflash_runtime::{Circuit, IteratorForm};
use serde::{Deserialize, Serialize};

use crate::diffsolve::VectorField;
use crate::loss::constraint;
use crate::model::{ParamDef, TrainModel};
use crate::nn::{Mlp, MlpDef, Scaling};
use odeflash_reference::rng::Rng;

/// Which surrogate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// SingleNN-MemODE.
    Single,
    /// DualNN-MemODE.
    Dual,
    /// Iterator net (residual form), SingleNN memductance.
    Iterator,
}

/// Physical bounds: the paper's values for its devices are the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bounds {
    /// Lower bound of `R_on`, ohms.
    pub r_on_min: f64,
    /// Upper bound of `R_off`, ohms.
    pub r_off_max: f64,
    /// Lower memductance bound, siemens.
    pub g_min: f64,
    /// Upper memductance bound, siemens.
    pub g_max: f64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            r_on_min: 500.0,
            r_off_max: 200e3,
            g_min: 5e-6,
            g_max: 2e-3,
        }
    }
}

/// Resistances are trained in kilo-ohms, so they are numbers of order one like the weights.
pub(crate) const KOHM: f64 = 1e3;

/// A memristor surrogate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memristor {
    /// Which one.
    pub kind: Kind,
    /// State net: inputs `[x.., v]`, outputs `dx/dt` (or the increment, for iterator nets).
    pub f: MlpDef,
    /// Memductance net (DualNN): inputs `x`, one sigmoid output.
    pub g: Option<MlpDef>,
    /// Bounds.
    pub bounds: Bounds,
    /// Initial `R_on` and `R_off`, ohms.
    pub r_init: [f64; 2],
    /// Initial state of exported models (and of validation, before its warm-up).
    pub x0: Vec<f32>,
    /// Series resistance written into exported models, ohms (the rig's).
    pub series_resistance: f32,
    /// Sample interval of an iterator net, seconds.
    pub dt: f32,
    /// Name written into exported models.
    pub name: String,
}

fn scalar_tensor<B: Backend>(v: f64, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(vec![v as f32], [1, 1]), device)
}

/// `G(x)` for states `[rows, n]`, `[rows, 1]`.
fn memductance<B: Backend>(
    m: &Memristor,
    p: &[Tensor<B, 2>],
    x: Tensor<B, 2>,
    g_scaling: Option<&Scaling<B>>,
) -> Tensor<B, 2> {
    let nf = m.f.n_params();
    match (&m.g, g_scaling) {
        (Some(gdef), Some(s)) => {
            let net = Mlp {
                def: gdef,
                params: &p[nf..nf + gdef.n_params()],
                scaling: s,
            };
            net.forward(x) * (m.bounds.g_max - m.bounds.g_min) + m.bounds.g_min
        }
        _ => {
            let x0 = x.narrow(1, 0, 1);
            let r_on = p[nf].clone() * KOHM;
            let r_off = p[nf + 1].clone() * KOHM;
            x0.clone() / r_on + (x0.neg() + 1.0) / r_off
        }
    }
}

/// `(G(x), ∂G/∂x)` for states `[rows, n]`: `([rows, 1], [rows, 1, n])`.
fn memductance_jacobian<B: Backend>(
    m: &Memristor,
    p: &[Tensor<B, 2>],
    x: Tensor<B, 2>,
    g_scaling: Option<&Scaling<B>>,
) -> (Tensor<B, 2>, Tensor<B, 3>) {
    let nf = m.f.n_params();
    let [rows, n] = x.dims();
    match (&m.g, g_scaling) {
        (Some(gdef), Some(s)) => {
            let net = Mlp {
                def: gdef,
                params: &p[nf..nf + gdef.n_params()],
                scaling: s,
            };
            let (y, j) = net.forward_jacobian(x);
            let span = m.bounds.g_max - m.bounds.g_min;
            (y * span + m.bounds.g_min, j * span)
        }
        _ => {
            let g = memductance(m, p, x.clone(), None);
            let r_on = p[nf].clone() * KOHM;
            let r_off = p[nf + 1].clone() * KOHM;
            let d0 = (r_on.recip() - r_off.recip())
                .expand([rows, 1])
                .reshape([rows, 1, 1]);
            let dg = if n > 1 {
                Tensor::cat(vec![d0, Tensor::zeros([rows, 1, n - 1], &x.device())], 2)
            } else {
                d0
            };
            (g, dg)
        }
    }
}

struct Field<'a, B: Backend> {
    m: &'a Memristor,
    p: &'a [Tensor<B, 2>],
    f_scaling: Scaling<B>,
    g_scaling: Option<Scaling<B>>,
    rs: Option<Tensor<B, 2>>,
}

impl<B: Backend> VectorField<B> for Field<'_, B> {
    fn eval(&self, x: Tensor<B, 2>, vs: Tensor<B, 2>) -> Tensor<B, 2> {
        let g = memductance(self.m, self.p, x.clone(), self.g_scaling.as_ref());
        let v = match &self.rs {
            Some(rs) => vs / (g * rs.clone() + 1.0),
            None => vs,
        };
        let net = Mlp {
            def: &self.m.f,
            params: &self.p[..self.m.f.n_params()],
            scaling: &self.f_scaling,
        };
        net.forward(Tensor::cat(vec![x, v], 1))
    }

    /// Chain rule through the series resistor: `v = v_s / (1 + R_s G(x))` moves with `x`.
    fn linearize(&self, x: Tensor<B, 2>, vs: Tensor<B, 2>) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
        let (x, vs) = (x.detach(), vs.detach());
        let n = x.dims()[1];
        let p: Vec<Tensor<B, 2>> = self.p.iter().map(|t| t.clone().detach()).collect();
        let net = Mlp {
            def: &self.m.f,
            params: &p[..self.m.f.n_params()],
            scaling: &self.f_scaling,
        };
        match &self.rs {
            None => {
                let (f, j) = net.forward_jacobian(Tensor::cat(vec![x, vs], 1));
                Some((f, j.narrow(2, 0, n)))
            }
            Some(rs) => {
                let rs = rs.clone().detach();
                let (g, dg) = memductance_jacobian(self.m, &p, x.clone(), self.g_scaling.as_ref());
                let den = g * rs.clone() + 1.0;
                let v = vs / den.clone();
                // ∂v/∂x = -v R_s / (1 + R_s G) ∂G/∂x, [batch, 1, n].
                let dv = dg * (v.clone() * rs / den).neg().unsqueeze_dim::<3>(2);
                let (f, j) = net.forward_jacobian(Tensor::cat(vec![x, v], 1));
                let jx = j.clone().narrow(2, 0, n) + j.narrow(2, n, 1) * dv;
                Some((f, jx))
            }
        }
    }
}

impl TrainModel for Memristor {
    fn n_states(&self) -> usize {
        self.f.outputs()
    }

    fn n_channels(&self) -> usize {
        2
    }

    fn params(&self) -> Vec<ParamDef> {
        let mut out = Vec::new();
        let mut net = |prefix: &str, def: &MlpDef| {
            for (i, shape) in def.param_shapes().into_iter().enumerate() {
                let which = if i % 2 == 0 { "weight" } else { "bias" };
                out.push(ParamDef {
                    name: format!("{prefix}.{}.{which}", i / 2),
                    shape,
                });
            }
        };
        net("f", &self.f);
        match &self.g {
            Some(g) => net("g", g),
            None => {
                out.push(ParamDef {
                    name: "r_on_kohm".into(),
                    shape: [1, 1],
                });
                out.push(ParamDef {
                    name: "r_off_kohm".into(),
                    shape: [1, 1],
                });
            }
        }
        out
    }

    fn init(&self, rng: &mut Rng) -> Vec<Vec<f32>> {
        let mut v = self.f.init(rng);
        // A small last layer: the untrained model barely moves its state, instead of driving it
        // into its bounds within the first window.
        let last = 2 * (self.f.layers.len() - 1);
        for w in &mut v[last] {
            *w *= 0.1;
        }
        match &self.g {
            Some(g) => v.extend(g.init(rng)),
            None => {
                v.push(vec![(self.r_init[0] / KOHM) as f32]);
                v.push(vec![(self.r_init[1] / KOHM) as f32]);
            }
        }
        v
    }

    fn field<'a, B: Backend>(
        &'a self,
        p: &'a [Tensor<B, 2>],
        consts: Option<Tensor<B, 2>>,
        device: &B::Device,
    ) -> Box<dyn VectorField<B> + 'a> {
        Box::new(Field {
            m: self,
            p,
            f_scaling: Scaling::new(&self.f, device),
            g_scaling: self.g.as_ref().map(|g| Scaling::new(g, device)),
            rs: consts.map(|c| c.narrow(1, 0, 1)),
        })
    }

    fn observe<B: Backend>(
        &self,
        p: &[Tensor<B, 2>],
        x: Tensor<B, 3>,
        drive: Tensor<B, 2>,
        consts: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3> {
        let [l, b, n] = x.dims();
        let device = x.device();
        let g_scaling = self.g.as_ref().map(|g| Scaling::new(g, &device));
        let g = memductance(self, p, x.reshape([l * b, n]), g_scaling.as_ref()).reshape([l, b, 1]);
        let vs = drive.reshape([l, b, 1]);
        let v = match consts {
            Some(c) => vs / (g.clone() * c.narrow(1, 0, 1).reshape([1, b, 1]) + 1.0),
            None => vs,
        };
        let i = g * v.clone();
        Tensor::cat(vec![v, i], 2)
    }

    fn constraint_loss<B: Backend>(
        &self,
        p: &[Tensor<B, 2>],
        x: &Tensor<B, 3>,
        gamma: f64,
    ) -> Option<Tensor<B, 1>> {
        if self.g.is_some() {
            return None;
        }
        let nf = self.f.n_params();
        let device = x.device();
        let (r_on, r_off) = (p[nf].clone(), p[nf + 1].clone());
        let lo = scalar_tensor::<B>(self.bounds.r_on_min / KOHM, &device);
        let hi = scalar_tensor::<B>(self.bounds.r_off_max / KOHM, &device);
        let state = x.clone().narrow(2, 0, 1);
        let zeros = state.zeros_like();
        let ones = state.ones_like();
        Some(
            constraint(r_on.clone(), lo, r_off.clone(), gamma)
                + constraint(r_off, r_on, hi, gamma)
                + constraint(state, zeros, ones, gamma),
        )
    }

    fn is_iterator(&self) -> bool {
        self.kind == Kind::Iterator
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn state_bounds(&self) -> Option<(f32, f32)> {
        self.g.is_none().then_some((0.0, 1.0))
    }

    fn states_observed(&self) -> bool {
        false
    }

    fn to_spec(&self, values: &[Vec<f32>]) -> ModelSpec {
        let nf = self.f.n_params();
        let f = self.f.to_spec(&values[..nf]);
        let (readout, bounds) = match &self.g {
            Some(g) => (
                ReadoutSpec::Net {
                    g: g.to_spec(&values[nf..nf + g.n_params()]),
                    g_min: self.bounds.g_min as f32,
                    g_max: self.bounds.g_max as f32,
                },
                vec![BoundSpec::default(); self.n_states()],
            ),
            None => (
                ReadoutSpec::Linear {
                    r_on: (values[nf][0] as f64 * KOHM) as f32,
                    r_off: (values[nf + 1][0] as f64 * KOHM) as f32,
                },
                vec![BoundSpec {
                    lower: Some(0.0),
                    upper: Some(1.0),
                }],
            ),
        };
        ModelSpec {
            format_version: odeflash_runtime::FORMAT_VERSION,
            name: self.name.clone(),
            dynamics: match self.kind {
                Kind::Iterator => DynamicsSpec::Iterator {
                    net: f,
                    form: IteratorForm::Residual,
                    dt: self.dt,
                },
                _ => DynamicsSpec::Ode { f },
            },
            readout,
            circuit: Some(Circuit {
                series_resistance: self.series_resistance,
            }),
            x0: self.x0.clone(),
            bounds,
        }
    }

    fn to_spec_with(&self, values: &[Vec<f32>], consts: &[f32]) -> ModelSpec {
        let mut spec = self.to_spec(values);
        if let Some(&rs) = consts.first() {
            spec.circuit = Some(Circuit {
                series_resistance: rs,
            });
        }
        spec
    }

    fn runtime_channels(&self, t: &odeflash_runtime::batch::Trajectory) -> Vec<Vec<f32>> {
        vec![t.v.clone(), t.i.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use odeflash_runtime::Activation;

    fn memristor(kind: Kind, n: usize) -> Memristor {
        Memristor {
            kind,
            f: MlpDef::new(
                n + 1,
                vec![(6, Activation::Tanh), (n, Activation::Identity)],
            ),
            g: (kind == Kind::Dual)
                .then(|| MlpDef::new(n, vec![(5, Activation::Tanh), (1, Activation::Sigmoid)])),
            bounds: Bounds::default(),
            r_init: [2e3, 50e3],
            x0: vec![0.5; n],
            series_resistance: 1e3,
            dt: 1e-3,
            name: "t".into(),
        }
    }

    fn t<B: Backend>(v: Vec<f32>, shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    fn vals<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f64> {
        x.into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    }

    /// The exact Jacobian (implicit steps need it) against central differences of `eval`, with
    /// and without the series resistor.
    #[test]
    fn field_jacobian_matches_finite_differences() {
        for (kind, n) in [(Kind::Single, 1), (Kind::Dual, 3)] {
            let m = memristor(kind, n);
            let mut values = m.init(&mut Rng::new(4));
            // Undo init's small last layer, so the field's Jacobian is of order one.
            let last = 2 * (m.f.layers.len() - 1);
            for w in &mut values[last] {
                *w *= 10.0;
            }
            let shapes: Vec<[usize; 2]> = m.params().iter().map(|p| p.shape).collect();
            let p = crate::nn::upload::<Cpu>(&values, &shapes, &Default::default());
            let batch = 3;
            let x: Vec<f32> = (0..batch * n).map(|i| 0.2 + 0.07 * i as f32).collect();
            let vs = t::<Cpu>(vec![0.8, -0.5, 1.2], [batch, 1]);
            for consts in [None, Some(t::<Cpu>(vec![1.0e3, 5.0e3, 20.0e3], [batch, 1]))] {
                let field = m.field(&p, consts.clone(), &Default::default());
                let (f, j) = field
                    .linearize(t(x.clone(), [batch, n]), vs.clone())
                    .unwrap();
                let f = vals(f);
                let want = vals(field.eval(t(x.clone(), [batch, n]), vs.clone()));
                for (a, b) in f.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()));
                }
                let j = vals(j);
                let eps = 1e-2f32;
                for c in 0..n {
                    let shifted = |s: f32| {
                        let mut xs = x.clone();
                        for b in 0..batch {
                            xs[b * n + c] += s;
                        }
                        vals(field.eval(t(xs, [batch, n]), vs.clone()))
                    };
                    let (p1, m1) = (shifted(eps), shifted(-eps));
                    for b in 0..batch {
                        for r in 0..n {
                            let fd = (p1[b * n + r] - m1[b * n + r]) / (2.0 * eps as f64);
                            let got = j[b * n * n + r * n + c];
                            assert!(
                                (got - fd).abs() < 1e-4 + 1e-3 * fd.abs(),
                                "{kind:?} rs {} J[{b}][{r}][{c}]: {got} vs {fd}",
                                consts.is_some()
                            );
                        }
                    }
                }
            }
        }
    }
}
