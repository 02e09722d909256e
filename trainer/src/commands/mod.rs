//! The subcommands.

pub mod export;
pub mod import;
pub mod inspect;
pub mod simulate;
pub mod train;
