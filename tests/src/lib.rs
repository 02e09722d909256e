//! Workspace-level tests live in `tests/tests/`. The QEMU harness they use for the firmware
//! examples is the trainer's `odeflash_device::qemu` (shared with
//! `odeflash device-check`), re-exported here as [`qemu`].

pub use odeflash_device::qemu;
