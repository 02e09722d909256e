//! What a writing command may overwrite (`odeflash_reference::files`): never a file it did not
//! write, nothing inside a training run directory and no foreign non-empty directory, unless
//! `--force`; a re-run into its own output directory replaces its own files; `--force` deletes
//! nothing else. One test per writing command.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use odeflash_reference::stimulus::{sine, to_csv};
use odeflash_runtime::spec::examples::single_nn_memode;
use odeflash_runtime::spec::Quant;

fn odeflash(args: &[&dyn AsRef<OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odeflash"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("the binary starts")
}

fn ok(args: &[&dyn AsRef<OsStr>]) {
    let out = odeflash(args);
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command is refused for `path`, which names the flag to pass.
fn refused(args: &[&dyn AsRef<OsStr>], path: &Path) {
    let out = odeflash(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "names {}: {stderr}",
        path.display()
    );
    assert!(stderr.contains("pass --force to overwrite"), "{stderr}");
}

/// A user's file, whose content is checked to survive.
fn user_file(path: &Path) -> PathBuf {
    std::fs::write(path, "mine\n").unwrap();
    path.to_path_buf()
}

fn untouched(path: &Path) {
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        "mine\n",
        "{}",
        path.display()
    );
}

fn synth(dir: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&dyn AsRef<OsStr>> = vec![
        &"data",
        &"synth-memristor",
        &"--out",
        &dir,
        &"--periods",
        &"2",
        &"--samples-per-period",
        &"100",
    ];
    for e in extra {
        args.push(e);
    }
    odeflash(&args)
}

/// A tiny rig dataset, a one-epoch run on it and a model file exported from the run.
struct Fixture {
    _root: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
    run: PathBuf,
    ofm: PathBuf,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let data = dir.join("data");
    let run = dir.join("run");
    let ofm = dir.join("m.ofm");
    assert!(synth(&data, &[]).status.success());
    ok(&[
        &"train",
        &"memristor",
        &"--data",
        &data,
        &"--model",
        &"single",
        &"--preset",
        &"small",
        &"--epochs",
        &"1",
        &"--out",
        &run,
        &"--quiet",
    ]);
    ok(&[&"export", &run, &"--out", &ofm]);
    Fixture {
        _root: root,
        dir,
        data,
        run,
        ofm,
    }
}

#[test]
fn synth_memristor_keeps_a_users_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("rig");
    std::fs::create_dir(&dir).unwrap();
    let manifest = user_file(&dir.join("manifest.toml"));
    let out = synth(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    refused(
        &[
            &"data",
            &"synth-memristor",
            &"--out",
            &dir,
            &"--periods",
            &"2",
        ],
        &dir,
    );
    untouched(&manifest);
    // Any non-empty directory, not only one with a manifest.
    let other = root.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let notes = user_file(&other.join("notes.txt"));
    assert_eq!(synth(&other, &[]).status.code(), Some(1));
    // --force writes the data set and deletes nothing else.
    assert!(synth(&other, &["--force"]).status.success());
    untouched(&notes);
    assert!(other.join("manifest.toml").is_file());
    // Its own output: a re-run replaces it without --force.
    let own = root.path().join("own");
    assert!(synth(&own, &[]).status.success());
    assert!(synth(&own, &[]).status.success());
}

#[test]
fn synth_oscillator_refuses_a_foreign_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let notes = user_file(&dir.join("notes.txt"));
    let args = |force: bool| {
        let mut a: Vec<&dyn AsRef<OsStr>> = vec![
            &"data",
            &"synth-oscillator",
            &"--out",
            &dir,
            &"--train",
            &"1",
            &"--validation",
            &"1",
            &"--samples",
            &"11",
        ];
        if force {
            a.push(&"--force");
        }
        odeflash(&a)
    };
    refused(
        &[
            &"data",
            &"synth-oscillator",
            &"--out",
            &dir,
            &"--train",
            &"1",
        ],
        &dir,
    );
    assert!(args(true).status.success());
    untouched(&notes);
    // Another command's output directory is not this command's.
    let synth_dir = root.path().join("rig");
    assert!(synth(&synth_dir, &[]).status.success());
    refused(
        &[
            &"data",
            &"synth-oscillator",
            &"--out",
            &synth_dir,
            &"--train",
            &"1",
        ],
        &synth_dir,
    );
}

#[test]
fn export_never_writes_into_a_run_or_over_a_file() {
    let f = fixture();
    let best = f.run.join("best.json");
    let before = std::fs::read(&best).unwrap();
    refused(&[&"export", &f.run, &"--out", &best], &best);
    assert_eq!(std::fs::read(&best).unwrap(), before);
    // A new file inside the run directory, or below it, is refused too.
    let inside = f.run.join("model.ofm");
    refused(&[&"export", &f.run, &"--out", &inside], &f.run);
    assert!(!inside.exists());
    let below = f.run.join("snapshots").join("model.ofm");
    refused(&[&"export", &f.run, &"--out", &below], &f.run);
    // An existing file, even a model file.
    let mine = user_file(&f.dir.join("mine.ofm"));
    refused(&[&"export", &f.run, &"--out", &mine], &mine);
    untouched(&mine);
    ok(&[&"export", &f.run, &"--out", &mine, &"--force"]);
    assert_ne!(std::fs::read(&mine).unwrap(), b"mine\n");
    ok(&[&"export", &f.run, &"--out", &inside, &"--force"]);
    assert!(inside.is_file());
}

#[test]
fn eval_writes_into_its_own_report_only() {
    let f = fixture();
    let eval = |out: &Path, force: bool| {
        let mut a: Vec<&dyn AsRef<OsStr>> =
            vec![&"eval", &"--data", &f.data, &f.ofm, &"--out", &out];
        if force {
            a.push(&"--force");
        }
        odeflash(&a)
    };
    let report = f.dir.join("report");
    assert!(eval(&report, false).status.success());
    assert!(eval(&report, false).status.success(), "a re-run");
    let foreign = f.dir.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    let notes = user_file(&foreign.join("report.md"));
    refused(
        &[&"eval", &"--data", &f.data, &f.ofm, &"--out", &foreign],
        &foreign,
    );
    untouched(&notes);
    let in_run = f.run.join("report");
    refused(
        &[&"eval", &"--data", &f.data, &f.ofm, &"--out", &in_run],
        &f.run,
    );
    assert!(!in_run.exists());
    assert!(eval(&foreign, true).status.success());
    assert!(foreign.join("report.json").is_file());
}

#[test]
fn simulate_refuses_an_existing_output() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let model = dir.join("m.ofm");
    let blob = single_nn_memode(&[8], 1).try_encode(Quant::F32).unwrap();
    std::fs::write(&model, blob.as_bytes()).unwrap();
    let (t, v) = sine(0.5, 10.0, 50, 1);
    let stim = dir.join("stim.csv");
    std::fs::write(&stim, to_csv(&[], &t, &v)).unwrap();
    let stim2 = dir.join("stim2.csv");
    std::fs::write(&stim2, to_csv(&[], &t, &v)).unwrap();
    let out = user_file(&dir.join("out.csv"));
    refused(
        &[
            &"simulate",
            &"--model",
            &model,
            &"--stimulus",
            &stim,
            &"--out",
            &out,
        ],
        &out,
    );
    untouched(&out);
    ok(&[
        &"simulate",
        &"--model",
        &model,
        &"--stimulus",
        &stim,
        &"--out",
        &out,
        &"--force",
    ]);
    // Several stimuli: a directory, its own on a re-run, a foreign one refused.
    let batch = dir.join("batch");
    for _ in 0..2 {
        ok(&[
            &"simulate",
            &"--model",
            &model,
            &"--stimulus",
            &stim,
            &"--stimulus",
            &stim2,
            &"--out",
            &batch,
        ]);
    }
    let foreign = dir.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    let theirs = user_file(&foreign.join("stim.csv"));
    refused(
        &[
            &"simulate",
            &"--model",
            &model,
            &"--stimulus",
            &stim,
            &"--stimulus",
            &stim2,
            &"--out",
            &foreign,
        ],
        &foreign,
    );
    untouched(&theirs);
    // One stimulus into an existing directory: the file there is refused.
    refused(
        &[
            &"simulate",
            &"--model",
            &model,
            &"--stimulus",
            &stim,
            &"--out",
            &foreign,
        ],
        &foreign.join("stim.csv"),
    );
    untouched(&theirs);
}

#[test]
fn baseline_reruns_into_its_own_directory_only() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    assert!(synth(&data, &[]).status.success());
    let fit = |out: &Path| {
        odeflash(&[
            &"baseline",
            &"mms",
            &"--data",
            &data,
            &"--out",
            &out,
            &"--generations",
            &"2",
            &"--population",
            &"8",
            &"--lbfgs-iterations",
            &"1",
            &"--de-periods",
            &"1",
            &"--refine-periods",
            &"1",
            &"--threads",
            &"1",
        ])
    };
    let mms = root.path().join("mms");
    assert!(fit(&mms).status.success());
    assert!(fit(&mms).status.success(), "a re-run");
    // The data set is another command's directory.
    let out = fit(&data);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --force"));
    assert!(!data.join("fit.json").exists());
}

#[test]
fn import_inspect_solve_and_device_check_refuse_an_existing_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let model = dir.join("m.ofm");
    let blob = single_nn_memode(&[8], 1).try_encode(Quant::F32).unwrap();
    std::fs::write(&model, blob.as_bytes()).unwrap();
    let spec = dir.join("spec.json");
    ok(&[&"inspect", &model, &"--json", &"--out", &spec]);
    let mine = user_file(&dir.join("mine"));
    refused(&[&"inspect", &model, &"--json", &"--out", &mine], &mine);
    refused(&[&"import", &spec, &"--out", &mine], &mine);
    refused(
        &[
            &"solve",
            &"--problem",
            &"linear",
            &"--outputs",
            &"3",
            &"--out",
            &mine,
        ],
        &mine,
    );
    // Refused before the firmware is built: no QEMU needed.
    refused(
        &[
            &"device-check",
            &"--model",
            &model,
            &"--sine",
            &"0.5,10",
            &"--json",
            &mine,
        ],
        &mine,
    );
    untouched(&mine);
    ok(&[&"import", &spec, &"--out", &mine, &"--force"]);
    assert_ne!(std::fs::read(&mine).unwrap(), b"mine\n");
}

#[test]
fn stiff_commands_refuse_a_foreign_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let notes = user_file(&dir.join("notes.txt"));
    refused(
        &[
            &"stiff-train",
            &"--problem",
            &"linear",
            &"--method",
            &"radau5",
            &"--points",
            &"5",
            &"--epochs",
            &"1",
            &"--out",
            &dir,
        ],
        &dir,
    );
    refused(
        &[
            &"stiff-experiment",
            &"--problem",
            &"linear",
            &"--points",
            &"5",
            &"--epochs",
            &"1",
            &"--out",
            &dir,
        ],
        &dir,
    );
    untouched(&notes);
}
