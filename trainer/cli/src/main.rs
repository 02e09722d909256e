//! The `odeflash` command line: parses arguments and reports errors; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use odeflash_cli::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match odeflash_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `odeflash inspect m.ofm | head`: the reader went away, nothing is wrong.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
