//! Host ↔ device cross-check under QEMU: the firmware examples run a model on an emulated
//! Cortex-M4F (mps2-an386) and Cortex-M0 (micro:bit), and what they stream must equal what the
//! runtime computes on the host.
//!
//! Needs `qemu-system-arm`, `defmt-print` and the two Cortex-M targets (`cargo xtask test`
//! installs them). Without them these tests fail and say what to install, unless
//! `ODEFLASH_SKIP_QEMU=1` is set, which skips them. `--nocapture` shows the measured figures.
//!
//! Why device and host agree (the bound is 1e-5 of each signal's peak; most samples are equal
//! bit for bit):
//! - Both evaluate the same Rust code in IEEE-754 f32 with round-to-nearest and denormals (the
//!   M4F's FPSCR resets to neither flush-to-zero nor default-NaN; the M0 uses compiler-builtins'
//!   correctly rounded soft float), and rustc never contracts `a * b + c` into a fused
//!   multiply-add on either side. `libm` is the same source on both.
//! - The one deliberate difference: on the M4F the dense layers run the runtime's VFMA kernel,
//!   whose fused multiply-add rounds `acc + w * x` once instead of twice, so each dense output may
//!   differ by an ulp or so; through RK4 and the state clamp those differences stay far below the
//!   bound (printed below as the count of bit-identical samples). The M0 has no FMA: bit-exact.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use odeflash_device::qemu::{
    self, Board, BuildOptions, CountMethod, Firmware, ModelSource, RunOptions, RunOutput,
};
use odeflash_device::report;
use odeflash_runtime::spec::{examples, ModelSpec, Quant};
use odeflash_runtime::{AlignedBlob, SimConfig, Simulator, Solver};

/// Samples of the cross-check trajectories (10,000, the first before any step).
const SAMPLES: u32 = 10_000;
/// Device and host agree within this fraction of each signal's peak.
const REL_BOUND: f64 = 1e-5;

/// Runs the test only when the QEMU tools are there; otherwise fails, or skips when
/// `ODEFLASH_SKIP_QEMU=1`.
fn tools(board: Board) -> bool {
    if qemu::skip_requested() {
        eprintln!("skipped: ODEFLASH_SKIP_QEMU=1");
        return false;
    }
    if let Err(e) = qemu::require_tools(board) {
        panic!("{e}\n(set ODEFLASH_SKIP_QEMU=1 to skip the QEMU tests)");
    }
    true
}

/// The 2→16→32→16→1 SingleNN-MemODE of the figures.
fn spec() -> ModelSpec {
    examples::single_nn_memode(&[16, 32, 16], 1)
}

/// Model files, written once per test process.
fn model_file(quant: Quant) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"));
    let name = match quant {
        Quant::F32 => "f32.ofm",
        Quant::Int8 => "int8.ofm",
    };
    let path = dir.path().join(name);
    if !path.exists() {
        let tmp = dir
            .path()
            .join(format!("{name}.{:?}", std::thread::current().id()));
        std::fs::write(&tmp, spec().encode_bytes(quant)).expect("writing model");
        std::fs::rename(&tmp, &path).expect("renaming model");
    }
    path
}

fn build(opts: BuildOptions) -> Firmware {
    opts.build().unwrap_or_else(|e| panic!("{e}"))
}

/// The M4F firmware with the f32 model linked in.
fn m4f_f32() -> &'static Firmware {
    static FW: OnceLock<Firmware> = OnceLock::new();
    FW.get_or_init(|| {
        build(
            BuildOptions::new(Board::M4f, ModelSource::File(model_file(Quant::F32)))
                .samples(SAMPLES),
        )
    })
}

/// The M4F firmware with an empty model region (a model is loaded there at run time).
fn m4f_empty() -> &'static Firmware {
    static FW: OnceLock<Firmware> = OnceLock::new();
    FW.get_or_init(|| build(BuildOptions::new(Board::M4f, ModelSource::None).samples(SAMPLES)))
}

fn run(fw: &Firmware, opts: &RunOptions) -> RunOutput {
    fw.run(opts).unwrap_or_else(|e| panic!("{e}"))
}

fn run_ok(fw: &Firmware, opts: &RunOptions) -> RunOutput {
    let out = run(fw, opts);
    let errors: Vec<&str> = out.errors().collect();
    assert_eq!(
        out.exit_code, 0,
        "firmware failed: {errors:?}\nQEMU: {}",
        out.qemu_stderr
    );
    assert_eq!(out.samples.len(), SAMPLES as usize, "samples streamed");
    out
}

/// v, i and the states of a trajectory.
struct Trajectory {
    v: Vec<f32>,
    i: Vec<f32>,
    x: Vec<Vec<f32>>,
}

fn device_trajectory(out: &RunOutput) -> Trajectory {
    let n = out.samples[0].x.len();
    Trajectory {
        v: out.samples.iter().map(|s| s.v).collect(),
        i: out.samples.iter().map(|s| s.i).collect(),
        x: (0..n)
            .map(|j| out.samples.iter().map(|s| s.x[j]).collect())
            .collect(),
    }
}

/// The host run of `model` on the drive the device reports, checked to be the on-device sine.
fn host_trajectory(model: &Path, out: &RunOutput) -> Trajectory {
    let cfg = out.config.expect("the firmware reports its configuration");
    let vs = out.vs();
    let replay = qemu::sine_stimulus(cfg.amplitude, cfg.phase_step, vs.len());
    assert!(
        replay
            .iter()
            .zip(&vs)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the on-device sine differs from its host replay"
    );
    let blob = AlignedBlob::read(model).expect("model file");
    let model = blob.model().expect("model decodes");
    let config = SimConfig {
        dt: cfg.dt,
        solver: Solver::Rk4,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let mut scratch = vec![0.0; model.cost(Solver::Rk4, 1).scratch_f32];
    let mut sim = Simulator::new(&model, config, &mut scratch).expect("simulator");
    let n = model.n_states();
    let (mut v, mut i, mut x) = (
        vec![0.0; vs.len()],
        vec![0.0; vs.len()],
        vec![0.0; vs.len() * n],
    );
    sim.run(&replay, &mut v, &mut i, &mut x).expect("host run");
    Trajectory {
        v,
        i,
        x: (0..n)
            .map(|j| x.iter().skip(j).step_by(n).copied().collect())
            .collect(),
    }
}

/// Largest difference relative to the reference's peak, and normalized mean squared error
/// (`odeflash device-check`'s measures; infinite where undefined).
fn compare(reference: &[f32], other: &[f32]) -> (f64, f64) {
    let d = report::compare("", reference, other);
    (
        d.max_rel_diff.unwrap_or(f64::INFINITY),
        d.nmse.unwrap_or(f64::INFINITY),
    )
}

/// Asserts the device trajectory is within the bound of the host one; returns the bit-identical
/// sample count of the current.
fn assert_agree(what: &str, host: &Trajectory, dev: &Trajectory) -> usize {
    let mut signals = vec![("v", &host.v, &dev.v), ("i", &host.i, &dev.i)];
    for (j, (h, d)) in host.x.iter().zip(&dev.x).enumerate() {
        signals.push((
            ["x0", "x1", "x2", "x3"].get(j).copied().unwrap_or("x"),
            h,
            d,
        ));
    }
    for (name, h, d) in signals {
        let (rel, nmse) = compare(h, d);
        eprintln!("{what}: {name}: max |device - host| = {rel:.2e} of peak, NMSE {nmse:.2e}");
        assert!(
            rel <= REL_BOUND,
            "{what}: {name} differs by {rel:e} of its peak"
        );
    }
    let exact = host
        .i
        .iter()
        .zip(&dev.i)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count();
    eprintln!("{what}: {exact} of {} samples bit-identical", host.i.len());
    exact
}

fn report_figures(board: Board, fw: &Firmware, out: &RunOutput) {
    let sizes = fw.sizes().expect("sizes");
    let s = out.summary.expect("the firmware reports a summary");
    let macs = spec().dynamics_macs() as f64 * 4.0; // RK4: four evaluations, no MACs in the linear readout
    eprintln!(
        "{board:?}: flash {} B (model excluded, {} B model), static RAM {} B, stack high-water {} B \
         while stepping ({} B total), {} B while decoding ({} B total)",
        sizes.flash,
        sizes.model,
        sizes.static_ram,
        s.stack,
        sizes.static_ram + s.stack as u64,
        s.decode_stack,
        sizes.static_ram + s.decode_stack as u64
    );
    if let (Some(per_step), Some(c)) = (out.insns_per_step(), &out.insns) {
        eprintln!(
            "{board:?}: {per_step:.0} instructions per RK4 step ({:?}, min {} max {}), {:.2} per MAC \
             overall",
            c.method,
            c.min,
            c.max,
            per_step / macs,
        );
        if c.in_functions > 0 {
            eprintln!(
                "{board:?}: dense-layer kernel {:.3} instructions per MAC",
                c.in_functions as f64 / c.windows.max(1) as f64 / macs
            );
        }
    }
}

#[test]
fn f32_model_on_m4f_matches_host() {
    if !tools(Board::M4f) {
        return;
    }
    let fw = m4f_f32();
    let out = run_ok(fw, &RunOptions::default());
    let host = host_trajectory(&model_file(Quant::F32), &out);
    assert_agree("M4F f32", &host, &device_trajectory(&out));
    report_figures(Board::M4f, fw, &out);
}

#[test]
fn instruction_count_is_deterministic() {
    if !tools(Board::M4f) {
        return;
    }
    let fw = m4f_f32();
    let a = run_ok(fw, &RunOptions::default());
    let b = run_ok(fw, &RunOptions::default());
    let (ca, cb) = (a.insns.expect("counted"), b.insns.expect("counted"));
    eprintln!(
        "two runs: {} and {} instructions in {} steps ({:?})",
        ca.total, cb.total, ca.windows, ca.method
    );
    assert_eq!(ca.windows, SAMPLES as u64 - 1);
    assert_eq!(ca.total, cb.total, "instruction counts differ between runs");
    assert_eq!(ca.each, cb.each, "per-step counts differ between runs");
    if ca.method == CountMethod::Plugin {
        assert!(ca.min > 0 && ca.min <= ca.max);
    }
}

#[test]
fn int8_model_on_m4f_matches_host() {
    if !tools(Board::M4f) {
        return;
    }
    // The int8 model goes into the empty firmware's model region at run time: a new model
    // without rebuilding the firmware.
    let int8 = model_file(Quant::Int8);
    let out = run_ok(
        m4f_empty(),
        &RunOptions {
            load_model: Some(int8.clone()),
            ..RunOptions::default()
        },
    );
    let host_int8 = host_trajectory(&int8, &out);
    let dev = device_trajectory(&out);
    assert_agree("M4F int8", &host_int8, &dev);
    // Quantization error: the device's int8 against the host's f32 must be what the host's int8
    // shows against its f32.
    let host_f32 = host_trajectory(&model_file(Quant::F32), &out);
    let (_, nmse_dev) = compare(&host_f32.i, &dev.i);
    let (_, nmse_host) = compare(&host_f32.i, &host_int8.i);
    eprintln!("int8 current NMSE against host f32: device {nmse_dev:.4e}, host {nmse_host:.4e}");
    assert!(
        (nmse_dev - nmse_host).abs() <= 1e-3 * nmse_host.max(1e-12),
        "device int8 NMSE {nmse_dev:e} disagrees with host int8 NMSE {nmse_host:e}"
    );
}

#[test]
fn f32_model_on_m0_matches_host() {
    if !tools(Board::M0) {
        return;
    }
    let model = model_file(Quant::F32);
    let fw = build(BuildOptions::new(Board::M0, ModelSource::File(model.clone())).samples(SAMPLES));
    let out = run_ok(&fw, &RunOptions::default());
    let host = host_trajectory(&model, &out);
    assert_agree("M0 f32", &host, &device_trajectory(&out));
    report_figures(Board::M0, &fw, &out);
}

#[test]
fn corrupted_model_region_is_refused() {
    if !tools(Board::M4f) {
        return;
    }
    let mut bytes = std::fs::read(model_file(Quant::F32)).expect("model");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40; // a weight bit: only the checksum can tell
    let dir = tempfile::tempdir().expect("temporary directory");
    let bad = dir.path().join("corrupted.ofm");
    std::fs::write(&bad, &bytes).expect("writing");
    let out = run(
        m4f_empty(),
        &RunOptions {
            load_model: Some(bad),
            ..RunOptions::default()
        },
    );
    let errors: Vec<&str> = out.errors().collect();
    eprintln!("corrupted model: exit {} {errors:?}", out.exit_code);
    assert_ne!(out.exit_code, 0, "a corrupted model must fail the boot");
    assert!(
        errors.iter().any(|l| l.contains("ChecksumMismatch")),
        "the log names the checksum error: {:?}",
        out.log
    );
    assert!(out.samples.is_empty(), "a refused model must not run");
    assert!(
        out.insns.is_none_or(|c| c.windows == 0),
        "no step was taken"
    );
}

#[test]
fn empty_model_region_is_refused() {
    if !tools(Board::M4f) {
        return;
    }
    let out = run(m4f_empty(), &RunOptions::default());
    assert_ne!(out.exit_code, 0);
    assert!(
        out.errors().any(|l| l.contains("BadMagic")),
        "the log names the missing model: {:?}",
        out.log
    );
    assert!(out.samples.is_empty());
}

#[test]
fn dense_kernel_on_m4f_matches_reference() {
    if !tools(Board::M4f) {
        return;
    }
    let out = m4f_f32()
        .run_bin("kernel", &RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let failed: Vec<&String> = out.log.iter().filter(|l| l.ends_with("false")).collect();
    assert!(failed.is_empty(), "kernel wrong for {failed:?}");
    assert_eq!(out.exit_code, 0, "{:?}", out.log);
    // The first four calls are the layers of the 2→16→32→16→1 net.
    if let Some(c) = out
        .insns
        .filter(|c| c.method == CountMethod::Plugin && c.each.len() >= 4)
    {
        let layers = [(2, 16), (16, 32), (32, 16), (16, 1)];
        let (mut insns, mut macs) = (0, 0);
        for (&(n_in, n_out), &(_, kernel)) in layers.iter().zip(&c.each) {
            eprintln!(
                "dense {n_in:>2} -> {n_out:>2}: {kernel:>4} instructions, {:.2} per MAC",
                kernel as f64 / (n_in * n_out) as f64
            );
            insns += kernel;
            macs += n_in * n_out;
        }
        eprintln!(
            "dense layers of the net: {insns} instructions per evaluation, {:.3} per MAC",
            insns as f64 / macs as f64
        );
    }
}

#[test]
fn stimulus_table_drives_the_model() {
    if !tools(Board::M4f) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let csv = dir.path().join("stimulus.csv");
    let vs: Vec<f32> = (0..200)
        .map(|k| if (k / 50) % 2 == 0 { 0.8 } else { -0.8 })
        .collect();
    let mut text = String::from("# a square wave\nt,v_s\n");
    for (k, v) in vs.iter().enumerate() {
        text.push_str(&format!("{:e},{v}\n", k as f64 * 1e-4));
    }
    std::fs::write(&csv, text).expect("writing");
    let model = model_file(Quant::F32);
    let mut opts = BuildOptions::new(Board::M4f, ModelSource::File(model.clone()));
    opts.stimulus = qemu::Stimulus::Table(csv);
    opts.samples = vs.len() as u32;
    let out = build(opts)
        .run(&RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.exit_code, 0, "{:?}", out.log);
    assert_eq!(
        out.vs(),
        vs,
        "the device streams the table it was built with"
    );
    let cfg = out.config.expect("config");
    assert!(
        (cfg.dt - 1e-4).abs() < 1e-9,
        "dt from the table's t column: {}",
        cfg.dt
    );
    let blob = AlignedBlob::read(&model).expect("model");
    let m = blob.model().expect("decodes");
    let config = SimConfig {
        dt: cfg.dt,
        solver: Solver::Rk4,
        substeps: 1,
        newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    let mut scratch = vec![0.0; m.cost(Solver::Rk4, 1).scratch_f32];
    let mut sim = Simulator::new(&m, config, &mut scratch).expect("simulator");
    let (mut v, mut i, mut x) = (
        vec![0.0; vs.len()],
        vec![0.0; vs.len()],
        vec![0.0; vs.len()],
    );
    sim.run(&vs, &mut v, &mut i, &mut x).expect("host run");
    let (rel, _) = compare(&i, &out.samples.iter().map(|s| s.i).collect::<Vec<_>>());
    assert!(rel <= REL_BOUND, "current differs by {rel:e} of its peak");
}

#[test]
fn device_check_on_m0_with_table_and_int8() {
    if !tools(Board::M0) {
        return;
    }
    // `odeflash device-check`'s library entry on the M0 with a stimulus table: the same checks
    // the CLI makes, here on an int8 model against its f32 original.
    let dir = tempfile::tempdir().expect("temporary directory");
    let csv = dir.path().join("stimulus.csv");
    let mut text = String::from("t,v_s\n");
    for k in 0..300 {
        let t = k as f64 * 2e-4;
        text.push_str(&format!("{t:e},{}\n", 0.8 * (40.0 * t).sin()));
    }
    std::fs::write(&csv, text).expect("writing");
    let mut opts = odeflash_device::CheckOptions::new(
        model_file(Quant::Int8),
        Board::M0,
        odeflash_device::Drive::Table(csv),
    );
    opts.f32_reference = Some(model_file(Quant::F32));
    let r = odeflash_device::check(&opts).unwrap_or_else(|e| panic!("{e}"));
    eprint!("{}", r.to_text());
    assert!(r.verdict.passed, "{:?}", r.verdict.failures);
    assert_eq!(r.run.samples, 300);
    assert_eq!(r.flash.stimulus_table_bytes, 4 * 300);
    assert!((r.run.sample_rate_hz - 5000.0).abs() < 1e-6);
    assert!(r
        .device_vs_host
        .max_rel_diff
        .is_some_and(|d| d <= REL_BOUND));
    let q = r.quantization.expect("an int8 model");
    assert!(
        q.agree
            && q.signals
                .iter()
                .all(|s| s.host_nmse.is_some_and(|n| n > 0.0))
    );
    assert_eq!(r.real_time.expect("counted").clock_mhz, 16.0);
}
