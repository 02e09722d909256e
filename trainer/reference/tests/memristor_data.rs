//! The rig-data loader: every defect is reported with its file and line.

// Inside `mod memristor` so that `cargo test memristor` selects these tests.
mod memristor {
    use std::path::Path;

    use odeflash_reference::memristor::data::{Measured, MemristorDataset, Split};

    /// A CSV with `n` samples `dt` apart: `v_s = sin`, `v = v_s / 2`, current through 1 kohm.
    fn csv(cols: &str, n: usize, dt: f64) -> String {
        let mut s = format!("# a comment line\n{cols}\n");
        for k in 0..n {
            let t = k as f64 * dt;
            let vs = (t * 7.0).sin();
            let v = vs / 2.0;
            let i = (vs - v) / 1000.0;
            let row: Vec<String> = cols
                .split(',')
                .map(|c| match c.trim() {
                    "t" => format!("{t}"),
                    "v_s" => format!("{vs}"),
                    "v" => format!("{v}"),
                    "i" => format!("{i}"),
                    _ => "0".into(),
                })
                .collect();
            s.push_str(&row.join(","));
            s.push('\n');
        }
        s
    }

    fn entry(file: &str, split: &str, extra: &str) -> String {
        format!(
            "\n[[trajectory]]\nfile = \"{file}\"\namplitude = 1.0\nfrequency = 5\nseries_resistance = 1000.0\nsplit = \"{split}\"\n{extra}"
        )
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    /// A valid two-file dataset; returns the directory.
    fn good() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.csv", &csv("t,v_s,v,i", 50, 1e-3));
        write(d.path(), "b.csv", &csv("t,v_s,v", 80, 2e-3));
        let m = format!(
            "# rig\n{}{}",
            entry("a.csv", "train", ""),
            entry("b.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        d
    }

    fn err(dir: &Path) -> String {
        match MemristorDataset::load(dir) {
            Ok(_) => panic!("{} was accepted", dir.display()),
            Err(e) => format!("{e}"),
        }
    }

    #[test]
    fn loads_files_of_different_length_and_step() {
        let d = good();
        let ds = MemristorDataset::load(d.path()).unwrap();
        assert_eq!(ds.trajectories.len(), 2);
        let (a, b) = (&ds.trajectories[0], &ds.trajectories[1]);
        assert_eq!((a.len(), b.len()), (50, 80));
        assert!((a.dt - 1e-3).abs() < 1e-12 && (b.dt - 2e-3).abs() < 1e-12);
        assert_eq!(a.measured, Measured::Both);
        assert_eq!(b.measured, Measured::VoltageOnly);
        assert_eq!(a.split, Split::Train);
        assert_eq!(b.split, Split::Validation);
        // Derived current: (v_s - v) / R_s.
        for k in 0..b.len() {
            let i = (b.v_s[k] - b.v[k]) / 1000.0;
            assert!((b.i[k] - i).abs() <= 1e-9);
        }
        assert_eq!(a.manifest_line, 3);
        assert_eq!(b.manifest_line, 10);
    }

    #[test]
    fn converts_units_and_derives_the_voltage() {
        let d = tempfile::tempdir().unwrap();
        // Time in ms, current in mA, no voltage column.
        let mut s = String::from("t,v_s,i\n");
        for k in 0..20 {
            let vs = k as f64 * 0.01;
            s.push_str(&format!("{},{vs},{}\n", k as f64 * 0.5, vs / 2.0));
        }
        write(d.path(), "a.csv", &s);
        write(d.path(), "b.csv", &csv("t,v_s,v", 10, 1e-3));
        let m = format!(
            "{}{}",
            entry(
                "a.csv",
                "train",
                "current_unit = \"mA\"\ntime_unit = \"ms\"\n"
            ),
            entry("b.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        let ds = MemristorDataset::load(d.path()).unwrap();
        let a = &ds.trajectories[0];
        assert_eq!(a.measured, Measured::CurrentOnly);
        assert!((a.dt - 0.5e-3).abs() < 1e-15);
        // i = v_s / 2 mA = v_s / 2000 A; v = v_s - 1000 i = v_s / 2.
        assert!((a.i[10] - 0.1 / 2000.0).abs() < 1e-9);
        assert!((a.v[10] - 0.05).abs() < 1e-6);
    }

    #[test]
    fn missing_voltage_and_current_columns() {
        let d = good();
        write(d.path(), "a.csv", &csv("t,v_s,x", 10, 1e-3));
        let e = err(d.path());
        assert!(e.contains("a.csv:2: column `v` or `i`"), "{e}");
        assert!(e.contains("missing from the header"), "{e}");
    }

    #[test]
    fn missing_supply_column() {
        let d = good();
        write(d.path(), "b.csv", &csv("t,v", 10, 1e-3));
        let e = err(d.path());
        assert!(e.contains("b.csv:2: column `v_s`"), "{e}");
    }

    #[test]
    fn time_not_increasing() {
        let d = good();
        let mut s = csv("t,v_s,v,i", 10, 1e-3);
        s = s.replace("\n0.004,", "\n0.002,");
        write(d.path(), "a.csv", &s);
        let e = err(d.path());
        // Header on line 2, sample k on line 3 + k.
        assert!(
            e.contains("a.csv:7: column `t`: time does not increase"),
            "{e}"
        );
    }

    #[test]
    fn time_not_uniform() {
        let d = good();
        let s = csv("t,v_s,v", 10, 2e-3).replace("\n0.008,", "\n0.0085,");
        write(d.path(), "b.csv", &s);
        let e = err(d.path());
        assert!(e.contains("b.csv:7: column `t`: time step"), "{e}");
    }

    #[test]
    fn nan_value() {
        let d = good();
        let mut lines: Vec<String> = csv("t,v_s,v,i", 10, 1e-3)
            .lines()
            .map(String::from)
            .collect();
        lines[5] = "0.003,0.1,NaN,0.0".into();
        write(d.path(), "a.csv", &(lines.join("\n") + "\n"));
        let e = err(d.path());
        assert!(
            e.contains("a.csv:6: column `v`: `NaN` is not a finite number"),
            "{e}"
        );
    }

    #[test]
    fn unknown_current_unit() {
        let d = good();
        let m = format!(
            "{}{}",
            entry("a.csv", "train", "current_unit = \"nA\"\n"),
            entry("b.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml:8:16: current_unit = \"nA\": unknown unit"),
            "{e}"
        );
    }

    #[test]
    fn unknown_time_unit() {
        let d = good();
        let m = format!(
            "{}{}",
            entry("a.csv", "train", ""),
            entry("b.csv", "validation", "time_unit = \"us\"\n")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml:15:13: time_unit = \"us\": unknown unit"),
            "{e}"
        );
    }

    #[test]
    fn unknown_split() {
        let d = good();
        let m = format!(
            "{}{}",
            entry("a.csv", "train", ""),
            entry("b.csv", "test", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml:14:9: split = \"test\": unknown split"),
            "{e}"
        );
    }

    #[test]
    fn negative_series_resistance() {
        let d = good();
        let m = format!(
            "{}{}",
            entry("a.csv", "train", "").replace("1000.0", "-1000.0"),
            entry("b.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml:6:21: series_resistance = -1000"),
            "{e}"
        );
    }

    #[test]
    fn file_listed_twice() {
        let d = good();
        let m = format!(
            "{}{}{}",
            entry("a.csv", "train", ""),
            entry("b.csv", "validation", ""),
            entry("./a.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml:17:8: file = \"./a.csv\" is listed twice (first at line 2)"),
            "{e}"
        );
    }

    #[test]
    fn identical_files() {
        let d = good();
        std::fs::copy(d.path().join("a.csv"), d.path().join("c.csv")).unwrap();
        let m = format!(
            "{}{}{}",
            entry("a.csv", "train", ""),
            entry("b.csv", "validation", ""),
            entry("c.csv", "train", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(e.contains("manifest.toml:16: "), "{e}");
        assert!(
            e.contains("c.csv has the same contents as") && e.contains("a.csv (line 2)"),
            "{e}"
        );
    }

    #[test]
    fn unlisted_csv_is_an_error_unless_ignored() {
        let d = good();
        write(d.path(), "stray.csv", "anything\n");
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml: `stray.csv` is in the directory but not in the manifest"),
            "{e}"
        );
        let m = std::fs::read_to_string(d.path().join("manifest.toml")).unwrap();
        write(
            d.path(),
            "manifest.toml",
            &format!("ignore = [\"stray.csv\"]\n{m}"),
        );
        MemristorDataset::load(d.path()).unwrap();
    }

    #[test]
    fn empty_split() {
        let d = good();
        let m = format!(
            "{}{}",
            entry("a.csv", "train", ""),
            entry("b.csv", "train", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(e.contains("the validation split is empty"), "{e}");
    }

    #[test]
    fn toml_syntax_and_unknown_fields() {
        let d = good();
        write(
            d.path(),
            "manifest.toml",
            "[[trajectory]]\nfile = \"a.csv\nsplit = 1\n",
        );
        let e = err(d.path());
        assert!(e.contains("manifest.toml:2:"), "{e}");
        let m = format!(
            "{}{}",
            entry("a.csv", "train", "gain = 2\n"),
            entry("b.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(e.contains("manifest.toml:8:1: unknown field `gain`"), "{e}");
        let m = format!(
            "{}{}",
            entry("a.csv", "train", "").replace("amplitude = 1.0\n", ""),
            entry("b.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml:2:1: missing field `amplitude`"),
            "{e}"
        );
    }

    #[test]
    fn missing_file() {
        let d = good();
        std::fs::remove_file(d.path().join("b.csv")).unwrap();
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml:11:8: file = \"b.csv\": ") && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn current_contradicting_the_series_resistor() {
        // The current is written in mA but the manifest says A: a factor of 1000.
        let d = good();
        let s = csv("t,v_s,v,i", 50, 1e-3);
        let mut out = String::new();
        for (k, l) in s.lines().enumerate() {
            if k < 2 {
                out.push_str(l);
            } else {
                let f: Vec<&str> = l.split(',').collect();
                let i: f64 = f[3].parse().unwrap();
                out.push_str(&format!("{},{},{},{}", f[0], f[1], f[2], i * 1000.0));
            }
            out.push('\n');
        }
        write(d.path(), "a.csv", &out);
        let e = err(d.path());
        assert!(
            e.contains("a.csv:2: column `i`: (v_s - v) / i fits a series resistance"),
            "{e}"
        );
        assert!(e.contains("check current_unit"), "{e}");
    }

    #[test]
    fn no_trajectories() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "manifest.toml", "# nothing\n");
        let e = err(d.path());
        assert!(e.contains("manifest.toml: no [[trajectory]] tables"), "{e}");
        let e = format!(
            "{}",
            MemristorDataset::load(&d.path().join("nope")).unwrap_err()
        );
        assert!(e.contains("cannot read"), "{e}");
    }

    /// `n` samples `dt` apart of `v_s = amplitude * sin(2 pi f t + phase)`, `v = v_s / 2`.
    fn sine_csv(amplitude: f64, f: f64, phase: f64, n: usize, dt: f64) -> String {
        let mut s = String::from("t,v_s,v\n");
        for k in 0..n {
            let t = k as f64 * dt;
            let vs = amplitude * (2.0 * std::f64::consts::PI * f * t + phase).sin();
            s.push_str(&format!("{t},{vs},{}\n", vs / 2.0));
        }
        s
    }

    #[test]
    fn manifest_paths_stay_inside_the_dataset() {
        for (file, why) in [
            ("/etc/passwd", "an absolute path"),
            ("/dev/zero", "an absolute path"),
            ("../../x.csv", "a path with `..`"),
            ("sub/../../x.csv", "a path with `..`"),
        ] {
            let d = good();
            let m = format!(
                "{}{}",
                entry("a.csv", "train", ""),
                entry(file, "validation", "")
            );
            write(d.path(), "manifest.toml", &m);
            write(d.path(), "b.csv.keep", "");
            let e = err(d.path());
            assert!(
                e.contains(&format!("manifest.toml:10:8: file = \"{file}\": {why}")),
                "{e}"
            );
            assert!(!e.contains("root:"), "{e}");
        }
        // A symlink inside the directory that resolves outside it.
        let d = good();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "x.csv", &csv("t,v_s,v", 80, 2e-3));
        std::fs::remove_file(d.path().join("b.csv")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.csv"), d.path().join("b.csv")).unwrap();
        let e = err(d.path());
        assert!(
            e.contains("manifest.toml:11:8: file = \"b.csv\": a symlink to"),
            "{e}"
        );
        assert!(e.contains("outside the directory"), "{e}");
    }

    #[test]
    fn fifo_and_device_records_are_refused() {
        let d = good();
        std::fs::remove_file(d.path().join("b.csv")).unwrap();
        let fifo = d.path().join("b.csv");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = d.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(err(&dir));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("blocked on the FIFO");
        assert!(
            e.contains("b.csv: is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        assert!(e.contains("manifest.toml:11:8: file = \"b.csv\": "), "{e}");
    }

    #[test]
    fn same_samples_in_train_and_validation() {
        let d = good();
        // The same data, differing only in a comment line and the spelling of the numbers.
        let a = std::fs::read_to_string(d.path().join("a.csv")).unwrap();
        let copy = a
            .replace("# a comment line", "# recorded again")
            .replace(",0\n", ",0.0\n");
        write(d.path(), "c.csv", &copy);
        let m = format!(
            "{}{}{}",
            entry("a.csv", "train", ""),
            entry("b.csv", "validation", ""),
            entry("c.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(e.contains("manifest.toml:16: "), "{e}");
        assert!(e.contains("c.csv has the same contents as"), "{e}");
        assert!(
            e.contains("in both the train and the validation split"),
            "{e}"
        );
    }

    #[test]
    fn single_brackets_say_to_write_double() {
        let d = good();
        let m = "[trajectory]\nfile = \"a.csv\"\namplitude = 1.0\nfrequency = 5\n\
                 series_resistance = 1000.0\nsplit = \"train\"\n\n[trajectory]\nfile = \"b.csv\"\n";
        write(d.path(), "manifest.toml", m);
        let e = err(d.path());
        assert!(
            e.contains(
                "manifest.toml:1: write `[[trajectory]]` (double brackets: one table per record)"
            ),
            "{e}"
        );
    }

    #[test]
    fn huge_value_is_out_of_the_f32_range() {
        let d = good();
        let s = csv("t,v_s,v,i", 50, 1e-3).replacen("\n0.003,", "\n0.003,1e300,", 1);
        let s = s.replacen("1e300,", "1e300,0,0\n#", 1);
        write(d.path(), "a.csv", &s);
        let e = err(d.path());
        assert!(
            e.contains("a.csv:6: column `v_s`: `1e300` is out of the f32 range (±3.4e38)"),
            "{e}"
        );
    }

    #[test]
    fn frequency_and_amplitude_are_checked_against_the_drive() {
        // A 1 Hz record labelled 5 Hz (the fixture's entry).
        let d = good();
        write(d.path(), "a.csv", &sine_csv(1.0, 1.0, 0.3, 2000, 1e-3));
        let e = err(d.path());
        assert!(
            e.contains(
                "manifest.toml:4: file = \"a.csv\": frequency = 5 Hz, but `v_s` repeats at 1.0"
            ),
            "{e}"
        );
        assert!(e.contains("check frequency and time_unit"), "{e}");
        // Time in ms without `time_unit = "ms"`: 5 Hz data seen at 0.005 Hz.
        let d = good();
        let ms: String = sine_csv(1.0, 5.0, 0.0, 400, 1e-3)
            .lines()
            .enumerate()
            .map(|(k, l)| match (k, l.split_once(',')) {
                (0, _) | (_, None) => format!("{l}\n"),
                (_, Some((t, rest))) => format!("{},{rest}\n", t.parse::<f64>().unwrap() * 1e3),
            })
            .collect();
        write(d.path(), "a.csv", &ms);
        let e = err(d.path());
        assert!(
            e.contains("frequency = 5 Hz, but `v_s` repeats at 0.0050 Hz"),
            "{e}"
        );
        // Time in seconds marked `time_unit = "ms"`: 5 Hz data seen at 5000 Hz.
        let d = good();
        write(d.path(), "a.csv", &sine_csv(1.0, 5.0, 0.0, 400, 1e-3));
        let m = format!(
            "{}{}",
            entry("a.csv", "train", "time_unit = \"ms\"\n"),
            entry("b.csv", "validation", "")
        );
        write(d.path(), "manifest.toml", &m);
        let e = err(d.path());
        assert!(
            e.contains("frequency = 5 Hz, but `v_s` repeats at 5000.0"),
            "{e}"
        );
        assert!(e.contains("time_unit = \"ms\""), "{e}");
        // Amplitude 3 V labelled 1 V.
        let d = good();
        write(d.path(), "a.csv", &sine_csv(3.0, 5.0, 0.0, 400, 1e-3));
        let e = err(d.path());
        assert!(
            e.contains("file = \"a.csv\": amplitude = 1 V, but `v_s` swings by ±3.0"),
            "{e}"
        );
        // A unipolar drive labelled by its peak passes.
        let d = good();
        let offset: String = sine_csv(0.5, 5.0, 0.0, 400, 1e-3)
            .lines()
            .enumerate()
            .map(|(k, l)| {
                let f: Vec<&str> = l.split(',').collect();
                match (k, f.as_slice()) {
                    (0, _) => format!("{l}\n"),
                    (_, [t, vs, _]) => {
                        let vs = vs.parse::<f64>().unwrap() + 0.5;
                        format!("{t},{vs},{}\n", vs / 2.0)
                    }
                    _ => unreachable!(),
                }
            })
            .collect();
        write(d.path(), "a.csv", &offset);
        MemristorDataset::load(d.path()).unwrap_or_else(|e| panic!("unipolar: {e}"));
        // One period at any phase, one and a half, and a short record all pass.
        for (phase, n) in [(0.0, 201), (1.3, 201), (2.9, 201), (4.0, 301), (0.5, 60)] {
            let d = good();
            write(d.path(), "a.csv", &sine_csv(1.0, 5.0, phase, n, 1e-3));
            MemristorDataset::load(d.path())
                .unwrap_or_else(|e| panic!("phase {phase}, {n} samples: {e}"));
        }
    }
}
