//! Model format v1: header, postcard descriptor, aligned tensor data. Specified in `FORMAT.md`.
//!
//! Decoding checks, in order: header fields, total length, CRC-32, descriptor, then every tensor
//! reference (bounds, alignment, length) and every dimension against [`crate::limits`]. Only then
//! is a [`Model`] handed out, so the kernels can trust their slice lengths.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::crc::Crc32;
use crate::error::DecodeError;
use crate::limits::{MAX_DEGREE, MAX_LAYERS, MAX_NAME, MAX_STATES, MAX_WIDTH};
#[cfg(feature = "poly")]
use crate::model::PiNet;
use crate::model::{Circuit, Dynamics, IteratorForm, Layer, Mlp, Model, Readout, Weights};

/// First four bytes of every model file.
pub const MAGIC: [u8; 4] = *b"ODFM";
/// The format version this runtime writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 32;
/// Alignment of the data section and of every tensor in it, relative to the blob start.
pub const DATA_ALIGN: usize = 16;

/// Byte offsets of the header fields (all little-endian).
pub(crate) mod hdr {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const HEADER_LEN: usize = 6;
    pub const DESC_LEN: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const DATA_LEN: usize = 16;
    pub const FLAGS: usize = 20;
    pub const RESERVED: usize = 24;
    pub const CRC: usize = 28;
}

/// Location of a tensor in the data section: byte offset from the section start, element count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TensorRef {
    /// Byte offset from the start of the data section.
    pub offset: u32,
    /// Number of elements.
    pub len: u32,
}

/// Weight storage of one layer in the descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireWeights {
    /// f32 weights.
    F32(TensorRef),
    /// int8 weights with one f32 scale per row.
    Int8 {
        /// i8 weights.
        q: TensorRef,
        /// f32 row scales.
        scales: TensorRef,
    },
}

/// One layer in the descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireLayer {
    /// Outputs.
    pub n_out: u16,
    /// Activation.
    pub activation: Activation,
    /// Weights.
    pub weights: WireWeights,
    /// Bias (f32).
    pub bias: TensorRef,
}

/// One MLP in the descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireMlp {
    /// Inputs.
    pub n_in: u16,
    /// Input offsets (f32, `n_in`).
    pub in_offset: TensorRef,
    /// Input scales (f32, `n_in`).
    pub in_scale: TensorRef,
    /// Layers.
    pub layers: Vec<WireLayer, MAX_LAYERS>,
    /// Output scales (f32, last layer's `n_out`).
    pub out_scale: TensorRef,
    /// Output offsets.
    pub out_offset: TensorRef,
}

/// A polynomial (Π-net V1) net in the descriptor: `degree` layers `U_k` (inputs to width) and
/// `C` (width to outputs), all with identity activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WirePiNet {
    /// Inputs.
    pub n_in: u16,
    /// `U_1 .. U_degree` with biases `a_k`.
    pub u: Vec<WireLayer, MAX_DEGREE>,
    /// `C` with bias `β`.
    pub c: WireLayer,
}

/// Dynamics in the descriptor. New kinds are appended, never inserted, so old files keep their
/// variant indices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireDynamics {
    /// Continuous-time vector field.
    Ode {
        /// Vector field net.
        f: WireMlp,
    },
    /// Discrete map.
    Iterator {
        /// Map net.
        net: WireMlp,
        /// Residual or direct.
        form: IteratorForm,
        /// Sample interval, seconds.
        dt: f32,
    },
    /// Continuous-time polynomial vector field (appended in version 1: older runtimes refuse it
    /// with `Descriptor`).
    PolyOde {
        /// The Π-net.
        net: WirePiNet,
    },
}

/// Memductance readout in the descriptor (appended to, never reordered).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireReadout {
    /// None.
    None,
    /// Eq. 10.
    Linear {
        /// Ohms.
        r_on: f32,
        /// Ohms.
        r_off: f32,
    },
    /// Memductance net.
    Net {
        /// Net.
        g: WireMlp,
        /// Siemens.
        g_min: f32,
        /// Siemens.
        g_max: f32,
    },
}

/// The postcard-encoded descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireModel<'a> {
    /// Name.
    #[serde(borrow)]
    pub name: &'a str,
    /// Number of states.
    pub n_states: u8,
    /// Dynamics.
    pub dynamics: WireDynamics,
    /// Readout.
    pub readout: WireReadout,
    /// Circuit.
    pub circuit: Option<Circuit>,
    /// Initial state (f32, `n_states`).
    pub x0: TensorRef,
    /// Lower bounds (f32, `n_states`, `-inf` for none).
    pub lower: TensorRef,
    /// Upper bounds (f32, `n_states`, `+inf` for none).
    pub upper: TensorRef,
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => u32::from_le_bytes([a, c, d, e]),
        _ => 0,
    }
}

/// Parsed and checked header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Descriptor length.
    pub desc_len: u32,
    /// Data section offset from the blob start.
    pub data_offset: u32,
    /// Data section length.
    pub data_len: u32,
    /// Stored CRC-32.
    pub crc: u32,
}

impl Header {
    /// Total blob length.
    pub fn total_len(&self) -> usize {
        self.data_offset as usize + self.data_len as usize
    }
}

/// Checks the header and the checksum; returns the header on success.
///
/// Bytes past the blob's stated length are ignored, so a whole flash region can be passed.
pub fn check_header(blob: &[u8]) -> Result<Header, DecodeError> {
    let available = blob.len() as u32;
    if blob.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            needed: HEADER_LEN as u32,
            available,
        });
    }
    if blob.get(hdr::MAGIC..hdr::MAGIC + 4) != Some(&MAGIC[..]) {
        return Err(DecodeError::BadMagic);
    }
    let version = read_u16(blob, hdr::VERSION);
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    if read_u16(blob, hdr::HEADER_LEN) as usize != HEADER_LEN {
        return Err(DecodeError::BadHeader {
            field: "header_len",
        });
    }
    if read_u32(blob, hdr::FLAGS) != 0 {
        return Err(DecodeError::BadHeader { field: "flags" });
    }
    if read_u32(blob, hdr::RESERVED) != 0 {
        return Err(DecodeError::BadHeader { field: "reserved" });
    }
    let h = Header {
        version,
        desc_len: read_u32(blob, hdr::DESC_LEN),
        data_offset: read_u32(blob, hdr::DATA_OFFSET),
        data_len: read_u32(blob, hdr::DATA_LEN),
        crc: read_u32(blob, hdr::CRC),
    };
    let desc_end = HEADER_LEN as u64 + h.desc_len as u64;
    let expected_offset = desc_end.div_ceil(DATA_ALIGN as u64) * DATA_ALIGN as u64;
    if h.data_offset as u64 != expected_offset {
        return Err(DecodeError::BadHeader {
            field: "data_offset",
        });
    }
    let total = h.data_offset as u64 + h.data_len as u64;
    if total > u32::MAX as u64 {
        return Err(DecodeError::BadHeader { field: "data_len" });
    }
    if (blob.len() as u64) < total {
        return Err(DecodeError::Truncated {
            needed: total as u32,
            available,
        });
    }
    let mut crc = Crc32::new();
    crc.update(blob.get(..hdr::CRC).unwrap_or(&[]));
    crc.update(blob.get(HEADER_LEN..total as usize).unwrap_or(&[]));
    let computed = crc.finish();
    if computed != h.crc {
        return Err(DecodeError::ChecksumMismatch {
            stored: h.crc,
            computed,
        });
    }
    // Padding between descriptor and data must be zero, so every byte has one meaning.
    let pad = blob
        .get(desc_end as usize..h.data_offset as usize)
        .unwrap_or(&[]);
    if pad.iter().any(|&b| b != 0) {
        return Err(DecodeError::BadHeader { field: "padding" });
    }
    Ok(h)
}

/// Resolves tensor references against the data section.
struct Data<'a> {
    bytes: &'a [u8],
}

impl<'a> Data<'a> {
    fn raw(&self, r: TensorRef, elem: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let start = r.offset as usize;
        let len = (r.len as usize)
            .checked_mul(elem)
            .ok_or(DecodeError::TensorOutOfBounds { what })?;
        let end = start
            .checked_add(len)
            .ok_or(DecodeError::TensorOutOfBounds { what })?;
        self.bytes
            .get(start..end)
            .ok_or(DecodeError::TensorOutOfBounds { what })
    }

    fn f32s(
        &self,
        r: TensorRef,
        expected: usize,
        what: &'static str,
    ) -> Result<&'a [f32], DecodeError> {
        if r.len as usize != expected {
            return Err(DecodeError::ShapeMismatch {
                what,
                expected: expected as u32,
                found: r.len,
            });
        }
        let raw = self.raw(r, 4, what)?;
        let v = cast_f32(raw).ok_or(DecodeError::Misaligned { what })?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(DecodeError::InvalidValue { what });
        }
        Ok(v)
    }

    /// Like `f32s` but allows infinities (state bounds); still refuses NaN.
    fn bounds(
        &self,
        r: TensorRef,
        expected: usize,
        what: &'static str,
    ) -> Result<&'a [f32], DecodeError> {
        if r.len as usize != expected {
            return Err(DecodeError::ShapeMismatch {
                what,
                expected: expected as u32,
                found: r.len,
            });
        }
        let raw = self.raw(r, 4, what)?;
        let v = cast_f32(raw).ok_or(DecodeError::Misaligned { what })?;
        if v.iter().any(|x| x.is_nan()) {
            return Err(DecodeError::InvalidValue { what });
        }
        Ok(v)
    }

    fn i8s(
        &self,
        r: TensorRef,
        expected: usize,
        what: &'static str,
    ) -> Result<&'a [i8], DecodeError> {
        if r.len as usize != expected {
            return Err(DecodeError::ShapeMismatch {
                what,
                expected: expected as u32,
                found: r.len,
            });
        }
        Ok(cast_i8(self.raw(r, 1, what)?))
    }
}

/// Reinterprets little-endian bytes as f32 in place; `None` if misaligned.
#[allow(unsafe_code)]
fn cast_f32(raw: &[u8]) -> Option<&[f32]> {
    if raw.len() % 4 != 0 || (raw.as_ptr() as usize) % core::mem::align_of::<f32>() != 0 {
        return None;
    }
    // SAFETY: the pointer is aligned for f32 (checked above), the length is a whole number of
    // f32s, every bit pattern is a valid f32, the target is little-endian (compile-time check in
    // lib.rs) and the result borrows `raw`, so it cannot outlive the bytes.
    Some(unsafe { core::slice::from_raw_parts(raw.as_ptr().cast::<f32>(), raw.len() / 4) })
}

#[allow(unsafe_code)]
fn cast_i8(raw: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size, alignment and validity; lifetime as above.
    unsafe { core::slice::from_raw_parts(raw.as_ptr().cast::<i8>(), raw.len()) }
}

fn check_width(what: &'static str, n: usize) -> Result<(), DecodeError> {
    if n == 0 {
        return Err(DecodeError::ShapeMismatch {
            what,
            expected: 1,
            found: 0,
        });
    }
    if n > MAX_WIDTH {
        return Err(DecodeError::CapacityExceeded {
            what,
            limit: MAX_WIDTH as u32,
            found: n as u32,
        });
    }
    Ok(())
}

/// Reads the postcard descriptor field by field, in the order `WireModel` serializes them.
///
/// Deserializing the whole `WireModel` at once would put it (about 800 bytes on a Cortex-M) on
/// the stack next to the `Model` being built, and the compiler keeps a slot per move: decoding
/// then needed 8 KB of stack on a Cortex-M4F. Reading one field or one layer at a time keeps
/// decoding within the RAM budget of the smallest targets. The golden files pin the layout that
/// both this reader and the encoder's `WireModel` follow.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<T: Deserialize<'a>>(&mut self) -> Result<T, DecodeError> {
        let (v, rest) =
            postcard::take_from_bytes(self.rest).map_err(|_| DecodeError::Descriptor)?;
        self.rest = rest;
        Ok(v)
    }

    /// An enum variant index or a sequence length (postcard varints).
    fn tag(&mut self) -> Result<u32, DecodeError> {
        self.take::<u32>()
    }
}

/// Reads one MLP into `mlp` (which starts empty), in place: no net-sized temporaries.
#[inline(never)]
fn read_mlp<'a>(
    r: &mut Reader<'_>,
    data: &Data<'a>,
    n_in: usize,
    n_out: usize,
    which: &'static str,
    mlp: &mut Mlp<'a>,
) -> Result<(), DecodeError> {
    let wire_n_in: u16 = r.take()?;
    let in_offset: TensorRef = r.take()?;
    let in_scale: TensorRef = r.take()?;
    if wire_n_in as usize != n_in {
        return Err(DecodeError::ShapeMismatch {
            what: which,
            expected: n_in as u32,
            found: wire_n_in as u32,
        });
    }
    check_width("layer width", n_in)?;
    let count = r.tag()? as usize;
    if count == 0 {
        return Err(DecodeError::ShapeMismatch {
            what: "layer count",
            expected: 1,
            found: 0,
        });
    }
    if count > MAX_LAYERS {
        return Err(DecodeError::CapacityExceeded {
            what: "layer count",
            limit: MAX_LAYERS as u32,
            found: count as u32,
        });
    }
    mlp.in_offset = data.f32s(in_offset, n_in, "input offset")?;
    mlp.in_scale = data.f32s(in_scale, n_in, "input scale")?;
    let mut width = n_in;
    for _ in 0..count {
        let l: WireLayer = r.take()?;
        let out = l.n_out as usize;
        check_width("layer width", out)?;
        if !l.activation.is_valid() {
            return Err(DecodeError::InvalidValue {
                what: "activation parameter",
            });
        }
        let layer = read_layer(data, &l, width)?;
        // Cannot fail: `count <= MAX_LAYERS` was checked.
        let _ = mlp.layers.push(layer);
        width = out;
    }
    if width != n_out {
        return Err(DecodeError::ShapeMismatch {
            what: which,
            expected: n_out as u32,
            found: width as u32,
        });
    }
    let out_scale: TensorRef = r.take()?;
    let out_offset: TensorRef = r.take()?;
    mlp.out_scale = data.f32s(out_scale, n_out, "output scale")?;
    mlp.out_offset = data.f32s(out_offset, n_out, "output offset")?;
    Ok(())
}

/// Resolves one layer's weights and bias, `n_in x n_out`.
fn read_layer<'a>(data: &Data<'a>, l: &WireLayer, n_in: usize) -> Result<Layer<'a>, DecodeError> {
    let out = l.n_out as usize;
    let weights = match l.weights {
        WireWeights::F32(w) => Weights::F32(data.f32s(w, n_in * out, "layer weights")?),
        WireWeights::Int8 { q, scales } => Weights::Int8 {
            q: data.i8s(q, n_in * out, "int8 weights")?,
            scales: data.f32s(scales, out, "int8 scales")?,
        },
    };
    Ok(Layer {
        n_in: n_in as u16,
        n_out: l.n_out,
        activation: l.activation,
        weights,
        bias: data.f32s(l.bias, out, "layer bias")?,
    })
}

/// Reads one Π-net into `net` (which starts empty), in place.
#[inline(never)]
#[cfg(feature = "poly")]
fn read_pinet<'a>(
    r: &mut Reader<'_>,
    data: &Data<'a>,
    n_in: usize,
    n_out: usize,
    net: &mut PiNet<'a>,
) -> Result<(), DecodeError> {
    let wire_n_in: u16 = r.take()?;
    if wire_n_in as usize != n_in {
        return Err(DecodeError::ShapeMismatch {
            what: "pi-net inputs",
            expected: n_in as u32,
            found: wire_n_in as u32,
        });
    }
    check_width("layer width", n_in)?;
    let degree = r.tag()? as usize;
    if degree == 0 {
        return Err(DecodeError::ShapeMismatch {
            what: "pi-net degree",
            expected: 1,
            found: 0,
        });
    }
    if degree > MAX_DEGREE {
        return Err(DecodeError::CapacityExceeded {
            what: "pi-net degree",
            limit: MAX_DEGREE as u32,
            found: degree as u32,
        });
    }
    let mut width = 0usize;
    for k in 0..degree {
        let l: WireLayer = r.take()?;
        let out = l.n_out as usize;
        check_width("layer width", out)?;
        if l.activation != Activation::Identity {
            return Err(DecodeError::InvalidValue {
                what: "pi-net activation (must be identity)",
            });
        }
        if k > 0 && out != width {
            return Err(DecodeError::ShapeMismatch {
                what: "pi-net width",
                expected: width as u32,
                found: out as u32,
            });
        }
        width = out;
        // Cannot fail: `degree <= MAX_DEGREE` was checked.
        let _ = net.u.push(read_layer(data, &l, n_in)?);
    }
    let c: WireLayer = r.take()?;
    if c.activation != Activation::Identity {
        return Err(DecodeError::InvalidValue {
            what: "pi-net activation (must be identity)",
        });
    }
    if c.n_out as usize != n_out {
        return Err(DecodeError::ShapeMismatch {
            what: "pi-net outputs",
            expected: n_out as u32,
            found: c.n_out as u32,
        });
    }
    net.c = read_layer(data, &c, width)?;
    Ok(())
}

fn positive(v: f32, what: &'static str) -> Result<f32, DecodeError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(DecodeError::InvalidValue { what })
    }
}

impl<'a> Model<'a> {
    /// A model with no states and no layers: storage to [`Model::decode_into`]. Not runnable
    /// ([`crate::Simulator::new`] refuses it).
    pub const EMPTY: Model<'static> = Model {
        name: "",
        dynamics: Dynamics::Ode { f: Mlp::EMPTY },
        readout: Readout::None,
        circuit: None,
        x0: &[],
        lower: &[],
        upper: &[],
        blob_len: 0,
    };

    /// Decodes and validates a model blob in place. Trailing bytes after the blob are ignored.
    pub fn decode(blob: &'a [u8]) -> Result<Model<'a>, DecodeError> {
        let mut model = Model::EMPTY;
        Model::decode_into(blob, &mut model)?;
        Ok(model)
    }

    /// Like [`Model::decode`], but into caller-owned storage, so a microcontroller never holds a
    /// second copy of the model (about 700 bytes on a Cortex-M) on its stack. On error `dst` is
    /// left as [`Model::EMPTY`].
    pub fn decode_into(blob: &'a [u8], dst: &mut Model<'a>) -> Result<(), DecodeError> {
        *dst = Model::EMPTY;
        let r = Self::decode_fields(blob, dst);
        if r.is_err() {
            *dst = Model::EMPTY;
        }
        r
    }

    #[inline(never)]
    fn decode_fields(blob: &'a [u8], model: &mut Model<'a>) -> Result<(), DecodeError> {
        let h = check_header(blob)?;
        let desc_end = HEADER_LEN + h.desc_len as usize;
        let desc = blob
            .get(HEADER_LEN..desc_end)
            .ok_or(DecodeError::Truncated {
                needed: desc_end as u32,
                available: blob.len() as u32,
            })?;
        let data = Data {
            bytes: blob
                .get(h.data_offset as usize..h.total_len())
                .unwrap_or(&[]),
        };
        let mut r = Reader { rest: desc };
        let name: &'a str = r.take()?;
        if name.len() > MAX_NAME {
            return Err(DecodeError::CapacityExceeded {
                what: "name length",
                limit: MAX_NAME as u32,
                found: name.len() as u32,
            });
        }
        let n_states: u8 = r.take()?;
        let n = n_states as usize;
        if n == 0 {
            return Err(DecodeError::ShapeMismatch {
                what: "state count",
                expected: 1,
                found: 0,
            });
        }
        if n > MAX_STATES {
            return Err(DecodeError::CapacityExceeded {
                what: "state count",
                limit: MAX_STATES as u32,
                found: n as u32,
            });
        }
        // The nets are filled in place, so decoding holds no second copy of a net.
        model.name = name;
        model.blob_len = h.total_len() as u32;
        match r.tag()? {
            0 => {
                if let Dynamics::Ode { f } = &mut model.dynamics {
                    read_mlp(
                        &mut r,
                        &data,
                        n + 1,
                        n,
                        "vector-field net inputs/outputs",
                        f,
                    )?;
                }
            }
            1 => {
                model.dynamics = Dynamics::Iterator {
                    net: Mlp::EMPTY,
                    form: IteratorForm::Residual,
                    dt: 0.0,
                };
                if let Dynamics::Iterator { net, form, dt } = &mut model.dynamics {
                    read_mlp(&mut r, &data, n + 1, n, "iterator net inputs/outputs", net)?;
                    *form = r.take()?;
                    *dt = positive(r.take()?, "iterator dt")?;
                }
            }
            // Without the `poly` feature a Π-net file is refused like an unknown kind.
            #[cfg(feature = "poly")]
            2 => {
                model.dynamics = Dynamics::PolyOde { net: PiNet::EMPTY };
                if let Dynamics::PolyOde { net } = &mut model.dynamics {
                    read_pinet(&mut r, &data, n + 1, n, net)?;
                }
            }
            _ => return Err(DecodeError::Descriptor),
        }
        match r.tag()? {
            0 => {}
            1 => {
                let r_on: f32 = r.take()?;
                let r_off: f32 = r.take()?;
                model.readout = Readout::Linear {
                    r_on: positive(r_on, "R_on")?,
                    r_off: positive(r_off, "R_off")?,
                };
            }
            2 => {
                model.readout = Readout::Net {
                    g: Mlp::EMPTY,
                    g_min: 0.0,
                    g_max: 0.0,
                };
                if let Readout::Net { g, g_min, g_max } = &mut model.readout {
                    read_mlp(&mut r, &data, n, 1, "memductance net inputs/outputs", g)?;
                    *g_min = r.take()?;
                    *g_max = r.take()?;
                    if !(g_min.is_finite() && g_max.is_finite() && *g_min >= 0.0 && g_min < g_max) {
                        return Err(DecodeError::InvalidValue {
                            what: "memductance bounds",
                        });
                    }
                }
            }
            _ => return Err(DecodeError::Descriptor),
        }
        let readout = &model.readout;
        let circuit: Option<Circuit> = r.take()?;
        if let Some(c) = circuit {
            if !(c.series_resistance.is_finite() && c.series_resistance >= 0.0) {
                return Err(DecodeError::InvalidValue {
                    what: "series resistance",
                });
            }
            if matches!(readout, Readout::None) {
                return Err(DecodeError::InvalidValue {
                    what: "series resistor without a memductance readout",
                });
            }
        }
        let x0: TensorRef = r.take()?;
        let lower: TensorRef = r.take()?;
        let upper: TensorRef = r.take()?;
        if !r.rest.is_empty() {
            return Err(DecodeError::BadHeader { field: "desc_len" });
        }
        model.circuit = circuit;
        model.x0 = data.f32s(x0, n, "initial state")?;
        model.lower = data.bounds(lower, n, "lower state bounds")?;
        model.upper = data.bounds(upper, n, "upper state bounds")?;
        if model.lower.iter().zip(model.upper).any(|(lo, hi)| lo > hi) {
            return Err(DecodeError::InvalidValue {
                what: "state bounds (lower above upper)",
            });
        }
        Ok(())
    }
}

/// A model blob in memory with the alignment the decoder needs (host side).
#[cfg(feature = "std")]
#[derive(Clone, PartialEq, Eq)]
pub struct AlignedBlob {
    words: std::vec::Vec<[u32; 4]>,
    len: usize,
}

#[cfg(feature = "std")]
impl core::fmt::Debug for AlignedBlob {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AlignedBlob({} bytes)", self.len)
    }
}

#[cfg(feature = "std")]
impl AlignedBlob {
    /// The bytes.
    #[allow(unsafe_code)]
    pub fn as_bytes(&self) -> &[u8] {
        let words: &[[u32; 4]] = &self.words;
        // SAFETY: [u32; 4] is plain data without padding; viewing it as bytes is always valid,
        // `len` never exceeds the byte size of `words`, and the borrow ties the lifetimes.
        let all = unsafe {
            core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), core::mem::size_of_val(words))
        };
        all.get(..self.len).unwrap_or(&[])
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(feature = "std")]
impl AlignedBlob {
    /// Copies bytes into 16-byte aligned storage.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut words = vec![[0u32; 4]; bytes.len().div_ceil(16)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(16)) {
            let mut buf = [0u8; 16];
            buf[..chunk.len()].copy_from_slice(chunk);
            for (i, v) in w.iter_mut().enumerate() {
                *v = u32::from_ne_bytes([
                    buf[4 * i],
                    buf[4 * i + 1],
                    buf[4 * i + 2],
                    buf[4 * i + 3],
                ]);
            }
        }
        Self {
            words,
            len: bytes.len(),
        }
    }

    /// Reads a model file.
    pub fn read(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        Ok(Self::from_bytes(&std::fs::read(path)?))
    }

    /// Decodes the model it holds.
    pub fn model(&self) -> Result<Model<'_>, DecodeError> {
        Model::decode(self.as_bytes())
    }
}
