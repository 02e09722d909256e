//! What a careless or concurrent user cannot do to a run directory: two writers at once,
//! resumes that drop options or train on changed data, configs that silently replace a preset,
//! settings out of range, warm-ups that leave nothing to score.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{odeflash, ok};

/// The error of a command that must fail cleanly (exit 1, no panic).
fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(if err.starts_with("error: invalid value") {
            2
        } else {
            1
        }),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A small rig dataset: 2 periods of 200 samples per record.
fn rig(dir: &Path, name: &str) -> PathBuf {
    let data = dir.join(name);
    ok(odeflash()
        .args([
            "data",
            "synth-memristor",
            "--periods",
            "2",
            "--samples-per-period",
            "200",
        ])
        .arg("--out")
        .arg(&data)
        .output()
        .unwrap());
    data
}

fn train(data: &Path, run: &Path, extra: &[&str]) -> Command {
    let mut cmd = odeflash();
    cmd.args([
        "train",
        "memristor",
        "--model",
        "single",
        "--preset",
        "small",
        "--quiet",
    ])
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(run)
    .args(extra);
    cmd
}

fn config(run: &Path) -> toml::Table {
    std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

/// A second `train` into a directory another process is training into is refused with the
/// holder's pid, and the first run's files stay its own (one header, its epochs in order).
#[test]
fn a_run_directory_has_one_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = rig(tmp.path(), "rig");
    let run = tmp.path().join("run");
    let mut first = train(&data, &run, &["--epochs", "400"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !run.join("checkpoint.json").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = fails(&mut train(&data, &run, &["--epochs", "2"]));
    let resume = fails(&mut train(&data, &run, &["--epochs", "400", "--resume"]));
    first.kill().unwrap();
    first.wait().unwrap();
    let pid = format!("(pid {})", first.id());
    for err in [&err, &resume] {
        assert!(
            err.contains("is in use by another odeflash process") && err.contains(&pid),
            "{err}"
        );
    }
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.matches("epoch").count(), 1, "{metrics}");
    assert_eq!(config(&run)["train"]["epochs"].as_integer(), Some(400));
    // The lock went with the killed process: the run resumes.
    let done: u64 = metrics.lines().count() as u64 - 1;
    ok(train(
        &data,
        &run,
        &["--resume", "--epochs", &(done + 1).to_string()],
    )
    .output()
    .unwrap());
    // A resume that has nothing left to train says so.
    let err = fails(&mut train(&data, &run, &["--resume", "--epochs", "1"]));
    assert!(
        err.contains("would train nothing; pass --epochs with more than"),
        "{err}"
    );
}

/// `--resume` with options that differ from the run's, or on data whose content changed, is
/// refused naming each difference; `--epochs` alone may change.
#[test]
fn resume_refuses_what_it_would_ignore() {
    let tmp = tempfile::tempdir().unwrap();
    let data = rig(tmp.path(), "rig");
    let other = rig(tmp.path(), "other");
    let run = tmp.path().join("run");
    ok(train(&data, &run, &["--epochs", "1"]).output().unwrap());

    let mut cmd = odeflash();
    cmd.args([
        "train",
        "memristor",
        "--model",
        "dual",
        "--lr",
        "0.5",
        "--resume",
        "--quiet",
    ])
    .arg("--data")
    .arg(&other)
    .arg("--out")
    .arg(&run);
    let err = fails(&mut cmd);
    for what in [
        "--resume continues the run as it was started",
        "train.lr: the run has 0.01, not 0.5",
        "--data: the run trains on",
        "--model: the run trains Single, not Dual",
    ] {
        assert!(err.contains(what), "{what}: {err}");
    }
    let err = fails(&mut train(
        &data,
        &run,
        &["--resume", "--warmup-periods", "0.5"],
    ));
    assert!(
        err.contains("--warmup-periods: the run has 1, not 0.5"),
        "{err}"
    );
    // How the run started: train() passes --preset small, as the run did; another is refused.
    let mut cmd = odeflash();
    cmd.args([
        "train",
        "memristor",
        "--model",
        "single",
        "--preset",
        "paper",
    ])
    .args([
        "--init-candidates",
        "2",
        "--resume",
        "--quiet",
        "--epochs",
        "2",
    ])
    .arg("--data")
    .arg(&data)
    .arg("--out")
    .arg(&run);
    let err = fails(&mut cmd);
    assert!(
        err.contains("--preset: the run started with small, not paper")
            && err.contains("--init-candidates: the run started with 4, not 2"),
        "{err}"
    );

    // The same directory with one sample changed.
    let csv = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let row = lines.len() / 2;
    let cells: Vec<&str> = lines[row].split(',').collect();
    let v: f64 = cells.last().unwrap().parse().unwrap();
    let changed = format!("{},{}", cells[..cells.len() - 1].join(","), v * 1.5 + 1e-6);
    lines[row] = changed;
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let err = fails(&mut train(&data, &run, &["--resume", "--epochs", "3"]));
    assert!(
        err.contains("the data changed since the run started"),
        "{err}"
    );
}

/// An experiment file changes what it sets and nothing else of the preset; what is out of
/// range is refused with the file, line and setting, before a run directory exists.
#[test]
fn config_files_layer_over_the_preset_and_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = rig(tmp.path(), "rig");
    let preset = tmp.path().join("preset");
    ok(train(&data, &preset, &["--epochs", "1"]).output().unwrap());
    let layered = tmp.path().join("layered");
    let file = tmp.path().join("epochs.toml");
    std::fs::write(&file, "[train]\nepochs = 1\n[optimizer]\nbeta1 = 0.8\n").unwrap();
    ok(train(&data, &layered, &["--config"])
        .arg(&file)
        .output()
        .unwrap());
    // A run's config.toml holds what the run used, and serves as an experiment file.
    assert!(!config(&preset).contains_key("net") && !config(&preset).contains_key("states"));
    let again = tmp.path().join("again");
    ok(train(&data, &again, &["--config"])
        .arg(preset.join("config.toml"))
        .output()
        .unwrap());
    assert_eq!(config(&again), config(&preset));
    // ... as does one from before such sections were left out: they stand at their defaults.
    let old_style = tmp.path().join("old.toml");
    std::fs::write(&old_style, "states = 0\n[train]\nepochs = 1\n").unwrap();
    ok(train(&data, &tmp.path().join("old"), &["--config"])
        .arg(&old_style)
        .output()
        .unwrap());
    let (mut a, b) = (config(&preset), config(&layered));
    a.get_mut("optimizer")
        .and_then(toml::Value::as_table_mut)
        .unwrap()
        .insert("beta1".into(), toml::Value::Float(0.8));
    assert_eq!(a, b, "only beta1 differs from the preset");

    for (text, line, what) in [
        (
            "[train]\nepochs = 1\nclip_norm = -1.0\n",
            3,
            "train.clip_norm: -1 must be above 0",
        ),
        (
            "[train]\nclip_norm = nan\n",
            2,
            "train.clip_norm: NaN is not a finite number",
        ),
        (
            "[train]\nepochs = 0\n",
            2,
            "train.epochs: 0 must be at least 1",
        ),
        (
            "\n[train]\nlr = -0.1\n",
            3,
            "train.lr: -0.1 must be above 0",
        ),
        (
            "[train]\nbatch_size = 9223372036854775807\n",
            2,
            "train.batch_size",
        ),
        ("[train]\nwindow = 1\n", 2, "train.window"),
        ("[train]\naverage = 1.5\n", 2, "train.average"),
        ("[optimizer]\nbeta2 = 1.0\n", 2, "optimizer.beta2"),
        ("[net]\nwidth = 3\n", 1, "net: this command does not use it"),
        ("states = 3\n", 1, "states: this command does not use it"),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = tmp.path().join("refused");
        let err = fails(train(&data, &out, &["--config"]).arg(&file));
        let at = format!("epochs.toml:{line}: {what}");
        assert!(err.contains(&at), "{text:?}: want {at:?} in {err}");
        assert!(!out.exists(), "{text:?}: a run directory was created");
    }
}

/// Flags out of range are refused by name (never taken as "none"), and a warm-up that leaves
/// fewer than two samples of a record is refused before training.
#[test]
fn flags_and_warmups_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let data = rig(tmp.path(), "rig");
    let run = tmp.path().join("run");
    for flag in [
        "--clip-norm=-1",
        "--clip-norm=nan",
        "--average=nan",
        "--epochs=0",
        "--lr=0",
    ] {
        let err = fails(&mut train(&data, &run, &[flag]));
        let name = flag.split('=').next().unwrap();
        assert!(
            err.contains("invalid value") && err.contains(name),
            "{flag}: {err}"
        );
    }
    // eval (skip mode) refuses the same warm-up with the same check; data check by the flag.
    let mut eval = odeflash();
    eval.args(["eval", "--warmup-periods", "2", "no-model"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("report"));
    let err = fails(&mut eval);
    assert!(
        err.contains("--warmup-periods 2: leaves fewer than two samples of"),
        "{err}"
    );
    let mut check = odeflash();
    check
        .args(["data", "check", "--warmup-periods=-1"])
        .arg("--data")
        .arg(&data);
    let err = fails(&mut check);
    assert!(err.contains("--warmup-periods"), "{err}");
    let err = fails(&mut train(&data, &run, &["--warmup-periods", "2"]));
    assert!(
        err.contains("--warmup-periods 2: leaves fewer than two samples of")
            && err.contains("400 samples, 200.0 per period"),
        "{err}"
    );
    assert!(!run.exists());

    // A directory of the user's own is not a run directory.
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("config.toml"), "[train]\nlr = 0.1\n").unwrap();
    let err = fails(&mut train(&data, &run, &["--epochs", "1"]));
    assert!(
        err.contains("holds no interrupted odeflash run (config.toml)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("config.toml")).unwrap(),
        "[train]\nlr = 0.1\n"
    );
}

/// `export` of a run that has no checkpoint says so (it is not a resume), and `--tolerance nan`
/// is refused.
#[test]
fn export_of_an_untrained_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("config.toml"), "").unwrap();
    let model = tmp.path().join("m.ofm");
    let err = fails(odeflash().arg("export").arg(&run).arg("--out").arg(&model));
    assert!(
        err.contains("holds no trained model") && !err.contains("resume"),
        "{err}"
    );
    let err = fails(
        odeflash()
            .arg("export")
            .arg(&run)
            .arg("--out")
            .arg(&model)
            .arg("--tolerance=nan"),
    );
    assert!(
        err.contains("--tolerance") && err.contains("not a finite number"),
        "{err}"
    );
}
