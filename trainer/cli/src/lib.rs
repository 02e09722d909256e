//! The `odeflash` command line: every path from data to device.
//!
//! - [`args`]: every command's arguments (clap), in one place;
//! - [`commands`]: one thin handler per command, calling the library crates:
//!   `odeflash_reference` (f64 problems, data, compact models), `odeflash_training` (burn),
//!   `odeflash_device` (QEMU);
//! - [`paper000`]: the memristor papers' presets, the compact-model start, `eval`'s tables and
//!   figures; [`paper002`]: the Π-net experiments of the stiff-problems paper.

pub mod args;
pub mod commands;
pub mod paper000;
pub mod paper002;

pub use odeflash_reference::Error;

/// Runs one parsed command line, writing its report to standard output.
pub fn run(cli: args::Cli) -> Result<(), Error> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        args::Command::Inspect(args) => commands::inspect::run(&args, &mut out),
        args::Command::Import(args) => commands::import::run(&args, &mut out),
        args::Command::Simulate(args) => commands::simulate::run(&args, &mut out),
        args::Command::Train(args::TrainCommand::Memristor(args)) => {
            commands::train_memristor::run(&args, &mut out)
        }
        args::Command::Train(args::TrainCommand::Ode(args)) => {
            commands::train::run_ode(&args, &mut out)
        }
        args::Command::Export(args) => commands::export::run(&args, &mut out),
        args::Command::DeviceCheck(args) => commands::device_check::run(&args, &mut out),
        args::Command::Solve(args) => commands::solve::run(&args, &mut out),
        args::Command::StiffTrain(args) => paper002::run_train(&args, &mut out),
        args::Command::StiffExperiment(args) => paper002::run_experiment(&args, &mut out),
        args::Command::Data(args::DataCommand::SynthMemristor(args)) => {
            commands::memristor::run_synth(&args, &mut out)
        }
        args::Command::Data(args::DataCommand::Check(args)) => {
            commands::memristor::run_check(&args, &mut out)
        }
        args::Command::Baseline(args) => commands::memristor::run_baseline(&args, &mut out),
        args::Command::Eval(args) => commands::eval::run(&args, &mut out),
        args::Command::Data(args::DataCommand::SynthOscillator(args)) => {
            odeflash_reference::files::claim_dir(&args.out, "data synth-oscillator", args.force)?;
            odeflash_reference::dataset::Oscillator::default().write_dataset(
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
