//! The run directory's error type.

use std::io;
use std::path::{Path, PathBuf};

/// Why an operation on a run directory failed. Every variant that concerns a file names it;
/// causes are chained as [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file could not be written (appended to, synced, created).
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An atomic write ([`odeflash_reference::files::write_atomic`]) failed; it names the file.
    #[error(transparent)]
    File(#[from] crate::Error),
    /// A checkpoint file is not valid JSON or does not have a checkpoint's shape.
    #[error("{} is not a valid checkpoint", path.display())]
    CheckpointJson {
        /// The file.
        path: PathBuf,
        /// What the parser found (with line and column).
        source: serde_json::Error,
    },
    /// A checkpoint parsed but is inconsistent, or a checkpoint about to be written is unusable
    /// (non-finite parameters: the previous checkpoint is kept rather than overwritten).
    #[error("{}: {what}", path.display())]
    InvalidCheckpoint {
        /// The file read or about to be written.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A metrics file holds a line that cannot be parsed (other than a partial last line,
    /// which a killed run leaves behind and resuming drops).
    #[error("{}:{line}: {what}", path.display())]
    MetricsFile {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A metrics record does not fit the file (different keys than the header, bad name).
    #[error("{}: {what}", path.display())]
    Record {
        /// The file being appended to.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The run directory already holds a checkpoint and the job is not resuming.
    #[error(
        "{} already holds a training run ({} exists); pass --resume to continue it, or choose \
         another output directory",
        dir.display(),
        found.display()
    )]
    RunExists {
        /// The run directory.
        dir: PathBuf,
        /// The checkpoint file found in it.
        found: PathBuf,
    },
    /// Resuming was asked for but there is nothing to resume from.
    #[error(
        "cannot resume from {}: {} does not exist; start the run without --resume",
        dir.display(),
        missing.display()
    )]
    NothingToResume {
        /// The run directory.
        dir: PathBuf,
        /// The checkpoint file that is missing.
        missing: PathBuf,
    },
    /// Another process holds the run directory's lock (it is training into it).
    #[error(
        "{} is in use by another odeflash process{}; wait for it to finish or stop it, or \
         choose another output directory",
        dir.display(),
        pid.map_or(String::new(), |p| format!(" (pid {p})"))
    )]
    Locked {
        /// The run directory.
        dir: PathBuf,
        /// The holder's process id, when it had written it.
        pid: Option<u32>,
    },
    /// A new run's directory holds files that no run wrote.
    #[error(
        "{} is not empty and holds no interrupted odeflash run ({found}); train into a new or \
         empty directory, so that nothing in it is overwritten",
        dir.display()
    )]
    Foreign {
        /// The directory.
        dir: PathBuf,
        /// A few of the files found.
        found: String,
    },
    /// A run was to be read (exported) but it has no checkpoint yet.
    #[error(
        "{} holds no trained model: {} does not exist; train it first (`odeflash train ... \
         --out {}`), or wait for its first epoch to end",
        dir.display(),
        missing.display(),
        dir.display()
    )]
    NotTrained {
        /// The run directory.
        dir: PathBuf,
        /// What is missing.
        missing: PathBuf,
    },
    /// The run directory path exists but is not a directory.
    #[error("{} exists and is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The experiment configuration given for `config.toml` is not valid TOML, or cannot be
    /// serialized as TOML.
    #[error("invalid run configuration for {}: {what}", path.display())]
    Config {
        /// The `config.toml` it was meant for.
        path: PathBuf,
        /// What the TOML parser or serializer said.
        what: String,
    },
    /// A figure (the learning curve) could not be written.
    #[error(transparent)]
    Plot(#[from] odeflash_reference::plot::PlotError),
    /// The Ctrl-C handler could not be installed (another handler owns the signal).
    #[error("cannot install the Ctrl-C handler")]
    Interrupt(#[source] ctrlc::Error),
}

impl RunError {
    pub(crate) fn read(path: &Path, source: io::Error) -> Self {
        RunError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn write(path: &Path, source: io::Error) -> Self {
        RunError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}
