//! The burn-free f64 side of odeflash: everything that is numbers and files, not training.
//!
//! - [`stiff`]: paper 002's reference problems and f64 solvers (Radau5, fixed-step methods);
//! - [`memristor`]: rig data, the synthetic device, the MMS/GMMS compact models and their fits;
//! - [`optimize`]: differential evolution and L-BFGS-B;
//! - [`dataset`]: trajectory datasets of state-observed systems, and a synthetic oscillator;
//! - [`csv`], [`stimulus`], [`files`]: the file formats users hand the CLI, and atomic writes;
//! - [`rng`]: the one seeded generator; [`plot`]: figures with a bundled font;
//! - [`Error`]: why a command failed, naming the file.

pub mod csv;
pub mod dataset;
mod error;
pub mod files;
pub mod memristor;
pub mod optimize;
pub mod plot;
pub mod rng;
pub mod stiff;
pub mod stimulus;

pub use error::Error;
