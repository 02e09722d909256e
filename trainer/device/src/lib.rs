//! The device side: the QEMU firmware examples (`firmware-examples/qemu-m4f`, `qemu-m0`) built,
//! run and measured from the host ([`qemu`]), and the host ↔ device cross-check of
//! `odeflash device-check` ([`check()`], in [`mod@check`]) with its report ([`report`]).
//!
//! Needs `qemu-system-arm`, `defmt-print`, cargo with the Cortex-M targets
//! (`thumbv7em-none-eabihf`, `thumbv6m-none-eabi`) and, for exact instruction counts, a C compiler
//! (`cargo xtask test` installs the rest); [`qemu::require_tools`] says what is missing.

pub mod check;
pub mod qemu;
pub mod report;

pub use check::{check, CheckOptions, Drive};
pub use report::CheckReport;

/// The workspace's error type: a failed command, naming its file.
pub use odeflash_reference::Error;
