//! End-to-end tests of `odeflash device-check` on the bundled example model: the real binary
//! builds the QEMU firmware example, runs it, and reports against the host as text and JSON.
//!
//! Needs `qemu-system-arm`, `defmt-print` and the Cortex-M targets (`cargo xtask test` installs
//! them); without them the QEMU tests fail saying what to install, unless `ODEFLASH_SKIP_QEMU=1`,
//! which skips them. The error-path tests need none of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use odeflash_device::qemu::{self, Board};
use serde_json::Value;
use tempfile::TempDir;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/models/single-nn-memode.json"
);

fn odeflash(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odeflash"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("the binary starts")
}

/// Runs a command that must succeed; returns its standard output.
fn ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = odeflash(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Exit status 1 with an `error: ` message and no panic; returns the message.
fn assert_clean_failure(out: &Output) -> String {
    let stderr = String::from_utf8(out.stderr.clone()).expect("UTF-8 errors");
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Whether the QEMU tests run: panics saying what to install when a tool is missing, unless
/// `ODEFLASH_SKIP_QEMU=1`.
fn tools() -> bool {
    if qemu::skip_requested() {
        eprintln!("skipped: ODEFLASH_SKIP_QEMU=1");
        return false;
    }
    if let Err(e) = qemu::require_tools(Board::M4f) {
        panic!("{e}\n(set ODEFLASH_SKIP_QEMU=1 to skip the QEMU tests)");
    }
    true
}

/// The example model imported as `quant` (`f32` or `int8`).
fn example(dir: &Path, quant: &str) -> PathBuf {
    let path = dir.join(format!("example-{quant}.ofm"));
    ok(&[&"import", &EXAMPLE, &"--out", &path, &"--quant", &quant]);
    path
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the JSON report is written");
    serde_json::from_str(&text).expect("the report is JSON")
}

fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is a number in {v:#}"))
}

/// The fields every report has, with consistent values.
fn check_common(r: &Value, quant: &str, samples: u64) {
    assert_eq!(r["schema"], "odeflash-device-check/1");
    assert_eq!(r["model"]["quant"], quant);
    assert_eq!(r["model"]["kind"], "single-nn-memode");
    assert_eq!(r["model"]["states"], 1);
    assert_eq!(r["device"]["machine"], "mps2-an386");
    assert_eq!(r["device"]["core"], "Cortex-M4F");
    assert_eq!(r["run"]["stimulus"]["kind"], "sine");
    assert_eq!(num(r, "/run/stimulus/amplitude"), 1.0);
    assert_eq!(num(r, "/run/stimulus/frequency"), 10.0);
    assert_eq!(num(r, "/run/sample_rate_hz"), 1000.0);
    assert_eq!(r["run"]["samples"], samples);
    assert_eq!(r["run"]["steps"], samples - 1);
    assert_eq!(r["run"]["solver"], "rk4");

    // Device against host: every signal within 1e-5 of its peak.
    let a = &r["device_vs_host"];
    let names: Vec<&str> = a["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["v", "i", "x0"]);
    for s in a["signals"].as_array().expect("signals") {
        let rel = s["max_rel_diff"].as_f64().expect("a defined difference");
        assert!(rel <= 1e-5, "{}: {rel:e} of peak", s["name"]);
        assert!(s["nmse"].as_f64().expect("nmse") <= 1e-10);
        assert!(s["peak"].as_f64().expect("peak") > 0.0);
    }
    assert!(num(r, "/device_vs_host/max_rel_diff") <= 1e-5);
    assert_eq!(a["within_tolerance"], true);
    assert!(a["bit_identical_samples"].as_u64().expect("count") <= samples);

    // Flash and RAM.
    let model_bytes = num(r, "/model/bytes");
    assert!(num(r, "/flash/model_bytes") >= model_bytes);
    let code = num(r, "/flash/code_bytes");
    assert!(code > 4096.0 && code < 64.0 * 1024.0, "{code}");
    assert_eq!(
        num(r, "/flash/total_bytes"),
        code + num(r, "/flash/model_bytes") + num(r, "/flash/stimulus_table_bytes")
    );
    let ram = &r["ram"];
    for k in [
        "static_bytes",
        "scratch_bytes",
        "stack_decode_bytes",
        "stack_step_bytes",
    ] {
        assert!(ram[k].as_u64().expect(k) > 0, "{k}");
    }
    assert_eq!(
        num(r, "/ram/total_bytes"),
        num(r, "/ram/static_bytes")
            + num(r, "/ram/stack_decode_bytes").max(num(r, "/ram/stack_step_bytes"))
    );

    // Instructions and the real-time rate they imply (an upper bound at CPI 1).
    let c = &r["instructions"];
    assert_eq!(c["steps"], samples - 1);
    let mean = num(r, "/instructions/per_step_mean");
    assert!(mean > 1000.0, "{mean}");
    let worst = if c["method"] == "plugin" {
        let (lo, hi) = (
            num(r, "/instructions/per_step_min"),
            num(r, "/instructions/per_step_max"),
        );
        assert!(lo <= mean && mean <= hi, "{lo} {mean} {hi}");
        hi
    } else {
        assert_eq!(c["method"], "icount-systick");
        mean
    };
    let rt = &r["real_time"];
    assert_eq!(num(r, "/real_time/clock_mhz"), 168.0);
    assert_eq!(rt["upper_bound"], true);
    let rate = num(r, "/real_time/max_sample_rate_hz");
    assert!((rate - 168e6 / worst).abs() <= 1e-9 * rate, "{rate}");
    assert_eq!(r["verdict"]["passed"], true);
}

#[test]
fn f32_example_matches_host_on_m4f() {
    if !tools() {
        return;
    }
    let dir = TempDir::new().expect("temporary directory");
    let model = example(dir.path(), "f32");
    let json = dir.path().join("report.json");
    let text = ok(&[
        &"device-check",
        &"--model",
        &model,
        &"--sine",
        &"1,10",
        &"--samples",
        &"2000",
        &"--json",
        &json,
    ]);
    eprintln!("{text}");
    let r = read_json(&json);
    check_common(&r, "f32", 2000);
    assert!(r["quantization"].is_null());
    assert!(text.contains("device-check passed"), "{text}");
    assert!(
        text.contains("upper bound") && text.contains("CPI 1"),
        "{text}"
    );
}

#[test]
fn int8_example_matches_host_on_m4f() {
    if !tools() {
        return;
    }
    let dir = TempDir::new().expect("temporary directory");
    let f32_model = example(dir.path(), "f32");
    let model = example(dir.path(), "int8");
    let json = dir.path().join("report.json");
    let text = ok(&[
        &"device-check",
        &"--model",
        &model,
        &"--sine",
        &"1,10",
        &"--samples",
        &"2000",
        &"--json",
        &json,
        &"--f32-reference",
        &f32_model,
    ]);
    eprintln!("{text}");
    let r = read_json(&json);
    check_common(&r, "int8", 2000);
    // The quantization error against the f32 model, on the device and on the host: they agree.
    let q = &r["quantization"];
    assert_eq!(q["agree"], true);
    for s in q["signals"].as_array().expect("signals") {
        let (dev, host) = (
            s["device_nmse"].as_f64().expect("device NMSE"),
            s["host_nmse"].as_f64().expect("host NMSE"),
        );
        assert!(host > 0.0, "{}: quantization changes nothing?", s["name"]);
        assert!(
            (dev - host).abs() <= 1e-3 * host,
            "{}: device {dev:e}, host {host:e}",
            s["name"]
        );
        assert_eq!(s["agree"], true);
    }
    assert!(text.contains("NMSE device int8"), "{text}");

    // Without a reference: the dequantized twin, which isolates the int8 kernels' arithmetic.
    let twin = dir.path().join("twin.json");
    ok(&[
        &"device-check",
        &"--model",
        &model,
        &"--sine",
        &"1,10",
        &"--samples",
        &"2000",
        &"--json",
        &twin,
    ]);
    let r = read_json(&twin);
    assert_eq!(r["quantization"]["agree"], true);
    assert!(r["quantization"]["reference"]
        .as_str()
        .expect("reference")
        .contains("twin"));
}

#[test]
fn missing_stimulus_file_is_a_clear_error() {
    let dir = TempDir::new().expect("temporary directory");
    let model = example(dir.path(), "f32");
    let missing = dir.path().join("no-such-stimulus.csv");
    let json = dir.path().join("report.json");
    let out = odeflash(&[
        &"device-check",
        &"--model",
        &model,
        &"--stimulus",
        &missing,
        &"--json",
        &json,
    ]);
    let err = assert_clean_failure(&out);
    assert!(
        err.contains("cannot read") && err.contains("no-such-stimulus.csv"),
        "{err}"
    );
    assert!(!json.exists(), "no report for a check that did not run");
}

#[test]
fn missing_qemu_says_what_to_install() {
    let dir = TempDir::new().expect("temporary directory");
    let model = example(dir.path(), "f32");
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).expect("folder");
    let out = Command::new(env!("CARGO_BIN_EXE_odeflash"))
        .args([
            "device-check",
            "--sine",
            "1,10",
            "--samples",
            "10",
            "--model",
        ])
        .arg(&model)
        .env("PATH", &empty)
        .output()
        .expect("the binary starts");
    let err = assert_clean_failure(&out);
    assert!(
        err.contains("qemu-system-arm") && err.contains("apt-get install qemu-system-arm"),
        "{err}"
    );
}

#[test]
fn drive_is_required_and_exclusive() {
    let dir = TempDir::new().expect("temporary directory");
    let model = example(dir.path(), "f32");
    for args in [
        vec!["device-check", "--model"],
        vec![
            "device-check",
            "--sine",
            "1,10",
            "--stimulus",
            "x.csv",
            "--model",
        ],
        vec!["device-check", "--sine", "1", "--model"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_odeflash"))
            .args(&args)
            .arg(&model)
            .output()
            .expect("the binary starts");
        assert_eq!(out.status.code(), Some(2), "{args:?}: a usage error");
    }
}
