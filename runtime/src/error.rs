//! The runtime's errors: why a model blob was refused ([`DecodeError`]) and why a simulation
//! could not be set up or continue ([`SimError`]), each a typed value, never a panic.

use core::fmt;

use crate::implicit::NewtonFailure;

/// Why a model blob was refused. Each variant names the likely cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// The blob is shorter than its header says: cut off while copying or flashing.
    Truncated {
        /// Bytes the header promises.
        needed: u32,
        /// Bytes present.
        available: u32,
    },
    /// The first bytes are not `ODFM`: not a model file, or an erased flash region.
    BadMagic,
    /// Written by a newer (or unknown) format version than this runtime reads.
    UnsupportedVersion {
        /// Version found in the header.
        found: u16,
    },
    /// A header field is inconsistent (lengths that do not add up, unknown flags, reserved bits set).
    BadHeader {
        /// The field.
        field: &'static str,
    },
    /// The payload does not match its CRC-32: the blob was corrupted.
    ChecksumMismatch {
        /// Checksum stored in the header.
        stored: u32,
        /// Checksum of the bytes present.
        computed: u32,
    },
    /// The descriptor is not valid postcard for this version (unknown model kind or enum value,
    /// a list longer than the capacity limits, invalid UTF-8).
    Descriptor,
    /// A tensor's bytes lie outside the data section.
    TensorOutOfBounds {
        /// Which tensor.
        what: &'static str,
    },
    /// An f32 tensor is not 4-byte aligned in memory: embed blobs with [`crate::include_model!`]
    /// or [`crate::AlignedBlob`].
    Misaligned {
        /// Which tensor.
        what: &'static str,
    },
    /// A tensor or layer has the wrong size for the shapes around it.
    ShapeMismatch {
        /// What was checked.
        what: &'static str,
        /// Size required.
        expected: u32,
        /// Size found.
        found: u32,
    },
    /// A dimension exceeds this build's capacity limits ([`crate::limits`]).
    CapacityExceeded {
        /// Which dimension.
        what: &'static str,
        /// The limit.
        limit: u32,
        /// The value found.
        found: u32,
    },
    /// A parameter is out of its valid range (non-finite weight, negative resistance, ...).
    InvalidValue {
        /// Which parameter.
        what: &'static str,
    },
}

/// Why a simulation could not start or continue.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SimError {
    /// The scratch slice is smaller than [`crate::Cost::scratch_f32`].
    ScratchTooSmall {
        /// f32 elements needed.
        needed: u32,
        /// f32 elements given.
        available: u32,
    },
    /// A configuration value is out of range (non-positive `dt`, zero or too many sub-steps, ...).
    InvalidConfig {
        /// Which value.
        what: &'static str,
    },
    /// An iterator net runs only at the sample interval it was trained on.
    SampleIntervalMismatch {
        /// Interval recorded in the model, seconds.
        model_dt: f32,
        /// Interval asked for, seconds.
        requested_dt: f32,
    },
    /// A given initial state has the wrong length or is not finite.
    BadInitialState,
    /// The drive (supply voltage) is NaN or infinite.
    NonFiniteInput {
        /// Sample index.
        step: u32,
    },
    /// The state became NaN or infinite: the model left its trained region or the step is too large.
    NonFiniteState {
        /// Sample index at which it happened.
        step: u32,
    },
    /// Output buffers of the trajectory API have the wrong length.
    OutputLength {
        /// Elements needed.
        needed: u32,
        /// Elements given.
        available: u32,
    },
    /// An implicit step's Newton system could not be solved: the Newton matrix is singular
    /// (the step meets an eigenvalue `1 / (h a)` of the Jacobian) or not finite.
    NewtonFailed {
        /// Sample index at which it happened.
        step: u32,
        /// Singular or non-finite.
        reason: NewtonFailure,
    },
}

/// Any runtime error.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The model blob was refused.
    Decode(DecodeError),
    /// The simulation failed.
    Sim(SimError),
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<SimError> for Error {
    fn from(e: SimError) -> Self {
        Error::Sim(e)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Truncated { needed, available } => write!(
                f,
                "model blob truncated: header promises {needed} bytes, {available} present"
            ),
            DecodeError::BadMagic => f.write_str("not an odeflash model (bad magic bytes)"),
            DecodeError::UnsupportedVersion { found } => write!(
                f,
                "model format version {found} is not supported (this runtime reads version {})",
                crate::FORMAT_VERSION
            ),
            DecodeError::BadHeader { field } => write!(f, "invalid model header field `{field}`"),
            DecodeError::ChecksumMismatch { stored, computed } => write!(
                f,
                "model checksum mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupted blob)"
            ),
            DecodeError::Descriptor => f.write_str(
                "model descriptor is malformed (unknown kind, over-long list or invalid text)",
            ),
            DecodeError::TensorOutOfBounds { what } => {
                write!(f, "tensor `{what}` lies outside the data section")
            }
            DecodeError::Misaligned { what } => {
                write!(f, "tensor `{what}` is not 4-byte aligned in memory")
            }
            DecodeError::ShapeMismatch {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected {expected}, found {found}"),
            DecodeError::CapacityExceeded { what, limit, found } => {
                write!(f, "{what} is {found}, above this runtime's limit of {limit}")
            }
            DecodeError::InvalidValue { what } => write!(f, "invalid value: {what}"),
        }
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SimError::ScratchTooSmall { needed, available } => write!(
                f,
                "scratch too small: {needed} f32 needed, {available} given"
            ),
            SimError::InvalidConfig { what } => write!(f, "invalid simulation setting: {what}"),
            SimError::SampleIntervalMismatch {
                model_dt,
                requested_dt,
            } => write!(
                f,
                "iterator net was trained at dt = {model_dt} s, asked to run at {requested_dt} s"
            ),
            SimError::BadInitialState => {
                f.write_str("initial state has the wrong length or is not finite")
            }
            SimError::NonFiniteInput { step } => write!(f, "drive is not finite at sample {step}"),
            SimError::NonFiniteState { step } => {
                write!(f, "state became non-finite at sample {step}")
            }
            SimError::OutputLength { needed, available } => {
                write!(f, "output buffer holds {available} values, {needed} needed")
            }
            SimError::NewtonFailed { step, reason } => {
                write!(f, "implicit step failed at sample {step}: {reason}")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(e) => e.fmt(f),
            Error::Sim(e) => e.fmt(f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}
#[cfg(feature = "std")]
impl std::error::Error for SimError {}
#[cfg(feature = "std")]
impl std::error::Error for Error {}
