//! # odeflash-runtime
//!
//! Runs trained neural-ODE, iterator-net and memristor surrogates on a microcontroller, straight
//! from a model blob in flash, with no heap and no panics.
//!
//! Why it is built this way:
//! - **No heap, caller-owned scratch.** A rig's firmware must know its worst-case RAM at link time,
//!   so the model reports [`Cost::scratch_bytes`] and the caller hands in that much memory.
//! - **Zero-copy decoding.** Weights are read in place from the blob (`&'static [u8]` in flash);
//!   the descriptor is a few hundred bytes of [`postcard`], the tensors sit in an aligned data
//!   section (see `FORMAT.md`, the one place the format is specified).
//! - **Hostile input is an error, not a crash.** Every length, offset and dimension in a blob is
//!   checked against the blob and the capacity limits in [`limits`] before anything runs; a
//!   corrupted flash region is caught by the CRC-32 before the descriptor is even parsed.
//! - **Fixed-step solvers, physical units.** Input and output scaling are baked into the model, the
//!   supply voltage between samples is linearly interpolated, and a step costs a known number of
//!   multiply-accumulates: explicit Runge-Kutta methods, and for stiff dynamics implicit ones
//!   (backward Euler, trapezoid, Radau IIA 3 and 5) with a fixed number of Newton iterations on
//!   an analytic (forward-tangent) Jacobian.
//!
//! ```
//! # #[cfg(not(feature = "std"))] fn main() {} // the example blob is built by the std encoder
//! # #[cfg(feature = "std")]
//! # fn main() -> Result<(), odeflash_runtime::Error> {
//! use odeflash_runtime::{Model, SimConfig, Simulator, Solver};
//! # let blob = odeflash_runtime::doc_example_blob();
//! # let blob: &[u8] = blob.as_bytes();
//! let model = Model::decode(blob)?;
//! let cost = model.cost(Solver::Rk4, 1);
//! let mut scratch = [0.0f32; 512];
//! assert!(cost.scratch_f32 <= scratch.len());
//! let config = SimConfig::new(1e-3, Solver::Rk4, 1);
//! let mut sim = Simulator::new(&model, config, &mut scratch)?;
//! sim.reset(None)?;
//! let first = sim.observe(0.0)?;
//! let next = sim.step(0.0, 0.01)?; // supply voltage now and at the next sample
//! # let _ = (first, next);
//! # Ok(()) }
//! ```
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(target_endian = "big")]
compile_error!(
    "odeflash-runtime reads little-endian tensors in place and supports little-endian targets only"
);

pub mod activation;
#[cfg(feature = "std")]
pub mod convergence;
pub mod crc;
mod error;
pub mod format;
pub mod implicit;
pub mod kernels;
pub mod limits;
pub mod lu;
mod model;
pub mod sim;
pub mod solver;

#[cfg(feature = "std")]
pub mod batch;
#[cfg(feature = "std")]
pub mod spec;

pub use activation::Activation;
pub use error::{DecodeError, Error, SimError};
#[cfg(feature = "std")]
pub use format::AlignedBlob;
pub use format::{FORMAT_VERSION, MAGIC};
pub use implicit::{ImplicitTableau, NewtonFailure};
pub use model::{
    Circuit, Cost, Dynamics, IteratorForm, KindName, Layer, Mlp, Model, PiNet, Readout, Weights,
};
pub use sim::{Sample, SimConfig, Simulator};
pub use solver::{Solver, Tableau};

/// Embeds a model file in flash with the alignment the decoder needs (4 bytes for f32 tensors).
///
/// `include_bytes!` alone gives byte alignment; this wraps it in a 16-byte aligned static.
#[macro_export]
macro_rules! include_model {
    ($path:expr) => {{
        #[repr(C, align(16))]
        struct __Aligned<B: ?Sized>(B);
        static __MODEL: &__Aligned<[u8]> = &__Aligned(*include_bytes!($path));
        &__MODEL.0
    }};
}

/// A small SingleNN-MemODE blob for documentation examples.
#[doc(hidden)]
#[cfg(feature = "std")]
pub fn doc_example_blob() -> AlignedBlob {
    spec::examples::single_nn_memode(&[4, 4], 7).encode(spec::Quant::F32)
}
