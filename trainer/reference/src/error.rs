//! The workspace's error type, shared by every layer so that `?` carries a failure to the CLI.

use std::io;
use std::path::{Path, PathBuf};

use odeflash_runtime::{DecodeError, SimError};

use crate::stimulus::StimulusError;

/// Why a command failed. Every variant names the file it concerns; causes are chained as
/// [`std::error::Error::source`] (print with `{:#}` through `anyhow`, or walk the chain).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An output path holds something odeflash will not replace without `--force` (see
    /// [`crate::files`] for the rule).
    #[error("{}: {why}; pass --force to overwrite, or choose another path", path.display())]
    Exists {
        /// The path refused.
        path: PathBuf,
        /// What is there.
        why: String,
    },
    /// Writing a report to standard output failed.
    #[error("cannot write to standard output")]
    Stdout(#[source] io::Error),
    /// A model file was refused by the decoder.
    #[error("{} is not a usable odeflash model", path.display())]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// What the decoder found.
        source: DecodeError,
    },
    /// A model spec is not valid JSON or does not have the spec's shape.
    #[error("{} is not a valid model spec", path.display())]
    SpecJson {
        /// The file.
        path: PathBuf,
        /// What the parser found (with line and column).
        source: serde_json::Error,
    },
    /// A model spec parsed but does not encode into a model the decoder accepts.
    #[error("{} does not describe a valid model", path.display())]
    InvalidSpec {
        /// The file.
        path: PathBuf,
        /// What the decoder found in the encoded blob.
        source: DecodeError,
    },
    /// Serializing a model spec failed.
    #[error("cannot serialize the model spec")]
    Serialize(#[source] serde_json::Error),
    /// A stimulus file is malformed or does not fit the model.
    #[error(transparent)]
    Stimulus(#[from] StimulusError),
    /// The simulation settings do not fit the model (sub-steps, initial state).
    #[error("cannot simulate {}", model.display())]
    Config {
        /// The model file.
        model: PathBuf,
        /// What the runtime refused.
        source: SimError,
    },
    /// The simulation failed part-way (the state left the finite range).
    #[error("{}:{line}: {what}", path.display())]
    Simulation {
        /// The stimulus file.
        path: PathBuf,
        /// Its line (1-based) holding the sample where it failed.
        line: usize,
        /// The sample index (0-based, data rows only).
        sample: usize,
        /// What happened, in terms of the stimulus.
        what: String,
        /// What the runtime reported.
        cause: SimError,
    },
    /// The command line is inconsistent in a way the parser cannot check.
    #[error("{0}")]
    Usage(String),
    /// A data set or experiment file is unusable; the message names the file and field.
    #[error("{0}")]
    Input(String),
    /// An experiment file is not valid TOML or has unknown or mistyped fields.
    #[error("{} is not a valid experiment file", path.display())]
    Experiment {
        /// The file.
        path: PathBuf,
        /// What the parser found (with line and column).
        source: Box<toml::de::Error>,
    },
    /// A figure could not be written.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// A failure in the training layer (a differentiable solve, the run directory), kept with
    /// its type for `downcast_ref`; that crate provides the `From` conversions.
    #[error(transparent)]
    Training(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A reference solve (`odeflash solve`) failed.
    #[error("solving {problem} failed")]
    Stiff {
        /// The problem's name.
        problem: String,
        /// Why the solver stopped.
        source: crate::stiff::StiffError,
    },
    /// Training diverged or could not continue.
    #[error("{0}")]
    Train(String),
    /// A model's simulation left finite values (its dynamics blew up on some input).
    #[error("{0}")]
    Diverged(String),
}

impl Error {
    /// A read error for `path`.
    pub fn read(path: &Path, source: io::Error) -> Self {
        Error::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A write error for `path`.
    pub fn write(path: &Path, source: io::Error) -> Self {
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether this is standard output's reader going away (`odeflash inspect m.ofm | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Stdout(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}
