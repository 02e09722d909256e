//! Rig measurements of a memristor in series with a resistor (paper 000 Fig. 1): one CSV file per
//! trajectory plus `manifest.toml`.
//!
//! ```toml
//! # optional: CSV files in this directory that are deliberately not trajectories
//! ignore = ["notes.csv"]
//!
//! [[trajectory]]
//! file = "sdc_1.0V_5Hz.csv"      # relative to the manifest's directory
//! amplitude = 1.0                 # supply amplitude, V
//! frequency = 5.0                 # supply frequency, Hz
//! series_resistance = 10000.0     # R_s, ohm
//! split = "train"                 # or "validation"
//! current_unit = "mA"             # optional: "A" (default), "mA", "uA"
//! time_unit = "ms"                # optional: "s" (default), "ms"
//! ```
//!
//! Each CSV has a header row with `t`, `v_s` (supply voltage, V) and the memristor voltage `v`
//! (V) or the current `i`, or both; other columns are ignored, as are `#` comment lines. The
//! missing one of `v` and `i` follows from the series resistor, `v_s = v + R_s i`. Nothing
//! assumes the paper's grid: any number of trajectories, amplitudes, frequencies and series
//! resistors, each file its own length and its own sample interval.
//!
//! Every defect is an error located by file and line: TOML syntax and unknown or mistyped fields
//! (the manifest's line and column), semantic errors in a `[[trajectory]]` table (the line of the
//! offending field), a file listed twice, two listed files with identical contents, a missing
//! file, CSV defects (missing column, text where a number belongs, NaN or infinite values, time
//! that does not increase or is not uniform: the CSV's line and column), a current column that
//! contradicts the series resistor by more than a factor of two (a wrong `current_unit`), and a
//! split without trajectories.
//!
//! The manifest describes the data, so it is checked against it: `file` must name a regular file
//! inside the dataset directory (no absolute path, no `..`, no symlink leading out); two records
//! with the same samples (compared as parsed, so a changed comment does not hide a copy) are
//! refused, also across the train and validation splits; and `amplitude`, `frequency` and
//! `time_unit` must agree with the drive `v_s` within [`DRIVE_TOLERANCE`] (half its peak-to-peak
//! swing, and the spacing of its midpoint crossings) for any record that holds a period.
//!
//! A CSV file in the directory that the manifest does not list is an error too, not a warning:
//! a forgotten `[[trajectory]]` table silently changes what a model is trained and validated on,
//! and a warning scrolls away in a long log. Files that are deliberately not trajectories are
//! named in the manifest's top-level `ignore` list, so the decision is written down next to the
//! data. Only the manifest's own directory is scanned (trajectories may live in subdirectories;
//! those are not scanned).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::csv::{Table, TableError, TableErrorKind};
use crate::Error;

/// The manifest's file name inside a dataset directory.
pub const MANIFEST: &str = "manifest.toml";
/// Supply-voltage column, V.
pub const SUPPLY: &str = "v_s";
/// Memristor-voltage column, V.
pub const VOLTAGE: &str = "v";
/// Current column (unit from the manifest's `current_unit`).
pub const CURRENT: &str = "i";
/// When both `v` and `i` are measured, the least-squares resistance `(v_s - v) / i` must lie
/// within this factor of the manifest's `series_resistance`.
pub const SERIES_RESISTANCE_FACTOR: f64 = 2.0;

/// Which part of the dataset a trajectory belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Fitted on.
    Train,
    /// Held out.
    Validation,
}

impl Split {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
        }
    }
}

/// Which of the memristor voltage and the current were in the file; the other one was derived
/// through the series resistor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measured {
    /// Both `v` and `i` columns.
    Both,
    /// Only `v`; `i = (v_s - v) / R_s`.
    VoltageOnly,
    /// Only `i`; `v = v_s - R_s i`.
    CurrentOnly,
}

impl Measured {
    /// Whether `v` came from the file.
    pub fn voltage(self) -> bool {
        matches!(self, Measured::Both | Measured::VoltageOnly)
    }

    /// Whether `i` came from the file.
    pub fn current(self) -> bool {
        matches!(self, Measured::Both | Measured::CurrentOnly)
    }
}

/// One measured trajectory, in SI units (s, V, A).
#[derive(Clone, Debug, PartialEq)]
pub struct MemristorTrajectory {
    /// The manifest's `file` entry (unique within the dataset); names the trajectory in reports.
    pub name: String,
    /// The CSV file.
    pub path: PathBuf,
    /// Line of its `[[trajectory]]` table in the manifest.
    pub manifest_line: usize,
    /// Supply amplitude, V.
    pub amplitude: f64,
    /// Supply frequency, Hz.
    pub frequency: f64,
    /// Series resistor `R_s`, ohm.
    pub r_s: f64,
    /// Train or validation.
    pub split: Split,
    /// Sample interval, s.
    pub dt: f64,
    /// Time of the first sample, s.
    pub t0: f64,
    /// Supply voltage per sample, V.
    pub v_s: Vec<f32>,
    /// Memristor voltage per sample, V (measured or derived, see `measured`).
    pub v: Vec<f32>,
    /// Current per sample, A (measured or derived, see `measured`).
    pub i: Vec<f32>,
    /// Which of `v` and `i` were in the file.
    pub measured: Measured,
    /// The CSV line of each sample (1-based), for error messages.
    pub lines: Vec<usize>,
}

impl MemristorTrajectory {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.v_s.len()
    }

    /// Whether it has no samples (never for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.v_s.is_empty()
    }

    /// Samples per supply period, `1 / (f dt)` (not necessarily an integer).
    pub fn samples_per_period(&self) -> f64 {
        1.0 / (self.frequency * self.dt)
    }

    /// Time of sample `k`, s.
    pub fn time(&self, k: usize) -> f64 {
        self.t0 + k as f64 * self.dt
    }

    /// Unbiased variances of `v` and `i` (paper 000 eq. 3, squared), floored at a tiny positive
    /// value so a constant channel does not divide by zero.
    pub fn variances(&self) -> (f64, f64) {
        (unbiased_variance(&self.v), unbiased_variance(&self.i))
    }

    /// The first `n` samples (or all when `n` is larger), as a trajectory of its own.
    pub fn truncated(&self, n: usize) -> MemristorTrajectory {
        let n = n.min(self.len());
        MemristorTrajectory {
            v_s: self.v_s[..n].to_vec(),
            v: self.v[..n].to_vec(),
            i: self.i[..n].to_vec(),
            lines: self.lines[..n.min(self.lines.len())].to_vec(),
            ..self.clone()
        }
    }
}

/// Unbiased sample variance, floored at `1e-30` (as f64).
pub fn unbiased_variance(x: &[f32]) -> f64 {
    let n = x.len() as f64;
    if x.len() < 2 {
        return 1e-30;
    }
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let ss: f64 = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
    (ss / (n - 1.0)).max(1e-30)
}

/// A loaded dataset: the trajectories in manifest order.
#[derive(Clone, Debug, PartialEq)]
pub struct MemristorDataset {
    /// The directory.
    pub dir: PathBuf,
    /// All trajectories, in manifest order.
    pub trajectories: Vec<MemristorTrajectory>,
}

impl MemristorDataset {
    /// Loads `dir/manifest.toml` and every CSV it lists; see the module documentation.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        load(dir)
    }

    /// Trajectories of one split, in manifest order.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &MemristorTrajectory> {
        self.trajectories.iter().filter(move |t| t.split == split)
    }

    /// Training trajectories.
    pub fn train(&self) -> Vec<&MemristorTrajectory> {
        self.split(Split::Train).collect()
    }

    /// Validation trajectories.
    pub fn validation(&self) -> Vec<&MemristorTrajectory> {
        self.split(Split::Validation).collect()
    }

    /// A trajectory by its manifest `file` entry.
    pub fn get(&self, name: &str) -> Option<&MemristorTrajectory> {
        self.trajectories.iter().find(|t| t.name == name)
    }
}

/// One `[[trajectory]]` table as written, with the position of every field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    file: Spanned<String>,
    amplitude: Spanned<f64>,
    frequency: Spanned<f64>,
    series_resistance: Spanned<f64>,
    split: Spanned<String>,
    #[serde(default)]
    current_unit: Option<Spanned<String>>,
    #[serde(default)]
    time_unit: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    #[serde(default)]
    trajectory: Vec<Spanned<RawEntry>>,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |p| offset - p - 1) + 1;
    (line, col)
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: Range<usize>, msg: impl std::fmt::Display) -> Error {
        let (line, col) = line_col(self.text, span.start);
        Error::Input(format!("{}:{line}:{col}: {msg}", self.path.display()))
    }
}

/// Lexically normalized path (`a/./b/../c` → `a/c`), so a file listed twice under two
/// spellings is caught even when it does not exist.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `dir/file`, refused (at the manifest's `file` field) unless it stays inside `dir`: a relative
/// path without `..`, and no symlink that resolves outside the directory.
fn inside(ctx: &Ctx, dir: &Path, file: &str, span: Range<usize>) -> Result<PathBuf, Error> {
    let rel = Path::new(file);
    let refuse = |why: &str| {
        ctx.at(
            span.clone(),
            format!(
                "file = \"{}\": {why}; records must lie inside the dataset directory {}, \
                 named relative to it",
                crate::files::excerpt(file),
                dir.display()
            ),
        )
    };
    if rel.is_absolute() || rel.has_root() {
        return Err(refuse("an absolute path"));
    }
    if rel
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        return Err(refuse("a path with `..`"));
    }
    let joined = normalize(&dir.join(rel));
    if let (Ok(real), Ok(real_dir)) = (joined.canonicalize(), dir.canonicalize()) {
        if !real.starts_with(&real_dir) {
            return Err(refuse(&format!(
                "a symlink to {}, outside the directory",
                real.display()
            )));
        }
    }
    Ok(joined)
}

fn is_csv(p: &Path) -> bool {
    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv"))
}

/// Scale factor of a current unit to amperes.
pub fn current_scale(unit: &str) -> Option<f64> {
    match unit {
        "A" => Some(1.0),
        "mA" => Some(1e-3),
        "uA" | "µA" | "μA" => Some(1e-6),
        _ => None,
    }
}

/// Scale factor of a time unit to seconds.
pub fn time_scale(unit: &str) -> Option<f64> {
    match unit {
        "s" => Some(1.0),
        "ms" => Some(1e-3),
        _ => None,
    }
}

fn positive(ctx: &Ctx, field: &Spanned<f64>, name: &str, unit: &str) -> Result<f64, Error> {
    let v = *field.get_ref();
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(ctx.at(
            field.span(),
            format!("{name} = {v} {unit}: must be a positive finite number"),
        ))
    }
}

struct Entry {
    name: String,
    path: PathBuf,
    line: usize,
    file_span: Range<usize>,
    amplitude: f64,
    frequency: f64,
    r_s: f64,
    split: Split,
    current_scale: f64,
    current_unit: String,
    time_scale: f64,
}

fn parse_manifest(dir: &Path) -> Result<(PathBuf, Vec<Entry>, String), Error> {
    let path = dir.join(MANIFEST);
    let bytes = crate::files::read_limited(&path, crate::files::MAX_TEXT_FILE, "manifest")?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, _) = line_col(
            &String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()]),
            usize::MAX,
        );
        Error::Input(format!("{}:{line}: not UTF-8 text", path.display()))
    })?;
    let ctx = Ctx {
        path: &path,
        text: &text,
    };
    // `[trajectory]` (a single table) instead of `[[trajectory]]` (one per record) only shows
    // as "duplicate key" or "invalid type" from the parser; say what to write.
    if let Some(line) = text.lines().position(|l| {
        let l = l.trim().replace([' ', '\t'], "");
        l == "[trajectory]" || l.starts_with("[trajectory]#")
    }) {
        return Err(Error::Input(format!(
            "{}:{}: write `[[trajectory]]` (double brackets: one table per record), not \
             `[trajectory]`",
            path.display(),
            line + 1
        )));
    }
    let raw: RawManifest = toml::from_str(&text).map_err(|e| {
        let msg = e.message().trim().to_owned();
        match e.span() {
            Some(span) => ctx.at(span, msg),
            None => Error::Input(format!("{}: {msg}", path.display())),
        }
    })?;
    if raw.trajectory.is_empty() {
        return Err(Error::Input(format!(
            "{}: no [[trajectory]] tables",
            path.display()
        )));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(raw.trajectory.len());
    for spanned in &raw.trajectory {
        let e = spanned.get_ref();
        let line = line_col(&text, spanned.span().start).0;
        let file = e.file.get_ref().trim();
        if file.is_empty() {
            return Err(ctx.at(e.file.span(), "file: empty file name"));
        }
        let amplitude = positive(&ctx, &e.amplitude, "amplitude", "V")?;
        let frequency = positive(&ctx, &e.frequency, "frequency", "Hz")?;
        let r_s = positive(&ctx, &e.series_resistance, "series_resistance", "ohm")?;
        let split = match e.split.get_ref().as_str() {
            "train" => Split::Train,
            "validation" => Split::Validation,
            other => {
                return Err(ctx.at(
                    e.split.span(),
                    format!("split = \"{other}\": unknown split (\"train\" or \"validation\")"),
                ))
            }
        };
        let current_scale = match &e.current_unit {
            None => 1.0,
            Some(u) => current_scale(u.get_ref()).ok_or_else(|| {
                ctx.at(
                    u.span(),
                    format!(
                        "current_unit = \"{}\": unknown unit (\"A\", \"mA\" or \"uA\")",
                        u.get_ref()
                    ),
                )
            })?,
        };
        let time_scale = match &e.time_unit {
            None => 1.0,
            Some(u) => time_scale(u.get_ref()).ok_or_else(|| {
                ctx.at(
                    u.span(),
                    format!(
                        "time_unit = \"{}\": unknown unit (\"s\" or \"ms\")",
                        u.get_ref()
                    ),
                )
            })?,
        };
        let csv = inside(&ctx, dir, file, e.file.span())?;
        if let Some(first) = entries.iter().find(|x| x.path == csv) {
            return Err(ctx.at(
                e.file.span(),
                format!(
                    "file = \"{file}\" is listed twice (first at line {})",
                    first.line
                ),
            ));
        }
        entries.push(Entry {
            name: file.to_owned(),
            path: csv,
            line,
            file_span: e.file.span(),
            amplitude,
            frequency,
            r_s,
            split,
            current_scale,
            current_unit: e
                .current_unit
                .as_ref()
                .map_or_else(|| "A".to_owned(), |u| u.get_ref().clone()),
            time_scale,
        });
    }
    for split in [Split::Train, Split::Validation] {
        if !entries.iter().any(|e| e.split == split) {
            return Err(Error::Input(format!(
                "{}: the {} split is empty: no [[trajectory]] has split = \"{}\"",
                path.display(),
                split.as_str(),
                split.as_str()
            )));
        }
    }
    // CSV files in the directory that the manifest does not mention.
    let ignore: Vec<String> = raw.ignore.iter().map(|s| s.get_ref().clone()).collect();
    let listed: Vec<PathBuf> = entries.iter().map(|e| e.path.clone()).collect();
    let mut stray = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))? {
        let item = item.map_err(|e| Error::read(dir, e))?;
        let p = item.path();
        if !is_csv(&p) || !p.is_file() {
            continue;
        }
        let name = item.file_name().to_string_lossy().into_owned();
        if listed.contains(&normalize(&p)) || ignore.contains(&name) {
            continue;
        }
        stray.push(name);
    }
    if !stray.is_empty() {
        stray.sort();
        return Err(Error::Input(format!(
            "{}: {} is in the directory but not in the manifest; add a [[trajectory]] table \
             for it, or name it in the top-level `ignore = [...]` list if it is not a trajectory",
            path.display(),
            stray
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok((path, entries, text))
}

fn table_err(e: TableError) -> Error {
    Error::Stimulus(e)
}

/// Loads `dir/manifest.toml` and every CSV it lists; see the module documentation.
pub fn load(dir: &Path) -> Result<MemristorDataset, Error> {
    let (manifest, entries, text) = parse_manifest(dir)?;
    let mut hashes: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut contents: Vec<Vec<u64>> = Vec::new();
    let mut trajectories = Vec::with_capacity(entries.len());
    for (k, e) in entries.iter().enumerate() {
        let table = read_table(e).map_err(|err| {
            let (line, col) = line_col(&text, e.file_span.start);
            let at = format!("{}:{line}:{col}: file = \"{}\"", manifest.display(), e.name);
            match err {
                Error::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    Error::Input(format!("{at}: {} does not exist", e.path.display()))
                }
                // Not a regular file (a FIFO, a device, a directory): name the manifest line.
                Error::Input(msg) => Error::Input(format!("{at}: {msg}")),
                err => err,
            }
        })?;
        let traj = read_csv(e, &table)?;
        // Compared by the samples as parsed, so a copy that differs only in comments, spacing
        // or the digits printed is still caught.
        let samples: Vec<u64> = table
            .t
            .iter()
            .map(|&t| (t * e.time_scale).to_bits())
            .chain(
                [&traj.v_s, &traj.v, &traj.i]
                    .into_iter()
                    .flatten()
                    .map(|x| u64::from(x.to_bits())),
            )
            .collect();
        let mut h = DefaultHasher::new();
        samples.hash(&mut h);
        let hash = h.finish();
        let same = hashes.entry(hash).or_default();
        if let Some(&j) = same.iter().find(|&&j| contents[j] == samples) {
            let both = if e.split == entries[j].split {
                String::new()
            } else {
                format!(
                    " (in both the {} and the {} split, which makes validation meaningless)",
                    entries[j].split.as_str(),
                    e.split.as_str()
                )
            };
            return Err(Error::Input(format!(
                "{}:{}: {} has the same contents as {} (line {}), sample for sample{both}: a trajectory recorded \
                 twice, or a copy under another name",
                manifest.display(),
                e.line,
                e.path.display(),
                entries[j].path.display(),
                entries[j].line
            )));
        }
        same.push(k);
        check_drive(&manifest, &text, e, &traj)?;
        trajectories.push(traj);
        contents.push(samples);
    }
    Ok(MemristorDataset {
        dir: dir.to_path_buf(),
        trajectories,
    })
}

/// Largest relative disagreement between the manifest's `frequency` or `amplitude` and what
/// the drive `v_s` shows.
pub const DRIVE_TOLERANCE: f64 = 0.25;

/// Checks the manifest's `frequency`, `amplitude` and `time_unit` against the drive `v_s`: half
/// its peak-to-peak swing (or its peak), and the spacing of its crossings of the midpoint (with hysteresis, so
/// noise does not count). A record is checked when it holds a period by the manifest's
/// frequency or by its own crossings (three or more); the frequency of one under two periods
/// with fewer than two crossings is not (a single period can show just one).
fn check_drive(
    manifest: &Path,
    text: &str,
    e: &Entry,
    t: &MemristorTrajectory,
) -> Result<(), Error> {
    let n = t.len();
    let periods = t.dt * (n - 1) as f64 * e.frequency;
    let (lo, hi) = t
        .v_s
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(f64::from(x)), hi.max(f64::from(x)))
        });
    let swing = (hi - lo) / 2.0;
    let (line, _) = line_col(text, e.file_span.start);
    let unit = if e.time_scale == 1.0 { "s" } else { "ms" };
    let refuse = |what: String| {
        Error::Input(format!(
            "{}:{line}: file = \"{}\": {what}; fix the manifest (or the file)",
            manifest.display(),
            e.name
        ))
    };
    let mid = (hi + lo) / 2.0;
    let band = 0.1 * swing;
    let mut side = 0i8;
    let mut last_cross = None;
    let mut crossings = Vec::new();
    for k in 0..n {
        let x = f64::from(t.v_s[k]) - mid;
        if k > 0 {
            let p = f64::from(t.v_s[k - 1]) - mid;
            if (p < 0.0) != (x < 0.0) {
                last_cross = Some((k - 1) as f64 + p / (p - x));
            }
        }
        let s = if x > band {
            1
        } else if x < -band {
            -1
        } else {
            0
        };
        if s != 0 && s != side {
            if let (true, Some(c)) = (side != 0, last_cross) {
                crossings.push(c);
            }
            side = s;
        }
    }
    if periods < 1.0 && crossings.len() < 3 {
        return Ok(());
    }
    // Half the peak-to-peak swing for a symmetric drive, the peak for one with an offset (a
    // unipolar pulse train labelled by its peak).
    let peak = hi.abs().max(lo.abs());
    let off = |x: f64| ((x - e.amplitude) / e.amplitude).abs() > DRIVE_TOLERANCE;
    if off(swing) && off(peak) {
        return Err(refuse(format!(
            "amplitude = {} V, but `v_s` swings by ±{swing:.4} V (half its peak-to-peak; its \
             peak is {peak:.4} V)",
            e.amplitude
        )));
    }
    let implied = match crossings.as_slice() {
        [first, .., last] => (crossings.len() - 1) as f64 / (2.0 * (last - first) * t.dt),
        _ if periods < 2.0 => return Ok(()),
        _ => 0.0,
    };
    if ((implied - e.frequency) / e.frequency).abs() > DRIVE_TOLERANCE {
        return Err(refuse(format!(
            "frequency = {} Hz, but `v_s` repeats at {implied:.4} Hz (reading its time column in \
             {unit}, time_unit = \"{unit}\"); check frequency and time_unit",
            e.frequency
        )));
    }
    Ok(())
}

fn read_table(e: &Entry) -> Result<Table, Error> {
    Table::read(&e.path, &[SUPPLY], &[VOLTAGE, CURRENT])
}

fn read_csv(e: &Entry, table: &Table) -> Result<MemristorTrajectory, Error> {
    let has_v = table.column(VOLTAGE).is_some();
    let has_i = table.column(CURRENT).is_some();
    let measured = match (has_v, has_i) {
        (true, true) => Measured::Both,
        (true, false) => Measured::VoltageOnly,
        (false, true) => Measured::CurrentOnly,
        (false, false) => {
            return Err(table_err(TableError {
                path: e.path.clone(),
                line: table.header_line,
                column: Some(format!("{VOLTAGE}` or `{CURRENT}")),
                kind: TableErrorKind::MissingColumn {
                    found: table.header.clone(),
                },
            }));
        }
    };
    let n = table.len();
    let v_s: Vec<f64> = table.column(SUPPLY).unwrap_or_default().to_vec();
    let i: Vec<f64> = match table.column(CURRENT) {
        Some(c) => c.iter().map(|&x| x * e.current_scale).collect(),
        None => {
            let v = table.column(VOLTAGE).unwrap_or_default();
            (0..n).map(|k| (v_s[k] - v[k]) / e.r_s).collect()
        }
    };
    let v: Vec<f64> = match table.column(VOLTAGE) {
        Some(c) => c.to_vec(),
        None => (0..n).map(|k| v_s[k] - e.r_s * i[k]).collect(),
    };
    if let Measured::Both = measured {
        // Least-squares resistance of (v_s - v) against i: a wrong current unit or a wrong
        // series resistance shows as a factor far from 1, a swapped sign as a negative one.
        let (mut num, mut den) = (0.0, 0.0);
        for k in 0..n {
            num += (v_s[k] - v[k]) * i[k];
            den += i[k] * i[k];
        }
        let r_fit = if den > 0.0 { num / den } else { f64::NAN };
        let ratio = r_fit / e.r_s;
        let lo = 1.0 / SERIES_RESISTANCE_FACTOR;
        if !(ratio.is_finite() && (lo..=SERIES_RESISTANCE_FACTOR).contains(&ratio)) {
            return Err(Error::Input(format!(
                "{}:{}: column `{CURRENT}`: (v_s - v) / i fits a series resistance of {r_fit:.4e} \
                 ohm, {ratio:.3e} times the manifest's series_resistance = {} ohm; check \
                 current_unit (now {}), the sign of the current, and series_resistance",
                e.path.display(),
                table.header_line,
                e.r_s,
                e.current_unit
            )));
        }
    }
    let to_f32 = |x: &[f64], col: &str| -> Result<Vec<f32>, Error> {
        x.iter()
            .enumerate()
            .map(|(k, &val)| {
                let f = val as f32;
                if f.is_finite() {
                    Ok(f)
                } else {
                    Err(table_err(table.error_at(
                        k,
                        col,
                        TableErrorKind::OutOfF32Range {
                            text: format!("{val:e}"),
                        },
                    )))
                }
            })
            .collect()
    };
    Ok(MemristorTrajectory {
        name: e.name.clone(),
        path: e.path.clone(),
        manifest_line: e.line,
        amplitude: e.amplitude,
        frequency: e.frequency,
        r_s: e.r_s,
        split: e.split,
        dt: table.dt * e.time_scale,
        t0: table.t[0] * e.time_scale,
        v_s: to_f32(&v_s, SUPPLY)?,
        v: to_f32(&v, if has_v { VOLTAGE } else { CURRENT })?,
        i: to_f32(&i, if has_i { CURRENT } else { VOLTAGE })?,
        measured,
        lines: table.lines.clone(),
    })
}

/// One `[[trajectory]]` table for [`write_manifest`].
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestEntry {
    /// CSV file name, relative to the manifest.
    pub file: String,
    /// Supply amplitude, V.
    pub amplitude: f64,
    /// Supply frequency, Hz.
    pub frequency: f64,
    /// Series resistor, ohm.
    pub series_resistance: f64,
    /// Split.
    pub split: Split,
    /// `current_unit`, if not amperes.
    pub current_unit: Option<String>,
    /// `time_unit`, if not seconds.
    pub time_unit: Option<String>,
}

/// The text of a manifest listing `entries`, headed by `comment` lines (each prefixed `# `).
pub fn manifest_text(comment: &str, entries: &[ManifestEntry]) -> String {
    let mut s = String::new();
    for l in comment.lines() {
        s.push_str(&format!("# {l}\n").replace("# \n", "#\n"));
    }
    // TOML literals through the toml crate, so any file name is quoted correctly.
    let lit = |v: toml::Value| v.to_string();
    for e in entries {
        s.push_str(&format!(
            "\n[[trajectory]]\nfile = {}\namplitude = {}\nfrequency = {}\nseries_resistance = {}\nsplit = \"{}\"\n",
            lit(toml::Value::String(e.file.clone())),
            lit(toml::Value::Float(e.amplitude)),
            lit(toml::Value::Float(e.frequency)),
            lit(toml::Value::Float(e.series_resistance)),
            e.split.as_str()
        ));
        if let Some(u) = &e.current_unit {
            s.push_str(&format!(
                "current_unit = {}\n",
                lit(toml::Value::String(u.clone()))
            ));
        }
        if let Some(u) = &e.time_unit {
            s.push_str(&format!(
                "time_unit = {}\n",
                lit(toml::Value::String(u.clone()))
            ));
        }
    }
    s
}

/// Writes `dir/manifest.toml` atomically.
pub fn write_manifest(dir: &Path, comment: &str, entries: &[ManifestEntry]) -> Result<(), Error> {
    crate::files::write_atomic(
        &dir.join(MANIFEST),
        manifest_text(comment, entries).as_bytes(),
    )
}

fn convert(t: &MemristorTrajectory, warmup_periods: f64) -> crate::dataset::Trajectory {
    crate::dataset::Trajectory {
        path: t.path.clone(),
        dt: t.dt,
        drive: t.v_s.clone(),
        channels: vec![t.v.clone(), t.i.clone()],
        consts: vec![t.r_s as f32],
        warmup: (warmup_periods * t.samples_per_period()).round().max(0.0) as usize,
    }
}

/// The rig data as the training loop sees it: drive `v_s`, channels `v` and `i`, the series
/// resistance as a per-trajectory constant, and a warm-up of whole periods left out of
/// validation losses (the device's state at the start of a recording is unknown).
pub fn training_view(
    dir: &Path,
    warmup_periods: f64,
) -> Result<(MemristorDataset, crate::dataset::Dataset), Error> {
    let ds = MemristorDataset::load(dir)?;
    let data = crate::dataset::Dataset {
        train: ds
            .train()
            .into_iter()
            .map(|t| convert(t, warmup_periods))
            .collect(),
        validation: ds
            .validation()
            .into_iter()
            .map(|t| convert(t, warmup_periods))
            .collect(),
    };
    Ok((ds, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "ab\ncd\nef";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 4), (2, 2));
        assert_eq!(line_col(t, 6), (3, 1));
    }

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(
            normalize(Path::new("d/./a/../b.csv")),
            PathBuf::from("d/b.csv")
        );
    }

    #[test]
    fn manifest_text_round_trips() {
        let e = ManifestEntry {
            file: "we\\ird \"name\".csv".into(),
            amplitude: 1.5,
            frequency: 20.0,
            series_resistance: 1e4,
            split: Split::Validation,
            current_unit: Some("uA".into()),
            time_unit: None,
        };
        let text = manifest_text("a\nb", std::slice::from_ref(&e));
        let raw: RawManifest = toml::from_str(&text).unwrap();
        let r = raw.trajectory[0].get_ref();
        assert_eq!(r.file.get_ref(), &e.file);
        assert_eq!(*r.amplitude.get_ref(), 1.5);
        assert_eq!(*r.series_resistance.get_ref(), 1e4);
        assert!(text.starts_with("# a\n# b\n"));
    }

    #[test]
    fn units() {
        assert_eq!(current_scale("mA"), Some(1e-3));
        assert_eq!(current_scale("uA"), Some(1e-6));
        assert_eq!(current_scale("kA"), None);
        assert_eq!(time_scale("ms"), Some(1e-3));
        assert_eq!(time_scale("min"), None);
    }
}
