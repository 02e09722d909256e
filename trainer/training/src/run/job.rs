//! `job.json`: what a run directory trains, so that `export`, `eval` and `--resume` rebuild the
//! same model without re-reading the command line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::NeuralOde;
use crate::Error;

/// What a run directory trains, saved as `job.json` so `export` and `--resume` rebuild the same
/// model (including the data-derived scaling) without re-reading the command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Read once per command: the size of the memristor variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum JobFile {
    /// A generic neural ODE.
    Ode {
        /// Data directory.
        data: PathBuf,
        /// The model.
        model: NeuralOde,
    },
    /// A memristor surrogate on rig data.
    Memristor {
        /// Data directory (with `manifest.toml`).
        data: PathBuf,
        /// The model.
        model: crate::surrogate::Memristor,
        /// Periods left out of validation losses while the model settles.
        warmup_periods: f64,
        /// Periods of each training record trained on after its warm-up (all when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train_periods: Option<f64>,
    },
}

impl JobFile {
    /// File name in the run directory.
    pub const FILE: &'static str = "job.json";

    /// Reads `dir/job.json`.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(Self::FILE);
        let text = odeflash_reference::files::read_text(&path, "job file")?;
        serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: {e}", path.display())))
    }

    /// Writes `dir/job.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(Error::Serialize)?;
        odeflash_reference::files::write_atomic(&dir.join(Self::FILE), text.as_bytes())
    }
}
