//! One handler per command, `run(&XxxArgs, out)` or so: checks what clap cannot, calls the
//! library crates and writes the report; the arguments themselves are in [`crate::args`].

pub mod device_check;
pub mod eval;
pub mod export;
pub mod import;
pub mod inspect;
pub mod memristor;
pub mod simulate;
pub mod solve;
pub mod train;
pub mod train_memristor;
