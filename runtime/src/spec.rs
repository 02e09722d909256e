//! Owned, human-editable form of a model (`inspect --json` / `import`) and the encoder that
//! turns it into a blob. Weights are plain f32 here; quantization happens on encoding.

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::crc::Crc32;
use crate::format::{
    hdr, AlignedBlob, TensorRef, WireDynamics, WireLayer, WireMlp, WireModel, WirePiNet,
    WireReadout, WireWeights, DATA_ALIGN, FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use crate::kernels::{quantize_row_with_scale, quantize_rows};
use crate::model::{Circuit, Dynamics, IteratorForm, Layer, Mlp, Model, PiNet, Readout, Weights};

/// How weights are stored on encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quant {
    /// f32 weights.
    F32,
    /// int8 weights, one f32 scale per output row, f32 activations.
    Int8,
}

impl Quant {
    /// Parses `f32` or `int8`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "f32" => Some(Quant::F32),
            "int8" => Some(Quant::Int8),
            _ => None,
        }
    }
}

/// One dense layer, row-major `outputs x inputs` weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Inputs.
    pub inputs: usize,
    /// Outputs.
    pub outputs: usize,
    /// Activation after the layer.
    pub activation: Activation,
    /// Weights (dequantized if the source was int8).
    pub weights: Vec<f32>,
    /// Bias.
    pub bias: Vec<f32>,
    /// Row scales of an int8 source, kept so re-importing reproduces the file byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_scales: Option<Vec<f32>>,
}

/// An MLP with its physical-unit scaling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpSpec {
    /// `x_net = (x - input_offset) * input_scale`.
    pub input_offset: Vec<f32>,
    /// See `input_offset`.
    pub input_scale: Vec<f32>,
    /// Layers.
    pub layers: Vec<LayerSpec>,
    /// `y = y_net * output_scale + output_offset`.
    pub output_scale: Vec<f32>,
    /// See `output_scale`.
    pub output_offset: Vec<f32>,
}

/// A polynomial net, Π-net V1 (Chrysos et al. 2022, "CCP"; paper 002 Fig. 1): with `z` the
/// input, `h_1 = U_1 z + a_1`, `h_k = (U_k z + a_k) ∘ h_{k-1} + h_{k-1}` for `k = 2..degree`,
/// `f = C h_degree + β`. No input or output scaling, no activations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PiNetSpec {
    /// Inputs (`n_states + 1` for a vector field: the states, then the drive).
    pub inputs: usize,
    /// Hidden width of every `h_k`.
    pub width: usize,
    /// Outputs (`n_states`).
    pub outputs: usize,
    /// `U_1 .. U_degree` (weights) with `a_1 .. a_degree` (biases): `degree` layers from
    /// `inputs` to `width`, activation identity.
    pub u: Vec<LayerSpec>,
    /// `C` (weights) and `β` (bias): `width` to `outputs`, activation identity.
    pub c: LayerSpec,
}

impl PiNetSpec {
    fn from_model(p: &PiNet<'_>) -> Self {
        PiNetSpec {
            inputs: p.n_in(),
            width: p.width(),
            outputs: p.n_out(),
            u: p.u.iter().map(layer_spec).collect(),
            c: layer_spec(&p.c),
        }
    }

    /// Polynomial degree.
    pub fn degree(&self) -> usize {
        self.u.len()
    }

    /// Multiply-accumulates per evaluation, as [`PiNet::macs`] counts them.
    pub fn macs(&self) -> usize {
        let dense: usize = self.u.iter().map(|l| l.inputs * l.outputs).sum::<usize>()
            + self.c.inputs * self.c.outputs;
        dense + 2 * self.width * self.degree().saturating_sub(1)
    }
}

/// State dynamics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DynamicsSpec {
    /// `dx/dt = f(x, u)`.
    Ode {
        /// Vector field.
        f: MlpSpec,
    },
    /// `x[n+1] = x[n] + net(x[n], u[n])` or `net(x[n], u[n])`.
    Iterator {
        /// Map.
        net: MlpSpec,
        /// Residual or direct.
        form: IteratorForm,
        /// Sample interval, seconds.
        dt: f32,
    },
    /// `dx/dt = f(x, u)` with a polynomial (Π-net) vector field, paper 002.
    PolyOde {
        /// Vector field, inputs `[x.., u]`.
        net: PiNetSpec,
    },
}

/// Memductance readout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ReadoutSpec {
    /// No electrical output.
    None,
    /// Paper 000 eq. 10.
    Linear {
        /// Ohms.
        r_on: f32,
        /// Ohms.
        r_off: f32,
    },
    /// DualNN-MemODE memductance net.
    Net {
        /// Net ending in a sigmoid.
        g: MlpSpec,
        /// Siemens.
        g_min: f32,
        /// Siemens.
        g_max: f32,
    },
}

/// Bounds of one state; `None` means unbounded on that side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct BoundSpec {
    /// Lower bound.
    pub lower: Option<f32>,
    /// Upper bound.
    pub upper: Option<f32>,
}

/// A whole model, owned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Format version the spec was read from (informational; encoding always writes the current).
    #[serde(default = "current_version")]
    pub format_version: u16,
    /// Name.
    pub name: String,
    /// Dynamics.
    pub dynamics: DynamicsSpec,
    /// Readout.
    pub readout: ReadoutSpec,
    /// Series-resistor circuit.
    pub circuit: Option<Circuit>,
    /// Default initial state.
    pub x0: Vec<f32>,
    /// Per-state bounds.
    pub bounds: Vec<BoundSpec>,
}

fn current_version() -> u16 {
    FORMAT_VERSION
}

fn layer_spec(l: &Layer<'_>) -> LayerSpec {
    let n_in = l.n_in as usize;
    let (weights, int8_scales) = match l.weights {
        Weights::F32(w) => (w.to_vec(), None),
        Weights::Int8 { q, scales } => (
            q.chunks_exact(n_in.max(1))
                .zip(scales)
                .flat_map(|(row, &s)| row.iter().map(move |&v| v as f32 * s))
                .collect(),
            Some(scales.to_vec()),
        ),
    };
    LayerSpec {
        inputs: n_in,
        outputs: l.n_out as usize,
        activation: l.activation,
        weights,
        bias: l.bias.to_vec(),
        int8_scales,
    }
}

impl MlpSpec {
    fn from_model(m: &Mlp<'_>) -> Self {
        MlpSpec {
            input_offset: m.in_offset.to_vec(),
            input_scale: m.in_scale.to_vec(),
            layers: m.layers.iter().map(layer_spec).collect(),
            output_scale: m.out_scale.to_vec(),
            output_offset: m.out_offset.to_vec(),
        }
    }

    /// A plain MLP with unit scaling from `(inputs, [(outputs, activation)])` and a weight source.
    pub fn dense(
        inputs: usize,
        layers: &[(usize, Activation)],
        mut weight: impl FnMut(usize, usize) -> f32,
    ) -> Self {
        let mut width = inputs;
        let mut out = Vec::new();
        for (li, &(n, act)) in layers.iter().enumerate() {
            let weights = (0..n * width).map(|k| weight(li, k)).collect();
            let bias = (0..n).map(|k| weight(li, n * width + k)).collect();
            out.push(LayerSpec {
                inputs: width,
                outputs: n,
                activation: act,
                weights,
                bias,
                int8_scales: None,
            });
            width = n;
        }
        MlpSpec {
            input_offset: vec![0.0; inputs],
            input_scale: vec![1.0; inputs],
            layers: out,
            output_scale: vec![1.0; width],
            output_offset: vec![0.0; width],
        }
    }

    /// Multiply-accumulates per evaluation.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.inputs * l.outputs).sum()
    }
}

impl ModelSpec {
    /// The owned form of a decoded model; int8 weights are dequantized, their scales kept.
    pub fn from_model(m: &Model<'_>) -> Self {
        let dynamics = match &m.dynamics {
            Dynamics::Ode { f } => DynamicsSpec::Ode {
                f: MlpSpec::from_model(f),
            },
            Dynamics::Iterator { net, form, dt } => DynamicsSpec::Iterator {
                net: MlpSpec::from_model(net),
                form: *form,
                dt: *dt,
            },
            Dynamics::PolyOde { net } => DynamicsSpec::PolyOde {
                net: PiNetSpec::from_model(net),
            },
        };
        let readout = match &m.readout {
            Readout::None => ReadoutSpec::None,
            Readout::Linear { r_on, r_off } => ReadoutSpec::Linear {
                r_on: *r_on,
                r_off: *r_off,
            },
            Readout::Net { g, g_min, g_max } => ReadoutSpec::Net {
                g: MlpSpec::from_model(g),
                g_min: *g_min,
                g_max: *g_max,
            },
        };
        let bounds = m
            .lower
            .iter()
            .zip(m.upper)
            .map(|(&lo, &hi)| BoundSpec {
                lower: lo.is_finite().then_some(lo),
                upper: hi.is_finite().then_some(hi),
            })
            .collect();
        ModelSpec {
            format_version: FORMAT_VERSION,
            name: m.name.into(),
            dynamics,
            readout,
            circuit: m.circuit,
            x0: m.x0.to_vec(),
            bounds,
        }
    }

    /// Number of states.
    pub fn n_states(&self) -> usize {
        self.x0.len()
    }

    /// Whether any layer carries int8 scales (the file it came from was int8).
    pub fn is_int8(&self) -> bool {
        let mut layers: Vec<&LayerSpec> = match &self.dynamics {
            DynamicsSpec::Ode { f: m } | DynamicsSpec::Iterator { net: m, .. } => {
                m.layers.iter().collect()
            }
            DynamicsSpec::PolyOde { net } => net.u.iter().chain([&net.c]).collect(),
        };
        if let ReadoutSpec::Net { g, .. } = &self.readout {
            layers.extend(&g.layers);
        }
        layers.iter().any(|l| l.int8_scales.is_some())
    }

    /// The state MLP; `None` for a polynomial (Π-net) vector field.
    pub fn dynamics_net(&self) -> Option<&MlpSpec> {
        match &self.dynamics {
            DynamicsSpec::Ode { f } => Some(f),
            DynamicsSpec::Iterator { net, .. } => Some(net),
            DynamicsSpec::PolyOde { .. } => None,
        }
    }

    /// Multiply-accumulates of one evaluation of the state net, MLP or Π-net.
    pub fn dynamics_macs(&self) -> usize {
        match &self.dynamics {
            DynamicsSpec::Ode { f: m } | DynamicsSpec::Iterator { net: m, .. } => m.macs(),
            DynamicsSpec::PolyOde { net } => net.macs(),
        }
    }

    /// Encodes into a blob. The result is checked by decoding it; structural mistakes in a
    /// hand-written spec (wrong lengths, bad bounds) surface as the decoder's typed error.
    pub fn encode(&self, quant: Quant) -> AlignedBlob {
        AlignedBlob::from_bytes(&self.encode_bytes(quant))
    }

    /// Encodes and validates: the blob is decoded again and any error returned.
    pub fn try_encode(&self, quant: Quant) -> Result<AlignedBlob, crate::DecodeError> {
        let blob = self.encode(quant);
        blob.model()?;
        Ok(blob)
    }

    /// Encodes into bytes (not necessarily aligned in memory).
    pub fn encode_bytes(&self, quant: Quant) -> Vec<u8> {
        let mut data = DataWriter::default();
        let n = self.n_states();
        let dynamics = match &self.dynamics {
            DynamicsSpec::Ode { f } => WireDynamics::Ode {
                f: data.mlp(f, quant),
            },
            DynamicsSpec::Iterator { net, form, dt } => WireDynamics::Iterator {
                net: data.mlp(net, quant),
                form: *form,
                dt: *dt,
            },
            DynamicsSpec::PolyOde { net } => WireDynamics::PolyOde {
                net: data.pinet(net, quant),
            },
        };
        let readout = match &self.readout {
            ReadoutSpec::None => WireReadout::None,
            ReadoutSpec::Linear { r_on, r_off } => WireReadout::Linear {
                r_on: *r_on,
                r_off: *r_off,
            },
            ReadoutSpec::Net { g, g_min, g_max } => WireReadout::Net {
                g: data.mlp(g, quant),
                g_min: *g_min,
                g_max: *g_max,
            },
        };
        let lower: Vec<f32> = (0..n)
            .map(|i| {
                self.bounds
                    .get(i)
                    .and_then(|b| b.lower)
                    .unwrap_or(f32::NEG_INFINITY)
            })
            .collect();
        let upper: Vec<f32> = (0..n)
            .map(|i| {
                self.bounds
                    .get(i)
                    .and_then(|b| b.upper)
                    .unwrap_or(f32::INFINITY)
            })
            .collect();
        let wire = WireModel {
            name: &self.name,
            n_states: n.min(u8::MAX as usize) as u8,
            dynamics,
            readout,
            circuit: self.circuit,
            x0: data.f32s(&self.x0),
            lower: data.f32s(&lower),
            upper: data.f32s(&upper),
        };
        // Postcard serialization into a Vec cannot fail for these types.
        let desc = postcard::to_allocvec(&wire).unwrap_or_default();
        let data_offset = (HEADER_LEN + desc.len()).div_ceil(DATA_ALIGN) * DATA_ALIGN;
        let mut blob = vec![0u8; data_offset];
        blob[hdr::MAGIC..hdr::MAGIC + 4].copy_from_slice(&MAGIC);
        blob[hdr::VERSION..hdr::VERSION + 2].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        blob[hdr::HEADER_LEN..hdr::HEADER_LEN + 2]
            .copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        blob[hdr::DESC_LEN..hdr::DESC_LEN + 4].copy_from_slice(&(desc.len() as u32).to_le_bytes());
        blob[hdr::DATA_OFFSET..hdr::DATA_OFFSET + 4]
            .copy_from_slice(&(data_offset as u32).to_le_bytes());
        blob[hdr::DATA_LEN..hdr::DATA_LEN + 4]
            .copy_from_slice(&(data.bytes.len() as u32).to_le_bytes());
        blob[HEADER_LEN..HEADER_LEN + desc.len()].copy_from_slice(&desc);
        blob.extend_from_slice(&data.bytes);
        let mut crc = Crc32::new();
        crc.update(&blob[..hdr::CRC]);
        crc.update(&blob[HEADER_LEN..]);
        let c = crc.finish();
        blob[hdr::CRC..hdr::CRC + 4].copy_from_slice(&c.to_le_bytes());
        blob
    }
}

#[derive(Default)]
struct DataWriter {
    bytes: Vec<u8>,
}

impl DataWriter {
    fn align(&mut self) {
        while self.bytes.len() % DATA_ALIGN != 0 {
            self.bytes.push(0);
        }
    }

    fn f32s(&mut self, v: &[f32]) -> TensorRef {
        self.align();
        let r = TensorRef {
            offset: self.bytes.len() as u32,
            len: v.len() as u32,
        };
        for x in v {
            self.bytes.extend_from_slice(&x.to_le_bytes());
        }
        r
    }

    fn i8s(&mut self, v: &[i8]) -> TensorRef {
        self.align();
        let r = TensorRef {
            offset: self.bytes.len() as u32,
            len: v.len() as u32,
        };
        self.bytes.extend(v.iter().map(|&x| x as u8));
        r
    }

    fn mlp(&mut self, m: &MlpSpec, quant: Quant) -> WireMlp {
        let in_offset = self.f32s(&m.input_offset);
        let in_scale = self.f32s(&m.input_scale);
        let mut layers = heapless::Vec::new();
        for l in &m.layers {
            let layer = self.layer(l, quant);
            // Over-long MLPs are cut here and then refused by the decoder's shape check.
            if layers.push(layer).is_err() {
                break;
            }
        }
        WireMlp {
            n_in: m.input_scale.len().min(u16::MAX as usize) as u16,
            in_offset,
            in_scale,
            layers,
            out_scale: self.f32s(&m.output_scale),
            out_offset: self.f32s(&m.output_offset),
        }
    }
}

impl DataWriter {
    fn layer(&mut self, l: &LayerSpec, quant: Quant) -> WireLayer {
        let weights = match quant {
            Quant::F32 => WireWeights::F32(self.f32s(&l.weights)),
            Quant::Int8 => {
                let (q, scales) = quantize_layer(l);
                WireWeights::Int8 {
                    q: self.i8s(&q),
                    scales: self.f32s(&scales),
                }
            }
        };
        WireLayer {
            n_out: l.outputs.min(u16::MAX as usize) as u16,
            activation: l.activation,
            weights,
            bias: self.f32s(&l.bias),
        }
    }

    /// Each `U_k` and `C` is a dense layer, so int8 uses the same per-row scheme as the MLPs.
    fn pinet(&mut self, p: &PiNetSpec, quant: Quant) -> WirePiNet {
        let mut u = heapless::Vec::new();
        for l in &p.u {
            let layer = self.layer(l, quant);
            // Too high a degree is cut here and then refused by the decoder's shape checks.
            if u.push(layer).is_err() {
                break;
            }
        }
        WirePiNet {
            n_in: p.inputs.min(u16::MAX as usize) as u16,
            u,
            c: self.layer(&p.c, quant),
        }
    }
}

/// Quantizes a layer; reuses its recorded int8 scales when they reproduce its weights exactly
/// (the round trip `inspect --json` then `import`), else computes fresh `max|w| / 127` scales.
fn quantize_layer(l: &LayerSpec) -> (Vec<i8>, Vec<f32>) {
    let n_in = l.inputs.max(1);
    let mut q = vec![0i8; l.weights.len()];
    if let Some(scales) = &l.int8_scales {
        if scales.len() * n_in == l.weights.len() {
            for ((row, qrow), &s) in l
                .weights
                .chunks_exact(n_in)
                .zip(q.chunks_exact_mut(n_in))
                .zip(scales)
            {
                quantize_row_with_scale(row, s, qrow);
            }
            let exact = l
                .weights
                .chunks_exact(n_in)
                .zip(q.chunks_exact(n_in))
                .zip(scales)
                .all(|((row, qrow), &s)| row.iter().zip(qrow).all(|(&w, &qv)| qv as f32 * s == w));
            if exact {
                return (q, scales.clone());
            }
        }
    }
    let mut scales = vec![0.0f32; l.weights.len() / n_in];
    if quantize_rows(&l.weights, n_in, &mut q, &mut scales).is_none() {
        // Inconsistent lengths: encode as is and let the decoder's shape check report it.
        return (vec![0; l.weights.len()], vec![0.0; l.outputs]);
    }
    (q, scales)
}

/// Reproducible example models (deterministic pseudo-random weights) for tests, benchmarks and
/// the bundled example.
pub mod examples {
    use super::*;

    /// One step of SplitMix64 (Steele, Lea & Flood, 2014): advances `state` and returns 64
    /// random bits. The workspace's one generator: the trainer's seeded `Rng` steps it too.
    pub fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Small deterministic generator ([`splitmix64`]), uniform in [-1, 1).
    pub struct Rng(u64);

    impl Rng {
        /// Seeded generator.
        pub fn new(seed: u64) -> Self {
            Rng(seed)
        }

        /// Next value in [-1, 1).
        pub fn next_f32(&mut self) -> f32 {
            let z = splitmix64(&mut self.0);
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// An MLP with Glorot-uniform-like weights and small biases.
    pub fn random_mlp(inputs: usize, layers: &[(usize, Activation)], seed: u64) -> MlpSpec {
        let mut rng = Rng::new(seed);
        let mut widths = vec![inputs];
        widths.extend(layers.iter().map(|l| l.0));
        let mut m = MlpSpec::dense(inputs, layers, |_, _| 0.0);
        for (li, l) in m.layers.iter_mut().enumerate() {
            let limit = (6.0 / (widths[li] + widths[li + 1]) as f32).sqrt();
            for w in &mut l.weights {
                *w = rng.next_f32() * limit;
            }
            for b in &mut l.bias {
                *b = rng.next_f32() * 0.1;
            }
        }
        m
    }

    /// A SingleNN-MemODE (paper 000, Fig. 3) with the given hidden widths, SiLU activations, a
    /// 1 kOhm series resistor and R_on = 1 kOhm, R_off = 100 kOhm. The vector field is scaled so a
    /// 1 V drive switches the state within tens of milliseconds.
    pub fn single_nn_memode(hidden: &[usize], seed: u64) -> ModelSpec {
        let mut layers: Vec<(usize, Activation)> =
            hidden.iter().map(|&h| (h, Activation::Silu)).collect();
        layers.push((1, Activation::Identity));
        let mut f = random_mlp(2, &layers, seed);
        f.output_scale = vec![20.0];
        ModelSpec {
            format_version: FORMAT_VERSION,
            name: format!("single-nn-memode-{}", hidden.len()),
            dynamics: DynamicsSpec::Ode { f },
            readout: ReadoutSpec::Linear {
                r_on: 1.0e3,
                r_off: 1.0e5,
            },
            circuit: Some(Circuit {
                series_resistance: 1.0e3,
            }),
            x0: vec![0.5],
            bounds: vec![BoundSpec {
                lower: Some(0.0),
                upper: Some(1.0),
            }],
        }
    }

    /// A polynomial neural ODE (paper 002): `n` states, a Π-net of the given degree and width,
    /// no readout. Weights are scaled down with the degree so the polynomial stays moderate on
    /// the unit box, and `C` is scaled by `rate` (1/s), the stiffness knob.
    pub fn poly_ode(n: usize, degree: usize, width: usize, rate: f32, seed: u64) -> ModelSpec {
        let mut rng = Rng::new(seed);
        let inputs = n + 1;
        let lim = 1.0 / (inputs as f32).sqrt();
        let u = (0..degree)
            .map(|_| LayerSpec {
                inputs,
                outputs: width,
                activation: Activation::Identity,
                weights: (0..inputs * width).map(|_| rng.next_f32() * lim).collect(),
                bias: (0..width).map(|_| rng.next_f32() * 0.3).collect(),
                int8_scales: None,
            })
            .collect();
        let climit = rate / (width as f32).sqrt();
        let c = LayerSpec {
            inputs: width,
            outputs: n,
            activation: Activation::Identity,
            weights: (0..width * n).map(|_| rng.next_f32() * climit).collect(),
            bias: (0..n).map(|_| rng.next_f32() * 0.1 * rate).collect(),
            int8_scales: None,
        };
        ModelSpec {
            format_version: FORMAT_VERSION,
            name: format!("poly-ode-{n}x{degree}"),
            dynamics: DynamicsSpec::PolyOde {
                net: PiNetSpec {
                    inputs,
                    width,
                    outputs: n,
                    u,
                    c,
                },
            },
            readout: ReadoutSpec::None,
            circuit: None,
            x0: (0..n).map(|i| 0.2 - 0.1 * i as f32).collect(),
            bounds: vec![
                BoundSpec {
                    lower: Some(-4.0),
                    upper: Some(4.0),
                };
                n
            ],
        }
    }

    /// A DualNN-MemODE (paper 000, Fig. 4): `n` latent states, GELU vector field, ReLU/sigmoid
    /// memductance net into [5 uS, 2 mS].
    pub fn dual_nn_memode(hidden: &[usize], g_hidden: usize, n: usize, seed: u64) -> ModelSpec {
        let mut layers: Vec<(usize, Activation)> =
            hidden.iter().map(|&h| (h, Activation::Gelu)).collect();
        layers.push((n, Activation::Identity));
        let mut f = random_mlp(n + 1, &layers, seed);
        f.output_scale = vec![10.0; n];
        let g = random_mlp(
            n,
            &[(g_hidden, Activation::Relu), (1, Activation::Sigmoid)],
            seed + 1,
        );
        ModelSpec {
            format_version: FORMAT_VERSION,
            name: format!("dual-nn-memode-{n}"),
            dynamics: DynamicsSpec::Ode { f },
            readout: ReadoutSpec::Net {
                g,
                g_min: 5e-6,
                g_max: 2e-3,
            },
            circuit: Some(Circuit {
                series_resistance: 1.0e3,
            }),
            x0: vec![0.0; n],
            bounds: vec![BoundSpec::default(); n],
        }
    }
}
