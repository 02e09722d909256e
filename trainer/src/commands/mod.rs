//! The subcommands.

pub mod import;
pub mod inspect;
pub mod simulate;
