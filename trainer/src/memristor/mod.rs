//! Memristor surrogates (paper 000): rig data, a synthetic "measured" device, and the MMS/GMMS
//! compact-model baselines fitted by differential evolution and L-BFGS-B.
//!
//! - [`data`]: `manifest.toml` + one CSV per trajectory, checked defect by defect;
//! - [`synth`]: `odeflash data synth-memristor`, a device outside every fitted model family;
//! - [`baseline`]: MMS and GMMS in the series-resistor circuit, DE + L-BFGS-B, `fit.json`;
//! - [`eval`]: `odeflash eval`, every kind of model scored alike (Tables I-II, Fig. 6-8);
//! - [`cli`]: the command-line arguments and entry points of both commands.

pub mod baseline;
pub mod cli;
pub mod data;
pub mod eval;
pub mod synth;

pub use data::{Measured, MemristorDataset, MemristorTrajectory, Split};
