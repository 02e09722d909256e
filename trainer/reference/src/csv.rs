//! CSV tables of uniformly sampled signals: a header row naming the columns (in any order, other
//! columns ignored), then one row per sample. Lines starting with `#` and blank lines are skipped.
//! Every defect is reported with the file, the 1-based line (as an editor shows it) and the
//! column; nothing is silently dropped.

use std::fmt;
use std::path::{Path, PathBuf};

/// Name of the time column, seconds.
pub const TIME_COLUMN: &str = "t";
/// Largest relative deviation of one time step from the mean step.
pub const UNIFORM_TOLERANCE: f64 = 1e-6;

/// What is wrong with a table file; see [`TableError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TableErrorKind {
    /// The file is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// No header row.
    #[error("no header row: the file is empty or holds only comments")]
    NoHeader,
    /// A required column is absent from the header.
    #[error("missing from the header (columns found: {found})")]
    MissingColumn {
        /// The header's columns, comma-separated.
        found: String,
    },
    /// A required column appears twice in the header.
    #[error("appears more than once in the header")]
    DuplicateColumn,
    /// A row is too short to hold the column.
    #[error("missing: the row has {fields} field(s)")]
    MissingField {
        /// Fields in the row.
        fields: usize,
    },
    /// A value is not a number.
    #[error("`{text}` is not a number")]
    NotANumber {
        /// The field as written.
        text: String,
    },
    /// A value is NaN or infinite (or beyond the f32 range for the voltage).
    #[error("`{text}` is not a finite number")]
    NotFinite {
        /// The field as written.
        text: String,
    },
    /// Time does not increase from the previous sample.
    #[error("time does not increase: {this} s after {prev} s")]
    NotIncreasing {
        /// Previous sample's time.
        prev: f64,
        /// This sample's time.
        this: f64,
    },
    /// The time step deviates from the mean step.
    #[error(
        "time step {step} s differs from the mean step {mean} s by a relative {rel:.2e}; samples \
         must be uniform within {UNIFORM_TOLERANCE:e}"
    )]
    NonUniform {
        /// This step, seconds.
        step: f64,
        /// Mean step over the file, seconds.
        mean: f64,
        /// Relative deviation.
        rel: f64,
    },
    /// Not enough samples to define a sample interval.
    #[error("{rows} sample(s); at least 2 are needed")]
    TooFewRows {
        /// Samples found.
        rows: usize,
    },
    /// A value that must be non-negative (or positive) is not.
    #[error("{text} is out of range: {why}")]
    OutOfRange {
        /// The field as written.
        text: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// An iterator net runs only at the interval it was trained at.
    #[error("sample interval {dt} s does not match the iterator net's {model_dt} s")]
    IntervalMismatch {
        /// The file's interval.
        dt: f32,
        /// The model's interval.
        model_dt: f32,
    },
}

/// A defect in a CSV file, located by file, line and column.
#[derive(Clone, Debug, PartialEq)]
pub struct TableError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The column concerned, if the defect is in one.
    pub column: Option<String>,
    /// What is wrong.
    pub kind: TableErrorKind,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.path.display(), self.line)?;
        if let Some(c) = &self.column {
            write!(f, "column `{c}`: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for TableError {}

/// Strips blanks and one pair of surrounding double quotes.
fn field(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .map_or(s, str::trim)
}

/// A table read from a CSV file: the time column and the requested columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The file it was read from.
    pub path: PathBuf,
    /// Sample times, seconds (f64, so the uniformity check is not drowned by rounding).
    pub t: Vec<f64>,
    /// Requested columns that are present, by name, in request order.
    pub columns: Vec<(String, Vec<f64>)>,
    /// The 1-based line of each sample in the file.
    pub lines: Vec<usize>,
    /// Mean sample interval, seconds.
    pub dt: f64,
}

impl Table {
    /// Parses `bytes`; `path` names the file in errors. `t` and every name in `required` must be
    /// in the header; names in `optional` are read when present. Values must be finite; `f32`
    /// columns must also fit an f32.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        required: &[&str],
        optional: &[&str],
    ) -> Result<Self, TableError> {
        let err = |line: usize, column: Option<&str>, kind| TableError {
            path: path.to_path_buf(),
            line,
            column: column.map(str::to_owned),
            kind,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            err(line, None, TableErrorKind::NotUtf8)
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut index: Option<(usize, Vec<(String, usize)>)> = None; // header line, columns
        let mut table = Table {
            path: path.to_path_buf(),
            t: Vec::new(),
            columns: Vec::new(),
            lines: Vec::new(),
            dt: 0.0,
        };
        let mut n_lines = 0;
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            n_lines = line;
            let s = raw.trim();
            if s.is_empty() || s.starts_with('#') {
                continue;
            }
            let Some((_, cols)) = &index else {
                let names: Vec<&str> = s.split(',').map(field).collect();
                let find = |col: &str| -> Result<Option<usize>, TableError> {
                    let mut hits = names.iter().enumerate().filter(|(_, &n)| n == col);
                    match (hits.next(), hits.next()) {
                        (Some((i, _)), None) => Ok(Some(i)),
                        (Some(_), Some(_)) => {
                            Err(err(line, Some(col), TableErrorKind::DuplicateColumn))
                        }
                        (None, _) => Ok(None),
                    }
                };
                let mut cols = Vec::new();
                for (col, needed) in std::iter::once((TIME_COLUMN, true))
                    .chain(required.iter().map(|c| (*c, true)))
                    .chain(optional.iter().map(|c| (*c, false)))
                {
                    match find(col)? {
                        Some(i) => cols.push((col.to_owned(), i)),
                        None if needed => {
                            let kind = TableErrorKind::MissingColumn {
                                found: names.join(", "),
                            };
                            return Err(err(line, Some(col), kind));
                        }
                        None => {}
                    }
                }
                table.columns = cols
                    .iter()
                    .skip(1)
                    .map(|(n, _)| (n.clone(), Vec::new()))
                    .collect();
                index = Some((line, cols));
                continue;
            };
            let fields: Vec<&str> = s.split(',').map(field).collect();
            let mut values = Vec::with_capacity(cols.len());
            for (name, i) in cols {
                let text = fields.get(*i).copied().ok_or_else(|| {
                    err(
                        line,
                        Some(name),
                        TableErrorKind::MissingField {
                            fields: fields.len(),
                        },
                    )
                })?;
                let v: f64 = text.parse().map_err(|_| {
                    err(
                        line,
                        Some(name),
                        TableErrorKind::NotANumber { text: text.into() },
                    )
                })?;
                let fits = name == TIME_COLUMN || (v as f32).is_finite();
                if !v.is_finite() || !fits {
                    return Err(err(
                        line,
                        Some(name),
                        TableErrorKind::NotFinite { text: text.into() },
                    ));
                }
                values.push(v);
            }
            let t = values[0];
            if let Some(&prev) = table.t.last() {
                if t <= prev {
                    let kind = TableErrorKind::NotIncreasing { prev, this: t };
                    return Err(err(line, Some(TIME_COLUMN), kind));
                }
            }
            table.t.push(t);
            for ((_, col), v) in table.columns.iter_mut().zip(&values[1..]) {
                col.push(*v);
            }
            table.lines.push(line);
        }
        let Some((header_line, _)) = index else {
            return Err(err(n_lines.max(1), None, TableErrorKind::NoHeader));
        };
        let n = table.t.len();
        if n < 2 {
            let line = table.lines.last().copied().unwrap_or(header_line);
            return Err(err(
                line,
                Some(TIME_COLUMN),
                TableErrorKind::TooFewRows { rows: n },
            ));
        }
        let mean = (table.t[n - 1] - table.t[0]) / (n - 1) as f64;
        for (k, w) in table.t.windows(2).enumerate() {
            let step = w[1] - w[0];
            let rel = (step - mean).abs() / mean;
            if rel > UNIFORM_TOLERANCE {
                let kind = TableErrorKind::NonUniform { step, mean, rel };
                return Err(err(table.lines[k + 1], Some(TIME_COLUMN), kind));
            }
        }
        table.dt = mean;
        Ok(table)
    }

    /// A column by name, if it was requested and present.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A column as f32 (values were checked to fit).
    pub fn column_f32(&self, name: &str) -> Option<Vec<f32>> {
        self.column(name)
            .map(|v| v.iter().map(|&x| x as f32).collect())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether it holds no samples (never true for a parsed table).
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// An error located at sample `index` (its file line) in `column`.
    pub fn error_at(&self, index: usize, column: &str, kind: TableErrorKind) -> TableError {
        TableError {
            path: self.path.clone(),
            line: self.lines.get(index).copied().unwrap_or(1),
            column: Some(column.to_owned()),
            kind,
        }
    }
}
