//! The subcommands.

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
