//! `odeflash eval` end to end on a tiny synthetic rig dataset: a trained run, the model file
//! exported from it and an MMS fit, scored alike and checked against independent references
//! (the run's own validation loss, `baseline::evaluate`, Table II recomputed from Table I).

// Inside `mod memristor` so that `cargo test memristor` selects these tests.
mod memristor {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use odeflash_reference::memristor::baseline::{self, FitReport, SimOptions};
    use odeflash_reference::memristor::data::{MemristorDataset, Split};
    use odeflash_training::run::Checkpoint;
    use serde_json::Value;

    fn odeflash(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_odeflash"))
            .args(args.iter().map(|a| a.as_ref()))
            .output()
            .expect("the binary starts")
    }

    fn ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
        let out = odeflash(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "failed: {stderr}");
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// The command fails; returns its standard error.
    fn fails(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
        let out = odeflash(args);
        assert!(!out.status.success(), "succeeded unexpectedly");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    /// Width and height of a PNG, after checking its signature.
    fn png_size(path: &Path) -> (u32, u32, usize) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes.len() > 24 && &bytes[..8] == b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&bytes[16..20]), be(&bytes[20..24]), bytes.len())
    }

    struct Fixture {
        _root: tempfile::TempDir,
        dir: PathBuf,
        data: PathBuf,
        run: PathBuf,
        ofm: PathBuf,
        fit: PathBuf,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_path_buf();
        let data = dir.join("data");
        let run = dir.join("run");
        let ofm = dir.join("single.ofm");
        let fit = dir.join("fit");
        ok(&[
            &"data",
            &"synth-memristor",
            &"--out",
            &data,
            &"--periods",
            &"2",
            &"--samples-per-period",
            &"100",
        ]);
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
            &"3",
            &"--out",
            &run,
            &"--quiet",
        ]);
        ok(&[&"export", &run, &"--out", &ofm]);
        ok(&[
            &"baseline",
            &"mms",
            &"--data",
            &data,
            &"--out",
            &fit,
            &"--generations",
            &"4",
            &"--population",
            &"8",
            &"--lbfgs-iterations",
            &"2",
            &"--de-periods",
            &"1",
            &"--refine-periods",
            &"1",
            &"--threads",
            &"1",
        ]);
        Fixture {
            _root: root,
            dir,
            data,
            run,
            ofm,
            fit,
        }
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn lbs(model: &Value) -> Vec<f64> {
        model["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["lb"].as_f64().unwrap())
            .collect()
    }

    #[test]
    fn eval_scores_every_model_alike_and_draws_the_figures() {
        let f = fixture();
        let ds = MemristorDataset::load(&f.data).unwrap();
        let rep = f.dir.join("report");
        let stdout = ok(&[
            &"eval", &"--data", &f.data, &f.run, &f.ofm, &f.fit, &"--out", &rep,
        ]);
        assert!(stdout.contains("warm-up"), "{stdout}");
        let json = read_json(&rep.join("report.json"));
        let md = std::fs::read_to_string(rep.join("report.md")).unwrap();

        // Every trajectory, in Table I order, with its split.
        let trajs = json["trajectories"].as_array().unwrap();
        assert_eq!(trajs.len(), ds.trajectories.len());
        let key = |t: &Value| {
            (
                t["amplitude"].as_f64().unwrap(),
                t["frequency"].as_f64().unwrap(),
            )
        };
        for w in trajs.windows(2) {
            assert!(key(&w[0]) <= key(&w[1]), "Table I order");
        }
        for t in trajs {
            let name = t["name"].as_str().unwrap();
            let m = ds.get(name).unwrap();
            let split = if m.split == Split::Validation {
                "validation"
            } else {
                "train"
            };
            assert_eq!(t["split"], split);
            // A skip warm-up of one period: scoring starts at the second.
            assert_eq!(t["scored_from"].as_u64().unwrap(), 100);
        }
        // Validation rows are marked in the Markdown table, one per validation trajectory.
        let n_val = ds.validation().len();
        assert!(n_val > 0);
        assert_eq!(md.matches("| **validation** |").count(), n_val, "{md}");

        // Every model, each with a score per trajectory; Table II is the mean of Table I.
        let models = json["models"].as_array().unwrap();
        assert_eq!(models.len(), 3);
        for m in models {
            let label = m["label"].as_str().unwrap();
            assert!(md.contains(label), "{label} missing from report.md");
            let scores = m["scores"].as_array().unwrap();
            assert_eq!(scores.len(), trajs.len());
            let (mut sum, mut n) = ([0.0; 2], [0usize; 2]);
            for (s, t) in scores.iter().zip(trajs) {
                assert_eq!(s["trajectory"], t["name"]);
                let lb = s["lb"].as_f64().unwrap();
                assert!(lb.is_finite() && lb > 0.0);
                let sum_v_i = s["nmse_v"].as_f64().unwrap() + s["nmse_i"].as_f64().unwrap();
                assert!(close(lb, sum_v_i, 1e-12));
                let k = usize::from(s["split"] == "validation");
                sum[k] += lb;
                n[k] += 1;
            }
            let lb = &m["lb"];
            assert!(close(
                lb["train"].as_f64().unwrap(),
                sum[0] / n[0] as f64,
                1e-12
            ));
            assert!(close(
                lb["validation"].as_f64().unwrap(),
                sum[1] / n[1] as f64,
                1e-12
            ));
            let all = (sum[0] + sum[1]) / (n[0] + n[1]) as f64;
            assert!(close(lb["all"].as_f64().unwrap(), all, 1e-12));
            assert!(m["generation_seconds"].as_f64().unwrap() > 0.0);
        }
        let (run, file, mms) = (&models[0], &models[1], &models[2]);
        assert_eq!(run["origin"], "run");
        assert_eq!(file["origin"], "model_file");
        assert_eq!(mms["origin"], "baseline");
        // Training time: the run's epochs, the fit's wall time; a model file has none.
        let epochs: f64 = std::fs::read_to_string(f.run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["seconds"]
                    .as_f64()
                    .unwrap()
            })
            .sum();
        assert!(close(
            run["training_seconds"].as_f64().unwrap(),
            epochs,
            1e-9
        ));
        assert!(file["training_seconds"].is_null());
        let report = FitReport::load(&f.fit.join("fit.json")).unwrap();
        assert_eq!(
            mms["training_seconds"].as_f64().unwrap(),
            report.fit_seconds
        );

        // The run scored with the warm-up it validated with reproduces its best validation loss
        // (training validates with the runtime's fused arithmetic, eval with the device's).
        let best = Checkpoint::load_best(&f.run).unwrap();
        assert_eq!(run["epoch"].as_u64(), Some(best.epoch));
        let val = run["lb"]["validation"].as_f64().unwrap();
        let expected = best.best_val_loss.unwrap();
        assert!(close(val, expected, 1e-4), "{val} vs {expected}");
        // The exported file is the same model: the same scores.
        assert_eq!(lbs(run), lbs(file));

        // Figures: Fig. 6 of the run, Fig. 7 and 8, all drawn.
        let figs: Vec<String> = json["figures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(figs.len(), 3, "{figs:?}");
        assert!(figs[0].starts_with("fig6_"));
        for (name, size) in [
            (&figs[0], (1600, 1000)),
            (&figs[1], (1800, 620)),
            (&figs[2], (1400, 620)),
        ] {
            let (w, h, bytes) = png_size(&rep.join(name));
            assert_eq!((w, h), size, "{name}");
            // Blank canvases of these sizes compress to a few kB; drawn figures are far larger.
            assert!(bytes > 40_000, "{name}: {bytes} bytes");
            assert!(md.contains(name.as_str()));
        }
    }

    #[test]
    fn eval_reproduces_baseline_evaluate() {
        let f = fixture();
        let ds = MemristorDataset::load(&f.data).unwrap();
        let report = FitReport::load(&f.fit.join("fit.json")).unwrap();
        let order = |json: &Value| -> Vec<String> {
            json["trajectories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect()
        };
        for (mode, periods) in [("replay", report.sim.warmup_periods), ("skip", 0.0)] {
            let rep = f.dir.join(format!("rep-{mode}"));
            ok(&[
                &"eval",
                &"--data",
                &f.data,
                &f.fit,
                &"--warmup",
                &mode,
                &"--warmup-periods",
                &periods.to_string(),
                &"--out",
                &rep,
            ]);
            let json = read_json(&rep.join("report.json"));
            let opts = SimOptions {
                warmup_periods: periods,
                ..report.sim
            };
            let reference = baseline::evaluate(report.compact_model(), &ds, &opts);
            let ours = lbs(&json["models"][0]);
            for (name, lb) in order(&json).iter().zip(ours) {
                let r = reference.scores.iter().find(|s| &s.name == name).unwrap();
                assert!(close(lb, r.lb, 1e-12), "{mode} {name}: {lb} vs {}", r.lb);
                if mode == "replay" {
                    // With the fit's own warm-up, also what fit.json reports.
                    let s = report
                        .trajectories
                        .iter()
                        .find(|s| &s.name == name)
                        .unwrap();
                    assert!(close(lb, s.lb, 1e-12), "{name}: {lb} vs fit.json {}", s.lb);
                }
            }
            let lb = &json["models"][0]["lb"];
            assert!(close(lb["all"].as_f64().unwrap(), reference.lb.all, 1e-12));
        }
    }

    /// `--init-baseline` starts SingleNN from the fit (its resistances and initial state, the
    /// state net fitted to its rate), free-run training continues from there, and the run
    /// scores near the compact model it started from.
    #[test]
    fn free_run_training_starts_from_a_baseline_fit() {
        let f = fixture();
        let fit = read_json(&f.fit.join("fit.json"));
        let param = |name: &str| {
            fit["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()["value"]
                .as_f64()
                .unwrap()
        };
        let run = f.dir.join("from-mms");
        let out = ok(&[
            &"train",
            &"memristor",
            &"--data",
            &f.data,
            &"--model",
            &"single",
            &"--preset",
            &"small",
            &"--init-baseline",
            &f.fit.join("fit.json"),
            &"--init-iterations",
            &"3000",
            &"--init-candidates",
            &"3",
            &"--window-start",
            &"free-run",
            &"--lr",
            &"2e-4",
            &"--clip-norm",
            &"1",
            &"--epochs",
            &"3",
            &"--out",
            &run,
            &"--quiet",
        ]);
        // Three starts scored on the training records; training goes on from the best.
        let score = |line: &str| {
            line.rsplit("training L_b ")
                .next()
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no score in {line:?}"))
        };
        let starts: Vec<f64> = out
            .lines()
            .filter(|l| l.contains("start seed"))
            .map(score)
            .collect();
        let chosen = out
            .lines()
            .find(|l| l.contains("nets fitted to mms") && l.contains("best of 3 starts"))
            .map(score)
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(starts.len(), 3, "{out}");
        assert_eq!(chosen, starts.iter().copied().fold(f64::INFINITY, f64::min));
        let init = read_json(&run.join("init.json"));
        let value = |name: &str| {
            init["params"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()["values"][0]
                .as_f64()
                .unwrap()
        };
        assert!(close(value("r_on_kohm") * 1e3, param("R_on"), 1e-6));
        assert!(close(value("r_off_kohm") * 1e3, param("R_off"), 1e-6));
        let job = read_json(&run.join("job.json"));
        assert!(close(
            job["model"]["x0"][0].as_f64().unwrap(),
            param("x0"),
            1e-6
        ));
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(
            config.contains("window_start = \"free_run\"") && config.contains("clip_norm = 1.0")
        );

        let rep = f.dir.join("rep-free");
        ok(&[&"eval", &"--data", &f.data, &run, &f.fit, &"--out", &rep]);
        let report = read_json(&rep.join("report.json"));
        let models = report["models"].as_array().unwrap();
        let val = |m: &Value| m["lb"]["validation"].as_f64().unwrap();
        let (net, mms) = (val(&models[0]), val(&models[1]));
        assert!(net < 3.0 * mms, "from MMS {net} vs MMS {mms}");
    }

    #[test]
    fn eval_names_each_bad_input() {
        let f = fixture();
        let rep = f.dir.join("rep");
        let missing = f.dir.join("no-such-run");
        let err = fails(&[&"eval", &"--data", &f.data, &missing, &"--out", &rep]);
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("no such file"),
            "{err}"
        );

        // A run directory without a trained model.
        let empty_run = f.dir.join("unfinished");
        std::fs::create_dir(&empty_run).unwrap();
        for file in ["job.json", "config.toml"] {
            std::fs::copy(f.run.join(file), empty_run.join(file)).unwrap();
        }
        let err = fails(&[&"eval", &"--data", &f.data, &empty_run, &"--out", &rep]);
        assert!(
            err.contains("no trained model") && err.contains("best.json"),
            "{err}"
        );

        // A fit made on another split of the data.
        let mut fit: Value = read_json(&f.fit.join("fit.json"));
        let first = &mut fit["trajectories"][0]["split"];
        *first = if *first == "train" {
            "validation".into()
        } else {
            "train".into()
        };
        let other = f.dir.join("other-fit.json");
        std::fs::write(&other, fit.to_string()).unwrap();
        let err = fails(&[&"eval", &"--data", &f.data, &other, &"--out", &rep]);
        assert!(
            err.contains(&other.display().to_string()) && err.contains("--allow-other-data"),
            "{err}"
        );
        ok(&[
            &"eval",
            &"--data",
            &f.data,
            &other,
            &"--allow-other-data",
            &"--out",
            &rep,
        ]);

        // A run trained on a copy of the data whose split differs from the evaluated one.
        let moved = f.dir.join("moved");
        std::fs::create_dir(&moved).unwrap();
        for e in std::fs::read_dir(&f.data).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, moved.join(p.file_name().unwrap())).unwrap();
        }
        let manifest = moved.join("manifest.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            text.replacen("split = \"train\"", "split = \"validation\"", 1),
        )
        .unwrap();
        let err = fails(&[&"eval", &"--data", &moved, &f.run, &"--out", &rep]);
        assert!(
            err.contains("job.json") && err.contains("--allow-other-data"),
            "{err}"
        );

        // Neither a run nor a fit; a file that is not a model.
        let err = fails(&[
            &"eval",
            &"--data",
            &f.data,
            &f.dir.join("data"),
            &"--out",
            &rep,
        ]);
        assert!(err.contains("neither a training run"), "{err}");
        let junk = f.dir.join("junk.ofm");
        std::fs::write(&junk, b"not a model").unwrap();
        let err = fails(&[&"eval", &"--data", &f.data, &junk, &"--out", &rep]);
        assert!(err.contains(&junk.display().to_string()), "{err}");

        // Unknown trajectory, epochs without saved parameters, a warm-up longer than the data.
        let err = fails(&[
            &"eval",
            &"--data",
            &f.data,
            &f.fit,
            &"--trajectory",
            &"nope.csv",
            &"--out",
            &rep,
        ]);
        assert!(
            err.contains("nope.csv") && err.contains("manifest.toml"),
            "{err}"
        );
        let err = fails(&[
            &"eval",
            &"--data",
            &f.data,
            &f.run,
            &"--fig6-epochs",
            &"7",
            &"--out",
            &rep,
        ]);
        assert!(err.contains("epoch 7"), "{err}");
        let err = fails(&[
            &"eval",
            &"--data",
            &f.data,
            &f.fit,
            &"--warmup-periods",
            &"2",
            &"--out",
            &rep,
        ]);
        assert!(err.contains("--warmup-periods 2"), "{err}");
    }
}
