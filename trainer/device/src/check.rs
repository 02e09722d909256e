//! The host ↔ device cross-check behind `odeflash device-check`: builds the QEMU firmware example
//! for a model and drive, runs it, runs the same model on the host with the runtime
//! ([`Simulator::run`], portable f32 arithmetic), and measures how they differ and what the
//! firmware costs ([`CheckReport`]).

use std::path::{Path, PathBuf};

use odeflash_runtime::spec::{ModelSpec, Quant};
use odeflash_runtime::{AlignedBlob, Cost, Model, Readout, SimConfig, Simulator, Solver, Weights};

use super::qemu::{
    self, Board, BuildOptions, CountMethod, DeviceSummary, Firmware, ModelSource, RunOptions,
    RunOutput, Sizes,
};
use super::report::{
    compare, Agreement, CheckReport, DeviceInfo, Flash, Instructions, ModelInfo, QuantSignal,
    Quantization, Ram, RealTime, RunInfo, Section, SignalDiff, StimulusInfo, Verdict, SCHEMA,
};
use crate::Error;
use odeflash_reference::files::{decode, read_model};
use odeflash_reference::stimulus::Stimulus;

/// Samples of a sine run unless told otherwise.
pub const DEFAULT_SINE_SAMPLES: u32 = 10_000;
/// Sample rate of a sine run unless told otherwise, Hz.
pub const DEFAULT_SINE_RATE: f64 = 1000.0;
/// Device and host must agree within this fraction of each signal's peak.
pub const DEFAULT_TOLERANCE: f64 = 1e-5;
/// The device's int8-vs-f32 NMSE must equal the host's within this fraction.
pub const QUANT_AGREEMENT: f64 = 1e-3;
/// Below this, two NMSE figures agree whatever their ratio.
const QUANT_AGREEMENT_FLOOR: f64 = 1e-12;

/// The drive.
#[derive(Clone, Debug, PartialEq)]
pub enum Drive {
    /// The on-device sine `amplitude * sin(2 pi frequency t)`.
    Sine {
        /// Volts.
        amplitude: f64,
        /// Hertz.
        frequency: f64,
        /// Hz.
        sample_rate: f64,
    },
    /// A stimulus CSV (columns `t`, `v_s`); its samples become a table in the firmware.
    Table(PathBuf),
}

/// What to check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOptions {
    /// Model file.
    pub model: PathBuf,
    /// QEMU machine.
    pub board: Board,
    /// Drive.
    pub drive: Drive,
    /// Samples (default: [`DEFAULT_SINE_SAMPLES`], or the whole table).
    pub samples: Option<u32>,
    /// Solver.
    pub solver: Solver,
    /// Solver steps per sample.
    pub substeps: u16,
    /// Core clock for the real-time rate, MHz (default: [`default_clock_mhz`]).
    pub clock_mhz: Option<f64>,
    /// Bound on each signal's largest device-vs-host difference, as a fraction of its peak.
    pub tolerance: f64,
    /// `firmware-examples/` (default: [`qemu::firmware_root`]).
    pub firmware_dir: Option<PathBuf>,
    /// Seconds before QEMU is stopped.
    pub timeout_s: u32,
    /// int8 models: the f32 model it was quantized from, the reference of the quantization error
    /// (default: the int8 model's f32 twin, its weights dequantized).
    pub f32_reference: Option<PathBuf>,
}

impl CheckOptions {
    /// Defaults for `model` on `board` driven by `drive`: RK4, one step per sample.
    pub fn new(model: impl Into<PathBuf>, board: Board, drive: Drive) -> Self {
        CheckOptions {
            model: model.into(),
            board,
            drive,
            samples: None,
            solver: Solver::Rk4,
            substeps: 1,
            clock_mhz: None,
            tolerance: DEFAULT_TOLERANCE,
            firmware_dir: None,
            timeout_s: 600,
            f32_reference: None,
        }
    }
}

/// The core clock the real-time rate is stated at unless told otherwise: 168 MHz for the M4F (an
/// STM32F4 at full speed), 16 MHz for the M0 (the micro:bit's nRF51822).
pub fn default_clock_mhz(board: Board) -> f64 {
    match board {
        Board::M4f => 168.0,
        Board::M0 => 16.0,
    }
}

/// v, i and the states (one vector per state) of a trajectory.
struct Signals {
    v: Vec<f32>,
    i: Vec<f32>,
    x: Vec<Vec<f32>>,
}

impl Signals {
    fn named(&self) -> Vec<(String, &[f32])> {
        let mut s: Vec<(String, &[f32])> = vec![("v".into(), &self.v), ("i".into(), &self.i)];
        for (j, x) in self.x.iter().enumerate() {
            s.push((format!("x{j}"), x));
        }
        s
    }
}

fn compare_all(reference: &Signals, other: &Signals) -> Vec<SignalDiff> {
    reference
        .named()
        .into_iter()
        .zip(other.named())
        .map(|((name, r), (_, o))| compare(&name, r, o))
        .collect()
}

/// Runs `model` on the host over `drive` with [`Simulator::run`].
fn host_run(
    path: &Path,
    model: &Model<'_>,
    cfg: SimConfig,
    drive: &[f32],
) -> Result<Signals, Error> {
    let config_err = |source| Error::Config {
        model: path.to_path_buf(),
        source,
    };
    let mut scratch = vec![0.0f32; model.cost(cfg.solver, cfg.substeps).scratch_f32];
    let mut sim = Simulator::new(model, cfg, &mut scratch).map_err(config_err)?;
    let n = model.n_states();
    let len = drive.len();
    let (mut v, mut i, mut x) = (vec![0.0; len], vec![0.0; len], vec![0.0; len * n]);
    sim.run(drive, &mut v, &mut i, &mut x).map_err(config_err)?;
    Ok(Signals {
        v,
        i,
        x: (0..n)
            .map(|j| x.iter().skip(j).step_by(n.max(1)).copied().collect())
            .collect(),
    })
}

fn is_int8(model: &Model<'_>) -> bool {
    let mut layers: Vec<&odeflash_runtime::Layer<'_>> = model.dynamics.layers().collect();
    if let Readout::Net { g, .. } = &model.readout {
        layers.extend(g.layers.iter());
    }
    layers
        .iter()
        .any(|l| matches!(l.weights, Weights::Int8 { .. }))
}

fn device_error(e: qemu::Error) -> Error {
    Error::Input(e.to_string())
}

/// The drive, resolved: what the firmware is built with and what the host replays.
struct Resolved {
    stimulus: qemu::Stimulus,
    info: StimulusInfo,
    sample_rate: f64,
    samples: u32,
    /// The drive per sample, as the device computes it.
    vs: Vec<f32>,
    /// The sine's amplitude and phase step as the device holds them (f32).
    sine: Option<(f32, f32)>,
}

fn resolve_drive(opts: &CheckOptions) -> Result<Resolved, Error> {
    match &opts.drive {
        Drive::Sine {
            amplitude,
            frequency,
            sample_rate,
        } => {
            if !(amplitude.is_finite() && frequency.is_finite() && *frequency >= 0.0) {
                return Err(Error::Usage(format!(
                    "--sine {amplitude},{frequency}: the amplitude must be finite and the \
                     frequency finite and not negative"
                )));
            }
            if !(sample_rate.is_finite() && *sample_rate > 0.0) {
                return Err(Error::Usage(format!(
                    "--sample-rate {sample_rate}: must be positive"
                )));
            }
            let samples = opts.samples.unwrap_or(DEFAULT_SINE_SAMPLES);
            // The firmware's build script rounds these once to f32, as here.
            let (a, step) = (*amplitude as f32, (frequency / sample_rate) as f32);
            Ok(Resolved {
                stimulus: qemu::Stimulus::Sine {
                    amplitude: *amplitude,
                    frequency: *frequency,
                },
                info: StimulusInfo::Sine {
                    amplitude: *amplitude,
                    frequency: *frequency,
                },
                sample_rate: *sample_rate,
                samples,
                vs: qemu::sine_stimulus(a, step, samples as usize),
                sine: Some((a, step)),
            })
        }
        Drive::Table(path) => {
            let stim = Stimulus::read(path)?;
            let samples = match opts.samples {
                None => stim.len() as u32,
                Some(n) if n as usize <= stim.len() => n,
                Some(n) => {
                    return Err(Error::Usage(format!(
                        "--samples {n}: {} holds {} samples",
                        path.display(),
                        stim.len()
                    )))
                }
            };
            let vs = stim.v_s[..samples as usize].to_vec();
            // The firmware gets the samples as a one-column table (`v_s`, every value exact) and
            // the rate separately: its build script's own CSV reader never sees the user's file.
            let table = write_table(&vs)?;
            Ok(Resolved {
                stimulus: qemu::Stimulus::Table(table),
                info: StimulusInfo::Table {
                    path: path.display().to_string(),
                },
                sample_rate: 1.0 / stim.dt,
                samples,
                vs,
                sine: None,
            })
        }
    }
}

/// Writes `vs` as a `v_s` CSV under the temporary folder, named by its content (so repeated
/// checks reuse the firmware build).
fn write_table(vs: &[f32]) -> Result<PathBuf, Error> {
    let mut text = String::from("v_s\n");
    for v in vs {
        // The f32 value as f64: it reads back as f64 exactly, then rounds to the same f32.
        text.push_str(&format!("{}\n", *v as f64));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&text, &mut h);
    let dir = std::env::temp_dir().join("odeflash-device-check");
    std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
    let path = dir.join(format!(
        "stimulus-{:016x}.csv",
        std::hash::Hasher::finish(&h)
    ));
    if !path.exists() {
        odeflash_reference::files::write_atomic(&path, text.as_bytes())?;
    }
    Ok(path)
}

/// Builds, runs and compares; the report says whether the checks passed (an `Err` is a check
/// that could not be made: a bad input, a missing tool, a firmware that did not build or run).
pub fn check(opts: &CheckOptions) -> Result<CheckReport, Error> {
    let blob = read_model(&opts.model)?;
    let model = decode(&opts.model, &blob)?;
    let int8 = is_int8(&model);
    fits_model_region(opts, blob.len())?;
    let cost = model.cost(opts.solver, opts.substeps);
    let reference_blob = f32_reference(opts, &model, int8)?;
    let drive = resolve_drive(opts)?;
    if drive.samples == 0 {
        return Err(Error::Usage("--samples must be at least 1".into()));
    }
    // The firmware's build script computes its interval exactly so.
    let dt = (1.0 / drive.sample_rate) as f32;
    let cfg = SimConfig {
        dt,
        solver: opts.solver,
        substeps: opts.substeps,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };

    // The host first: it refuses what the device would (an iterator net at another interval, a
    // state that leaves the finite range) without a firmware build.
    let host = host_run(&opts.model, &model, cfg, &drive.vs)?;
    let (fw, out) = build_and_run(opts, &drive)?;
    check_run(opts, &drive, dt, &model, &out)?;
    let dev = device_signals(&out, model.n_states());

    // Device against host, then the int8 model's quantization error on both.
    let mut failures = Vec::new();
    let device_vs_host = device_vs_host(opts, int8, &host, &dev, drive.samples, &mut failures);
    let quantization = match &reference_blob {
        Some(blob) => Some(quantization(
            opts,
            blob,
            cfg,
            &drive.vs,
            (&host, &dev),
            &mut failures,
        )?),
        None => None,
    };

    // Flash and RAM.
    let sizes = fw.sizes().map_err(device_error)?;
    let summary = out.summary.ok_or_else(|| {
        Error::Input(format!(
            "the firmware did not report its stack use (its last lines: {:?})",
            last_lines(&out)
        ))
    })?;
    let flash = flash(&sizes, &drive);
    let ram = ram(&sizes, &summary, &cost);

    let instructions = instructions(&out, &cost);
    let real_time = real_time(opts, instructions.as_ref());
    if drive.samples > 1 && instructions.is_none() {
        failures.push("the instructions per step could not be counted".into());
    }

    Ok(CheckReport {
        schema: SCHEMA.into(),
        model: model_info(opts, &model, int8, blob.len(), &cost),
        device: device_info(opts.board, &fw),
        run: run_info(opts, &drive, dt, summary.steps),
        device_vs_host,
        flash,
        ram,
        instructions,
        real_time,
        quantization,
        verdict: Verdict {
            passed: failures.is_empty(),
            failures,
        },
    })
}

/// Refuses a model file larger than the firmware's model region.
fn fits_model_region(opts: &CheckOptions, bytes: usize) -> Result<(), Error> {
    let board = opts.board;
    if bytes as u64 > board.model_region_len() as u64 {
        return Err(Error::Usage(format!(
            "{} is {} bytes; the {} firmware's model region holds {}",
            opts.model.display(),
            bytes,
            board.machine(),
            board.model_region_len()
        )));
    }
    Ok(())
}

/// The f32 model an int8 model's quantization error is measured against: `--f32-reference`
/// (checked to be an f32 model of the same kind and states), else the int8 model's f32 twin;
/// `None` for an f32 model.
fn f32_reference(
    opts: &CheckOptions,
    model: &Model<'_>,
    int8: bool,
) -> Result<Option<AlignedBlob>, Error> {
    Ok(match &opts.f32_reference {
        Some(_) if !int8 => {
            return Err(Error::Usage(format!(
                "--f32-reference: {} is not an int8 model",
                opts.model.display()
            )))
        }
        Some(path) => {
            let blob = read_model(path)?;
            let m = decode(path, &blob)?;
            let fits = !is_int8(&m) && m.n_states() == model.n_states() && m.kind() == model.kind();
            drop(m);
            if !fits {
                return Err(Error::Usage(format!(
                    "--f32-reference: {} is not an f32 {} with {} state(s) like {}",
                    path.display(),
                    model.kind().as_str(),
                    model.n_states(),
                    opts.model.display()
                )));
            }
            Some(blob)
        }
        None if int8 => Some(ModelSpec::from_model(model).encode(Quant::F32)),
        None => None,
    })
}

/// Builds the firmware for the model and drive and runs it in QEMU.
fn build_and_run(opts: &CheckOptions, drive: &Resolved) -> Result<(Firmware, RunOutput), Error> {
    qemu::require_tools(opts.board).map_err(device_error)?;
    let mut build = BuildOptions::new(opts.board, ModelSource::File(opts.model.clone()))
        .samples(drive.samples)
        .sample_rate(drive.sample_rate)
        .stimulus(drive.stimulus.clone())
        .solver(opts.solver.cli_name(), opts.substeps);
    if let Some(dir) = &opts.firmware_dir {
        build = build.firmware_dir(dir);
    }
    let fw = build.build().map_err(device_error)?;
    let out = fw
        .run(&RunOptions {
            timeout_s: opts.timeout_s,
            ..RunOptions::default()
        })
        .map_err(device_error)?;
    Ok((fw, out))
}

/// Device against host: each signal's difference against `--tolerance` (a failure per signal
/// beyond it) and the samples where they are the same bit for bit.
fn device_vs_host(
    opts: &CheckOptions,
    int8: bool,
    host: &Signals,
    dev: &Signals,
    samples: u32,
    failures: &mut Vec<String>,
) -> Agreement {
    let signals = compare_all(host, dev);
    let mut max_rel = Some(0.0f64);
    for s in &signals {
        max_rel = match (max_rel, s.max_rel_diff) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        match s.max_rel_diff {
            Some(r) if r <= opts.tolerance => {}
            Some(r) => failures.push(format!(
                "{} differs from the host by {r:.3e} of its peak (bound {:e})",
                s.name, opts.tolerance
            )),
            None => failures.push(format!(
                "{} differs from the host, whose {} is zero or not finite",
                s.name, s.name
            )),
        }
    }
    let bit_identical = (0..samples as usize)
        .filter(|&k| {
            host.named()
                .iter()
                .zip(dev.named())
                .all(|((_, h), (_, d))| h[k].to_bits() == d[k].to_bits())
        })
        .count();
    Agreement {
        host: "odeflash_runtime::Simulator::run, portable f32 without fused multiply-add".into(),
        note: match opts.board {
            Board::M4f if !int8 => {
                "the M4F's f32 dense layers run the VFMA kernel, whose fused multiply-add \
                 rounds once where the host rounds twice: outputs may differ by an ulp or so \
                 per layer; everything else is the same f32 arithmetic in the same order"
            }
            _ => {
                "the same f32 arithmetic in the same order on both (no fused multiply-add \
                 here): bit-exact results are expected"
            }
        }
        .into(),
        tolerance_rel: opts.tolerance,
        max_rel_diff: max_rel,
        within_tolerance: signals
            .iter()
            .all(|s| s.max_rel_diff.is_some_and(|r| r <= opts.tolerance)),
        bit_identical_samples: bit_identical,
        signals,
    }
}

/// The int8 model's quantization error, on the device and on the host (`runs`: host, device),
/// against the host's run of the f32 reference `blob`; a failure per signal where they disagree.
fn quantization(
    opts: &CheckOptions,
    blob: &AlignedBlob,
    cfg: SimConfig,
    drive: &[f32],
    runs: (&Signals, &Signals),
    failures: &mut Vec<String>,
) -> Result<Quantization, Error> {
    let (host, dev) = runs;
    let path = opts.f32_reference.as_ref().unwrap_or(&opts.model);
    let reference_model = decode(path, blob)?;
    let reference = host_run(path, &reference_model, cfg, drive)?;
    let on_device = compare_all(&reference, dev);
    let on_host = compare_all(&reference, host);
    let signals: Vec<QuantSignal> = on_device
        .iter()
        .zip(&on_host)
        .map(|(d, h)| {
            let agree = match (d.nmse, h.nmse) {
                (Some(a), Some(b)) => {
                    (a - b).abs() <= (QUANT_AGREEMENT * b).max(QUANT_AGREEMENT_FLOOR)
                }
                _ => false,
            };
            QuantSignal {
                name: d.name.clone(),
                device_nmse: d.nmse,
                host_nmse: h.nmse,
                agree,
            }
        })
        .collect();
    for s in signals.iter().filter(|s| !s.agree) {
        failures.push(format!(
            "{}: the device's int8-vs-f32 NMSE {:?} disagrees with the host's {:?}",
            s.name, s.device_nmse, s.host_nmse
        ));
    }
    Ok(Quantization {
        reference: match &opts.f32_reference {
            Some(p) => format!("{} on the host", p.display()),
            None => "the model's f32 twin on the host (int8 weights dequantized: the int8 \
                     kernels' arithmetic, not the quantization error; give --f32-reference \
                     for that)"
                .into(),
        },
        tolerance_rel: QUANT_AGREEMENT,
        agree: signals.iter().all(|s| s.agree),
        signals,
    })
}

/// The firmware's flash, the stimulus table apart from the code.
fn flash(sizes: &Sizes, drive: &Resolved) -> Flash {
    // A stimulus table is linked into `.rodata`: the application's data, not its code.
    let table_bytes = match drive.stimulus {
        qemu::Stimulus::Table(_) => 4 * drive.samples as u64,
        qemu::Stimulus::Sine { .. } => 0,
    }
    .min(sizes.flash);
    Flash {
        code_bytes: sizes.flash - table_bytes,
        model_bytes: sizes.model,
        stimulus_table_bytes: table_bytes,
        total_bytes: sizes.flash + sizes.model,
        sections: sizes
            .sections
            .iter()
            .map(|(name, bytes)| Section {
                name: name.clone(),
                bytes: *bytes,
            })
            .collect(),
    }
}

/// The firmware's RAM: static, and the stack high-water marks it reported.
fn ram(sizes: &Sizes, summary: &DeviceSummary, cost: &Cost) -> Ram {
    Ram {
        static_bytes: sizes.static_ram,
        scratch_bytes: cost.scratch_bytes as u64,
        stack_decode_bytes: summary.decode_stack as u64,
        stack_step_bytes: summary.stack as u64,
        total_bytes: sizes.static_ram + summary.decode_stack.max(summary.stack) as u64,
    }
}

/// Instructions per step, if the run counted any.
fn instructions(out: &RunOutput, cost: &Cost) -> Option<Instructions> {
    let macs = cost.macs_per_step.max(1) as f64;
    out.insns.as_ref().filter(|c| c.windows > 0).map(|c| {
        let mean = c.total as f64 / c.windows as f64;
        let exact = c.method == CountMethod::Plugin;
        Instructions {
            method: if exact { "plugin" } else { "icount-systick" }.into(),
            steps: c.windows,
            total: c.total,
            per_step_mean: mean,
            per_step_min: exact.then_some(c.min),
            per_step_max: exact.then_some(c.max),
            per_mac: mean / macs,
            dense_kernel_per_mac: (exact && c.in_functions > 0)
                .then(|| c.in_functions as f64 / c.windows as f64 / macs),
        }
    })
}

/// The real-time rate the instruction counts imply at the core clock.
fn real_time(opts: &CheckOptions, instructions: Option<&Instructions>) -> Option<RealTime> {
    let clock_mhz = opts
        .clock_mhz
        .unwrap_or_else(|| default_clock_mhz(opts.board));
    instructions.map(|c| {
        let worst = c.per_step_max.map(|m| m as f64).unwrap_or(c.per_step_mean);
        RealTime {
            clock_mhz,
            max_sample_rate_hz: clock_mhz * 1e6 / worst.max(1.0),
            mean_sample_rate_hz: clock_mhz * 1e6 / c.per_step_mean.max(1.0),
            upper_bound: true,
            note: "an upper bound: it assumes one cycle per instruction (CPI 1), while loads, \
                   branches, multiplies, FPU or soft-float operations and flash wait states take \
                   more, and the drive, I/O and logging around each step are not counted"
                .into(),
        }
    })
}

/// The model checked.
fn model_info(
    opts: &CheckOptions,
    model: &Model<'_>,
    int8: bool,
    bytes: usize,
    cost: &Cost,
) -> ModelInfo {
    ModelInfo {
        path: opts.model.display().to_string(),
        name: model.name.into(),
        kind: model.kind().as_str().into(),
        quant: if int8 { "int8" } else { "f32" }.into(),
        states: model.n_states(),
        bytes: bytes as u64,
        macs_per_step: cost.macs_per_step,
    }
}

/// What was run: the drive, the samples and steps, the solver.
fn run_info(opts: &CheckOptions, drive: &Resolved, dt: f32, steps: u32) -> RunInfo {
    RunInfo {
        stimulus: drive.info.clone(),
        samples: drive.samples as usize,
        steps,
        sample_rate_hz: drive.sample_rate,
        dt,
        solver: opts.solver.cli_name().into(),
        substeps: opts.substeps,
    }
}

/// The emulated device and the firmware that ran.
fn device_info(board: Board, fw: &Firmware) -> DeviceInfo {
    DeviceInfo {
        machine: board.machine().into(),
        core: board.core().into(),
        target: board.target().into(),
        firmware: fw
            .elf("stream")
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        qemu: qemu::qemu_version().unwrap_or_default(),
    }
}

fn last_lines(out: &RunOutput) -> Vec<&str> {
    let n = out.log.len();
    out.log[n.saturating_sub(5)..]
        .iter()
        .map(String::as_str)
        .collect()
}

/// Checks that the firmware ran to the end with the configuration asked for.
fn check_run(
    opts: &CheckOptions,
    drive: &Resolved,
    dt: f32,
    model: &Model<'_>,
    out: &RunOutput,
) -> Result<(), Error> {
    let machine = opts.board.machine();
    if out.exit_code == 124 || out.exit_code == 137 {
        return Err(Error::Input(format!(
            "QEMU ({machine}) did not finish in {} s (raise --timeout); {} of {} samples came out",
            opts.timeout_s,
            out.samples.len(),
            drive.samples
        )));
    }
    let errors: Vec<&str> = out.errors().collect();
    if out.exit_code != 0 {
        return Err(Error::Input(format!(
            "the firmware on {machine} failed (exit status {}): {}{}",
            out.exit_code,
            if errors.is_empty() {
                format!("no error logged; its last lines: {:?}", last_lines(out))
            } else {
                errors.join("; ")
            },
            if out.qemu_stderr.trim().is_empty() {
                String::new()
            } else {
                format!("\nQEMU: {}", out.qemu_stderr.trim())
            }
        )));
    }
    let cfg = out.config.ok_or_else(|| {
        Error::Input(format!(
            "the firmware on {machine} did not report its configuration (its last lines: {:?})",
            last_lines(out)
        ))
    })?;
    // A firmware built for another configuration (another build in the same target folder in
    // between) shows here.
    let sine_ok = drive.sine.is_none_or(|(a, step)| {
        cfg.amplitude.to_bits() == a.to_bits() && cfg.phase_step.to_bits() == step.to_bits()
    });
    let model_line = format!("model {} (", model.name);
    let model_len = format!(", {} bytes at ", model.blob_len);
    let model_ok = out
        .log
        .iter()
        .any(|l| l.contains(&model_line) && l.contains(&model_len));
    if cfg.dt.to_bits() != dt.to_bits() || cfg.samples != drive.samples || !sine_ok || !model_ok {
        return Err(Error::Input(format!(
            "the firmware that ran was built for another configuration ({cfg:?}; expected the \
             model `{}` of {} bytes, dt {dt}, {} samples): was the firmware target folder \
             rebuilt meanwhile?",
            model.name, model.blob_len, drive.samples
        )));
    }
    if out.samples.len() != drive.samples as usize {
        return Err(Error::Input(format!(
            "the firmware on {machine} streamed {} of {} samples",
            out.samples.len(),
            drive.samples
        )));
    }
    if let Some(s) = out.samples.iter().find(|s| s.x.len() != model.n_states()) {
        return Err(Error::Input(format!(
            "the firmware streamed {} states at sample {}; the model has {}",
            s.x.len(),
            s.k,
            model.n_states()
        )));
    }
    if let Some(k) = out
        .samples
        .iter()
        .zip(&drive.vs)
        .position(|(s, v)| s.vs.to_bits() != v.to_bits())
    {
        return Err(Error::Input(format!(
            "the device's drive differs from the host's at sample {k}: {} V on the device, {} V \
             on the host",
            out.samples[k].vs, drive.vs[k]
        )));
    }
    Ok(())
}

fn device_signals(out: &RunOutput, n_states: usize) -> Signals {
    Signals {
        v: out.samples.iter().map(|s| s.v).collect(),
        i: out.samples.iter().map(|s| s.i).collect(),
        x: (0..n_states)
            .map(|j| out.samples.iter().map(|s| s.x[j]).collect())
            .collect(),
    }
}
