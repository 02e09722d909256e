//! Stimulus CSV files: a header row naming the columns `t` (seconds) and `v_s` (supply voltage,
//! volts), in any order among other columns, then one row per sample, uniformly spaced in time.
//! Lines starting with `#` and blank lines are skipped.
//!
//! Every error names the file, the 1-based line (as an editor shows it) and the column.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::csv::Table;
pub use crate::csv::{TableError, TableErrorKind, TIME_COLUMN, UNIFORM_TOLERANCE};
use crate::Error;

/// Name of the supply-voltage column, volts.
pub const DRIVE_COLUMN: &str = "v_s";

/// A stimulus read from a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Stimulus {
    /// The file it was read from.
    pub path: PathBuf,
    /// Sample times, seconds (kept in f64 so the uniformity check is not drowned by rounding).
    pub t: Vec<f64>,
    /// Supply voltage per sample, volts.
    pub v_s: Vec<f32>,
    /// The 1-based line of each sample in the file.
    pub lines: Vec<usize>,
    /// Mean sample interval, seconds.
    pub dt: f64,
}

/// What is wrong with a stimulus file.
pub type StimulusErrorKind = TableErrorKind;
/// A defect in a stimulus file, located by file, line and column.
pub type StimulusError = TableError;

impl Stimulus {
    /// Reads and checks a stimulus file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        Ok(Self::from_table(Table::read(path, &[DRIVE_COLUMN], &[])?))
    }

    /// Parses and checks the content of a stimulus file; `path` names it in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, StimulusError> {
        Ok(Self::from_table(Table::parse(
            path,
            bytes,
            &[DRIVE_COLUMN],
            &[],
        )?))
    }

    fn from_table(table: Table) -> Self {
        Stimulus {
            v_s: table.column_f32(DRIVE_COLUMN).unwrap_or_default(),
            path: table.path,
            t: table.t,
            lines: table.lines,
            dt: table.dt,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether it holds no samples (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// The error for a file whose interval an iterator net cannot run at.
    pub fn interval_mismatch(&self, model_dt: f32) -> StimulusError {
        StimulusError {
            path: self.path.clone(),
            line: self.lines.get(1).copied().unwrap_or(1),
            column: Some(TIME_COLUMN.to_owned()),
            kind: StimulusErrorKind::IntervalMismatch {
                dt: self.dt as f32,
                model_dt,
            },
        }
    }
}

/// A sampled sine drive `v_s = amplitude * sin(2 pi f t)` over whole periods, both ends included:
/// `periods * samples_per_period + 1` samples.
pub fn sine(
    amplitude: f64,
    frequency: f64,
    samples_per_period: usize,
    periods: usize,
) -> (Vec<f64>, Vec<f32>) {
    let rate = frequency * samples_per_period as f64;
    (0..=periods * samples_per_period)
        .map(|k| {
            let phase =
                std::f64::consts::TAU * (k % samples_per_period) as f64 / samples_per_period as f64;
            (k as f64 / rate, (amplitude * phase.sin()) as f32)
        })
        .unzip()
}

/// A stimulus CSV: `# ` comment lines, the header `t,v_s`, then one row per sample, every value
/// written so it reads back exactly.
pub fn to_csv(comments: &[&str], t: &[f64], v_s: &[f32]) -> String {
    let mut s = String::with_capacity(24 * t.len() + 64);
    for c in comments {
        let _ = writeln!(s, "# {c}");
    }
    let _ = writeln!(s, "{TIME_COLUMN},{DRIVE_COLUMN}");
    for (t, v) in t.iter().zip(v_s) {
        let _ = writeln!(s, "{t},{v}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Stimulus, StimulusError> {
        Stimulus::parse(Path::new("s.csv"), text.as_bytes())
    }

    #[test]
    fn reads_columns_in_any_order_with_comments() {
        let s = parse("# drive\n\nv_s, other ,t\r\n0.5,x,0\n# mid\n-1e-3,y,0.001\n1,z,0.002\n")
            .expect("valid");
        assert_eq!(s.t, [0.0, 0.001, 0.002]);
        assert_eq!(s.v_s, [0.5, -1e-3, 1.0]);
        assert_eq!(s.lines, [4, 6, 7]);
        assert!((s.dt - 1e-3).abs() < 1e-15);
    }

    #[test]
    fn locates_defects() {
        let cases: [(&str, usize, Option<&str>); 8] = [
            ("t,v\n0,1\n1,2\n", 1, Some("v_s")),
            ("t,v_s,t\n0,1,0\n", 1, Some("t")),
            ("t,v_s\n0,1\n1\n", 3, Some("v_s")),
            ("t,v_s\n0,1\n0.1,abc\n", 3, Some("v_s")),
            ("t,v_s\n0,1\n0.1,1e40\n", 3, Some("v_s")),
            ("t,v_s\n0,1\n0,2\n", 3, Some("t")),
            ("#c\nt,v_s\n0,1\n", 3, Some("t")),
            ("# only a comment\n", 1, None),
        ];
        for (text, line, column) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!((e.line, e.column.as_deref()), (line, column), "{text}: {e}");
        }
    }

    #[test]
    fn sine_has_both_ends() {
        let (t, v) = sine(1.0, 10.0, 1000, 2);
        assert_eq!(t.len(), 2001);
        assert_eq!(t[2000], 0.2);
        assert_eq!((v[0], v[250], v[2000]), (0.0, 1.0, 0.0));
        let s = parse(&to_csv(&["x"], &t, &v)).expect("uniform");
        assert_eq!((s.t, s.v_s), (t, v));
    }
}
