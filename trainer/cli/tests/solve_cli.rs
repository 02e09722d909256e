//! End-to-end tests of `odeflash solve`: the CSV it writes against published and exact
//! solutions, and its messages for bad flags.

use std::path::Path;
use std::process::{Command, Output};

use odeflash_reference::stiff::HIRES_REFERENCE;
use tempfile::TempDir;

fn odeflash(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odeflash"))
        .arg("solve")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("the binary starts")
}

/// Runs a solve that must succeed; returns the CSV's header and rows.
fn solve(args: &[&str]) -> (Vec<String>, Vec<Vec<f64>>, String) {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("out.csv");
    let out = odeflash(args, &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows, String::from_utf8(out.stdout).unwrap())
}

/// Runs a solve that must fail cleanly (exit 1, a message, no panic, no file); returns stderr.
fn fails(args: &[&str]) -> String {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("out.csv");
    let out = odeflash(args, &path);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!path.exists());
    stderr
}

#[test]
fn hires_last_row_matches_the_published_reference() {
    let (header, rows, stdout) = solve(&[
        "--problem",
        "hires",
        "--rtol",
        "1e-10",
        "--atol",
        "1e-14",
        "--outputs",
        "11",
    ]);
    assert_eq!(
        header,
        ["t", "y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8"]
    );
    assert_eq!(rows.len(), 11);
    assert_eq!(rows[0][0], 0.0);
    assert_eq!(rows[0][1..], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057]);
    let last = rows.last().unwrap();
    assert_eq!(last[0], 321.8122);
    for (i, (y, r)) in last[1..].iter().zip(HIRES_REFERENCE).enumerate() {
        let rel = ((y - r) / r).abs();
        assert!(rel <= 1e-6, "y{}: {y} vs {r} ({rel:e})", i + 1);
    }
    assert!(stdout.starts_with("hires with radau5"), "{stdout}");
    assert!(
        stdout.contains("steps") && stdout.contains("Jacobians"),
        "{stdout}"
    );
}

#[test]
fn fixed_step_methods_and_output_times() {
    // Kaps' problem has the exact solution (e^(-2t), e^(-t)).
    let (header, rows, _) = solve(&[
        "--problem",
        "toy2d",
        "--method",
        "radau5-fixed",
        "--dt",
        "0.05",
        "--t-end",
        "2",
        "--output-times",
        "0.5,1",
    ]);
    assert_eq!(header, ["t", "y1", "y2"]);
    let times: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(times, [0.5, 1.0, 2.0]);
    for r in &rows {
        let exact = [(-2.0 * r[0]).exp(), (-r[0]).exp()];
        for i in 0..2 {
            assert!((r[i + 1] - exact[i]).abs() < 1e-7, "{r:?}");
        }
    }
    // Backward Euler is first order: visibly less accurate at the same step.
    let (_, rows, stdout) = solve(&[
        "--problem",
        "toy2d",
        "--method",
        "backward-euler",
        "--dt",
        "0.05",
        "--t-end",
        "2",
        "--outputs",
        "1",
    ]);
    assert_eq!(rows.len(), 1);
    let err = (rows[0][2] - (-2.0f64).exp()).abs();
    assert!(err > 1e-4 && err < 1e-1, "{err}");
    assert!(stdout.contains("40 steps"), "{stdout}");
}

#[test]
fn bad_flags_are_named() {
    let e = fails(&["--problem", "lorenz"]);
    assert!(
        e.contains("--problem") && e.contains("lorenz") && e.contains("hires"),
        "{e}"
    );
    let e = fails(&["--problem", "hires", "--method", "rk45"]);
    assert!(
        e.contains("--method") && e.contains("rk45") && e.contains("radau3"),
        "{e}"
    );
    let e = fails(&["--problem", "hires", "--rtol", "0"]);
    assert!(e.contains("--rtol"), "{e}");
    let e = fails(&["--problem", "hires", "--atol=-1e-9"]);
    assert!(e.contains("--atol"), "{e}");
    let e = fails(&["--problem", "hires", "--method", "rk4"]);
    assert!(e.contains("--dt") && e.contains("rk4"), "{e}");
    let e = fails(&["--problem", "hires", "--method", "rk4", "--dt", "0"]);
    assert!(e.contains("--dt"), "{e}");
    let e = fails(&["--problem", "hires", "--y0", "1,2"]);
    assert!(e.contains("--y0") && e.contains('8'), "{e}");
    let e = fails(&["--problem", "hires", "--output-times", "2,1"]);
    assert!(e.contains("--output-times"), "{e}");
    // Sizes that would run for hours or exhaust memory are refused up front.
    let e = fails(&["--problem", "linear", "--method", "rk4", "--dt", "1e-12"]);
    assert!(
        e.contains("--dt 0.000000000001") && e.contains("steps"),
        "{e}"
    );
    let e = fails(&["--problem", "linear", "--outputs", "100000000000"]);
    assert!(e.contains("--outputs 100000000000"), "{e}");
    // RK4 far outside its stability region on van der Pol: a solver error, not a panic.
    let e = fails(&["--problem", "vdp", "--method", "rk4", "--dt", "0.1"]);
    assert!(e.contains("vdp") && e.contains("not finite"), "{e}");
}
