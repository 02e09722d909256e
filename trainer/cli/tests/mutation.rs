//! The CLI mutation test: runs the `odeflash` binary a few thousand times on randomly corrupted
//! inputs (a model file, its JSON spec, a stimulus CSV, a rig dataset's `manifest.toml` and CSVs,
//! an experiment config, a run's checkpoint and config) and checks three oracles on every run:
//!
//! 1. no panic (exit code 101, `panicked` on stderr), no signal, no hang (a per-run timeout);
//! 2. every failure exits 1 with `error: ...` naming the corrupted file;
//! 3. a mutation known to make the input invalid (a truncated model, a non-numeric cell, a missing
//!    column, a deleted required key, a duplicated TOML key...) never exits 0: that would be a
//!    result computed from a broken input. Mutations that may leave the input valid may exit 0.
//!
//! Deterministic: `ODEFLASH_MUTATION_SEED` (default 1) seeds every case; a failure prints its
//! category, case seed and mutation, and `ODEFLASH_MUTATION_REPLAY=CATEGORY:SEED` runs that one
//! case alone. `ODEFLASH_MUTATION_SCALE` multiplies the number of cases (default 1: 5,120 runs,
//! about 30 s on two cores, release build).
//!
//! Another input gets a category by adding one [`Target`] in [`targets`]: the file, its kind,
//! the command that reads it and a number of cases. A run's `checkpoint.json` and `config.toml`
//! are two such targets, read by `odeflash train ... --resume`; every change to a checkpoint
//! before its closing brace is surely invalid (its checksum).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use odeflash_reference::rng::Rng;
use odeflash_reference::stimulus::{sine, to_csv};
use odeflash_runtime::spec::examples::single_nn_memode;
use odeflash_runtime::spec::Quant;

/// A run taking longer than this is a hang.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Binary,
    Csv,
    Toml,
    Json,
}

/// One input the test corrupts, and the command that reads it.
struct Target {
    /// The category's name, in reports and `ODEFLASH_MUTATION_REPLAY`.
    category: &'static str,
    kind: Kind,
    /// The file, relative to a worker's copy of the fixture.
    file: &'static str,
    /// The command line: the worker's fixture directory and a fresh output path in, arguments
    /// out.
    args: fn(&Path, &Path) -> Vec<OsString>,
    /// Cases at scale 1.
    cases: usize,
}

fn os(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    args.iter().map(|a| a.as_ref().to_os_string()).collect()
}

fn targets() -> Vec<Target> {
    vec![
        Target {
            category: "model-inspect",
            kind: Kind::Binary,
            file: "m.ofm",
            args: |w, _| os(&[&"inspect", &w.join("m.ofm")]),
            cases: 1000,
        },
        Target {
            category: "model-simulate",
            kind: Kind::Binary,
            file: "m.ofm",
            args: |w, out| {
                os(&[
                    &"simulate",
                    &"--model",
                    &w.join("m.ofm"),
                    &"--stimulus",
                    &w.join("stim.csv"),
                    &"--out",
                    &out,
                ])
            },
            cases: 400,
        },
        Target {
            category: "spec-import",
            kind: Kind::Json,
            file: "spec.json",
            args: |w, out| os(&[&"import", &w.join("spec.json"), &"--out", &out]),
            cases: 600,
        },
        Target {
            category: "stimulus",
            kind: Kind::Csv,
            file: "stim.csv",
            args: |w, out| {
                os(&[
                    &"simulate",
                    &"--model",
                    &w.join("m.ofm"),
                    &"--stimulus",
                    &w.join("stim.csv"),
                    &"--out",
                    &out,
                ])
            },
            cases: 1000,
        },
        Target {
            category: "manifest",
            kind: Kind::Toml,
            file: "tiny/manifest.toml",
            args: |w, _| os(&[&"data", &"check", &"--data", &w.join("tiny")]),
            cases: 1000,
        },
        Target {
            category: "rig-csv",
            kind: Kind::Csv,
            file: "tiny/sdc_1.0V_010Hz.csv",
            args: |w, _| os(&[&"data", &"check", &"--data", &w.join("tiny")]),
            cases: 1000,
        },
        Target {
            category: "config",
            kind: Kind::Toml,
            file: "config.toml",
            args: |w, out| {
                os(&[
                    &"train",
                    &"memristor",
                    &"--data",
                    &w.join("tiny"),
                    &"--model",
                    &"single",
                    &"--preset",
                    &"small",
                    &"--epochs",
                    &"1",
                    &"--config",
                    &w.join("config.toml"),
                    &"--out",
                    &out,
                    &"--quiet",
                ])
            },
            cases: 120,
        },
        Target {
            category: "checkpoint",
            kind: Kind::Json,
            file: "run/checkpoint.json",
            args: |w, _| {
                restore_run(w, Some("checkpoint.json"));
                resume_args(w)
            },
            cases: 300,
        },
        Target {
            category: "run-config",
            kind: Kind::Toml,
            file: "run/config.toml",
            args: |w, _| {
                restore_run(w, Some("config.toml"));
                resume_args(w)
            },
            cases: 100,
        },
    ]
}

fn odeflash() -> Command {
    Command::new(env!("CARGO_BIN_EXE_odeflash"))
}

fn ok(args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let out = odeflash()
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("the binary starts");
    assert!(
        out.status.success(),
        "{:?}: {}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The uncorrupted inputs, in `dir`: a tiny rig dataset, a model, its spec, a stimulus and an
/// experiment config (a run's resolved `config.toml` with a window the tiny records hold).
fn fixture(dir: &Path) {
    let tiny = dir.join("tiny");
    ok(&[
        &"data",
        &"synth-memristor",
        &"--out",
        &tiny,
        &"--periods",
        &"2",
        &"--samples-per-period",
        &"50",
    ]);
    let model = dir.join("m.ofm");
    let blob = single_nn_memode(&[8, 8], 3)
        .try_encode(Quant::F32)
        .expect("valid spec");
    std::fs::write(&model, blob.as_bytes()).unwrap();
    ok(&[
        &"inspect",
        &model,
        &"--json",
        &"--out",
        &dir.join("spec.json"),
    ]);
    let (t, v) = sine(0.8, 10.0, 40, 2);
    let csv = to_csv(&["a sine"], &t, &v);
    std::fs::write(dir.join("stim.csv"), csv).unwrap();
    let run = dir.join("run");
    ok(&[
        &"train",
        &"memristor",
        &"--data",
        &tiny,
        &"--model",
        &"single",
        &"--preset",
        &"small",
        &"--epochs",
        &"1",
        &"--window",
        &"20",
        &"--out",
        &run,
        &"--quiet",
    ]);
    std::fs::copy(run.join("config.toml"), dir.join("config.toml")).unwrap();
    copy_dir(&run, &dir.join("run-pristine"));
}

/// Puts the fixture's run back as training left it (a resume that went through moved it an
/// epoch on), all but the file `except` (the one a case corrupted).
fn restore_run(w: &Path, except: Option<&str>) {
    for e in std::fs::read_dir(w.join("run-pristine")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && Some(e.file_name().to_str().unwrap()) != except {
            std::fs::copy(e.path(), w.join("run").join(e.file_name())).unwrap();
        }
    }
}

/// `train memristor --resume` of the fixture's run, one epoch further, on the data its
/// `job.json` names (the fixture's: a worker's copy is another path).
fn resume_args(w: &Path) -> Vec<OsString> {
    let job: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("run-pristine/job.json")).unwrap()).unwrap();
    let data = job["data"].as_str().unwrap().to_string();
    os(&[
        &"train",
        &"memristor",
        &"--data",
        &data,
        &"--model",
        &"single",
        &"--epochs",
        &"2",
        &"--out",
        &w.join("run"),
        &"--resume",
        &"--quiet",
    ])
}

/// A number in a mutated cell or value; `DIGITS` is 5,000 nines (beyond f64: parses as inf).
const NUMBERS: &[&str] = &[
    "NaN",
    "nan",
    "inf",
    "-inf",
    "-0",
    "1e300",
    "-1",
    "0",
    "99999999999999999999",
    "",
    "abc",
    "DIGITS",
];

#[derive(Clone, Debug)]
enum Mutation {
    FlipByte {
        offset: usize,
        mask: u8,
    },
    Truncate {
        len: usize,
    },
    AppendBytes {
        n: usize,
    },
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// The `index`-th number outside comments and strings.
    ReplaceNumber {
        index: usize,
        with: &'static str,
    },
    /// The value of a `key = value` (TOML) or `"key": value` (JSON) line, by another type.
    WrongType(usize),
    /// A CSV column, from the header and every row.
    DeleteColumn(usize),
    CrOnly,
    Crlf,
    Bom,
    LongComment,
}

impl Mutation {
    /// The label reports print.
    fn label(&self, lines: &[&[u8]]) -> String {
        let line = |k: usize| {
            String::from_utf8_lossy(lines.get(k).copied().unwrap_or(b""))
                .trim_end()
                .chars()
                .take(60)
                .collect::<String>()
        };
        match self {
            Mutation::ReplaceNumber { index, with } => {
                format!("replace number #{index} with {with:?}")
            }
            Mutation::DeleteLine(k) => format!("delete line {} ({:?})", k + 1, line(*k)),
            Mutation::DuplicateLine(k) => format!("duplicate line {} ({:?})", k + 1, line(*k)),
            Mutation::SwapLines(a, b) => {
                format!(
                    "swap lines {} and {} ({:?}, {:?})",
                    a + 1,
                    b + 1,
                    line(*a),
                    line(*b)
                )
            }
            Mutation::WrongType(k) => format!("wrong type on line {} ({:?})", k + 1, line(*k)),
            other => format!("{other:?}"),
        }
    }
}

/// Lines with their terminators.
fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|&b| b == b'\n').collect()
}

fn is_comment(line: &[u8]) -> bool {
    line.trim_ascii_start().starts_with(b"#")
}

fn is_blank(line: &[u8]) -> bool {
    line.trim_ascii().is_empty()
}

/// TOML `[table]` or `[[array]]` header.
fn is_header(line: &[u8]) -> bool {
    line.trim_ascii_start().starts_with(b"[")
}

/// A TOML `key = value` or JSON `"key": value` line: the key and the value's byte range.
fn key_value(line: &[u8], kind: Kind) -> Option<(String, std::ops::Range<usize>)> {
    let sep = match kind {
        Kind::Toml => b'=',
        Kind::Json => b':',
        _ => return None,
    };
    if is_comment(line) || is_header(line) {
        return None;
    }
    let at = line.iter().position(|&b| b == sep)?;
    let key = String::from_utf8_lossy(&line[..at])
        .trim()
        .trim_matches('"')
        .to_string();
    let mut end = line.len();
    while end > at + 1 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b',') {
        end -= 1;
    }
    let start = at + 1 + line[at + 1..].iter().take_while(|b| **b == b' ').count();
    (start < end && !key.is_empty()).then_some((key, start..end))
}

/// Byte ranges of numbers outside comments and quoted strings.
fn numbers(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut base = 0;
    for line in lines(bytes) {
        if !is_comment(line) {
            let mut quoted = false;
            let mut k = 0;
            while k < line.len() {
                let b = line[k];
                if b == b'"' {
                    quoted = !quoted;
                    k += 1;
                    continue;
                }
                let starts = b.is_ascii_digit()
                    || (b == b'-' && line.get(k + 1).is_some_and(u8::is_ascii_digit));
                let glued =
                    k > 0 && (line[k - 1].is_ascii_alphanumeric() || b"_.".contains(&line[k - 1]));
                if !quoted && starts && !glued {
                    let mut e = k + 1;
                    while e < line.len()
                        && (line[e].is_ascii_digit()
                            || b".eE".contains(&line[e])
                            || (b"+-".contains(&line[e]) && b"eE".contains(&line[e - 1])))
                    {
                        e += 1;
                    }
                    if !line
                        .get(e)
                        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                    {
                        found.push(base + k..base + e);
                    }
                    k = e;
                } else {
                    k += 1;
                    while k < line.len()
                        && (line[k].is_ascii_alphanumeric() || line[k] == b'_')
                        && !quoted
                    {
                        k += 1;
                    }
                }
            }
        }
        base += line.len();
    }
    found
}

/// A random mutation fitting `kind` and `bytes`.
fn pick(rng: &mut Rng, kind: Kind, bytes: &[u8]) -> Mutation {
    let below = |rng: &mut Rng, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    let n = bytes.len();
    if kind == Kind::Binary {
        return match below(rng, 5) {
            0 | 1 => Mutation::FlipByte {
                offset: below(rng, n),
                mask: 1 << below(rng, 8),
            },
            2 => Mutation::FlipByte {
                offset: below(rng, n),
                mask: (1 + below(rng, 255)) as u8,
            },
            3 => Mutation::Truncate { len: below(rng, n) },
            _ => Mutation::AppendBytes {
                n: 1 + below(rng, 64),
            },
        };
    }
    let ls = lines(bytes);
    let nums = numbers(bytes);
    loop {
        let m = match below(rng, 12) {
            0 => Mutation::FlipByte {
                offset: below(rng, n),
                mask: 1 << below(rng, 8),
            },
            1 => Mutation::Truncate { len: below(rng, n) },
            2 => Mutation::DeleteLine(below(rng, ls.len())),
            3 => Mutation::DuplicateLine(below(rng, ls.len())),
            4 => Mutation::SwapLines(below(rng, ls.len()), below(rng, ls.len())),
            5..=7 if !nums.is_empty() => Mutation::ReplaceNumber {
                index: below(rng, nums.len()),
                with: NUMBERS[below(rng, NUMBERS.len())],
            },
            8 if matches!(kind, Kind::Toml | Kind::Json) => {
                let candidates: Vec<usize> = (0..ls.len())
                    .filter(|&k| key_value(ls[k], kind).is_some())
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                Mutation::WrongType(candidates[below(rng, candidates.len())])
            }
            8 if kind == Kind::Csv => Mutation::DeleteColumn(below(rng, 4)),
            9 => match below(rng, 3) {
                0 => Mutation::CrOnly,
                1 => Mutation::Crlf,
                _ => Mutation::Bom,
            },
            10 if kind != Kind::Json => Mutation::LongComment,
            11 => Mutation::Truncate { len: below(rng, n) },
            _ => continue,
        };
        return m;
    }
}

/// The value replacing a `key = value`'s of one type by another type.
fn other_type(value: &[u8], kind: Kind) -> &'static [u8] {
    match value.first() {
        Some(b'"') => b"17",
        Some(b'[') | Some(b'{') => b"7",
        Some(b't') | Some(b'f') => b"\"yes\"",
        _ if kind == Kind::Toml => b"\"7\"",
        _ => b"\"seven\"",
    }
}

fn apply(bytes: &[u8], kind: Kind, m: &Mutation) -> Vec<u8> {
    let ls = lines(bytes);
    let join = |ls: &[&[u8]]| ls.concat();
    let with_newline = |l: &[u8]| {
        let mut v = l.to_vec();
        if !v.ends_with(b"\n") {
            v.push(b'\n');
        }
        v
    };
    match *m {
        Mutation::FlipByte { offset, mask } => {
            let mut v = bytes.to_vec();
            if let Some(b) = v.get_mut(offset) {
                *b ^= mask;
            }
            v
        }
        Mutation::Truncate { len } => bytes[..len.min(bytes.len())].to_vec(),
        Mutation::AppendBytes { n } => {
            let mut v = bytes.to_vec();
            v.extend((0..n).map(|k| (k * 37 + 11) as u8));
            v
        }
        Mutation::DeleteLine(k) => {
            let mut v = ls.clone();
            v.remove(k);
            join(&v)
        }
        Mutation::DuplicateLine(k) => {
            let mut out = Vec::new();
            for (j, l) in ls.iter().enumerate() {
                if j == k {
                    out.extend(with_newline(l));
                }
                out.extend_from_slice(l);
            }
            out
        }
        Mutation::SwapLines(a, b) => {
            let mut v: Vec<Vec<u8>> = ls.iter().map(|l| with_newline(l)).collect();
            v.swap(a, b);
            v.concat()
        }
        Mutation::ReplaceNumber { index, with } => {
            let r = numbers(bytes)[index].clone();
            let digits = "9".repeat(5000);
            let with = if with == "DIGITS" {
                digits.as_str()
            } else {
                with
            };
            [&bytes[..r.start], with.as_bytes(), &bytes[r.end..]].concat()
        }
        Mutation::WrongType(k) => {
            let (_, r) = key_value(ls[k], kind).expect("a key line");
            let line = ls[k];
            let new = [
                &line[..r.start],
                other_type(&line[r.clone()], kind),
                &line[r.end..],
            ]
            .concat();
            let mut v: Vec<Vec<u8>> = ls.iter().map(|l| l.to_vec()).collect();
            v[k] = new;
            v.concat()
        }
        Mutation::DeleteColumn(col) => {
            let mut out = Vec::new();
            for l in &ls {
                if is_comment(l) || is_blank(l) {
                    out.extend_from_slice(l);
                    continue;
                }
                let body = l.strip_suffix(b"\n").unwrap_or(l);
                let cells: Vec<&[u8]> = body.split(|&b| b == b',').collect();
                let kept: Vec<&[u8]> = cells
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != col)
                    .map(|(_, c)| *c)
                    .collect();
                out.extend(kept.join(&b","[..]));
                if l.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            out
        }
        Mutation::CrOnly => bytes
            .iter()
            .map(|&b| if b == b'\n' { b'\r' } else { b })
            .collect(),
        Mutation::Crlf => {
            let mut out = Vec::new();
            for &b in bytes {
                if b == b'\n' {
                    out.push(b'\r');
                }
                out.push(b);
            }
            out
        }
        Mutation::Bom => [&b"\xEF\xBB\xBF"[..], bytes].concat(),
        Mutation::LongComment => {
            let mut v: Vec<Vec<u8>> = ls.iter().map(|l| l.to_vec()).collect();
            let mut comment = b"# ".to_vec();
            comment.extend(std::iter::repeat_n(b'x', 200_000));
            comment.push(b'\n');
            v.insert(1.min(v.len()), comment);
            v.concat()
        }
    }
}

/// Why the mutation surely makes the input invalid, or `None` if it may leave it valid.
fn must_fail(t: &Target, m: &Mutation, original: &[u8], mutated: &[u8]) -> Option<&'static str> {
    if mutated == original {
        return None;
    }
    if t.category == "checkpoint" {
        // The checksum covers every byte up to the closing brace.
        return (mutated.trim_ascii_end() != original.trim_ascii_end())
            .then_some("a checkpoint changed after its checksum was written");
    }
    let ls = lines(original);
    let csv_header = ls.iter().position(|l| !is_comment(l) && !is_blank(l));
    let is_data = |k: usize| Some(k) > csv_header && !is_comment(ls[k]) && !is_blank(ls[k]);
    let required = |k: usize| {
        t.category == "manifest"
            && key_value(ls[k], Kind::Toml).is_some_and(|(key, _)| {
                [
                    "file",
                    "amplitude",
                    "frequency",
                    "series_resistance",
                    "split",
                ]
                .contains(&key.as_str())
            })
    };
    let last_data = (0..ls.len()).rev().find(|&k| is_data(k));
    // A CSV time cell (column 0 of a data row) replaced by a different value.
    let moves_time = |index: usize, with: &str| {
        let r = numbers(original)[index].clone();
        let mut start = 0;
        for (k, l) in ls.iter().enumerate() {
            if r.start < start + l.len() {
                let before = &l[..r.start - start];
                let old: Option<f64> = std::str::from_utf8(&original[r.clone()])
                    .ok()
                    .and_then(|v| v.parse().ok());
                return is_data(k) && !before.contains(&b',') && with.parse::<f64>().ok() != old;
            }
            start += l.len();
        }
        false
    };
    match (t.kind, m) {
        (Kind::Binary, Mutation::Truncate { .. }) => Some("a truncated model file"),
        (Kind::Csv, Mutation::ReplaceNumber { index, with }) if moves_time(*index, with) => {
            Some("a time off the uniform grid")
        }
        (Kind::Json, Mutation::Truncate { len }) => {
            (!original[*len..].trim_ascii().is_empty()).then_some("truncated JSON")
        }
        (Kind::Csv | Kind::Json, Mutation::ReplaceNumber { with, .. })
            if !["-0", "-1", "0", "99999999999999999999"].contains(with) =>
        {
            Some("a non-numeric or non-finite number")
        }
        (Kind::Toml, Mutation::ReplaceNumber { with, .. })
            if ["NaN", "nan", "inf", "-inf", "", "abc", "DIGITS"].contains(with) =>
        {
            Some("a non-numeric or non-finite value")
        }
        (Kind::Csv, Mutation::DeleteLine(k)) if Some(*k) == csv_header => Some("no header"),
        (Kind::Csv, Mutation::DeleteLine(k))
            if is_data(*k) && Some(*k) != last_data && Some(*k) > csv_header.map(|h| h + 1) =>
        {
            Some("a gap in time (a row deleted)")
        }
        (Kind::Csv, Mutation::DuplicateLine(k)) if Some(*k) == csv_header => {
            Some("a header as a data row")
        }
        (Kind::Csv, Mutation::DuplicateLine(k)) if is_data(*k) => Some("a repeated time"),
        (Kind::Csv, Mutation::SwapLines(a, b))
            if ls[*a] != ls[*b]
                && (is_data(*a) || Some(*a) == csv_header)
                && (is_data(*b) || Some(*b) == csv_header) =>
        {
            Some("rows out of time order")
        }
        (Kind::Csv, Mutation::DeleteColumn(0 | 1)) => Some("column t or v_s missing"),
        (Kind::Toml, Mutation::DeleteLine(k)) if is_header(ls[*k]) => {
            Some("a table's keys moved into another")
        }
        (Kind::Toml, Mutation::DeleteLine(k)) if required(*k) => Some("a required key missing"),
        (Kind::Toml, Mutation::DuplicateLine(k)) if !is_comment(ls[*k]) && !is_blank(ls[*k]) => {
            Some("a duplicated key or table")
        }
        (Kind::Toml | Kind::Json, Mutation::WrongType(_)) => Some("a value of the wrong type"),
        (Kind::Json, Mutation::DuplicateLine(k)) if !is_blank(ls[*k]) => {
            Some("a duplicated field or element")
        }
        _ => None,
    }
}

/// Keys of the TOML or JSON lines a mutation changed, removed, added or duplicated.
fn changed_keys(kind: Kind, original: &[u8], mutated: &[u8]) -> Vec<String> {
    // Lines whose number of occurrences differs (every trajectory has `current_unit = "uA"`).
    let mut count: std::collections::HashMap<&[u8], i64> = std::collections::HashMap::new();
    for l in lines(original) {
        *count.entry(l.trim_ascii()).or_default() += 1;
    }
    for l in lines(mutated) {
        *count.entry(l.trim_ascii()).or_default() -= 1;
    }
    count
        .into_iter()
        .filter(|&(_, n)| n != 0)
        .filter_map(|(l, _)| key_value(l, kind).map(|(key, _)| key))
        .collect()
}

/// Whether `text` names `key` as a word (`lr` in `train.lr`, not in `clr`).
fn mentions(text: &str, key: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(key).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(ident)
            && !text[at + key.len()..].chars().next().is_some_and(ident)
    })
}

/// A broken oracle: the case and what happened.
#[derive(Debug)]
struct Failure {
    category: &'static str,
    seed: u64,
    mutation: String,
    oracle: &'static str,
    detail: String,
}

/// Runs `args` with stderr into `err_file`; the exit code (`None`: a signal), or `Err` on a hang.
fn run_with_timeout(args: &[OsString], cwd: &Path, err_file: &Path) -> Result<Option<i32>, ()> {
    let err = std::fs::File::create(err_file).unwrap();
    let mut child = odeflash()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("the binary starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Ok(status.code());
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What a case did: exit 0 or not, and whether its mutation surely made the input invalid.
#[derive(Clone, Copy, Default)]
struct Tally {
    accepted: usize,
    refused: usize,
    known_invalid: usize,
}

/// Runs one case in the worker directory `work` (a copy of the fixture); restores the file.
fn run_case(
    t: &Target,
    seed: u64,
    work: &Path,
    original: &[u8],
    tally: &mut Tally,
) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    let m = pick(&mut rng, t.kind, original);
    let label = m.label(&lines(original));
    let mutated = apply(original, t.kind, &m);
    let file = work.join(t.file);
    std::fs::write(&file, &mutated).unwrap();
    let out = work.join("out");
    let err_file = work.join("stderr.txt");
    let code = run_with_timeout(&(t.args)(work, &out), work, &err_file);
    std::fs::write(&file, original).unwrap();
    if out.is_dir() {
        std::fs::remove_dir_all(&out).unwrap();
    } else if out.exists() {
        std::fs::remove_file(&out).unwrap();
    }
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    let invalid = must_fail(t, &m, original, &mutated);
    if std::env::var_os("ODEFLASH_MUTATION_REPLAY").is_some() {
        // Keep the corrupted file for a look, and say what ran.
        let kept = std::env::temp_dir().join(format!(
            "odeflash-mutation-{}-{}",
            t.category,
            Path::new(t.file).file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&kept, &mutated).unwrap();
        println!(
            "{} {seed:#x}: {label}; surely invalid: {invalid:?}; corrupted file kept as {}\n\
             odeflash {:?} -> {code:?}\n{stderr}",
            t.category,
            kept.display(),
            (t.args)(work, &out)
        );
    }
    tally.known_invalid += usize::from(invalid.is_some());
    match code {
        Ok(Some(0)) => tally.accepted += 1,
        _ => tally.refused += 1,
    }
    let fail = |oracle, detail: String| Failure {
        category: t.category,
        seed,
        mutation: label.clone(),
        oracle,
        detail,
    };
    // The error names the file, or a field whose line was changed (a deleted `current_unit`
    // surfaces as a unit mismatch in the CSV it applies to, and says `current_unit`).
    let name = Path::new(t.file).file_name().unwrap().to_string_lossy();
    let named = stderr.contains(name.as_ref())
        || changed_keys(t.kind, original, &mutated)
            .iter()
            .any(|k| mentions(&stderr, k));
    match code {
        Err(()) => Err(fail("hang", format!("no exit after {TIMEOUT:?}"))),
        Ok(_) if stderr.contains("panicked") => Err(fail("panic", stderr)),
        Ok(None) => Err(fail("signal", stderr)),
        Ok(Some(0)) => match invalid {
            Some(why) => Err(fail("exit-0-with-wrong-result", format!("accepted {why}"))),
            None => Ok(()),
        },
        Ok(Some(1)) if !stderr.starts_with("error: ") => Err(fail("no error message", stderr)),
        Ok(Some(1)) if !named => Err(fail("error does not name the file", stderr)),
        Ok(Some(1)) => Ok(()),
        Ok(Some(c)) => Err(fail("unexpected exit code", format!("{c}: {stderr}"))),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn parse_u64(name: &str, v: &str) -> u64 {
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    }
    .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| parse_u64(name, &v))
}

/// Every case as (target, seed): `ODEFLASH_MUTATION_REPLAY`'s one, or the seeded set.
fn cases(targets: &[Target]) -> Vec<(usize, u64)> {
    if let Ok(replay) = std::env::var("ODEFLASH_MUTATION_REPLAY") {
        let (cat, seed) = replay
            .split_once(':')
            .expect("ODEFLASH_MUTATION_REPLAY=CATEGORY:SEED");
        let t = targets
            .iter()
            .position(|t| t.category == cat)
            .unwrap_or_else(|| panic!("no category {cat}"));
        return vec![(t, parse_u64("ODEFLASH_MUTATION_REPLAY", seed))];
    }
    let scale = env_u64("ODEFLASH_MUTATION_SCALE", 1) as usize;
    let mut rng = Rng::new(env_u64("ODEFLASH_MUTATION_SEED", 1));
    let mut all = Vec::new();
    for (k, t) in targets.iter().enumerate() {
        for _ in 0..t.cases * scale {
            all.push((k, rng.next_u64()));
        }
    }
    // Slow cases (training) spread over the workers.
    let order = rng.permutation(all.len());
    order.into_iter().map(|k| all[k]).collect()
}

#[test]
fn corrupted_inputs_never_panic_or_pass_silently() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("fixture");
    std::fs::create_dir(&base).unwrap();
    fixture(&base);
    let targets = targets();
    // The oracles are meaningful: every command succeeds on the uncorrupted inputs.
    for t in &targets {
        let err = base.join("stderr.txt");
        let out = base.join("out");
        let code = run_with_timeout(&(t.args)(&base, &out), &base, &err);
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(&out);
        assert_eq!(
            code,
            Ok(Some(0)),
            "{}: fails on the uncorrupted input: {}",
            t.category,
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    restore_run(&base, None);
    let originals: Vec<Vec<u8>> = targets
        .iter()
        .map(|t| std::fs::read(base.join(t.file)).unwrap())
        .collect();
    let cases = cases(&targets);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let tallies = Mutex::new(vec![Tally::default(); targets.len()]);
    std::thread::scope(|s| {
        for w in 0..workers {
            let work = root.path().join(format!("worker{w}"));
            copy_dir(&base, &work);
            let (next, failures, tallies, cases, targets, originals) =
                (&next, &failures, &tallies, &cases, &targets, &originals);
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(t, seed)) = cases.get(k) else {
                    break;
                };
                let mut tally = Tally::default();
                if let Err(f) = run_case(&targets[t], seed, &work, &originals[t], &mut tally) {
                    failures.lock().unwrap().push(f);
                }
                let all = &mut tallies.lock().unwrap()[t];
                all.accepted += tally.accepted;
                all.refused += tally.refused;
                all.known_invalid += tally.known_invalid;
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "{} runs in {:.1} s on {workers} workers: {} failures",
        cases.len(),
        started.elapsed().as_secs_f64(),
        failures.len(),
    );
    for (t, n) in targets.iter().zip(tallies.into_inner().unwrap()) {
        println!(
            "  {:<15} {:>5} runs: {:>5} exit 0, {:>5} refused; {:>5} surely invalid",
            t.category,
            n.accepted + n.refused,
            n.accepted,
            n.refused,
            n.known_invalid
        );
    }
    for f in &failures {
        println!(
            "FAIL {}: {} [{}]: {}\n  replay: ODEFLASH_MUTATION_REPLAY={}:{:#x} cargo test --release \
             -p odeflash-cli --test mutation -- --nocapture",
            f.category,
            f.mutation,
            f.oracle,
            f.detail
                .trim()
                .replace('\n', " | ")
                .chars()
                .take(400)
                .collect::<String>(),
            f.category,
            f.seed
        );
    }
    assert!(failures.is_empty(), "{} failures (above)", failures.len());
}
