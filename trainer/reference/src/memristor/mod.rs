//! Memristors (paper 000) in f64: rig data, a synthetic "measured" device, and the MMS/GMMS
//! compact-model baselines fitted by differential evolution and L-BFGS-B.
//!
//! - [`data`]: `manifest.toml` + one CSV per trajectory, checked defect by defect;
//! - [`synth`]: a synthetic device outside every fitted model family (`odeflash data
//!   synth-memristor`);
//! - [`circuit`]: the series-resistor solve for the device voltage;
//! - [`baseline`]: MMS and GMMS in the series-resistor circuit, DE + L-BFGS-B, `fit.json`.

pub mod baseline;
pub mod circuit;
pub mod data;
pub mod synth;

pub use data::{Measured, MemristorDataset, MemristorTrajectory, Split};
