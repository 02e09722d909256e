//! Files: atomic writes, model loading, and reading what a user names: regular files only,
//! bounded in size, quoted in errors only as an [`excerpt`].

use std::fs::File;
use std::io::Write;
use std::path::Path;

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
