//! `job.json`: what a run directory trains, so that `export`, `eval` and `--resume` rebuild the
//! same model without re-reading the command line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::NeuralOde;
use crate::Error;
use odeflash_reference::dataset::Dataset;

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
        /// [`data_hash`] of the data the run started on (absent in runs from before it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_hash: Option<String>,
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
        /// [`data_hash`] of the data the run started on (absent in runs from before it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_hash: Option<String>,
        /// How the run started (absent in runs from before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<StartOptions>,
    },
}

/// How a memristor run started, so that a resume can refuse other start options rather than
/// ignore them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartOptions {
    /// The preset's name (`paper`, `small`).
    pub preset: String,
    /// The compact-model fit the nets started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_baseline: Option<PathBuf>,
    /// Adam iterations of each start fit.
    pub init_iterations: usize,
    /// Start fits tried.
    pub init_candidates: usize,
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

    /// The data directory and the content hash the run started with.
    pub fn data(&self) -> (&Path, Option<&str>) {
        match self {
            JobFile::Ode {
                data, data_hash, ..
            }
            | JobFile::Memristor {
                data, data_hash, ..
            } => (data, data_hash.as_deref()),
        }
    }

    /// Refuses `data` when the run started on other data: a resume must train on what the
    /// run's checkpoints were trained on (the same directory with other samples, another
    /// sample interval or other periods is other data).
    pub fn check_data(&self, data: &Dataset) -> Result<(), Error> {
        let (dir, Some(started)) = self.data() else {
            return Ok(());
        };
        let now = data_hash(data);
        if now == started {
            return Ok(());
        }
        Err(Error::Input(format!(
            "{}: the data changed since the run started (content hash {started}, now {now}): \
             other samples, sample interval or records; resume with the data the run started \
             on, or start a new run",
            dir.display()
        )))
    }

    /// Writes `dir/job.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(Error::Serialize)?;
        odeflash_reference::files::write_atomic(&dir.join(Self::FILE), text.as_bytes())
    }
}

/// A hash of what training reads from a dataset (every record's samples, sample interval,
/// constants and warm-up, training and validation apart), not of the files' bytes: a comment
/// or a reformatted number changes nothing; another sample does.
pub fn data_hash(data: &Dataset) -> String {
    let mut bytes = Vec::new();
    for (split, records) in [(0u8, &data.train), (1, &data.validation)] {
        for t in records.iter() {
            bytes.push(split);
            bytes.extend_from_slice(&t.dt.to_le_bytes());
            bytes.extend_from_slice(&(t.warmup as u64).to_le_bytes());
            let series = std::iter::once(&t.drive).chain(&t.channels);
            for s in series {
                bytes.extend_from_slice(&(s.len() as u64).to_le_bytes());
                bytes.extend(s.iter().flat_map(|v| v.to_le_bytes()));
            }
            bytes.extend(t.consts.iter().flat_map(|v| v.to_le_bytes()));
        }
    }
    super::checkpoint::sha256_hex(&bytes)
}
