//! Build-time configuration. Everything the firmware needs to know at compile time comes from
//! environment variables, so a test harness (or `odeflash device-check`) builds it for any model
//! and stimulus without editing a file:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `ODEFLASH_MODEL` | generated 2→16→32→16→1 SingleNN-MemODE, f32 | model file linked into the `.model` section (see `memory.x`); `none` links no model, so one can be loaded at the model address later |
//! | `ODEFLASH_SAMPLES` | 1000 (or the table's length) | samples to run, the first one before any step |
//! | `ODEFLASH_SAMPLE_RATE` | 10000 | Hz; the simulation's `dt` is its inverse |
//! | `ODEFLASH_SINE` | `1.0,10.0` | `AMPLITUDE,FREQUENCY` (V, Hz) of the on-device sine |
//! | `ODEFLASH_STIMULUS` | unset | CSV with a `v_s` column (and optionally `t`): a stimulus table replacing the sine |
//! | `ODEFLASH_SOLVER` | `rk4` | `euler`, `heun`, `rk4`, `rk5`/`tsit5`, `dopri5` |
//! | `ODEFLASH_SUBSTEPS` | 1 | solver steps per sample |
//! | `ODEFLASH_SCRATCH_F32` | what the linked model needs (512 without one) | scratch, in f32 |
//!
//! It writes `params.rs` (constants), `model.ofm` and `stimulus.bin` to `OUT_DIR`, and puts the
//! linker scripts `memory.x` and `device.x` where the linker finds them. A model that does not
//! decode is still linked (with a warning): the firmware's own boot check must refuse it.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use odeflash_runtime::spec::{examples, Quant};
use odeflash_runtime::{Model, Solver};

/// Generated model when `ODEFLASH_MODEL` is unset: the 2→16→32→16→1 net of the figures.
const DEFAULT_HIDDEN: [usize; 3] = [16, 32, 16];
const DEFAULT_SCRATCH_F32: usize = 512;

fn var(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok().filter(|s| !s.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match var(name) {
        None => default,
        Some(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s} is not a valid number")),
    }
}

/// f32 literal that round-trips exactly, whatever the value.
fn f32_lit(v: f32) -> String {
    format!("f32::from_bits({:#010x})", v.to_bits())
}

/// Reads the `v_s` column (and the sample interval from `t`, if present) of a stimulus CSV.
fn read_table(path: &Path) -> (Vec<f32>, Option<f64>) {
    println!("cargo:rerun-if-changed={}", path.display());
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("ODEFLASH_STIMULUS {}: {e}", path.display()));
    let mut rows = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let header: Vec<&str> = rows
        .next()
        .unwrap_or_else(|| panic!("{}: no header row", path.display()))
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let vs_col = col("v_s").unwrap_or_else(|| panic!("{}: no `v_s` column", path.display()));
    let t_col = col("t");
    let (mut vs, mut t) = (Vec::new(), Vec::new());
    for (i, row) in rows.enumerate() {
        let fields: Vec<&str> = row.split(',').map(str::trim).collect();
        let get = |c: usize| -> f64 {
            fields
                .get(c)
                .and_then(|f| f.parse().ok())
                .unwrap_or_else(|| panic!("{}: data row {}: bad field", path.display(), i + 1))
        };
        vs.push(get(vs_col) as f32);
        if let Some(c) = t_col {
            t.push(get(c));
        }
    }
    let dt = (t.len() > 1).then(|| (t[t.len() - 1] - t[0]) / (t.len() - 1) as f64);
    (vs, dt)
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));

    // Linker scripts. cortex-m-rt's `device` feature includes `device.x`, where a device crate
    // would list its interrupt handlers; this firmware has none (see `__INTERRUPTS` in the demo).
    fs::copy("memory.x", out.join("memory.x")).expect("memory.x is in the board folder");
    fs::write(out.join("device.x"), "/* no device interrupts */\n").expect("writing device.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=../qemu-common/build.rs");

    // The model.
    let model_bytes: Vec<u8> = match var("ODEFLASH_MODEL").as_deref() {
        None => examples::single_nn_memode(&DEFAULT_HIDDEN, 1).encode_bytes(Quant::F32),
        Some("none") => Vec::new(),
        Some(path) => {
            println!("cargo:rerun-if-changed={path}");
            fs::read(path).unwrap_or_else(|e| panic!("ODEFLASH_MODEL={path}: {e}"))
        }
    };
    let solver_name = var("ODEFLASH_SOLVER").unwrap_or_else(|| "rk4".into());
    let solver = Solver::from_name(&solver_name).unwrap_or_else(|| {
        panic!("ODEFLASH_SOLVER={solver_name}: expected euler, heun, rk4, rk5, tsit5 or dopri5")
    });
    let substeps: u16 = number("ODEFLASH_SUBSTEPS", 1);
    let mut scratch = DEFAULT_SCRATCH_F32;
    if !model_bytes.is_empty() {
        let blob = odeflash_runtime::AlignedBlob::from_bytes(&model_bytes);
        match Model::decode(blob.as_bytes()) {
            Ok(m) => scratch = m.cost(solver, substeps).scratch_f32,
            Err(e) => println!(
                "cargo:warning=the linked model does not decode ({e}); the firmware will refuse it at boot"
            ),
        };
    }
    let scratch: usize = number("ODEFLASH_SCRATCH_F32", scratch);
    fs::write(out.join("model.ofm"), &model_bytes).expect("writing model.ofm");

    // The stimulus: a table from a CSV, or the sine's parameters.
    let mut rate: f64 = number("ODEFLASH_SAMPLE_RATE", 10_000.0);
    let (table, table_dt) = match var("ODEFLASH_STIMULUS") {
        Some(p) => read_table(Path::new(&p)),
        None => (Vec::new(), None),
    };
    if let Some(dt) = table_dt {
        rate = 1.0 / dt;
    }
    let default_samples = if table.is_empty() { 1000 } else { table.len() };
    let samples: u32 = number("ODEFLASH_SAMPLES", default_samples as u32);
    assert!(samples >= 1, "ODEFLASH_SAMPLES must be at least 1");
    assert!(
        table.is_empty() || samples as usize <= table.len(),
        "ODEFLASH_SAMPLES={samples} but the stimulus table has {} rows",
        table.len()
    );
    let sine = var("ODEFLASH_SINE").unwrap_or_else(|| "1.0,10.0".into());
    let (amplitude, frequency) = sine
        .split_once(',')
        .and_then(|(a, f)| Some((a.trim().parse::<f64>().ok()?, f.trim().parse::<f64>().ok()?)))
        .unwrap_or_else(|| panic!("ODEFLASH_SINE={sine}: expected AMPLITUDE,FREQUENCY"));
    assert!(
        rate > 0.0 && rate.is_finite(),
        "sample rate must be positive"
    );
    let table_bytes: Vec<u8> = table.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(out.join("stimulus.bin"), &table_bytes).expect("writing stimulus.bin");

    let mut p = String::new();
    let _ = writeln!(
        p,
        "// Generated by build.rs from the ODEFLASH_* environment variables."
    );
    let _ = writeln!(p, "pub const MODEL_LEN: usize = {};", model_bytes.len());
    let _ = writeln!(p, "pub const SCRATCH_F32: usize = {scratch};");
    let _ = writeln!(p, "pub const SOLVER: Solver = Solver::{solver:?};");
    let _ = writeln!(p, "pub const SUBSTEPS: u16 = {substeps};");
    let _ = writeln!(p, "pub const SAMPLES: u32 = {samples};");
    let _ = writeln!(
        p,
        "/// Sample interval, seconds (1 / sample rate, rounded once to f32)."
    );
    let _ = writeln!(p, "pub const DT: f32 = {};", f32_lit((1.0 / rate) as f32));
    let _ = writeln!(
        p,
        "pub const AMPLITUDE: f32 = {};",
        f32_lit(amplitude as f32)
    );
    let _ = writeln!(
        p,
        "/// Sine phase advance per sample, in periods (frequency / sample rate)."
    );
    let _ = writeln!(
        p,
        "pub const PHASE_STEP: f32 = {};",
        f32_lit((frequency / rate) as f32)
    );
    let _ = writeln!(p, "pub const TABLE_LEN: usize = {};", table.len());
    fs::write(out.join("params.rs"), p).expect("writing params.rs");
}
