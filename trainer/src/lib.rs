//! Trains neural-ODE surrogates and exports them to the odeflash runtime format.
//!
//! The `odeflash` command line (`cli`, `commands`) covers the whole path from data to device:
//! - data: `data synth-memristor` / `synth-oscillator` generate data sets; `memristor::data`
//!   reads rig measurements (`manifest.toml` and CSV files);
//! - training: `train ode|memristor` (`train`, with the differentiable solvers of `solve`,
//!   `implicit` and `stiff`, the whole-record reverse pass of `freerun`, and `optim`),
//!   `stiff-train` and `stiff-experiment` for paper 002's Π-nets (`poly`);
//! - baselines and scoring: `baseline mms|gmms`, `eval` (`memristor`);
//! - the model file: `export`, `inspect`, `import`, `simulate`, all through the runtime crate,
//!   which owns the format; `device-check` runs a model in the QEMU firmware example;
//! - references: `solve` (paper 002's stiff problems in f64).

pub mod backend;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod device;
mod error;
pub mod freerun;
pub mod fsutil;
pub mod implicit;
pub mod leaf;
pub mod loss;
pub mod memristor;
pub mod model;
pub mod nn;
pub mod optim;
pub mod poly;
pub mod rng;
pub mod run;
pub mod solve;
pub mod stiff;
pub mod stimulus;
pub mod surrogate;
pub mod table;
pub mod train;

pub use error::Error;

/// Runs one parsed command line, writing its report to standard output.
pub fn run(cli: cli::Cli) -> Result<(), Error> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        cli::Command::Inspect(args) => commands::inspect::run(&args, &mut out),
        cli::Command::Import(args) => commands::import::run(&args, &mut out),
        cli::Command::Simulate(args) => commands::simulate::run(&args, &mut out),
        cli::Command::Train(cli::TrainCommand::Memristor(args)) => {
            commands::train_memristor::run(&args, &mut out)
        }
        cli::Command::Train(cli::TrainCommand::Ode(args)) => {
            commands::train::run_ode(&args, &mut out)
        }
        cli::Command::Export(args) => commands::export::run(&args, &mut out),
        cli::Command::DeviceCheck(args) => commands::device_check::run(&args, &mut out),
        cli::Command::Solve(args) => commands::solve::run(&args, &mut out),
        cli::Command::StiffTrain(args) => commands::stiff::run_train(&args, &mut out),
        cli::Command::StiffExperiment(args) => commands::stiff::run_experiment(&args, &mut out),
        cli::Command::Data(cli::DataCommand::SynthMemristor(args)) => {
            memristor::cli::run_synth(&args, &mut out)
        }
        cli::Command::Baseline(args) => memristor::cli::run_baseline(&args, &mut out),
        cli::Command::Eval(args) => commands::eval::run(&args, &mut out),
        cli::Command::Data(cli::DataCommand::SynthOscillator(args)) => {
            crate::data::Oscillator::default().write_dataset(
                &args.out,
                args.train,
                args.validation,
                args.samples,
                args.dt,
                args.seed,
            )?;
            use std::io::Write as _;
            writeln!(
                out,
                "wrote {} training and {} validation trajectories to {}",
                args.train,
                args.validation,
                args.out.display()
            )
            .map_err(Error::Stdout)
        }
    }
}
