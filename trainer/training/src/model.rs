//! What the training loop trains: a model is a set of named parameter tensors, a vector field
//! built from them, an observation of the states, and an export to the runtime's format.
//! Memristor models (SingleNN/DualNN-MemODE, iterator nets) implement the same trait.

use burn::tensor::{backend::Backend, Tensor};
use odeflash_runtime::spec::{BoundSpec, DynamicsSpec, ModelSpec, ReadoutSpec};

use crate::diffsolve::VectorField;
use crate::nn::{Mlp, MlpDef, Scaling};
use odeflash_reference::rng::Rng;

/// Name and shape of one parameter tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamDef {
    /// Name, unique within the model (`f.0.weight`, `f.0.bias`, ...).
    pub name: String,
    /// `[rows, cols]`.
    pub shape: [usize; 2],
}

/// A trainable continuous-time model.
pub trait TrainModel {
    /// Internal states.
    fn n_states(&self) -> usize;
    /// Observed channels.
    fn n_channels(&self) -> usize;
    /// Parameter tensors, in order.
    fn params(&self) -> Vec<ParamDef>;
    /// Initial parameter values (seeded).
    fn init(&self, rng: &mut Rng) -> Vec<Vec<f32>>;
    /// The vector field with parameters `p` for a batch whose per-row constants (see
    /// [`odeflash_reference::dataset::Trajectory::consts`]) are `consts: [batch, k]`; scaling tensors are built
    /// once per call.
    fn field<'a, B: Backend>(
        &'a self,
        p: &'a [Tensor<B, 2>],
        consts: Option<Tensor<B, 2>>,
        device: &B::Device,
    ) -> Box<dyn VectorField<B> + 'a>;
    /// Observations `[samples, batch, channels]` of states `[samples, batch, n]` under the drive
    /// `[samples, batch]`.
    fn observe<B: Backend>(
        &self,
        p: &[Tensor<B, 2>],
        x: Tensor<B, 3>,
        drive: Tensor<B, 2>,
        consts: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3>;
    /// The model's constraint loss (paper 000 eq. 8) on its parameters and the predicted states
    /// `[samples, batch, n]`, if it has constraints.
    fn constraint_loss<B: Backend>(
        &self,
        _p: &[Tensor<B, 2>],
        _x: &Tensor<B, 3>,
        _gamma: f64,
    ) -> Option<Tensor<B, 1>> {
        None
    }
    /// Bounds every state is clamped into after each step (as the runtime does), if any.
    fn state_bounds(&self) -> Option<(f32, f32)> {
        None
    }
    /// Whether the model is a discrete map (iterator net) rather than a vector field.
    fn is_iterator(&self) -> bool {
        false
    }
    /// For iterator nets: residual (`true`) or direct form.
    fn iterator_residual(&self) -> bool {
        true
    }
    /// Whether the channels are the states themselves (so windows can start from data).
    fn states_observed(&self) -> bool;
    /// The model as `Any`, so that a training mode written for one concrete model (the
    /// memristor surrogates' whole-record free run) can recognize it without this trait naming
    /// it.
    fn as_any(&self) -> &dyn std::any::Any;
    /// The runtime model with parameter values `values`.
    fn to_spec(&self, values: &[Vec<f32>]) -> ModelSpec;
    /// The runtime model for a rig with per-trajectory constants `consts` (the memristor models
    /// put the series resistance into the circuit); the same as [`TrainModel::to_spec`] otherwise.
    fn to_spec_with(&self, values: &[Vec<f32>], _consts: &[f32]) -> ModelSpec {
        self.to_spec(values)
    }
    /// The observed channels of a trajectory simulated by the runtime.
    fn runtime_channels(&self, t: &odeflash_runtime::batch::Trajectory) -> Vec<Vec<f32>>;
}

/// `dx/dt = f(x, u)` with every state observed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NeuralOde {
    /// The vector field net: inputs `[x.., u]`, outputs `dx/dt`.
    pub f: MlpDef,
    /// Default initial state written into exported models.
    pub x0: Vec<f32>,
    /// Name written into exported models.
    pub name: String,
}

struct NetField<'a, B: Backend> {
    def: &'a MlpDef,
    params: &'a [Tensor<B, 2>],
    scaling: Scaling<B>,
}

impl<B: Backend> VectorField<B> for NetField<'_, B> {
    fn eval(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Tensor<B, 2> {
        let mlp = Mlp {
            def: self.def,
            params: self.params,
            scaling: &self.scaling,
        };
        mlp.forward(Tensor::cat(vec![x, u], 1))
    }

    fn linearize(&self, x: Tensor<B, 2>, u: Tensor<B, 2>) -> Option<(Tensor<B, 2>, Tensor<B, 3>)> {
        let n = x.dims()[1];
        let params: Vec<Tensor<B, 2>> = self.params.iter().map(|p| p.clone().detach()).collect();
        let mlp = Mlp {
            def: self.def,
            params: &params,
            scaling: &self.scaling,
        };
        let (f, j) = mlp.forward_jacobian(Tensor::cat(vec![x.detach(), u.detach()], 1));
        Some((f, j.narrow(2, 0, n)))
    }
}

impl TrainModel for NeuralOde {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn n_states(&self) -> usize {
        self.f.outputs()
    }

    fn n_channels(&self) -> usize {
        self.f.outputs()
    }

    fn params(&self) -> Vec<ParamDef> {
        self.f
            .param_shapes()
            .into_iter()
            .enumerate()
            .map(|(i, shape)| ParamDef {
                name: format!("f.{}.{}", i / 2, if i % 2 == 0 { "weight" } else { "bias" }),
                shape,
            })
            .collect()
    }

    fn init(&self, rng: &mut Rng) -> Vec<Vec<f32>> {
        self.f.init(rng)
    }

    fn field<'a, B: Backend>(
        &'a self,
        p: &'a [Tensor<B, 2>],
        _consts: Option<Tensor<B, 2>>,
        device: &B::Device,
    ) -> Box<dyn VectorField<B> + 'a> {
        Box::new(NetField {
            def: &self.f,
            params: p,
            scaling: Scaling::new(&self.f, device),
        })
    }

    fn observe<B: Backend>(
        &self,
        _p: &[Tensor<B, 2>],
        x: Tensor<B, 3>,
        _drive: Tensor<B, 2>,
        _consts: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3> {
        x
    }

    fn states_observed(&self) -> bool {
        true
    }

    fn runtime_channels(&self, t: &odeflash_runtime::batch::Trajectory) -> Vec<Vec<f32>> {
        let n = self.n_states();
        (0..n)
            .map(|c| t.x.iter().skip(c).step_by(n).copied().collect())
            .collect()
    }

    fn to_spec(&self, values: &[Vec<f32>]) -> ModelSpec {
        ModelSpec {
            format_version: odeflash_runtime::FORMAT_VERSION,
            name: self.name.clone(),
            dynamics: DynamicsSpec::Ode {
                f: self.f.to_spec(values),
            },
            readout: ReadoutSpec::None,
            circuit: None,
            x0: self.x0.clone(),
            bounds: vec![BoundSpec::default(); self.n_states()],
        }
    }
}
