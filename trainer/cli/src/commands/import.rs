//! `odeflash import`: encodes a model spec (JSON) into a model file.

use std::io::Write;

use odeflash_runtime::spec::{ModelSpec, Quant};
use odeflash_runtime::FORMAT_VERSION;

use crate::args::ImportArgs;
use crate::Error;
use odeflash_reference::files::{claim_file, write_atomic};

/// Runs the command.
pub fn run(args: &ImportArgs, out: &mut dyn Write) -> Result<(), Error> {
    claim_file(&args.out, args.force)?;
    let text = odeflash_reference::files::read_limited(
        &args.spec,
        odeflash_reference::files::MAX_TEXT_FILE,
        "model spec",
    )?;
    let spec: ModelSpec = serde_json::from_slice(&text).map_err(|source| Error::SpecJson {
        path: args.spec.clone(),
        source,
    })?;
    let quant = match args.quant {
        Some(q) => q.into(),
        None if spec.is_int8() => Quant::Int8,
        None => Quant::F32,
    };
    let blob = spec
        .try_encode(quant)
        .map_err(|source| Error::InvalidSpec {
            path: args.spec.clone(),
            source,
        })?;
    write_atomic(&args.out, blob.as_bytes())?;
    let note = if spec.format_version == FORMAT_VERSION {
        String::new()
    } else {
        format!(
            " (the spec names format version {}; written as version {FORMAT_VERSION})",
            spec.format_version
        )
    };
    let quant = match quant {
        Quant::F32 => "f32",
        Quant::Int8 => "int8",
    };
    writeln!(
        out,
        "wrote {}: `{}`, {} weights, {} bytes{note}",
        args.out.display(),
        spec.name,
        quant,
        blob.len()
    )
    .map_err(Error::Stdout)
}
