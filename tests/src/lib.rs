//! Workspace-level tests live in `tests/tests/`; [`qemu`] is the host side of the QEMU firmware
//! examples (build, run, decode, count), used by `tests/tests/device.rs`.

pub mod qemu;
