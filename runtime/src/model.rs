//! The decoded model: borrowed slices into the blob, validated once, cheap to evaluate.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::kernels;
use crate::limits::MAX_LAYERS;
use crate::solver::Solver;

/// Weights of one dense layer, row-major `n_out x n_in`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Weights<'a> {
    /// Full-precision weights.
    F32(&'a [f32]),
    /// Weight-only int8: `w = scales[row] * q`.
    Int8 {
        /// Quantized weights.
        q: &'a [i8],
        /// One scale per output row.
        scales: &'a [f32],
    },
}

/// One dense layer followed by its activation.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Layer<'a> {
    /// Inputs.
    pub n_in: u16,
    /// Outputs.
    pub n_out: u16,
    /// Activation applied to the outputs.
    pub activation: Activation,
    /// Weights.
    pub weights: Weights<'a>,
    /// Bias, `n_out` values.
    pub bias: &'a [f32],
}

impl Layer<'_> {
    /// Runs the layer: `y = act(W x + b)`.
    #[inline]
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        match self.weights {
            Weights::F32(w) => kernels::dense_f32(w, self.bias, x, y),
            Weights::Int8 { q, scales } => kernels::dense_i8(q, scales, self.bias, x, y),
        }
        self.activation.apply_slice(y);
    }

    /// Multiply-accumulates per evaluation.
    pub fn macs(&self) -> u32 {
        self.n_in as u32 * self.n_out as u32
    }
}

/// A multilayer perceptron with its input and output scaling baked in, so it takes and returns
/// physical units: `y = out_scale * net((x - in_offset) * in_scale) + out_offset`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Mlp<'a> {
    /// Input offsets.
    pub in_offset: &'a [f32],
    /// Input scales.
    pub in_scale: &'a [f32],
    /// Layers, at least one.
    pub layers: Vec<Layer<'a>, MAX_LAYERS>,
    /// Output scales.
    pub out_scale: &'a [f32],
    /// Output offsets.
    pub out_offset: &'a [f32],
}

impl Mlp<'_> {
    /// A net with no layers, filled in place while decoding.
    pub(crate) const EMPTY: Mlp<'static> = Mlp {
        in_offset: &[],
        in_scale: &[],
        layers: Vec::new(),
        out_scale: &[],
        out_offset: &[],
    };

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.in_scale.len()
    }

    /// Number of outputs.
    pub fn n_out(&self) -> usize {
        self.out_scale.len()
    }

    /// Widest activation vector, inputs included: each of the two ping-pong buffers needs this.
    pub fn max_width(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.n_out as usize)
            .fold(self.n_in(), usize::max)
    }

    /// Multiply-accumulates per evaluation (dense layers only).
    pub fn macs(&self) -> u32 {
        self.layers.iter().map(Layer::macs).sum()
    }

    /// Evaluates the net. `a` and `b` each hold at least [`Mlp::max_width`] values; `out` holds
    /// [`Mlp::n_out`].
    pub fn eval(&self, input: &[f32], a: &mut [f32], b: &mut [f32], out: &mut [f32]) {
        let n_in = self.n_in();
        for (((dst, &x), &off), &sc) in a
            .iter_mut()
            .zip(input)
            .zip(self.in_offset)
            .zip(self.in_scale)
        {
            *dst = (x - off) * sc;
        }
        let (mut cur, mut nxt) = (a, b);
        let mut width = n_in;
        for layer in &self.layers {
            let n_out = layer.n_out as usize;
            if let (Some(x), Some(y)) = (cur.get(..width), nxt.get_mut(..n_out)) {
                layer.forward(x, y);
            }
            core::mem::swap(&mut cur, &mut nxt);
            width = n_out;
        }
        for (((o, &y), &sc), &off) in out
            .iter_mut()
            .zip(cur.iter())
            .zip(self.out_scale)
            .zip(self.out_offset)
        {
            *o = y * sc + off;
        }
    }
}

/// How an iterator net advances its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "snake_case")]
pub enum IteratorForm {
    /// `x[n+1] = x[n] + net(x[n], u[n])`.
    Residual,
    /// `x[n+1] = net(x[n], u[n])`.
    Direct,
}

/// How the state evolves.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dynamics<'a> {
    /// `dx/dt = f(x, u)`, integrated by a fixed-step solver.
    Ode {
        /// The vector field, inputs `[x.., u]`, outputs `dx/dt` in state units per second.
        f: Mlp<'a>,
    },
    /// A discrete map, one net evaluation per sample (thesis sec. 3.3.3).
    Iterator {
        /// The map, inputs `[x.., u]`, outputs the increment (residual) or the next state (direct).
        net: Mlp<'a>,
        /// Residual or direct.
        form: IteratorForm,
        /// The sample interval it was trained at, seconds.
        dt: f32,
    },
}

impl<'a> Dynamics<'a> {
    /// The net that drives the state.
    pub fn net(&self) -> &Mlp<'a> {
        match self {
            Dynamics::Ode { f } => f,
            Dynamics::Iterator { net, .. } => net,
        }
    }
}

/// How the memductance G follows from the state.
// No heap: the net is stored inline, so `None` is as large as `Net`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Readout<'a> {
    /// No electrical output: the drive goes straight into the net (generic neural ODE).
    None,
    /// Paper 000 eq. 10: `G = x0 / R_on + (1 - x0) / R_off`.
    Linear {
        /// Low-resistance state, ohms.
        r_on: f32,
        /// High-resistance state, ohms.
        r_off: f32,
    },
    /// DualNN-MemODE: `G = g_min + (g_max - g_min) * g(x)`, `g` ending in a sigmoid.
    Net {
        /// The memductance net, inputs `x`, one output in (0, 1).
        g: Mlp<'a>,
        /// Lower memductance bound, siemens.
        g_min: f32,
        /// Upper memductance bound, siemens.
        g_max: f32,
    },
}

/// The measurement circuit of the paper's Fig. 1: the memristor in series with `r_s`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Circuit {
    /// Series resistance, ohms. For a memductance G that depends on the state only,
    /// the memristor voltage is `v = v_s / (1 + r_s G)`.
    pub series_resistance: f32,
}

/// The model kinds of the format, named as in the papers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KindName {
    /// `dx/dt = f(x, u)` without electrical readout.
    NeuralOde,
    /// Paper 000, Fig. 3.
    SingleNnMemOde,
    /// Paper 000, Fig. 4.
    DualNnMemOde,
    /// Thesis sec. 3.3.3, residual or direct.
    IteratorNet(IteratorForm),
}

impl KindName {
    /// Display name.
    pub const fn as_str(self) -> &'static str {
        match self {
            KindName::NeuralOde => "neural-ode",
            KindName::SingleNnMemOde => "single-nn-memode",
            KindName::DualNnMemOde => "dual-nn-memode",
            KindName::IteratorNet(IteratorForm::Residual) => "iterator-net (residual)",
            KindName::IteratorNet(IteratorForm::Direct) => "iterator-net (direct)",
        }
    }
}

/// A decoded, validated model. Borrowed from the blob; nothing is copied but the layer tables.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Model<'a> {
    /// Free-form name given at export.
    pub name: &'a str,
    /// State dynamics.
    pub dynamics: Dynamics<'a>,
    /// Memductance readout.
    pub readout: Readout<'a>,
    /// Series-resistor circuit, if the model is driven by a supply voltage through one.
    pub circuit: Option<Circuit>,
    /// Default initial state.
    pub x0: &'a [f32],
    /// Lower state bounds (`-inf` where none).
    pub lower: &'a [f32],
    /// Upper state bounds (`+inf` where none).
    pub upper: &'a [f32],
    /// Bytes the blob occupies.
    pub blob_len: u32,
}

/// What running a model costs; see [`Model::cost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Cost {
    /// Flash bytes of the model blob.
    pub flash_bytes: u32,
    /// Scratch the caller provides, in f32 elements.
    pub scratch_f32: usize,
    /// The same in bytes.
    pub scratch_bytes: usize,
    /// Multiply-accumulates of one vector-field (or map) evaluation, memductance net included.
    pub macs_per_eval: u32,
    /// Evaluations per sample (solver stages times sub-steps; 1 for iterator nets).
    pub evals_per_step: u32,
    /// Multiply-accumulates per sample, the observation's memductance included.
    pub macs_per_step: u32,
}

impl<'a> Model<'a> {
    /// Number of internal states.
    pub fn n_states(&self) -> usize {
        self.x0.len()
    }

    /// The kind, as the papers name it.
    pub fn kind(&self) -> KindName {
        match (&self.dynamics, &self.readout) {
            (Dynamics::Iterator { form, .. }, _) => KindName::IteratorNet(*form),
            (Dynamics::Ode { .. }, Readout::None) => KindName::NeuralOde,
            (Dynamics::Ode { .. }, Readout::Linear { .. }) => KindName::SingleNnMemOde,
            (Dynamics::Ode { .. }, Readout::Net { .. }) => KindName::DualNnMemOde,
        }
    }

    /// Sample interval an iterator net is tied to.
    pub fn iterator_dt(&self) -> Option<f32> {
        match self.dynamics {
            Dynamics::Iterator { dt, .. } => Some(dt),
            Dynamics::Ode { .. } => None,
        }
    }

    /// Widest activation vector over both nets.
    pub fn max_width(&self) -> usize {
        let w = self.dynamics.net().max_width();
        match &self.readout {
            Readout::Net { g, .. } => w.max(g.max_width()),
            _ => w,
        }
    }

    /// Multiply-accumulates of the memductance readout.
    pub fn readout_macs(&self) -> u32 {
        match &self.readout {
            Readout::Net { g, .. } => g.macs(),
            _ => 0,
        }
    }

    /// Cost of a simulation with this solver and number of sub-steps per sample.
    pub fn cost(&self, solver: Solver, substeps: u16) -> Cost {
        let n = self.n_states();
        let stages = match self.dynamics {
            Dynamics::Ode { .. } => solver.stages(),
            Dynamics::Iterator { .. } => 1,
        };
        let evals = match self.dynamics {
            Dynamics::Ode { .. } => stages as u32 * substeps.max(1) as u32,
            Dynamics::Iterator { .. } => 1,
        };
        let macs_per_eval = self.dynamics.net().macs() + self.readout_macs();
        let scratch_f32 = crate::sim::scratch_len(self.max_width(), n, stages);
        Cost {
            flash_bytes: self.blob_len,
            scratch_f32,
            scratch_bytes: scratch_f32 * core::mem::size_of::<f32>(),
            macs_per_eval,
            evals_per_step: evals,
            // One extra memductance evaluation per sample for the observation.
            macs_per_step: evals * macs_per_eval + self.readout_macs(),
        }
    }
}
