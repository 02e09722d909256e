//! The bundled files in `examples/` are exactly what their generators produce.
//!
//! Regenerate them with `ODEFLASH_BLESS=1 cargo test -p odeflash-cli --test examples`.

use std::path::PathBuf;

use odeflash_reference::stimulus::{sine, to_csv};
use odeflash_runtime::spec::examples::single_nn_memode;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("examples")
}

fn check(rel: &str, expected: &str) {
    let path = root().join(rel);
    if std::env::var_os("ODEFLASH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, expected).expect("write");
        return;
    }
    let found = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with ODEFLASH_BLESS=1)", path.display()));
    assert!(
        found == expected,
        "{} is out of date (run with ODEFLASH_BLESS=1)",
        path.display()
    );
}

#[test]
fn bundled_model_matches_its_generator() {
    let spec = single_nn_memode(&[16, 32, 16], 7);
    let mut json = serde_json::to_string_pretty(&spec).expect("serializes");
    json.push('\n');
    check("models/single-nn-memode.json", &json);
}

#[test]
fn bundled_stimuli_match_their_generator() {
    for (file, amplitude, freq) in [
        ("stimulus/sine-1V-10Hz.csv", 1.0, 10.0),
        ("stimulus/sine-0.5V-5Hz.csv", 0.5, 5.0),
    ] {
        let (t, v) = sine(amplitude, freq, 1000, 2);
        let comments = [
            format!(
                "v_s = {amplitude} V * sin(2 pi {freq} Hz t): 2 periods, 1000 samples per period"
            ),
            format!("{} samples, dt = {} s, both ends included", t.len(), t[1]),
        ];
        let comments: Vec<&str> = comments.iter().map(String::as_str).collect();
        check(file, &to_csv(&comments, &t, &v));
    }
}
