//! `odeflash export`: a run directory's model into the runtime's format, checked first.

use std::io::Write;

use odeflash_training::export::{export_run, ExportOptions};

use crate::args::ExportArgs;
use crate::Error;

/// `odeflash export`.
pub fn run(args: &ExportArgs, out: &mut dyn Write) -> Result<(), Error> {
    odeflash_reference::files::claim_file(&args.out, args.force)?;
    let opts = ExportOptions {
        out: args.out.clone(),
        quant: args.quant.into(),
        tolerance: args.tolerance,
        last: args.last,
    };
    export_run(&args.run_dir, &opts, out)
}
