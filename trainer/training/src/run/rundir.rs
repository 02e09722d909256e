//! The run directory itself: created once with its `config.toml`, reopened to resume, and
//! locked for as long as a process writes into it.
//!
//! The lock is an advisory `flock` on `run.lock` (which holds the holder's pid), taken before
//! anything in the directory is read or written: two `train` runs into one directory, or two
//! resumes of one run, would otherwise both succeed and interleave their checkpoints and
//! metrics. The operating system drops the lock when the process ends, however it ends, so a
//! killed run never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::checkpoint::Checkpoint;
use super::metrics::MetricsWriter;
use super::RunError;
use odeflash_reference::files::write_atomic;

/// A training run's output directory. See the [module documentation](super) for its files.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
    resumed: bool,
    /// Held for the life of the last clone (none for a run opened to read).
    _lock: Option<Arc<File>>,
}

impl RunDir {
    /// File name of the resolved experiment configuration.
    pub const CONFIG: &'static str = "config.toml";
    /// File name of the learning-curve figure.
    pub const LEARNING_CURVE: &'static str = "learning_curve.png";
    /// File name of the lock.
    pub const LOCK: &'static str = "run.lock";

    /// Creates the run directory (and its parents) for a new run, and writes `config.toml` from
    /// `config_toml`, the resolved configuration as TOML text (checked to parse).
    ///
    /// Refuses a directory that already holds a run (`checkpoint.json` or `best.json`): resume it
    /// with [`RunDir::open_resume`], or choose another directory. Refuses a non-empty directory
    /// that holds anything but a run killed before its first checkpoint (whose files are
    /// replaced): a user's files are never overwritten.
    pub fn create(path: impl AsRef<Path>, config_toml: &str) -> Result<RunDir, RunError> {
        let path = path.as_ref();
        let config_path = path.join(Self::CONFIG);
        config_toml
            .parse::<toml::Table>()
            .map_err(|e| RunError::Config {
                path: config_path.clone(),
                what: e.to_string(),
            })?;
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(RunError::NotADirectory {
                    path: path.to_path_buf(),
                })
            }
            Ok(_) => refuse_foreign_files(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RunError::read(path, e)),
        }
        std::fs::create_dir_all(path).map_err(|e| RunError::write(path, e))?;
        // Under the lock: a run in progress is reported as such, not as a finished one.
        let lock = lock(path)?;
        refuse_existing_run(path)?;
        write_atomic(&config_path, ensure_newline(config_toml).as_bytes())?;
        Ok(RunDir {
            path: path.to_path_buf(),
            resumed: false,
            _lock: Some(lock),
        })
    }

    /// [`RunDir::create`] with a configuration value (a `toml::Value`, `toml::Table`, or any
    /// serializable config struct), written as pretty TOML.
    pub fn create_with<T: Serialize + ?Sized>(
        path: impl AsRef<Path>,
        config: &T,
    ) -> Result<RunDir, RunError> {
        let path = path.as_ref();
        let text = toml::to_string_pretty(config).map_err(|e| RunError::Config {
            path: path.join(Self::CONFIG),
            what: e.to_string(),
        })?;
        Self::create(path, &text)
    }

    /// Opens an existing run to resume it: the directory must hold `checkpoint.json`, and no
    /// other process may be writing into it. `config.toml` is left as it is.
    pub fn open_resume(path: impl AsRef<Path>) -> Result<RunDir, RunError> {
        let path = path.as_ref();
        let missing = |dir: &Path, missing: PathBuf| RunError::NothingToResume {
            dir: dir.to_path_buf(),
            missing,
        };
        check_trained(path, missing)?;
        let lock = lock(path)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            resumed: true,
            _lock: Some(lock),
        })
    }

    /// Opens a trained run to read it (`export`), without its lock: the checkpoints are
    /// written atomically, so a run still training is read as its last epoch left it.
    pub fn open_trained(path: impl AsRef<Path>) -> Result<RunDir, RunError> {
        let path = path.as_ref();
        let missing = |dir: &Path, missing: PathBuf| RunError::NotTrained {
            dir: dir.to_path_buf(),
            missing,
        };
        check_trained(path, missing)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            resumed: true,
            _lock: None,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this run was opened with [`RunDir::open_resume`].
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.path.join(Self::CONFIG)
    }

    /// The text of `config.toml`.
    pub fn read_config(&self) -> Result<String, RunError> {
        Ok(odeflash_reference::files::read_text(
            &self.config_path(),
            "run configuration",
        )?)
    }

    /// `checkpoint.json`.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join(Checkpoint::FILE)
    }

    /// `best.json`.
    pub fn best_path(&self) -> PathBuf {
        self.path.join(Checkpoint::BEST_FILE)
    }

    /// `learning_curve.png`.
    pub fn learning_curve_path(&self) -> PathBuf {
        self.path.join(Self::LEARNING_CURVE)
    }

    /// `snapshots/`: the parameters at chosen epochs.
    pub fn snapshot_dir(&self) -> PathBuf {
        snapshot_dir(&self.path)
    }

    /// Keeps `ck`'s parameters as `snapshots/epoch_NNNNNN.json` (without the optimizer state: a
    /// snapshot is for looking at the model then, not for resuming); returns its path.
    pub fn save_snapshot(&self, ck: &Checkpoint) -> Result<PathBuf, RunError> {
        let dir = self.snapshot_dir();
        std::fs::create_dir_all(&dir).map_err(|e| RunError::write(&dir, e))?;
        let lean = Checkpoint {
            optimizer: serde_json::Value::Null,
            scheduler: serde_json::Value::Null,
            ..ck.clone()
        };
        lean.save_as(&dir.join(snapshot_name(ck.epoch)))
    }

    /// The latest checkpoint.
    pub fn load_checkpoint(&self) -> Result<Checkpoint, RunError> {
        Checkpoint::load(&self.path)
    }

    /// The metrics writer: fresh files for a new run; for a resumed one, the files cut back to
    /// `last_epoch` (the loaded checkpoint's epoch; ignored for a new run).
    pub fn metrics(&self, last_epoch: u64) -> Result<MetricsWriter, RunError> {
        if self.resumed {
            MetricsWriter::open_resume(&self.path, last_epoch)
        } else {
            MetricsWriter::create(&self.path)
        }
    }
}

/// Requires `path` to be a directory holding `checkpoint.json`; `missing` makes the error
/// naming what is not there.
fn check_trained(
    path: &Path,
    missing: impl Fn(&Path, PathBuf) -> RunError,
) -> Result<(), RunError> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => Err(RunError::NotADirectory {
            path: path.to_path_buf(),
        }),
        Ok(_) => {
            let checkpoint = path.join(Checkpoint::FILE);
            if checkpoint.is_file() {
                Ok(())
            } else {
                Err(missing(path, checkpoint))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing(path, path.to_path_buf())),
        Err(e) => Err(RunError::read(path, e)),
    }
}

/// What a run writes.
const RUN_FILES: [&str; 10] = [
    RunDir::CONFIG,
    RunDir::LOCK,
    "job.json",
    "init.json",
    "metrics.csv",
    "metrics.jsonl",
    RunDir::LEARNING_CURVE,
    Checkpoint::FILE,
    Checkpoint::BEST_FILE,
    "snapshots",
];

/// Refuses a non-empty directory that is not a run (one with its lock, `job.json` or metrics,
/// and nothing a run does not write): training would replace a user's `config.toml` or metrics
/// files of another origin. A run that got as far as a checkpoint is refused later, under the
/// lock, as in use or as one to resume.
fn refuse_foreign_files(path: &Path) -> Result<(), RunError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| RunError::read(path, e))? {
        let entry = entry.map_err(|e| RunError::read(path, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    let is_run = names.iter().any(|n| RUN_FILES[1..].contains(&n.as_str()));
    let mut foreign: Vec<&String> = names
        .iter()
        .filter(|n| !RUN_FILES.contains(&n.as_str()) && !n.starts_with(".odeflash-"))
        .collect();
    if names.is_empty() || (is_run && foreign.is_empty()) {
        return Ok(());
    }
    if foreign.is_empty() {
        foreign = names.iter().collect();
    }
    foreign.sort();
    let shown: Vec<&str> = foreign.iter().take(3).map(|n| n.as_str()).collect();
    Err(RunError::Foreign {
        dir: path.to_path_buf(),
        found: format!(
            "{}{}",
            shown.join(", "),
            if foreign.len() > 3 { ", ..." } else { "" }
        ),
    })
}

/// Refuses a directory that already holds a run (`checkpoint.json` or `best.json`).
fn refuse_existing_run(path: &Path) -> Result<(), RunError> {
    for name in [Checkpoint::FILE, Checkpoint::BEST_FILE] {
        let found = path.join(name);
        if found.exists() {
            return Err(RunError::RunExists {
                dir: path.to_path_buf(),
                found,
            });
        }
    }
    Ok(())
}

/// Takes the run directory's lock and writes this process's pid into it; refuses, with the
/// holder's pid, when another process holds it.
fn lock(dir: &Path) -> Result<Arc<File>, RunError> {
    let path = dir.join(RunDir::LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| RunError::write(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // The holder may not have written its pid yet: then the message goes without it.
            let _ = file.read_to_string(&mut text);
            return Err(RunError::Locked {
                dir: dir.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(RunError::write(&path, e)),
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush())
        .map_err(|e| RunError::write(&path, e))?;
    Ok(Arc::new(file))
}

/// `dir/snapshots`.
pub fn snapshot_dir(run: &Path) -> PathBuf {
    run.join("snapshots")
}

fn snapshot_name(epoch: u64) -> String {
    format!("epoch_{epoch:06}.json")
}

/// The snapshots of the run in `run` as (epoch, file), by epoch; none when it has no
/// `snapshots/`.
pub fn snapshots(run: &Path) -> Result<Vec<(u64, PathBuf)>, RunError> {
    let dir = snapshot_dir(run);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RunError::read(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RunError::read(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let epoch = name
            .strip_prefix("epoch_")
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(e) = epoch {
            out.push((e, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn ensure_newline(text: &str) -> std::borrow::Cow<'_, str> {
    if text.is_empty() || text.ends_with('\n') {
        text.into()
    } else {
        format!("{text}\n").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::checkpoint::tests_support::tiny_checkpoint;

    const CONFIG: &str = "[train]\nepochs = 3\nlr = 0.001\n";

    #[test]
    fn create_writes_the_config_once() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("runs/a");
        let run = RunDir::create(&dir, CONFIG).unwrap();
        assert!(!run.is_resumed());
        assert_eq!(run.read_config().unwrap(), CONFIG);
        tiny_checkpoint(1).save(run.path()).unwrap();

        // Resuming does not touch it.
        std::fs::write(run.config_path(), "# edited\n").unwrap();
        drop(run);
        let resumed = RunDir::open_resume(&dir).unwrap();
        assert!(resumed.is_resumed());
        assert_eq!(resumed.read_config().unwrap(), "# edited\n");
        assert_eq!(resumed.load_checkpoint().unwrap().epoch, 1);
    }

    #[test]
    fn a_run_directory_has_one_writer_at_a_time() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let first = RunDir::create(&dir, CONFIG).unwrap();
        let pid = std::process::id();
        for second in [
            RunDir::create(&dir, CONFIG),
            RunDir::create(root.path().join("run/."), CONFIG),
        ] {
            let err = second.unwrap_err();
            assert!(
                matches!(err, RunError::Locked { pid: Some(p), .. } if p == pid),
                "{err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("in use by another odeflash process (pid") && msg.contains("run"),
                "{msg}"
            );
        }
        tiny_checkpoint(1).save(first.path()).unwrap();
        // A clone shares the lock; a resume must wait for the last one.
        let clone = first.clone();
        drop(first);
        assert!(matches!(
            RunDir::open_resume(&dir).unwrap_err(),
            RunError::Locked { .. }
        ));
        drop(clone);
        let resumed = RunDir::open_resume(&dir).unwrap();
        assert!(matches!(
            RunDir::open_resume(&dir).unwrap_err(),
            RunError::Locked { .. }
        ));
        drop(resumed);
        RunDir::open_resume(&dir).unwrap();
    }

    #[test]
    fn reading_a_run_needs_a_checkpoint_not_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path().join("r"), CONFIG).unwrap();
        let msg = RunDir::open_trained(run.path()).unwrap_err().to_string();
        assert!(
            msg.contains("holds no trained model")
                && msg.contains("checkpoint.json does not exist")
                && !msg.contains("resume"),
            "{msg}"
        );
        tiny_checkpoint(1).save(run.path()).unwrap();
        // While the run still holds its lock.
        assert_eq!(
            RunDir::open_trained(run.path())
                .unwrap()
                .load_checkpoint()
                .unwrap()
                .epoch,
            1
        );
        let msg = RunDir::open_trained(root.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("holds no trained model"), "{msg}");
    }

    #[test]
    fn create_from_a_value() {
        let root = tempfile::tempdir().unwrap();
        let value: toml::Value = toml::from_str(CONFIG).unwrap();
        let run = RunDir::create_with(root.path().join("v"), &value).unwrap();
        let back: toml::Value = toml::from_str(&run.read_config().unwrap()).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn refuses_to_overwrite_a_run() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), CONFIG).unwrap();
        tiny_checkpoint(2).save(run.path()).unwrap();
        let config = run.config_path();
        drop(run);
        let err = RunDir::create(root.path(), "[train]\nepochs = 9\n").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RunError::RunExists { .. }));
        assert!(
            msg.contains("already holds a training run")
                && msg.contains("checkpoint.json exists")
                && msg.contains("--resume"),
            "{msg}"
        );
        // The first run's config is untouched.
        assert_eq!(std::fs::read_to_string(config).unwrap(), CONFIG);

        // best.json alone also marks a run.
        let other = root.path().join("b");
        std::fs::create_dir(&other).unwrap();
        tiny_checkpoint(2).save_best(&other).unwrap();
        let msg = RunDir::create(&other, CONFIG).unwrap_err().to_string();
        assert!(msg.contains("best.json exists"), "{msg}");
    }

    #[test]
    fn reuses_a_run_killed_before_its_first_checkpoint_only() {
        let root = tempfile::tempdir().unwrap();
        let killed = root.path().join("killed");
        drop(RunDir::create(&killed, "old = 1\n").unwrap());
        std::fs::write(killed.join("metrics.csv"), "epoch\n").unwrap();
        let run = RunDir::create(&killed, CONFIG).unwrap();
        assert_eq!(run.read_config().unwrap(), CONFIG);

        // A user's directory: their notes, or their own config.toml, stay untouched.
        for (name, text) in [("notes.txt", "hi"), ("config.toml", "[train]\nlr = 0.1\n")] {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join(name), text).unwrap();
            let msg = RunDir::create(&dir, CONFIG).unwrap_err().to_string();
            assert!(
                msg.contains("is not empty and holds no interrupted odeflash run")
                    && msg.contains(name),
                "{msg}"
            );
            assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), text);
            assert!(!dir.join(RunDir::LOCK).exists());
        }
        // Anything besides a killed run's own files, too.
        std::fs::write(killed.join("notes.txt"), "hi").unwrap();
        drop(run);
        let msg = RunDir::create(&killed, CONFIG).unwrap_err().to_string();
        assert!(msg.contains("(notes.txt)"), "{msg}");
    }

    #[test]
    fn resume_refusals() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        let msg = RunDir::open_resume(&missing).unwrap_err().to_string();
        assert!(
            msg.contains("cannot resume from") && msg.contains("start the run without --resume"),
            "{msg}"
        );
        let run = RunDir::create(root.path().join("new"), CONFIG).unwrap();
        let msg = RunDir::open_resume(run.path()).unwrap_err().to_string();
        assert!(msg.contains("checkpoint.json does not exist"), "{msg}");

        let file = root.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let msg = RunDir::open_resume(&file).unwrap_err().to_string();
        assert!(msg.contains("is not a directory"), "{msg}");
        let msg = RunDir::create(&file, CONFIG).unwrap_err().to_string();
        assert!(msg.contains("is not a directory"), "{msg}");
    }

    #[test]
    fn invalid_config_is_refused_before_anything_is_written() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bad");
        let msg = RunDir::create(&dir, "epochs = = 3")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("invalid run configuration") && msg.contains("config.toml"),
            "{msg}"
        );
        assert!(!dir.exists());
    }

    #[test]
    fn snapshots_are_listed_by_epoch_without_optimizer_state() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), CONFIG).unwrap();
        assert!(snapshots(run.path()).unwrap().is_empty());
        let mut ck = tiny_checkpoint(10);
        ck.optimizer = serde_json::json!({"m": [1.0]});
        run.save_snapshot(&ck).unwrap();
        run.save_snapshot(&tiny_checkpoint(2)).unwrap();
        let list = snapshots(run.path()).unwrap();
        assert_eq!(
            list.iter().map(|s| s.0).collect::<Vec<_>>(),
            [2, 10],
            "{list:?}"
        );
        let back = Checkpoint::load_file(&list[1].1).unwrap();
        assert_eq!(back.params, ck.params);
        assert!(back.optimizer.is_null());
    }

    #[test]
    fn metrics_follow_the_mode() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), CONFIG).unwrap();
        let mut m = run.metrics(0).unwrap();
        for epoch in 1..=3 {
            m.append(crate::run::Record::new(epoch).with("train_loss", 1.0))
                .unwrap();
        }
        tiny_checkpoint(2).save(run.path()).unwrap();
        drop((m, run));
        let resumed = RunDir::open_resume(root.path()).unwrap();
        let ckpt = resumed.load_checkpoint().unwrap();
        assert_eq!(resumed.metrics(ckpt.epoch).unwrap().records().len(), 2);
    }
}
