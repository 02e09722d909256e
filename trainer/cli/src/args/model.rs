//! Arguments of the commands on model files: `inspect`, `import`, `simulate`, `export`.

use std::path::PathBuf;

use clap::Args;

use super::{QuantArg, SolverArgs};

/// `odeflash inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model file.
    pub model: PathBuf,
    /// Write the whole model as JSON (weights dequantized, int8 scales kept) instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// With `--json`: write to this file instead of standard output.
    #[arg(long, requires = "json", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
}

/// `odeflash import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Model spec, JSON.
    pub spec: PathBuf,
    /// Model file to write (replaced atomically).
    #[arg(long, value_name = "MODEL")]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
    /// Weight storage [default: int8 if the spec carries int8 scales, else f32].
    #[arg(long, value_enum)]
    pub quant: Option<QuantArg>,
}

/// `odeflash simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Model file.
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Stimulus CSV with a header row naming the columns `t` (seconds, uniform) and `v_s`
    /// (supply voltage, volts); other columns and `#` comment lines are ignored. Repeat the flag
    /// to run several stimuli as one batch.
    #[arg(long, value_name = "CSV", required = true)]
    pub stimulus: Vec<PathBuf>,
    /// Output CSV (`t,v_s,v,i,x0,...`), replaced atomically; with several stimuli (or if it is an
    /// existing directory), a directory that receives one CSV per stimulus under the stimulus's
    /// file name.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
    /// `--solver` and `--substeps`.
    #[command(flatten)]
    pub solver_args: SolverArgs,
    /// Initial state, comma-separated [default: the model's x0].
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_name = "A,B,...",
        value_parser = f32_in_range
    )]
    pub x0: Option<Vec<f32>>,
    /// With several stimuli: let the batch kernel fuse multiply-adds where the CPU has them.
    /// Faster, but results then differ from single runs by rounding (up to ~1e-4 relative over a
    /// few hundred rk5 steps); without it a batch reproduces single runs bit for bit.
    #[arg(long)]
    pub fma: bool,
}

/// `odeflash export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run directory written by `odeflash train`.
    pub run_dir: PathBuf,
    /// Weight storage.
    #[arg(long, value_enum, default_value_t = QuantArg::F32)]
    pub quant: QuantArg,
    /// Model file to write.
    #[arg(long, value_name = "MODEL")]
    pub out: PathBuf,
    /// Overwrite existing outputs odeflash did not write, or inside a training run directory
    /// (never deletes other files; see the README).
    #[arg(long)]
    pub force: bool,
    /// Largest accepted deviation of the exported model from the trained one, as a fraction of
    /// each measured channel's standard deviation (default 1e-3 for f32, 5e-2 for int8).
    #[arg(long, value_parser = super::checked::<f64>(odeflash_training::config::rules::positive))]
    pub tolerance: Option<f64>,
    /// Export the last epoch instead of the best validation epoch.
    #[arg(long)]
    pub last: bool,
}

/// A number for an f32: `1e300` would round to infinity, which is not what was written, so it is
/// refused as out of range. NaN and infinity as written pass, for the model's own check of the
/// initial state.
fn f32_in_range(s: &str) -> Result<f32, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if x.is_finite() && !(x as f32).is_finite() {
        return Err(format!("`{s}` is out of the f32 range (±3.4e38)"));
    }
    Ok(x as f32)
}
