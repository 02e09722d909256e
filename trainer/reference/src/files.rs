//! Files: atomic writes and model loading.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use odeflash_runtime::{AlignedBlob, Model};

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
pub fn read_model(path: &Path) -> Result<AlignedBlob, Error> {
    let blob = AlignedBlob::read(path).map_err(|e| Error::read(path, e))?;
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
