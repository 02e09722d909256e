//! Training checkpoints: `checkpoint.json` (every epoch) and `best.json` (best validation loss).
//!
//! Both are JSON, written atomically (temporary file in the run directory, fsync, rename, fsync
//! of the directory) so that a crash or a full disk leaves the previous checkpoint in place.
//! `f32` parameters print in their shortest exact form and read back bit for bit.
//!
//! Each file ends with a `checksum` (SHA-256 of the checkpoint's own serialization): an edited
//! weight, epoch, RNG state or optimizer moment, or a file cut short or flipped on disk, is
//! refused on load instead of resuming silently from something the run never wrote.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RunError;
use odeflash_reference::files::write_atomic;

/// One parameter tensor, stored row-major as a matrix (a vector is `[1, n]` or `[n, 1]`, as the
/// model defines it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamTensor {
    /// The parameter's name in the model (`"layers.0.weight"`).
    pub name: String,
    /// Rows and columns.
    pub shape: [usize; 2],
    /// `shape[0] * shape[1]` values, row-major.
    pub values: Vec<f32>,
}

/// Everything needed to continue a training run exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last completed epoch.
    pub epoch: u64,
    /// Optimizer steps taken so far, over all epochs.
    pub global_step: u64,
    /// State of the training RNG (batch shuffling, noise) after `epoch`.
    pub rng_state: u64,
    /// Model parameters.
    pub params: Vec<ParamTensor>,
    /// Optimizer state (moments, step counts), as the optimizer serializes it.
    pub optimizer: serde_json::Value,
    /// Learning-rate scheduler state, as the scheduler serializes it.
    pub scheduler: serde_json::Value,
    /// The best validation loss so far (`None` before the first validation).
    pub best_val_loss: Option<f64>,
    /// Hash of the resolved configuration the run was started with (see [`config_hash`]);
    /// resuming under another configuration should be refused by the caller.
    pub config_hash: String,
}

impl Checkpoint {
    /// File name of the latest checkpoint.
    pub const FILE: &'static str = "checkpoint.json";
    /// File name of the checkpoint with the best validation loss.
    pub const BEST_FILE: &'static str = "best.json";

    /// Records a validation loss: if it is better than [`Checkpoint::best_val_loss`] (or the first
    /// one), updates that and returns `true` (then also [`Checkpoint::save_best`]). NaN and
    /// infinity (a model that blew up in validation) never improve.
    pub fn observe_val_loss(&mut self, val_loss: f64) -> bool {
        let improved =
            val_loss.is_finite() && self.best_val_loss.is_none_or(|best| val_loss < best);
        if improved {
            self.best_val_loss = Some(val_loss);
        }
        improved
    }

    /// Writes `dir/checkpoint.json` atomically; returns its path.
    ///
    /// A checkpoint with non-finite parameters or inconsistent shapes is refused before anything
    /// is written: the previous checkpoint stays, and resuming from it is still possible.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, RunError> {
        self.save_as(&dir.join(Self::FILE))
    }

    /// Writes `dir/best.json` atomically; returns its path.
    pub fn save_best(&self, dir: &Path) -> Result<PathBuf, RunError> {
        self.save_as(&dir.join(Self::BEST_FILE))
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save_as(&self, path: &Path) -> Result<PathBuf, RunError> {
        self.validate()
            .map_err(|what| RunError::InvalidCheckpoint {
                path: path.to_path_buf(),
                what: format!("refusing to write this checkpoint: {what}"),
            })?;
        let mut bytes = self.canonical_bytes(path)?;
        let checksum = sha256_hex(&bytes);
        // `{...}` becomes `{...,"checksum":"..."}`: the hash covers everything before it.
        bytes.pop();
        bytes.extend_from_slice(format!(",\"{CHECKSUM}\":\"{checksum}\"}}\n").as_bytes());
        write_atomic(path, &bytes)?;
        Ok(path.to_path_buf())
    }

    /// Reads `dir/checkpoint.json`.
    pub fn load(dir: &Path) -> Result<Checkpoint, RunError> {
        Self::load_file(&dir.join(Self::FILE))
    }

    /// Reads `dir/best.json`.
    pub fn load_best(dir: &Path) -> Result<Checkpoint, RunError> {
        Self::load_file(&dir.join(Self::BEST_FILE))
    }

    /// Reads a checkpoint file; errors name it.
    pub fn load_file(path: &Path) -> Result<Checkpoint, RunError> {
        let bytes =
            odeflash_reference::files::read_limited(path, MAX_FILE, "checkpoint").map_err(|e| {
                match e {
                    crate::Error::Read { path, source } => RunError::Read { path, source },
                    other => RunError::File(other),
                }
            })?;
        let json_err = |source| RunError::CheckpointJson {
            path: path.to_path_buf(),
            source,
        };
        let ckpt: Checkpoint = serde_json::from_slice(&bytes).map_err(json_err)?;
        let invalid = |what: String| RunError::InvalidCheckpoint {
            path: path.to_path_buf(),
            what,
        };
        let Some((body, stored)) = split_checksum(&bytes) else {
            return Err(invalid(format!(
                "the file does not end with its `{CHECKSUM}`: it was not written by this \
                 version of odeflash, or was edited; restore it from a backup or start the run \
                 again"
            )));
        };
        let actual = sha256_hex(&body);
        if stored != actual {
            return Err(invalid(format!(
                "the content does not match its checksum (stored {stored}, content {actual}): \
                 the file was edited or damaged; restore it from a backup, resume from another \
                 checkpoint or start the run again"
            )));
        }
        ckpt.validate()
            .map_err(|what| RunError::InvalidCheckpoint {
                path: path.to_path_buf(),
                what,
            })?;
        Ok(ckpt)
    }

    /// The serialization the checksum covers: the checkpoint without its checksum.
    fn canonical_bytes(&self, path: &Path) -> Result<Vec<u8>, RunError> {
        serde_json::to_vec(self).map_err(|source| RunError::CheckpointJson {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&ParamTensor> {
        self.params.iter().find(|p| p.name == name)
    }

    fn validate(&self) -> Result<(), String> {
        for (i, p) in self.params.iter().enumerate() {
            if self.params[..i].iter().any(|q| q.name == p.name) {
                return Err(format!("parameter `{}` appears twice", p.name));
            }
            let expected = p.shape[0].checked_mul(p.shape[1]);
            if expected != Some(p.values.len()) {
                return Err(format!(
                    "parameter `{}` has shape {:?} but {} values",
                    p.name,
                    p.shape,
                    p.values.len()
                ));
            }
            if let Some(j) = p.values.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "parameter `{}` has a non-finite value ({} at index {j})",
                    p.name, p.values[j]
                ));
            }
        }
        if let Some(best) = self.best_val_loss {
            if !best.is_finite() {
                return Err(format!("best validation loss is {best}"));
            }
        }
        Ok(())
    }
}

/// Larger than any checkpoint: the paper's DualNN with its optimizer moments writes a few MB.
const MAX_FILE: u64 = 1 << 30;

/// The key of a checkpoint file's checksum.
const CHECKSUM: &str = "checksum";

/// A checkpoint file as written, `{...,"checksum":"sha256:..."}`, split into the bytes the
/// checksum covers (`{...}`, as serialized before the checksum was appended) and the checksum.
/// The bytes, not a re-serialization: JSON number parsing need not round-trip every `f64`.
fn split_checksum(file: &[u8]) -> Option<(Vec<u8>, String)> {
    let end = file.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if file[end] != b'}' {
        return None;
    }
    let file = file[..end].strip_suffix(b"\"")?;
    let key = format!(",\"{CHECKSUM}\":\"");
    let at = file.windows(key.len()).rposition(|w| w == key.as_bytes())?;
    let stored = std::str::from_utf8(&file[at + key.len()..]).ok()?;
    let mut body = file[..at].to_vec();
    body.push(b'}');
    Some((body, stored.to_string()))
}

/// `sha256:` and the hex digest of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A short stable hash of a configuration's text (FNV-1a, 64 bits, as 16 hex digits), for
/// [`Checkpoint::config_hash`]. Hash the resolved configuration as written to `config.toml`.
pub fn config_hash(config: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in config.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A small valid checkpoint for tests elsewhere in `run`.
    pub(crate) fn tiny_checkpoint(epoch: u64) -> Checkpoint {
        Checkpoint {
            epoch,
            global_step: epoch * 10,
            rng_state: 42,
            params: vec![ParamTensor {
                name: "w".into(),
                shape: [1, 2],
                values: vec![0.5, -0.25],
            }],
            optimizer: serde_json::Value::Null,
            scheduler: serde_json::Value::Null,
            best_val_loss: None,
            config_hash: config_hash(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(epoch: u64) -> Checkpoint {
        Checkpoint {
            epoch,
            global_step: epoch * 100,
            rng_state: 0x9e37_79b9_7f4a_7c15,
            params: vec![
                ParamTensor {
                    name: "layers.0.weight".into(),
                    shape: [2, 3],
                    values: vec![0.1, -1.0e-30, f32::MAX, f32::MIN_POSITIVE, -0.0, 1.0 / 3.0],
                },
                ParamTensor {
                    name: "layers.0.bias".into(),
                    shape: [1, 2],
                    values: vec![epoch as f32, 0.5],
                },
            ],
            optimizer: serde_json::json!({"kind": "adam", "t": epoch * 100, "m": [0.1, 0.2]}),
            scheduler: serde_json::json!({"kind": "cosine", "step": epoch}),
            best_val_loss: Some(0.125),
            config_hash: config_hash("lr = 1e-3\n"),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trips_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = sample(3);
        assert_eq!(
            ckpt.save(dir.path()).unwrap(),
            dir.path().join("checkpoint.json")
        );
        let back = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(back, ckpt);
        for (a, b) in ckpt.params.iter().zip(&back.params) {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.values), bits(&b.values));
        }
        ckpt.save_best(dir.path()).unwrap();
        assert_eq!(Checkpoint::load_best(dir.path()).unwrap(), ckpt);
        // Only the two files: no temporary files left.
        assert_eq!(names(dir.path()), ["best.json", "checkpoint.json"]);
    }

    #[test]
    fn improvement_tracking() {
        let mut ckpt = sample(1);
        ckpt.best_val_loss = None;
        // A model that blew up in validation is never the best, even the first time.
        assert!(!ckpt.observe_val_loss(f64::INFINITY));
        assert_eq!(ckpt.best_val_loss, None);
        assert!(ckpt.observe_val_loss(1.0));
        assert!(!ckpt.observe_val_loss(1.0));
        assert!(!ckpt.observe_val_loss(f64::NAN));
        assert!(ckpt.observe_val_loss(0.5));
        assert_eq!(ckpt.best_val_loss, Some(0.5));
    }

    #[test]
    fn refused_checkpoint_leaves_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        sample(1).save(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join("checkpoint.json")).unwrap();

        let mut diverged = sample(2);
        diverged.params[0].values[4] = f32::NAN;
        let err = diverged.save(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("checkpoint.json") && err.contains("`layers.0.weight` has a non-finite"),
            "{err}"
        );
        let mut bad_shape = sample(2);
        bad_shape.params[1].shape = [2, 2];
        let err = bad_shape.save(dir.path()).unwrap_err().to_string();
        assert!(err.contains("shape [2, 2] but 2 values"), "{err}");

        assert_eq!(
            std::fs::read(dir.path().join("checkpoint.json")).unwrap(),
            before
        );
        assert_eq!(Checkpoint::load(dir.path()).unwrap().epoch, 1);
        assert_eq!(names(dir.path()), ["checkpoint.json"]);
    }

    #[test]
    fn failed_rename_leaves_no_temporary_file() {
        // The write itself succeeds but the final rename fails (the target is a non-empty
        // directory): the temporary file must be cleaned up. This fails even for root.
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("checkpoint.json");
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("keep"), b"x").unwrap();
        let err = sample(1).save(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checkpoint.json"), "{err}");
        assert_eq!(names(dir.path()), ["checkpoint.json"]);
        assert_eq!(names(&blocker), ["keep"]);
    }

    #[cfg(unix)]
    #[test]
    fn read_only_directory_keeps_the_previous_checkpoint() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        sample(1).save(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join("checkpoint.json")).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        // Root (CI containers) ignores directory permissions: then there is nothing to test.
        let probe = dir.path().join("probe");
        let privileged = std::fs::write(&probe, b"").is_ok();
        let result = sample(2).save(dir.path());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if privileged {
            eprintln!("skipped: this process can write into read-only directories");
            return;
        }
        let err = result.unwrap_err().to_string();
        assert!(err.contains("checkpoint.json"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("checkpoint.json")).unwrap(),
            before
        );
        assert_eq!(names(dir.path()), ["checkpoint.json"]);
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err();
        assert!(matches!(err, RunError::Read { .. }));
        assert!(err.to_string().contains("checkpoint.json"), "{err}");

        std::fs::write(dir.path().join("checkpoint.json"), b"{\"epoch\": 1,").unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("checkpoint.json is not a valid checkpoint"),
            "{err}"
        );
        // The parser's position is in the chain.
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("line 1"), "{source}");

        // A consistent checksum over an inconsistent checkpoint: the shape check still holds.
        let mut bad = sample(1);
        bad.params[0].values = vec![1.0];
        let text = serde_json::to_string(&bad).unwrap();
        let sum = sha256_hex(text.as_bytes());
        let text = format!("{},\"checksum\":\"{sum}\"}}", &text[..text.len() - 1]);
        std::fs::write(dir.path().join("best.json"), text).unwrap();
        let err = Checkpoint::load_best(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("best.json: parameter `layers.0.weight` has shape"),
            "{err}"
        );
    }

    /// Rewrites `dir/checkpoint.json` through `edit` of its JSON, keeping the stored checksum
    /// where it was.
    fn edit_file(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = dir.join("checkpoint.json");
        let bytes = std::fs::read(&path).unwrap();
        let (body, stored) = split_checksum(&bytes).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        edit(&mut v);
        let text = v.to_string();
        let text = format!("{},\"checksum\":\"{stored}\"}}\n", &text[..text.len() - 1]);
        std::fs::write(&path, text).unwrap();
    }

    #[test]
    fn edited_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        type Edit = fn(&mut serde_json::Value);
        let edits: [(&str, Edit); 5] = [
            ("a weight", |v| v["params"][0]["values"][0] = 0.2.into()),
            ("the epoch", |v| v["epoch"] = 4.into()),
            ("the RNG state", |v| v["rng_state"] = 7.into()),
            ("an optimizer moment", |v| {
                v["optimizer"]["m"][1] = 0.3.into()
            }),
            ("the best loss", |v| v["best_val_loss"] = 0.0625.into()),
        ];
        for (what, edit) in edits {
            sample(3).save(dir.path()).unwrap();
            assert!(Checkpoint::load(dir.path()).is_ok());
            edit_file(dir.path(), edit);
            let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
            assert!(
                err.contains("checkpoint.json: the content does not match its checksum"),
                "{what}: {err}"
            );
        }
        // Without a checksum (an older file, or one stripped of it).
        let path = sample(3).save(dir.path()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (body, _) = split_checksum(&bytes).unwrap();
        std::fs::write(&path, &body).unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not end with its `checksum`"), "{err}");
        // The checksum covers the bytes as written: the same file loads.
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), sample(3));
    }

    #[test]
    fn checksums_hold_for_numbers_the_parser_does_not_round_trip() {
        // serde_json without `float_roundtrip` reads this f64 one unit off in its last place: a
        // checksum over a re-serialization would refuse the run's own file.
        let dir = tempfile::tempdir().unwrap();
        let mut ck = sample(1);
        ck.optimizer = serde_json::json!({"m": [0.0013777051353827119_f64]});
        ck.save(dir.path()).unwrap();
        // And the state reads back to the bit (serde_json's `float_roundtrip`), so a resumed
        // run continues from exactly the moments it stopped with.
        let back = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(
            back.optimizer["m"][0].as_f64().unwrap().to_bits(),
            0.0013777051353827119_f64.to_bits()
        );
    }

    #[test]
    fn no_single_byte_change_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(2).save(dir.path()).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut loaded = 0;
        for i in 0..good.len() {
            for new in [b'0', b'9', b' ', b'"', good[i] ^ 1] {
                if new == good[i] {
                    continue;
                }
                let mut bytes = good.clone();
                bytes[i] = new;
                std::fs::write(&path, &bytes).unwrap();
                if let Ok(ck) = Checkpoint::load(dir.path()) {
                    // Only changes the parser cannot see (white space) may load, and then to
                    // the same checkpoint.
                    assert_eq!(
                        ck,
                        sample(2),
                        "byte {i} set to {new:?} loaded another checkpoint"
                    );
                    loaded += 1;
                }
            }
        }
        assert!(
            loaded < good.len(),
            "{loaded} of {} variants loaded",
            good.len()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("checkpoint.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: mkfifo is not available");
            return;
        }
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn config_hash_is_stable() {
        assert_eq!(config_hash(""), "cbf29ce484222325");
        assert_eq!(config_hash("a"), "af63dc4c8601ec8c");
        assert_ne!(config_hash("lr = 1e-3"), config_hash("lr = 1e-4"));
    }
}
