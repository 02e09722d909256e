//! Arguments of `odeflash device-check`: the model, the drive (stimulus table or sine), the QEMU
//! machine, the solver and the bounds.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{ArgGroup, Args, ValueEnum};
use odeflash_device::check::DEFAULT_TOLERANCE;
use odeflash_device::qemu::Board;

use super::SolverArgs;

/// QEMU machines the firmware examples run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MachineArg {
    /// Cortex-M4F with FPU (`firmware-examples/qemu-m4f`).
    #[value(name = "mps2-an386")]
    Mps2An386,
    /// Cortex-M0, soft float (`firmware-examples/qemu-m0`).
    Microbit,
}

impl From<MachineArg> for Board {
    fn from(m: MachineArg) -> Self {
        match m {
            MachineArg::Mps2An386 => Board::M4f,
            MachineArg::Microbit => Board::M0,
        }
    }
}

/// `--sine AMPLITUDE,FREQUENCY`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sine {
    /// Volts.
    pub amplitude: f64,
    /// Hertz.
    pub frequency: f64,
}

impl FromStr for Sine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, f) = s.split_once(',').ok_or_else(|| {
            format!("`{s}`: expected AMPLITUDE,FREQUENCY (volts, hertz), e.g. 1,10")
        })?;
        let num = |what: &str, v: &str| -> Result<f64, String> {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("`{s}`: the {what} `{}` is not a finite number", v.trim()))
        };
        let (amplitude, frequency) = (num("amplitude", a)?, num("frequency", f)?);
        if frequency < 0.0 {
            return Err(format!("`{s}`: the frequency must not be negative"));
        }
        Ok(Sine {
            amplitude,
            frequency,
        })
    }
}

/// `odeflash device-check`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("drive").required(true).args(["stimulus", "sine"])))]
pub struct DeviceCheckArgs {
    /// Model file.
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Stimulus CSV (columns `t`, seconds, uniform, and `v_s`, volts), linked into the firmware
    /// as a table.
    #[arg(long, value_name = "CSV")]
    pub stimulus: Option<PathBuf>,
    /// The firmware's own sine drive `AMPLITUDE * sin(2 pi FREQUENCY t)`, volts and hertz.
    #[arg(long, value_name = "AMPLITUDE,FREQUENCY", allow_hyphen_values = true)]
    pub sine: Option<Sine>,
    /// QEMU machine: mps2-an386 (Cortex-M4F) or microbit (Cortex-M0).
    #[arg(long, value_enum, default_value_t = MachineArg::Mps2An386)]
    pub machine: MachineArg,
    /// Samples, the first one before any step [default: 10000 with --sine, the whole table
    /// with --stimulus].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: Option<u32>,
    /// Sample rate of the sine, Hz [default: 1000] (a stimulus table has its own).
    #[arg(long, value_name = "HZ", value_parser = super::checked::<f64>(odeflash_training::config::rules::positive), conflicts_with = "stimulus")]
    pub sample_rate: Option<f64>,
    /// `--solver` and `--substeps`.
    #[command(flatten)]
    pub solver_args: SolverArgs,
    /// Also write the report as JSON to this file (replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
    /// Core clock for the real-time sample rate, MHz [default: 168 for mps2-an386, 16 for
    /// microbit].
    #[arg(long, value_name = "F", value_parser = super::checked::<f64>(odeflash_training::config::rules::positive))]
    pub clock_mhz: Option<f64>,
    /// Largest accepted device-vs-host difference of each signal, as a fraction of its peak.
    #[arg(long, value_name = "REL", default_value_t = DEFAULT_TOLERANCE, value_parser = super::checked::<f64>(odeflash_training::config::rules::positive))]
    pub tolerance: f64,
    /// The `firmware-examples/` folder of an odeflash checkout [default: $ODEFLASH_FIRMWARE_DIR,
    /// else the checkout this binary was built from].
    #[arg(long, value_name = "DIR")]
    pub firmware_dir: Option<PathBuf>,
    /// Seconds before QEMU is stopped.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u32,
    /// int8 models: the f32 model it was quantized from, the reference for the quantization
    /// error on device and host [default: the int8 model's dequantized f32 twin].
    #[arg(long, value_name = "MODEL")]
    pub f32_reference: Option<PathBuf>,
}
