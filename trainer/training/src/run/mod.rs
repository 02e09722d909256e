//! The run directory of a training job, and what a training loop needs around it.
//!
//! A run directory holds:
//! - `config.toml`: the resolved experiment configuration, written once when the run is created
//!   ([`RunDir`]),
//! - `metrics.jsonl` and `metrics.csv`: one record per epoch ([`MetricsWriter`]),
//! - `checkpoint.json` (every epoch) and `best.json` (when validation improves)
//!   ([`Checkpoint`]),
//! - `job.json`: what the run trains ([`JobFile`]),
//! - `learning_curve.png` ([`odeflash_reference::plot::learning_curve`]),
//! - `snapshots/epoch_NNNNNN.json`: the parameters at chosen epochs
//!   (`train.snapshot_epochs`, [`RunDir::save_snapshot`]).
//!
//! A training loop also polls [`Interrupt`] after each batch (Ctrl-C: checkpoint, then stop) and
//! reports through [`Progress`].
//!
//! Order of writes at the end of an epoch: append the metrics record *first*, then write the
//! checkpoint. A run killed in between then has one metrics row more than its checkpoint, and
//! [`MetricsWriter::open_resume`] drops it; the other order would lose a row.

pub mod checkpoint;
mod error;
pub mod interrupt;
mod job;
pub mod metrics;
pub mod progress;
pub mod rundir;

pub use checkpoint::{Checkpoint, ParamTensor};
pub use error::RunError;
pub use interrupt::Interrupt;
pub use job::{data_hash, JobFile, StartOptions};
pub use metrics::{MetricsWriter, Record};
pub use progress::Progress;
pub use rundir::RunDir;
