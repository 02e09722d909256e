//! What the CLI tests that build their own `Command`s share.

use std::process::{Command, Output};

/// The `odeflash` binary under test.
pub fn odeflash() -> Command {
    Command::new(env!("CARGO_BIN_EXE_odeflash"))
}

/// Standard output and error of a run that must succeed.
pub fn ok(out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "odeflash failed:\n{text}");
    text
}
