//! `odeflash device-check`: builds the QEMU firmware example for a model, runs it, runs the same
//! model on the host, and reports how they differ and what the firmware costs (flash, RAM,
//! instructions per step, the real-time rate they imply). See [`odeflash_device`].

use std::io::Write;

use odeflash_runtime::Solver;

use crate::args::DeviceCheckArgs;
use crate::Error;
use odeflash_device::check::{check, CheckOptions, Drive, DEFAULT_SINE_RATE, DEFAULT_SINE_SAMPLES};
use odeflash_reference::files::{claim_file, write_atomic};

impl DeviceCheckArgs {
    /// The check these arguments ask for.
    pub fn options(&self) -> Result<CheckOptions, Error> {
        let drive = match (&self.stimulus, &self.sine) {
            (Some(path), None) => Drive::Table(path.clone()),
            (None, Some(sine)) => Drive::Sine {
                amplitude: sine.amplitude,
                frequency: sine.frequency,
                sample_rate: self.sample_rate.unwrap_or(DEFAULT_SINE_RATE),
            },
            _ => {
                return Err(Error::Usage(
                    "give exactly one of --stimulus CSV and --sine AMPLITUDE,FREQUENCY".into(),
                ))
            }
        };
        Ok(CheckOptions {
            model: self.model.clone(),
            board: self.machine.into(),
            drive,
            samples: self.samples.or(self.sine.map(|_| DEFAULT_SINE_SAMPLES)),
            solver: Solver::from(self.solver_args.solver),
            substeps: self.solver_args.substeps,
            clock_mhz: self.clock_mhz,
            tolerance: self.tolerance,
            firmware_dir: self.firmware_dir.clone(),
            timeout_s: self.timeout.max(1),
            f32_reference: self.f32_reference.clone(),
        })
    }
}

/// Runs the command: the text report to `out`, the JSON to `--json`; fails (after reporting)
/// when a check failed.
pub fn run(args: &DeviceCheckArgs, out: &mut dyn Write) -> Result<(), Error> {
    if let Some(path) = &args.json {
        claim_file(path, args.force)?;
    }
    let report = check(&args.options()?)?;
    out.write_all(report.to_text().as_bytes())
        .map_err(Error::Stdout)?;
    if let Some(path) = &args.json {
        write_atomic(path, report.to_json().as_bytes())?;
    }
    if report.verdict.passed {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "device-check failed: {}",
            report.verdict.failures.join("; ")
        )))
    }
}
