//! The decoded model: borrowed slices into the blob, validated once, cheap to evaluate.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::kernels;
use crate::limits::{MAX_DEGREE, MAX_LAYERS};
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

    /// A layer with no weights, filled in place while decoding.
    #[cfg(feature = "poly")]
    pub(crate) const EMPTY: Layer<'static> = Layer {
        n_in: 0,
        n_out: 0,
        activation: Activation::Identity,
        weights: Weights::F32(&[]),
        bias: &[],
    };

    /// `y = W x`, no bias, no activation: a forward tangent through the layer.
    #[inline]
    pub fn linear(&self, x: &[f32], y: &mut [f32]) {
        match self.weights {
            Weights::F32(w) => kernels::matvec_f32(w, x, y),
            Weights::Int8 { q, scales } => kernels::matvec_i8(q, scales, x, y),
        }
    }

    /// The effective weight `W[row][col]` (dequantized for int8), 0 outside the matrix.
    #[inline]
    pub fn weight(&self, row: usize, col: usize) -> f32 {
        let n_in = self.n_in as usize;
        if col >= n_in {
            return 0.0;
        }
        let at = row * n_in + col;
        match self.weights {
            Weights::F32(w) => w.get(at).copied().unwrap_or(0.0),
            Weights::Int8 { q, scales } => match (q.get(at), scales.get(row)) {
                (Some(&qv), Some(&sc)) => sc * qv as f32,
                _ => 0.0,
            },
        }
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

    /// Values [`Mlp::eval_jacobian`] keeps per evaluation: one activation derivative per neuron.
    pub fn jacobian_work_len(&self) -> usize {
        self.layers.iter().map(|l| l.n_out as usize).sum()
    }

    /// Multiply-accumulates of [`Mlp::eval_jacobian`] beyond the evaluation: per direction, the
    /// first layer's column (`n_out` products) and every later layer in full.
    pub fn jacobian_macs(&self, dirs: usize) -> u32 {
        let first = self.layers.first().map_or(0, |l| l.n_out as u32);
        let rest: u32 = self.layers.iter().skip(1).map(Layer::macs).sum();
        dirs as u32 * (first + rest + self.n_out() as u32)
    }

    /// Evaluates the net like [`Mlp::eval`] (same arithmetic, same result) and its Jacobian with
    /// respect to the first `dirs` inputs by forward tangents, one input direction at a time:
    /// `jac[r * dirs + j] = ∂out_r / ∂input_j`. The activation derivatives are kept in `work`
    /// ([`Mlp::jacobian_work_len`] values), so a tangent costs one matrix-vector product per layer
    /// after the first, whose tangent is a scaled weight column. `a` and `b` are the ping-pong
    /// buffers of `eval`, reused for the tangents.
    #[allow(clippy::too_many_arguments)]
    pub fn eval_jacobian(
        &self,
        input: &[f32],
        a: &mut [f32],
        b: &mut [f32],
        work: &mut [f32],
        out: &mut [f32],
        jac: &mut [f32],
        dirs: usize,
    ) {
        let n_in = self.n_in();
        for (((dst, &x), &off), &sc) in a
            .iter_mut()
            .zip(input)
            .zip(self.in_offset)
            .zip(self.in_scale)
        {
            *dst = (x - off) * sc;
        }
        let (mut cur, mut nxt) = (&mut *a, &mut *b);
        let mut width = n_in;
        let mut at = 0;
        for layer in &self.layers {
            let n_out = layer.n_out as usize;
            if let (Some(x), Some(y), Some(d)) = (
                cur.get(..width),
                nxt.get_mut(..n_out),
                work.get_mut(at..at + n_out),
            ) {
                match layer.weights {
                    Weights::F32(w) => kernels::dense_f32(w, layer.bias, x, y),
                    Weights::Int8 { q, scales } => kernels::dense_i8(q, scales, layer.bias, x, y),
                }
                for (yv, dv) in y.iter_mut().zip(d.iter_mut()) {
                    *dv = layer.activation.derivative(*yv);
                    *yv = layer.activation.apply(*yv);
                }
            }
            core::mem::swap(&mut cur, &mut nxt);
            width = n_out;
            at += n_out;
        }
        for (((o, &y), &sc), &off) in out
            .iter_mut()
            .zip(cur.iter())
            .zip(self.out_scale)
            .zip(self.out_offset)
        {
            *o = y * sc + off;
        }
        for j in 0..dirs.min(n_in) {
            let (mut cur, mut nxt) = (&mut *a, &mut *b);
            let scale_j = self.in_scale.get(j).copied().unwrap_or(0.0);
            let mut at = 0;
            let mut width = 0;
            for (li, layer) in self.layers.iter().enumerate() {
                let n_out = layer.n_out as usize;
                let (Some(t), Some(d)) = (nxt.get_mut(..n_out), work.get(at..at + n_out)) else {
                    return;
                };
                if li == 0 {
                    for (r, (tv, &dv)) in t.iter_mut().zip(d).enumerate() {
                        *tv = dv * layer.weight(r, j) * scale_j;
                    }
                } else {
                    if let Some(x) = cur.get(..width) {
                        layer.linear(x, t);
                    }
                    for (tv, &dv) in t.iter_mut().zip(d) {
                        *tv *= dv;
                    }
                }
                core::mem::swap(&mut cur, &mut nxt);
                width = n_out;
                at += n_out;
            }
            for (r, (&t, &sc)) in cur.iter().zip(self.out_scale).enumerate() {
                if let Some(jv) = jac.get_mut(r * dirs + j) {
                    *jv = t * sc;
                }
            }
        }
    }
}

/// A polynomial net, Π-net V1 of Chrysos et al. (2022), "CCP" (paper 002, Fig. 1): with `z` the
/// input, `h_1 = U_1 z + a_1`, `h_k = (U_k z + a_k) ∘ h_{k-1} + h_{k-1}` for `k = 2..degree`,
/// output `C h_degree + β`. A polynomial of the given degree in `z`, with no activations and no
/// input or output scaling (paper 002: such nets need no normalization).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PiNet<'a> {
    /// `U_k` with bias `a_k`, inputs to width, identity activation; one per degree.
    pub u: Vec<Layer<'a>, MAX_DEGREE>,
    /// `C` with bias `β`, width to outputs, identity activation.
    pub c: Layer<'a>,
}

impl PiNet<'_> {
    /// A net with no layers, filled in place while decoding.
    #[cfg(feature = "poly")]
    pub(crate) const EMPTY: PiNet<'static> = PiNet {
        u: Vec::new(),
        c: Layer::EMPTY,
    };

    /// Polynomial degree (number of `U` layers).
    pub fn degree(&self) -> usize {
        self.u.len()
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.u.first().map_or(0, |l| l.n_in as usize)
    }

    /// Hidden width.
    pub fn width(&self) -> usize {
        self.c.n_in as usize
    }

    /// Number of outputs.
    pub fn n_out(&self) -> usize {
        self.c.n_out as usize
    }

    /// Widest vector: each of the two buffers of [`PiNet::eval`] needs this.
    pub fn max_width(&self) -> usize {
        self.n_in().max(self.width()).max(self.n_out())
    }

    /// Multiply-accumulates per evaluation (the Hadamard products add `2 width` per degree
    /// above one, counted too).
    pub fn macs(&self) -> u32 {
        let dense: u32 = self.u.iter().map(Layer::macs).sum::<u32>() + self.c.macs();
        dense + 2 * self.width() as u32 * self.degree().saturating_sub(1) as u32
    }

    /// Values [`PiNet::eval_jacobian`] keeps: `h_{k-1}` and `U_k z + a_k` for `k = 2..degree`.
    pub fn jacobian_work_len(&self) -> usize {
        2 * self.width() * self.degree().saturating_sub(1)
    }

    /// Multiply-accumulates of the Jacobian beyond the evaluation, per direction: two per
    /// neuron and degree above one, and `C` times the tangent.
    pub fn jacobian_macs(&self, dirs: usize) -> u32 {
        let per = 2 * self.width() as u32 * self.degree().saturating_sub(1) as u32 + self.c.macs();
        dirs as u32 * per
    }

    /// Evaluates the net. `a` and `b` each hold at least [`PiNet::width`] values.
    pub fn eval(&self, input: &[f32], a: &mut [f32], b: &mut [f32], out: &mut [f32]) {
        let w = self.width();
        let (Some(h), Some(p)) = (a.get_mut(..w), b.get_mut(..w)) else {
            return;
        };
        let mut layers = self.u.iter();
        if let Some(first) = layers.next() {
            first.forward(input, h);
        }
        for layer in layers {
            layer.forward(input, p);
            for (hv, &pv) in h.iter_mut().zip(p.iter()) {
                *hv = pv * *hv + *hv;
            }
        }
        self.c.forward(h, out);
    }

    /// Evaluates the net like [`PiNet::eval`] (same result) and its Jacobian with respect to the
    /// first `dirs` inputs, `jac[r * dirs + j] = ∂out_r / ∂input_j`, by forward tangents: with
    /// `p_k = U_k z + a_k`, `dh_1 = U_1 e_j` and `dh_k = (U_k e_j) ∘ h_{k-1} + (p_k + 1) ∘ dh_{k-1}`,
    /// `U_k e_j` being a weight column. `work` holds [`PiNet::jacobian_work_len`] values.
    #[allow(clippy::too_many_arguments)]
    pub fn eval_jacobian(
        &self,
        input: &[f32],
        a: &mut [f32],
        b: &mut [f32],
        work: &mut [f32],
        out: &mut [f32],
        jac: &mut [f32],
        dirs: usize,
    ) {
        let w = self.width();
        let k = self.degree().saturating_sub(1);
        if work.len() < 2 * w * k {
            return;
        }
        let (hs, ps) = work.split_at_mut(w * k);
        let (Some(h), Some(p)) = (a.get_mut(..w), b.get_mut(..w)) else {
            return;
        };
        let mut layers = self.u.iter();
        if let Some(first) = layers.next() {
            first.forward(input, h);
        }
        for ((layer, hk), pk) in layers
            .zip(hs.chunks_exact_mut(w))
            .zip(ps.chunks_exact_mut(w))
        {
            layer.forward(input, p);
            hk.copy_from_slice(h);
            pk.copy_from_slice(p);
            for (hv, &pv) in h.iter_mut().zip(p.iter()) {
                *hv = pv * *hv + *hv;
            }
        }
        self.c.forward(h, out);
        for j in 0..dirs.min(self.n_in()) {
            let mut layers = self.u.iter();
            if let Some(first) = layers.next() {
                for (r, t) in h.iter_mut().enumerate() {
                    *t = first.weight(r, j);
                }
            }
            for ((layer, hk), pk) in layers.zip(hs.chunks_exact(w)).zip(ps.chunks_exact(w)) {
                for (r, ((t, &hv), &pv)) in h.iter_mut().zip(hk).zip(pk).enumerate() {
                    *t = layer.weight(r, j) * hv + (pv + 1.0) * *t;
                }
            }
            // `b` holds `max_width >= n_out` values; the width may be below the output count.
            let n_out = self.n_out();
            if let Some(y) = b.get_mut(..n_out) {
                self.c.linear(h, y);
                for (r, &yv) in y.iter().enumerate() {
                    if let Some(jv) = jac.get_mut(r * dirs + j) {
                        *jv = yv;
                    }
                }
            }
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
    /// `dx/dt = f(x, u)` with a polynomial vector field (paper 002's polynomial neural ODE),
    /// integrated by a fixed-step solver.
    #[cfg(feature = "poly")]
    PolyOde {
        /// The Π-net, inputs `[x.., u]`, outputs `dx/dt`.
        net: PiNet<'a>,
    },
}

impl<'a> Dynamics<'a> {
    /// The MLP that drives the state; `None` for a polynomial (Π-net) vector field.
    pub fn net(&self) -> Option<&Mlp<'a>> {
        match self {
            Dynamics::Ode { f } => Some(f),
            Dynamics::Iterator { net, .. } => Some(net),
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { .. } => None,
        }
    }

    /// Every dense layer of the state net (a Π-net's `U_k`, then `C`).
    pub fn layers(&self) -> impl Iterator<Item = &Layer<'a>> {
        let (mlp, poly): (&[Layer<'a>], &[Layer<'a>]) = match self {
            Dynamics::Ode { f: m } | Dynamics::Iterator { net: m, .. } => (&m.layers, &[]),
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { net } => (&net.u, core::slice::from_ref(&net.c)),
        };
        mlp.iter().chain(poly)
    }

    /// Whether the state follows a vector field integrated by the solver (not an iterator map).
    pub fn is_continuous(&self) -> bool {
        !matches!(self, Dynamics::Iterator { .. })
    }

    /// Multiply-accumulates of one evaluation of the state net.
    pub fn macs(&self) -> u32 {
        match self {
            Dynamics::Ode { f: m } | Dynamics::Iterator { net: m, .. } => m.macs(),
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { net } => net.macs(),
        }
    }

    /// Widest vector of the state net (each evaluation buffer needs this).
    pub fn max_width(&self) -> usize {
        match self {
            Dynamics::Ode { f: m } | Dynamics::Iterator { net: m, .. } => m.max_width(),
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { net } => net.max_width(),
        }
    }

    /// Values the state net's Jacobian keeps per evaluation.
    pub fn jacobian_work_len(&self) -> usize {
        match self {
            Dynamics::Ode { f: m } | Dynamics::Iterator { net: m, .. } => m.jacobian_work_len(),
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { net } => net.jacobian_work_len(),
        }
    }

    /// Multiply-accumulates of the state net's Jacobian in `dirs` input directions.
    pub fn jacobian_macs(&self, dirs: usize) -> u32 {
        match self {
            Dynamics::Ode { f: m } | Dynamics::Iterator { net: m, .. } => m.jacobian_macs(dirs),
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { net } => net.jacobian_macs(dirs),
        }
    }

    /// Evaluates the state net at `input = [x.., u]`.
    pub fn eval(&self, input: &[f32], a: &mut [f32], b: &mut [f32], out: &mut [f32]) {
        match self {
            Dynamics::Ode { f: m } | Dynamics::Iterator { net: m, .. } => m.eval(input, a, b, out),
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { net } => net.eval(input, a, b, out),
        }
    }

    /// Evaluates the state net and its Jacobian in the first `dirs` inputs (see
    /// [`Mlp::eval_jacobian`]).
    #[allow(clippy::too_many_arguments)]
    pub fn eval_jacobian(
        &self,
        input: &[f32],
        a: &mut [f32],
        b: &mut [f32],
        work: &mut [f32],
        out: &mut [f32],
        jac: &mut [f32],
        dirs: usize,
    ) {
        match self {
            Dynamics::Ode { f: m } | Dynamics::Iterator { net: m, .. } => {
                m.eval_jacobian(input, a, b, work, out, jac, dirs)
            }
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { net } => net.eval_jacobian(input, a, b, work, out, jac, dirs),
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
    /// Paper 002: a polynomial (Π-net V1) neural ODE, any readout.
    PolyNeuralOde,
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
            KindName::PolyNeuralOde => "poly-neural-ode (pi-net)",
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
    /// Evaluations per sample (solver stages times sub-steps; for an implicit solver the explicit
    /// stages plus Newton iterations times implicit stages, times sub-steps; 1 for iterator nets).
    pub evals_per_step: u32,
    /// Multiply-accumulates per sample, the observation's memductance included (and for an
    /// implicit solver the Jacobians and the Newton linear solves).
    pub macs_per_step: u32,
    /// Newton iterations per solver step (0 for explicit solvers and iterator nets).
    pub newton_iters: u8,
    /// Jacobians of the vector field per sample (one per implicit stage and Newton iteration).
    pub jacobians_per_step: u32,
    /// Multiply-accumulates of one Jacobian beyond its evaluation (forward tangents of the state
    /// net, and of the memductance net when a series resistor makes the drive state-dependent).
    pub macs_per_jacobian: u32,
    /// Multiply-accumulates per sample of assembling and solving the Newton systems (dense
    /// elimination with partial pivoting, about `N^3 / 3` each for `N` = implicit stages times
    /// states).
    pub newton_macs_per_step: u32,
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
            #[cfg(feature = "poly")]
            (Dynamics::PolyOde { .. }, _) => KindName::PolyNeuralOde,
            (Dynamics::Ode { .. }, Readout::None) => KindName::NeuralOde,
            (Dynamics::Ode { .. }, Readout::Linear { .. }) => KindName::SingleNnMemOde,
            (Dynamics::Ode { .. }, Readout::Net { .. }) => KindName::DualNnMemOde,
        }
    }

    /// Sample interval an iterator net is tied to.
    pub fn iterator_dt(&self) -> Option<f32> {
        match self.dynamics {
            Dynamics::Iterator { dt, .. } => Some(dt),
            #[cfg(feature = "poly")]
            Dynamics::PolyOde { .. } => None,
            Dynamics::Ode { .. } => None,
        }
    }

    /// Widest activation vector over both nets.
    pub fn max_width(&self) -> usize {
        let w = self.dynamics.max_width();
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

    /// Whether the net's drive input depends on the state: the memristor voltage behind a series
    /// resistor, `v = v_s / (1 + R_s G(x))`. Its derivative then enters the Jacobian.
    pub fn drive_depends_on_state(&self) -> bool {
        self.circuit.is_some() && !matches!(self.readout, Readout::None)
    }

    /// Values of Jacobian work an implicit step keeps (the larger of the state net's and the
    /// memductance net's, which run one after the other).
    pub fn jacobian_work_len(&self) -> usize {
        let w = self.dynamics.jacobian_work_len();
        match &self.readout {
            Readout::Net { g, .. } => w.max(g.jacobian_work_len()),
            _ => w,
        }
    }

    /// Cost of a simulation with this solver and number of sub-steps per sample, implicit
    /// solvers at [`crate::SimConfig::DEFAULT_NEWTON_ITERS`].
    pub fn cost(&self, solver: Solver, substeps: u16) -> Cost {
        self.cost_with(
            solver,
            substeps,
            crate::sim::SimConfig::DEFAULT_NEWTON_ITERS,
        )
    }

    /// Cost of a simulation with exactly this configuration (its Newton iterations included).
    pub fn cost_for(&self, config: &crate::sim::SimConfig) -> Cost {
        self.cost_with(config.solver, config.substeps, config.newton_iters)
    }

    fn cost_with(&self, solver: Solver, substeps: u16, newton_iters: u8) -> Cost {
        let n = self.n_states();
        let sub = substeps.max(1) as u32;
        let macs_per_eval = self.dynamics.macs() + self.readout_macs();
        let implicit = match solver.implicit_tableau() {
            Some(t) if self.dynamics.is_continuous() => Some(t),
            _ => None,
        };
        let (scratch_f32, evals, iters, jacobians, macs_per_jacobian, newton_macs) = match implicit
        {
            None => {
                let (stages, evals) = if self.dynamics.is_continuous() {
                    (solver.stages(), solver.stages() as u32 * sub)
                } else {
                    (1, 1)
                };
                let scratch = crate::sim::scratch_len(self.max_width(), n, stages);
                (scratch, evals, 0, 0, 0, 0)
            }
            Some(t) => {
                let m = t.implicit_stages();
                let explicit = t.stages - m;
                let it = newton_iters as u32;
                let scratch = crate::sim::implicit_scratch_len(
                    self.max_width(),
                    n,
                    t.stages,
                    m,
                    self.jacobian_work_len(),
                );
                let dirs = if self.drive_depends_on_state() {
                    n + 1
                } else {
                    n
                };
                let mut jac = self.dynamics.jacobian_macs(dirs);
                if let (true, Readout::Net { g, .. }) =
                    (self.drive_depends_on_state(), &self.readout)
                {
                    jac += g.jacobian_macs(n);
                }
                let big = (m * n) as u32;
                // Assembly (m^2 blocks of n^2), elimination, back substitution.
                let solve = big * big
                    + (big.saturating_sub(1) * big * (big + 1)) / 3
                    + big * big.saturating_sub(1) / 2;
                (
                    scratch,
                    (explicit as u32 + it * m as u32) * sub,
                    newton_iters,
                    it * m as u32 * sub,
                    jac,
                    it * solve * sub,
                )
            }
        };
        Cost {
            flash_bytes: self.blob_len,
            scratch_f32,
            scratch_bytes: scratch_f32 * core::mem::size_of::<f32>(),
            macs_per_eval,
            evals_per_step: evals,
            // One extra memductance evaluation per sample for the observation.
            macs_per_step: evals * macs_per_eval
                + jacobians * macs_per_jacobian
                + newton_macs
                + self.readout_macs(),
            newton_iters: iters,
            jacobians_per_step: jacobians,
            macs_per_jacobian,
            newton_macs_per_step: newton_macs,
        }
    }
}
