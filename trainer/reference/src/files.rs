//! Files: atomic writes, what a command may overwrite, model loading, and reading what a user
//! names: regular files only, bounded in size, quoted in errors only as an [`excerpt`].
//!
//! # What a command may overwrite
//!
//! Every command that writes claims its output first, with [`claim_file`] (an output file:
//! `import --out`, `export --out`, `simulate --out FILE`, `solve --out`, `inspect --json --out`,
//! `device-check --json`) or [`claim_dir`] (an output directory: `data synth-*`, `baseline`,
//! `eval`, `simulate` with several stimuli, `stiff-train`, `stiff-experiment`). Without
//! `--force` a claim is refused when:
//!
//! - the output file already exists (whatever wrote it);
//! - the output is inside a training run directory: one holding `checkpoint.json`, `best.json`,
//!   `job.json` or `run.lock`, or `config.toml` next to `metrics.csv` or `metrics.jsonl` (the
//!   run itself, any folder below it);
//! - the output directory exists, is not empty, and is not marked as a previous output of the
//!   same command. A directory the command creates, or finds empty, gets a marker file
//!   [`OUTPUT_MARKER`] naming the command; a re-run of that command (`eval --out report` twice)
//!   replaces its own files there. A marker of another command does not count.
//!
//! `--force` lifts these refusals and nothing else: files the command writes are replaced, no
//! other file is deleted, and a directory that was not the command's is not marked.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use odeflash_runtime::format::MAGIC;
use odeflash_runtime::{AlignedBlob, DecodeError, Model};

use crate::Error;

/// Writes `bytes` to `path` atomically: into a temporary file in the same directory, flushed to
/// disk, then renamed over `path`. If anything fails, `path` keeps its previous content (or stays
/// absent) and the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let err = |e| Error::write(path, e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".odeflash-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    set_permissions(tmp.as_file(), path).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    // Make the rename itself durable. Directories cannot be opened for this on every platform.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Temporary files are created owner-only; give the result the permissions of the file it
/// replaces, or the usual `rw-r--r--` for a new file.
fn set_permissions(file: &File, path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => file.set_permissions(meta.permissions()),
        _ => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o644))
            }
            #[cfg(not(unix))]
            {
                Ok(())
            }
        }
    }
}

/// The marker file [`claim_dir`] leaves in an output directory it created or found empty: its
/// first line is `odeflash COMMAND`.
pub const OUTPUT_MARKER: &str = ".odeflash-output";

/// Files that make a directory a training run directory; `config.toml` counts only next to
/// [`RUN_METRICS`].
/// (`run.lock` is the lock every run takes before it writes anything: `odeflash_training`'s
/// `RunDir::LOCK`.)
const RUN_FILES: [&str; 4] = ["checkpoint.json", "best.json", "job.json", "run.lock"];
/// A run's metrics, which make its `config.toml` a run's.
const RUN_METRICS: [&str; 2] = ["metrics.csv", "metrics.jsonl"];

/// Checks that a command may write the file `path` (see the [module documentation](self)):
/// refuses an existing file, a directory, or a path inside a training run directory, unless
/// `force` (a directory is refused even then). Creates nothing.
pub fn claim_file(path: &Path, force: bool) -> Result<(), Error> {
    let refuse = |why: String| Error::Exists {
        path: path.to_path_buf(),
        why,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(Error::Usage(format!(
                "{}: is a directory; give a file name",
                path.display()
            )))
        }
        Ok(_) if !force => return Err(refuse("exists".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::read(path, e)),
    }
    if !force {
        if let Some(run) = enclosing_run(path.parent().unwrap_or(Path::new(""))) {
            return Err(refuse(format!(
                "inside the training run directory {}",
                run.display()
            )));
        }
    }
    Ok(())
}

/// Claims the output directory `dir` for `command` (`"eval"`, `"data synth-memristor"`; see the
/// [module documentation](self)): creates it if absent, refuses a non-empty directory that is
/// not a previous output of `command`, or one inside a training run directory, unless `force`;
/// marks a directory it created or found empty with [`OUTPUT_MARKER`].
pub fn claim_dir(dir: &Path, command: &str, force: bool) -> Result<(), Error> {
    let refuse = |why: String| Error::Exists {
        path: dir.to_path_buf(),
        why,
    };
    let tag = format!("odeflash {command}");
    let fresh = match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::Usage(format!(
                "{}: exists and is not a directory",
                dir.display()
            )))
        }
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))?;
            entries.next().is_none()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::read(dir, e)),
    };
    if !force {
        if let Some(run) = enclosing_run(dir) {
            let why = if std::path::absolute(dir).is_ok_and(|d| d == run) {
                "is a training run directory".to_string()
            } else {
                format!("inside the training run directory {}", run.display())
            };
            return Err(refuse(why));
        }
        if !fresh {
            let marker = dir.join(OUTPUT_MARKER);
            match std::fs::read_to_string(&marker) {
                Ok(text) if text.lines().next().map(str::trim) == Some(tag.as_str()) => {}
                Ok(text) => {
                    let owner = text.lines().next().unwrap_or("").trim().to_string();
                    return Err(refuse(format!(
                        "holds the output of `{owner}`, not of `{tag}`"
                    )));
                }
                Err(_) => {
                    return Err(refuse(
                        "is not empty and was not written by this command".into(),
                    ))
                }
            }
        }
    }
    if fresh {
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        let text = format!(
            "{tag}\n# odeflash replaces its files here when the same command is run again.\n"
        );
        write_atomic(&dir.join(OUTPUT_MARKER), text.as_bytes())?;
    }
    Ok(())
}

/// The training run directory `dir` is or lies in, if any (checked on the absolute path).
fn enclosing_run(dir: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })
    .ok()?;
    abs.ancestors()
        .find(|d| is_run_dir(d))
        .map(Path::to_path_buf)
}

/// Whether `dir` holds a training run (see [`RUN_FILES`]).
fn is_run_dir(dir: &Path) -> bool {
    RUN_FILES.iter().any(|f| dir.join(f).is_file())
        || (dir.join("config.toml").is_file() && RUN_METRICS.iter().any(|f| dir.join(f).is_file()))
}

/// Reads a model file and checks that it decodes.
///
/// The magic bytes are checked before anything else is read, and a file larger than
/// [`MAX_MODEL_FILE`] is refused, so a wrong file costs neither time nor memory.
pub fn read_model(path: &Path) -> Result<AlignedBlob, Error> {
    use std::io::Read;
    let file = open_regular(path)?;
    let too_big = || {
        Error::Input(format!(
            "{}: larger than any model file ({MAX_MODEL_FILE} bytes at most); is this the right \
             file?",
            path.display()
        ))
    };
    let len = file.metadata().map_err(|e| Error::read(path, e))?.len();
    let mut bytes = Vec::with_capacity(MAGIC.len());
    let mut reader = file.take(MAX_MODEL_FILE + 1);
    (&mut reader)
        .take(MAGIC.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::read(path, e))?;
    if bytes.len() == MAGIC.len() && bytes != MAGIC {
        return Err(Error::InvalidModel {
            path: path.to_path_buf(),
            source: DecodeError::BadMagic,
        });
    }
    if len > MAX_MODEL_FILE {
        return Err(too_big());
    }
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::read(path, e))?;
    if bytes.len() as u64 > MAX_MODEL_FILE {
        return Err(too_big());
    }
    let blob = AlignedBlob::from_bytes(&bytes);
    decode(path, &blob)?;
    Ok(blob)
}

/// Decodes a model file read by [`read_model`].
pub fn decode<'a>(path: &Path, blob: &'a AlignedBlob) -> Result<Model<'a>, Error> {
    blob.model().map_err(|source| Error::InvalidModel {
        path: path.to_path_buf(),
        source,
    })
}

/// How many characters of a user's file an error message quotes; see [`excerpt`].
pub const EXCERPT_CHARS: usize = 60;

/// Text from a user's file as an error quotes it: whole when short, else the first
/// [`EXCERPT_CHARS`] characters and the full length, so a huge line cannot become a huge message.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// What a path is when it is not a regular file, for the refusal message.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Opens a file the user named, for reading. Only regular files (or symlinks to them) are
/// accepted: a FIFO would block forever, `/dev/zero` never ends, a directory is a mistake. The
/// type is checked before opening (opening a FIFO blocks) and again on the open handle.
pub fn open_regular(path: &Path) -> Result<File, Error> {
    let refuse = |meta: &std::fs::Metadata| {
        Error::Input(format!(
            "{}: is {}, not a regular file; give the path of a file",
            path.display(),
            kind_of(meta)
        ))
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
    if !meta.is_file() {
        return Err(refuse(&meta));
    }
    let file = File::open(path).map_err(|e| Error::read(path, e))?;
    let meta = file.metadata().map_err(|e| Error::read(path, e))?;
    if !meta.is_file() {
        return Err(refuse(&meta));
    }
    Ok(file)
}

/// Reads a whole regular file (see [`open_regular`]) of at most `limit` bytes; `what` names the
/// kind of file in the refusal of a larger one.
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let file = open_regular(path)?;
    let too_big = |len: u64| {
        Error::Input(format!(
            "{}: {len} bytes, larger than any {what} ({limit} bytes at most); is this the right file?",
            path.display()
        ))
    };
    let len = file.metadata().map_err(|e| Error::read(path, e))?.len();
    if len > limit {
        return Err(too_big(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::read(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The largest text file (manifest, config, spec, fit report) read whole.
pub const MAX_TEXT_FILE: u64 = 16 << 20;

/// Larger than any model file: the runtime's limits (8 layers of 512 x 512 f32 weights per net,
/// a few nets) stay well under this.
pub const MAX_MODEL_FILE: u64 = 64 << 20;

/// A whole text file of at most [`MAX_TEXT_FILE`] bytes (see [`read_limited`]); `what` names the
/// kind of file in errors.
pub fn read_text(path: &Path, what: &str) -> Result<String, Error> {
    let bytes = read_limited(path, MAX_TEXT_FILE, what)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        Error::Input(format!(
            "{}:{line}: not UTF-8 text; is this the {what}?",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<(), Error>) -> bool {
        matches!(r, Err(Error::Exists { .. }))
    }

    #[test]
    fn a_directory_is_the_commands_own_only_by_its_marker() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        claim_dir(&out, "eval", false).unwrap();
        let marker = std::fs::read_to_string(out.join(OUTPUT_MARKER)).unwrap();
        assert!(marker.starts_with("odeflash eval\n"), "{marker}");
        std::fs::write(out.join("report.md"), "x").unwrap();
        claim_dir(&out, "eval", false).unwrap();
        assert!(refused(claim_dir(&out, "baseline", false)));
        // A foreign directory: refused, and --force writes there without marking it.
        let foreign = root.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "x").unwrap();
        assert!(refused(claim_dir(&foreign, "eval", false)));
        claim_dir(&foreign, "eval", true).unwrap();
        assert!(!foreign.join(OUTPUT_MARKER).exists());
        assert!(foreign.join("notes.txt").exists());
        // A path that is a file is never a directory, --force or not.
        assert!(matches!(
            claim_dir(&foreign.join("notes.txt"), "eval", true),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn files_inside_a_run_directory_or_existing_need_force() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir_all(run.join("snapshots")).unwrap();
        std::fs::write(run.join("config.toml"), "").unwrap();
        // config.toml alone is a user's file, not a run.
        claim_file(&run.join("m.ofm"), false).unwrap();
        std::fs::write(run.join("metrics.csv"), "").unwrap();
        assert!(refused(claim_file(&run.join("m.ofm"), false)));
        assert!(refused(claim_file(&run.join("snapshots/m.ofm"), false)));
        assert!(refused(claim_dir(&run, "eval", false)));
        assert!(refused(claim_dir(&run.join("report"), "eval", false)));
        assert!(!run.join("report").exists());
        claim_file(&run.join("m.ofm"), true).unwrap();
        let existing = root.path().join("a.csv");
        claim_file(&existing, false).unwrap();
        std::fs::write(&existing, "x").unwrap();
        assert!(refused(claim_file(&existing, false)));
        claim_file(&existing, true).unwrap();
        // A run killed in its first epoch holds its lock and config.
        let young = root.path().join("young");
        std::fs::create_dir(&young).unwrap();
        std::fs::write(young.join("run.lock"), "1\n").unwrap();
        assert!(refused(claim_file(&young.join("m.ofm"), false)));
    }
}
