//! End-to-end tests of the `odeflash` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use odeflash_reference::stimulus::{sine, to_csv};
use odeflash_runtime::spec::examples::{dual_nn_memode, random_mlp, single_nn_memode};
use odeflash_runtime::spec::{BoundSpec, DynamicsSpec, MlpSpec, ModelSpec, Quant, ReadoutSpec};
use odeflash_runtime::{
    Activation, AlignedBlob, IteratorForm, SimConfig, Simulator, Solver, FORMAT_VERSION,
};
use tempfile::TempDir;

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

/// Runs a command that must fail cleanly (exit code 1, a message, no panic); returns stderr.
fn fails(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = odeflash(args);
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 errors");
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn write_model(dir: &Path, name: &str, spec: &ModelSpec, quant: Quant) -> PathBuf {
    let path = dir.join(name);
    let blob = spec.try_encode(quant).expect("valid spec");
    std::fs::write(&path, blob.as_bytes()).expect("write model");
    path
}

fn small_single() -> ModelSpec {
    single_nn_memode(&[16, 32, 16], 7)
}

fn small_dual() -> ModelSpec {
    dual_nn_memode(&[24, 24], 12, 3, 11)
}

/// A residual iterator net trained (say) at `dt`.
fn iterator_net(dt: f32) -> ModelSpec {
    let mut spec = single_nn_memode(&[8], 3);
    let mut net = random_mlp(2, &[(8, Activation::Tanh), (1, Activation::Identity)], 5);
    net.output_scale = vec![0.01];
    spec.name = "iterator".into();
    spec.dynamics = DynamicsSpec::Iterator {
        net,
        form: IteratorForm::Residual,
        dt,
    };
    spec
}

/// A generic neural ODE whose state overflows f32 in its first step.
fn blow_up() -> ModelSpec {
    let mut f = MlpSpec::dense(2, &[(1, Activation::Identity)], |_, k| {
        if k < 2 {
            1.0
        } else {
            0.0
        }
    });
    f.output_scale = vec![1e30];
    ModelSpec {
        format_version: FORMAT_VERSION,
        name: "blow-up".into(),
        dynamics: DynamicsSpec::Ode { f },
        readout: ReadoutSpec::None,
        circuit: None,
        x0: vec![1.0],
        bounds: vec![BoundSpec::default()],
    }
}

fn write_sine(dir: &Path, name: &str, amplitude: f64, freq: f64) -> (PathBuf, Vec<f64>, Vec<f32>) {
    let (t, v) = sine(amplitude, freq, 200, 2);
    let path = dir.join(name);
    std::fs::write(&path, to_csv(&["a sine"], &t, &v)).expect("write stimulus");
    (path, t, v)
}

/// Parses an output CSV into its header and rows of f32 (`t` as f64 in column 0, kept apart).
fn read_output(path: &Path) -> (String, Vec<f64>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(path).expect("output exists");
    let mut lines = text.lines();
    let header = lines.next().expect("header").to_string();
    let mut t = Vec::new();
    let mut rows = Vec::new();
    for l in lines {
        let mut fields = l.split(',');
        t.push(fields.next().expect("t").parse().expect("t parses"));
        rows.push(fields.map(|f| f.parse().expect("value parses")).collect());
    }
    (header, t, rows)
}

/// Multiply-accumulates of one evaluation, from the spec's layer shapes alone.
fn spec_macs(spec: &ModelSpec) -> (usize, usize) {
    let sum = |m: &MlpSpec| m.layers.iter().map(|l| l.inputs * l.outputs).sum::<usize>();
    let state = spec.dynamics_macs();
    let readout = match &spec.readout {
        ReadoutSpec::Net { g, .. } => sum(g),
        _ => 0,
    };
    (state, readout)
}

/// The first number after `key:` on the report line starting with `key`.
fn report_number(report: &str, key: &str) -> usize {
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no `{key}` line in\n{report}"));
    line[key.len() + 1..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in `{line}`"))
}

#[test]
fn inspect_reports_kind_and_mac_counts() {
    let dir = TempDir::new().expect("tempdir");
    let cases = [
        (
            "single.ofm",
            small_single(),
            Quant::F32,
            "single-nn-memode",
            Some(4),
        ),
        (
            "dual.ofm",
            small_dual(),
            Quant::Int8,
            "dual-nn-memode",
            Some(4),
        ),
        (
            "iter.ofm",
            iterator_net(1e-3),
            Quant::F32,
            "iterator-net (residual)",
            None,
        ),
    ];
    for (file, spec, quant, kind, rk4_stages) in cases {
        let path = write_model(dir.path(), file, &spec, quant);
        let report = ok(&[&"inspect", &path]);
        let kind_line = report
            .lines()
            .find(|l| l.starts_with("kind:"))
            .expect("kind");
        assert_eq!(kind_line.split_once(':').expect(":").1.trim(), kind);
        assert!(report.contains(&spec.name), "{report}");
        let (state, readout) = spec_macs(&spec);
        let per_eval = state + readout;
        assert_eq!(
            report_number(&report, "MACs per evaluation"),
            per_eval,
            "{report}"
        );
        // rk4, one sub-step: four evaluations plus the observation's memductance;
        // an iterator net evaluates once per sample.
        let per_step = rk4_stages.unwrap_or(1) * per_eval + readout;
        assert_eq!(
            report_number(&report, "MACs per step"),
            per_step,
            "{report}"
        );
        if rk4_stages.is_some() {
            assert!(report.contains("rk4, 1 substep"), "{report}");
        }
        let len = std::fs::metadata(&path).expect("model").len() as usize;
        assert_eq!(report_number(&report, "flash"), len);
        let precision = if quant == Quant::Int8 { "int8" } else { "f32" };
        assert!(report
            .lines()
            .any(|l| l.starts_with("quantization:") && l.contains(precision)));
        assert!(report.contains("    layer 0:"), "{report}");
    }
}

#[test]
fn inspect_json_then_import_reproduces_the_file() {
    let dir = TempDir::new().expect("tempdir");
    let cases = [
        ("single-f32", small_single(), Quant::F32),
        ("single-int8", small_single(), Quant::Int8),
        ("dual-f32", small_dual(), Quant::F32),
        ("dual-int8", small_dual(), Quant::Int8),
        ("iterator-int8", iterator_net(2e-4), Quant::Int8),
    ];
    for (name, spec, quant) in cases {
        let original = write_model(dir.path(), &format!("{name}.ofm"), &spec, quant);
        // Through a file (`--out`) and through standard output.
        let json = dir.path().join(format!("{name}.json"));
        assert_eq!(ok(&[&"inspect", &original, &"--json", &"--out", &json]), "");
        let stdout_json = ok(&[&"inspect", &original, &"--json"]);
        assert_eq!(std::fs::read_to_string(&json).expect("json"), stdout_json);
        let parsed: ModelSpec = serde_json::from_str(&stdout_json).expect("a model spec");
        assert_eq!(parsed.is_int8(), quant == Quant::Int8, "{name}");

        // The default quantization follows the spec.
        let copy = dir.path().join(format!("{name}-copy.ofm"));
        let report = ok(&[&"import", &json, &"--out", &copy]);
        assert!(
            report.starts_with(&format!("wrote {}", copy.display())),
            "{report}"
        );
        let a = std::fs::read(&original).expect("original");
        let b = std::fs::read(&copy).expect("copy");
        assert!(
            a == b,
            "{name}: re-imported file differs ({} vs {} bytes)",
            a.len(),
            b.len()
        );

        // Naming the same quantization explicitly changes nothing (`--force`: the same file).
        let q = if quant == Quant::Int8 { "int8" } else { "f32" };
        ok(&[
            &"import", &json, &"--out", &copy, &"--quant", &q, &"--force",
        ]);
        assert!(
            std::fs::read(&copy).expect("copy") == a,
            "{name} with --quant {q}"
        );
    }
}

#[test]
fn import_can_change_quantization_and_reports_bad_specs() {
    let dir = TempDir::new().expect("tempdir");
    let original = write_model(dir.path(), "m.ofm", &small_single(), Quant::F32);
    let json = dir.path().join("m.json");
    ok(&[&"inspect", &original, &"--json", &"--out", &json]);
    let int8 = dir.path().join("m8.ofm");
    ok(&[&"import", &json, &"--out", &int8, &"--quant", &"int8"]);
    let expected = small_single().encode(Quant::Int8);
    assert!(std::fs::read(&int8).expect("int8") == expected.as_bytes());

    // Broken JSON: the parser's line and column, and the file.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"name\": 3,\n").expect("write");
    let err = fails(&[&"import", &bad, &"--out", &dir.path().join("x.ofm")]);
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("line 2"),
        "{err}"
    );

    // Valid JSON, invalid model: a weight missing. Nothing is written.
    let mut spec = small_single();
    if let DynamicsSpec::Ode { f } = &mut spec.dynamics {
        f.layers[1].weights.pop();
    }
    std::fs::write(&bad, serde_json::to_string(&spec).expect("json")).expect("write");
    let target = dir.path().join("x.ofm");
    let err = fails(&[&"import", &bad, &"--out", &target]);
    assert!(err.contains("does not describe a valid model"), "{err}");
    assert!(!target.exists());
}

#[test]
fn simulate_equals_simulator_run_exactly() {
    let dir = TempDir::new().expect("tempdir");
    let spec = small_single();
    let model_path = write_model(dir.path(), "m.ofm", &spec, Quant::F32);
    let (stim, t, vs) = write_sine(dir.path(), "drive.csv", 1.0, 10.0);
    let blob = AlignedBlob::from_bytes(&std::fs::read(&model_path).expect("model"));
    let model = blob.model().expect("decodes");
    let dt = ((t[t.len() - 1] - t[0]) / (t.len() - 1) as f64) as f32;

    for (solver, name, substeps, x0) in [
        (Solver::Rk4, None, 1u16, None),
        (Solver::Dopri5, Some("dopri5"), 3, Some(0.2f32)),
        (Solver::Euler, Some("euler"), 1, Some(0.9)),
    ] {
        let out = dir.path().join(format!("out-{solver:?}.csv"));
        let (sub, x0s) = (substeps.to_string(), x0.map(|x| x.to_string()));
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"simulate",
            &"--model",
            &model_path,
            &"--stimulus",
            &stim,
            &"--out",
            &out,
        ];
        if let Some(n) = &name {
            args.extend([
                &"--solver" as &dyn AsRef<std::ffi::OsStr>,
                n,
                &"--substeps",
                &sub,
            ]);
        }
        if let Some(x) = &x0s {
            args.extend([&"--x0" as &dyn AsRef<std::ffi::OsStr>, x]);
        }
        let summary = ok(&args);
        assert!(
            summary.contains(&format!("{} samples", t.len())),
            "{summary}"
        );
        assert!(
            summary.contains("max |i|") && summary.contains("clamp"),
            "{summary}"
        );

        let cfg = SimConfig {
            dt,
            solver,
            substeps,
            newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
        };
        let mut scratch = vec![0.0; model.cost(solver, substeps).scratch_f32];
        let mut sim = Simulator::new(&model, cfg, &mut scratch).expect("sim");
        let x0v = x0.map(|x| vec![x]);
        sim.reset(x0v.as_deref()).expect("reset");
        let n = vs.len();
        let (mut v, mut i, mut x) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        sim.run(&vs, &mut v, &mut i, &mut x).expect("runs");

        let (header, t_out, rows) = read_output(&out);
        assert_eq!(header, "t,v_s,v,i,x0");
        assert_eq!(t_out, t);
        assert_eq!(rows.len(), n);
        for (k, row) in rows.iter().enumerate() {
            let expected = [vs[k], v[k], i[k], x[k]];
            assert!(
                row.iter()
                    .zip(expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{solver:?} row {k}: {row:?} vs {expected:?}"
            );
        }
    }
}

#[test]
fn stimulus_defects_name_file_line_and_column() {
    let dir = TempDir::new().expect("tempdir");
    let model = write_model(dir.path(), "m.ofm", &small_single(), Quant::F32);
    let iter = write_model(dir.path(), "it.ofm", &iterator_net(1e-3), Quant::F32);
    // (content, model, line, column, words in the message)
    let cases: &[(&str, &Path, usize, &str, &str)] = &[
        ("# c\nt,v\n0,1\n1,2\n", &model, 2, "v_s", "missing"),
        ("time,v_s\n0,1\n1,2\n", &model, 1, "t", "missing"),
        (
            "t,v_s\n0,1\n# x\n0.001,one\n",
            &model,
            4,
            "v_s",
            "not a number",
        ),
        (
            "t,v_s\n0,1\n0.001,2\n0.0x2,2\n",
            &model,
            4,
            "t",
            "not a number",
        ),
        ("t,v_s\n0,1\n0.001,NaN\n", &model, 3, "v_s", "not a finite"),
        (
            "t,v_s\n0,1\n0.001,2\n0.002,-inf\n",
            &model,
            4,
            "v_s",
            "not a finite",
        ),
        ("t,v_s\n0,1\ninf,2\n", &model, 3, "t", "not a finite"),
        (
            "t,v_s\n0,0\n0.002,0\n0.001,0\n",
            &model,
            4,
            "t",
            "does not increase",
        ),
        (
            "t,v_s\n0,0\n0.001,0\n0.001,0\n",
            &model,
            4,
            "t",
            "does not increase",
        ),
        (
            "t,v_s\n0,0\n0.001,0\n0.0025,0\n0.003,0\n",
            &model,
            4,
            "t",
            "typical step",
        ),
        ("#\n#\nt,v_s\n\n0,0\n", &model, 5, "t", "at least 2"),
        ("t,v_s\n", &model, 1, "t", "at least 2"),
        ("v_s,t\n0,0\n0.5\n", &model, 3, "t", "missing"),
        ("t,v_s,t\n0,0\n", &model, 1, "t", "more than once"),
        (
            "# c\nt,v_s\n0,0\n0.002,0\n0.004,0\n",
            &iter,
            4,
            "t",
            "iterator net",
        ),
    ];
    for (k, &(content, model, line, column, words)) in cases.iter().enumerate() {
        let stim = dir.path().join(format!("case{k}.csv"));
        std::fs::write(&stim, content).expect("write");
        let out = dir.path().join("out.csv");
        let err = fails(&[
            &"simulate",
            &"--model",
            &model,
            &"--stimulus",
            &stim,
            &"--out",
            &out,
        ]);
        let at = format!("{}:{line}: column `{column}`", stim.display());
        assert!(
            err.contains(&at),
            "case {k} {content:?}: expected `{at}` in {err}"
        );
        assert!(
            err.contains(words),
            "case {k} {content:?}: expected `{words}` in {err}"
        );
        assert!(!out.exists(), "case {k}: no output on error");
    }
    // The iterator net runs at its own interval.
    let stim = dir.path().join("ok.csv");
    std::fs::write(&stim, "t,v_s\n0,0\n0.001,0.5\n0.002,1\n").expect("write");
    ok(&[
        &"simulate",
        &"--model",
        &iter,
        &"--stimulus",
        &stim,
        &"--out",
        &dir.path().join("o.csv"),
    ]);
}

#[test]
fn simulation_failure_names_the_sample_line() {
    let dir = TempDir::new().expect("tempdir");
    let model = write_model(dir.path(), "b.ofm", &blow_up(), Quant::F32);
    let stim = dir.path().join("s.csv");
    std::fs::write(&stim, "# drive\nt,v_s\n0,0\n# gap\n0.001,0\n0.002,0\n").expect("write");
    let out = dir.path().join("out.csv");
    std::fs::write(&out, "keep me").expect("write");
    let err = fails(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &stim,
        &"--out",
        &out,
    ]);
    // The first step fails: sample 1, on line 5.
    assert!(err.contains(&format!("{}:5:", stim.display())), "{err}");
    let at = format!("{}:5: the model's state became non-finite", stim.display());
    assert!(err.contains(&at), "{err}");
    assert!(
        err.contains("at sample 1, stepping from t = 0 s to t = 0.001 s"),
        "{err}"
    );
    // The earlier file is untouched and no temporary file is left behind.
    assert_eq!(std::fs::read_to_string(&out).expect("out"), "keep me");
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(names.len(), 3, "{names:?}");

    // In a batch, the failing stimulus is named: under v_s = -1 this model stays at rest
    // (dx/dt = 1e30 (x + v_s) = 0), under the zero drive of `stim` it blows up as before.
    let ok_dir = dir.path().join("in");
    std::fs::create_dir_all(&ok_dir).expect("mkdir");
    let first = ok_dir.join("first.csv");
    std::fs::write(&first, "t,v_s\n0,-1\n0.5,-1\n1,-1\n").expect("write");
    ok(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &first,
        &"--out",
        &dir.path().join("rest.csv"),
    ]);
    let batch_out = dir.path().join("batch");
    let err = fails(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &first,
        &"--stimulus",
        &stim,
        &"--out",
        &batch_out,
    ]);
    let at = format!("{}:5: the model's state became non-finite", stim.display());
    assert!(err.contains(&at), "{err}");
    assert!(!batch_out.exists(), "nothing written on error");

    // A defect in the second stimulus of a batch names that file.
    let broken = ok_dir.join("broken.csv");
    std::fs::write(&broken, "t,v_s\n0,0\n0.5,x\n").expect("write");
    let good = write_model(dir.path(), "m.ofm", &small_single(), Quant::F32);
    let err = fails(&[
        &"simulate",
        &"--model",
        &good,
        &"--stimulus",
        &first,
        &"--stimulus",
        &broken,
        &"--out",
        &batch_out,
    ]);
    assert!(
        err.contains(&format!("{}:3: column `v_s`", broken.display())),
        "{err}"
    );
}

#[test]
fn bad_settings_are_refused_cleanly() {
    let dir = TempDir::new().expect("tempdir");
    let model = write_model(dir.path(), "m.ofm", &small_single(), Quant::F32);
    let (stim, _, _) = write_sine(dir.path(), "s.csv", 1.0, 10.0);
    let out = dir.path().join("o.csv");
    let base: [&dyn AsRef<std::ffi::OsStr>; 7] = [
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &stim,
        &"--out",
        &out,
    ];
    let err = fails(&[&base[..], &[&"--x0", &"0.1,0.2"]].concat());
    assert!(err.contains("--x0 has 2 value(s)"), "{err}");
    let out0 = odeflash(&[&base[..], &[&"--substeps", &"0"]].concat());
    assert_eq!(out0.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out0.stderr).contains("--substeps"));
    let err = fails(&[&base[..], &[&"--x0", &"nan"]].concat());
    assert!(err.contains("initial state"), "{err}");
    // An output that would overwrite its own input.
    let err = fails(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &stim,
        &"--out",
        &stim,
    ]);
    assert!(err.contains("would overwrite the input"), "{err}");
    let err = fails(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &stim,
        &"--out",
        &model,
    ]);
    assert!(err.contains("would overwrite the input"), "{err}");
    // In a batch, into the directory one of the stimuli lives in.
    std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
    let other = dir.path().join("sub").join("other.csv");
    std::fs::copy(&stim, &other).expect("copy");
    let err = fails(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &other,
        &"--stimulus",
        &stim,
        &"--out",
        &dir.path(),
    ]);
    assert!(err.contains("would overwrite the input"), "{err}");
    // A missing file.
    let err = fails(&[&"inspect", &dir.path().join("nope.ofm")]);
    assert!(
        err.contains("cannot read") && err.contains("nope.ofm"),
        "{err}"
    );
}

#[test]
fn corrupted_models_give_a_clear_error() {
    let dir = TempDir::new().expect("tempdir");
    let good = write_model(dir.path(), "m.ofm", &small_dual(), Quant::Int8);
    let bytes = std::fs::read(&good).expect("model");
    let (stim, _, _) = write_sine(dir.path(), "s.csv", 1.0, 10.0);
    let bad = dir.path().join("bad.ofm");
    let n = bytes.len();
    // Magic, version, lengths, CRC, descriptor, data section, last byte.
    for pos in [0, 5, 9, 13, 17, 29, 40, 100, n / 2, n - 1] {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[pos] ^= bit;
            std::fs::write(&bad, &b).expect("write");
            let err = fails(&[&"inspect", &bad]);
            assert!(
                err.contains(&format!("{} is not a usable odeflash model", bad.display())),
                "{err}"
            );
            let out = dir.path().join("o.csv");
            let err = fails(&[
                &"simulate",
                &"--model",
                &bad,
                &"--stimulus",
                &stim,
                &"--out",
                &out,
            ]);
            assert!(err.contains("not a usable odeflash model"), "{err}");
            fails(&[&"inspect", &bad, &"--json"]);
        }
    }
    // Truncated, empty, and a JSON spec given as a model.
    for content in [
        &bytes[..n - 3],
        &bytes[..10],
        &[][..],
        &b"{\"name\": 1}"[..],
    ] {
        std::fs::write(&bad, content).expect("write");
        let err = fails(&[&"inspect", &bad]);
        assert!(err.contains("not a usable odeflash model"), "{err}");
    }
}

/// Largest deviation of `b` from `a`, relative to `max(|a|, |b|)` with a floor of 1e-3 of the
/// column's largest magnitude (values crossing zero have no meaningful relative error).
fn max_rel_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "row count");
    let cols = a.first().map_or(0, Vec::len);
    let scale: Vec<f32> = (0..cols)
        .map(|c| a.iter().map(|r| r[c].abs()).fold(0.0, f32::max))
        .collect();
    let mut worst = 0.0f32;
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra.len(), rb.len(), "column count");
        for ((&x, &y), &s) in ra.iter().zip(rb).zip(&scale) {
            let d = (x - y).abs();
            if d > 0.0 {
                worst = worst.max(d / x.abs().max(y.abs()).max(1e-3 * s));
            }
        }
    }
    worst
}

#[test]
fn several_stimuli_run_as_one_batch() {
    let dir = TempDir::new().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("a")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("b")).expect("mkdir");
    let (s1, ..) = write_sine(&dir.path().join("a"), "fast.csv", 1.0, 10.0);
    let (s2, ..) = write_sine(&dir.path().join("b"), "slow.csv", 0.5, 5.0);
    // A third drive of another length and interval.
    let (t, v) = sine(0.8, 20.0, 50, 3);
    let s3 = dir.path().join("b").join("short.csv");
    std::fs::write(&s3, to_csv(&[], &t, &v)).expect("write");
    let stimuli = [&s1, &s2, &s3];

    for (name, spec, quant) in [
        ("single", small_single(), Quant::F32),
        ("dual", small_dual(), Quant::F32),
        ("dual8", small_dual(), Quant::Int8),
    ] {
        let model = write_model(dir.path(), &format!("{name}.ofm"), &spec, quant);
        let batch_dir = dir.path().join(format!("batch-{name}")).join("nested");
        let summary = ok(&[
            &"simulate",
            &"--model",
            &model,
            &"--stimulus",
            &s1,
            &"--stimulus",
            &s2,
            &"--stimulus",
            &s3,
            &"--out",
            &batch_dir,
            &"--solver",
            &"rk5",
            &"--substeps",
            &"2",
        ]);
        assert_eq!(summary.lines().count(), 3, "{summary}");
        // The three outputs and the output-directory marker (see `odeflash_reference::files`).
        let written: Vec<_> = std::fs::read_dir(&batch_dir).expect("dir").collect();
        assert_eq!(written.len(), 4, "{written:?}");
        assert!(batch_dir.join(".odeflash-output").is_file());
        for stim in stimuli {
            let file = stim.file_name().expect("name");
            let single = dir.path().join(format!("single-{name}.csv"));
            ok(&[
                &"simulate",
                &"--model",
                &model,
                &"--stimulus",
                &stim,
                &"--out",
                &single,
                &"--solver",
                &"rk5",
                &"--substeps",
                &"2",
                &"--force", // the same file for every stimulus
            ]);
            let (h1, t1, rows1) = read_output(&single);
            let (h2, t2, rows2) = read_output(&batch_dir.join(file));
            assert_eq!((h1, t1), (h2, t2));
            // The batch runs the portable kernel: equal up to 1e-5 (in fact bit for bit).
            let worst = max_rel_diff(&rows1, &rows2);
            assert!(
                worst <= 1e-5,
                "{name} {file:?}: relative difference {worst:e}"
            );
            assert_eq!(rows1, rows2, "{name} {file:?}");
            let line = summary
                .lines()
                .find(|l| l.starts_with(&format!("{}:", stim.display())))
                .unwrap_or_else(|| panic!("no summary for {stim:?} in {summary}"));
            assert!(line.contains(&max_i_text(&rows1)), "{line}");
            assert!(
                line.ends_with(&batch_dir.join(file).display().to_string()),
                "{line}"
            );
        }
    }

    // `--fma` lets the kernel fuse multiply-adds: equal up to rounding (rk4 here; rk5's large
    // tableau coefficients amplify the rounding differences to ~1e-4 over a few hundred steps).
    let model = write_model(dir.path(), "fma.ofm", &small_dual(), Quant::F32);
    let fma_dir = dir.path().join("fma");
    ok(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &s1,
        &"--stimulus",
        &s2,
        &"--out",
        &fma_dir,
        &"--fma",
    ]);
    for stim in [&s1, &s2] {
        let single = dir.path().join("single-fma.csv");
        ok(&[
            &"simulate",
            &"--model",
            &model,
            &"--stimulus",
            &stim,
            &"--out",
            &single,
            &"--force", // the same file for both stimuli
        ]);
        let (_, _, rows1) = read_output(&single);
        let (_, _, rows2) = read_output(&fma_dir.join(stim.file_name().expect("name")));
        let worst = max_rel_diff(&rows1, &rows2);
        assert!(
            worst <= 1e-4,
            "--fma {stim:?}: relative difference {worst:e}"
        );
    }

    // Two stimuli with the same file name would overwrite each other's output.
    let (dup, ..) = write_sine(&dir.path().join("b"), "fast.csv", 1.0, 10.0);
    let model = write_model(dir.path(), "m.ofm", &small_single(), Quant::F32);
    let out = dir.path().join("dups");
    let err = fails(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &s1,
        &"--stimulus",
        &dup,
        &"--out",
        &out,
    ]);
    assert!(err.contains("same file name"), "{err}");
    assert!(!out.exists());
}

fn max_i_text(rows: &[Vec<f32>]) -> String {
    let m = rows.iter().map(|r| r[2].abs()).fold(0.0f32, f32::max);
    format!("max |i| {m:.4e} A")
}

/// Runs a command that must fail cleanly within `secs` seconds (killed and failed otherwise, so
/// a command that blocks on a FIFO fails the test instead of hanging it); returns stderr.
fn fails_within(secs: u64, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_odeflash"))
        .args(args.iter().map(|a| a.as_ref()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("UTF-8 errors");
    assert_eq!(status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

#[test]
fn inspect_refuses_huge_fifo_and_directory_inputs_at_once() {
    let dir = TempDir::new().expect("tempdir");
    // A 2 GB sparse file: the magic is wrong, so nothing past it is read.
    let big = dir.path().join("big.ofm");
    std::fs::File::create(&big)
        .expect("create")
        .set_len(2 << 30)
        .expect("set_len");
    let err = fails_within(5, &[&"inspect", &big]);
    assert!(
        err.contains(&format!("{} is not a usable odeflash model", big.display())),
        "{err}"
    );
    assert!(err.len() < 400, "{err}");
    // The right magic on a file larger than any model: refused, not read to the end.
    let huge = dir.path().join("huge.ofm");
    std::fs::write(&huge, b"ODFM").expect("write");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .expect("open")
        .set_len(2 << 30)
        .expect("set_len");
    let err = fails_within(5, &[&"inspect", &huge]);
    assert!(err.contains("larger than any model file"), "{err}");
    // A FIFO (opening it would block until a writer comes) and a directory.
    let fifo = dir.path().join("pipe.ofm");
    mkfifo(&fifo);
    let err = fails_within(10, &[&"inspect", &fifo]);
    assert!(
        err.contains(&format!(
            "{}: is a FIFO (named pipe), not a regular file",
            fifo.display()
        )),
        "{err}"
    );
    let err = fails_within(10, &[&"inspect", &dir.path()]);
    assert!(err.contains("is a directory, not a regular file"), "{err}");
    // The same for a stimulus and a model spec.
    let model = write_model(dir.path(), "m.ofm", &small_single(), Quant::F32);
    let err = fails_within(
        10,
        &[
            &"simulate",
            &"--model",
            &model,
            &"--stimulus",
            &fifo,
            &"--out",
            &dir.path().join("o.csv"),
        ],
    );
    assert!(err.contains("is a FIFO (named pipe)"), "{err}");
    let err = fails_within(
        10,
        &[&"import", &"/dev/zero", &"--out", &dir.path().join("z.ofm")],
    );
    assert!(
        err.contains("/dev/zero: is a device, not a regular file"),
        "{err}"
    );
}

#[test]
fn huge_weights_blame_the_model_not_the_stimulus() {
    let dir = TempDir::new().expect("tempdir");
    let mut spec = blow_up();
    spec.dynamics = DynamicsSpec::Ode {
        f: MlpSpec::dense(2, &[(1, Activation::Identity)], |_, k| {
            if k < 2 {
                3e38
            } else {
                0.0
            }
        }),
    };
    let model = write_model(dir.path(), "huge.ofm", &spec, Quant::F32);
    let (stim, _, _) = write_sine(dir.path(), "s.csv", 1.0, 10.0);
    let err = fails(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &stim,
        &"--out",
        &dir.path().join("o.csv"),
    ]);
    assert!(
        err.contains("the model's state became non-finite at sample 1"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "the likely cause is the model {}",
            model.display()
        )),
        "{err}"
    );
    assert!(err.contains("although the drive there is finite"), "{err}");
    assert!(!err.contains("column `v_s`"), "{err}");
}

#[test]
fn settings_beyond_f32_are_out_of_range() {
    let dir = TempDir::new().expect("tempdir");
    let model = write_model(dir.path(), "m.ofm", &small_single(), Quant::F32);
    let (stim, _, _) = write_sine(dir.path(), "s.csv", 1.0, 10.0);
    let out = odeflash(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &stim,
        &"--out",
        &dir.path().join("o.csv"),
        &"--x0",
        &"0,1e300",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("'--x0 <A,B,...>': `1e300` is out of the f32 range (±3.4e38)"),
        "{err}"
    );
}
