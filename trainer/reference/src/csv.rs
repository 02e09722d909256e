//! CSV tables of uniformly sampled signals: a header row naming the columns (in any order, other
//! columns ignored), then one row per sample. Lines starting with `#` and blank lines are skipped.
//! Every defect is reported with the file, the 1-based line (as an editor shows it) and the
//! column; nothing is silently dropped.
//!
//! Lines end in `\n`, `\r\n` or a lone `\r` (old Mac files). A file is read line by line, so
//! a wrong header is refused before the body is read, and a line longer than [`MAX_LINE`] is
//! refused without being buffered whole. Errors quote the file only as an
//! [`excerpt`](crate::files::excerpt).

use std::io::BufRead;

use std::fmt;
use std::path::{Path, PathBuf};

/// Name of the time column, seconds.
pub const TIME_COLUMN: &str = "t";
/// Largest relative deviation of one time step from the typical (median) step, on top of the
/// rounding that the printed digits of the time column imply.
pub const UNIFORM_TOLERANCE: f64 = 1e-6;
/// Longest line accepted, bytes (a header of a few thousand columns fits).
pub const MAX_LINE: usize = 64 * 1024;

/// What is wrong with a table file; see [`TableError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TableErrorKind {
    /// The file is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// The file could not be read part-way.
    #[error("read failed: {0}")]
    Unreadable(String),
    /// A line longer than [`MAX_LINE`]: not a CSV table, or not one this reader should buffer.
    #[error("line longer than {MAX_LINE} bytes; is this a CSV table of samples?")]
    LineTooLong,
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
    /// A value is NaN or infinite.
    #[error("`{text}` is not a finite number")]
    NotFinite {
        /// The field as written.
        text: String,
    },
    /// A finite value too large for the f32 the model computes in.
    #[error("`{text}` is out of the f32 range (±3.4e38); check the column's unit")]
    OutOfF32Range {
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
    /// The time step deviates from the typical step: a missing, repeated or shifted row.
    #[error(
        "time step {step} s (from the previous sample) differs from the typical step {typical} s \
         by a relative {rel:.2e}, more than the {allowed:.2e} allowed (the rounding of the \
         printed digits plus {UNIFORM_TOLERANCE:e}); a missing or shifted row?"
    )]
    NonUniform {
        /// This step, seconds.
        step: f64,
        /// The median step over the file, seconds.
        typical: f64,
        /// Relative deviation.
        rel: f64,
        /// Relative deviation allowed for this step.
        allowed: f64,
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
    /// The header's line, 1-based.
    pub header_line: usize,
    /// The header's column names, comma-separated (an excerpt when long).
    pub header: String,
}

/// Half a unit in the last digit printed in `text` (a number as written); `None` for an integer
/// (no point, no exponent), which is taken as exact.
fn half_unit(text: &str) -> Option<f64> {
    if !text.contains(['.', 'e', 'E']) {
        return None;
    }
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let decimals = mantissa.find('.').map_or(0, |i| mantissa.len() - i - 1) as i32;
    Some(0.5 * 10f64.powi(exp - decimals))
}

/// Most a step may deviate from the typical one through rounding alone, relative: two units in
/// the finest last digit printed in the time column (each time rounded by half a unit, and the
/// typical step as well), never half a step, so a missing row is always caught.
fn rounding_allowance(finest_half_unit: Option<f64>, typical: f64) -> f64 {
    finest_half_unit.map_or(0.0, |h| (4.0 * h / typical).min(0.5))
}

/// Splits a byte stream into lines ending in `\n`, `\r\n` or `\r`, each at most [`MAX_LINE`]
/// bytes, without buffering more than that.
struct Lines<R> {
    reader: R,
    /// The previous line ended in `\r`: a `\n` right after belongs to it.
    after_cr: bool,
}

/// One step of [`Lines`].
enum Line {
    /// A line was read into the buffer.
    Text,
    /// Longer than [`MAX_LINE`].
    TooLong,
    /// End of input.
    End,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Line> {
        buf.clear();
        let mut started = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(if started { Line::Text } else { Line::End });
            }
            if std::mem::take(&mut self.after_cr) && chunk[0] == b'\n' {
                self.reader.consume(1);
                continue;
            }
            started = true;
            let end = chunk.iter().position(|&b| b == b'\n' || b == b'\r');
            let take = end.unwrap_or(chunk.len());
            if buf.len() + take > MAX_LINE {
                return Ok(Line::TooLong);
            }
            buf.extend_from_slice(&chunk[..take]);
            match end {
                Some(i) => {
                    self.after_cr = chunk[i] == b'\r';
                    self.reader.consume(i + 1);
                    return Ok(Line::Text);
                }
                None => self.reader.consume(take),
            }
        }
    }
}

impl Table {
    /// Reads and parses the regular file at `path` (see [`Table::parse`]), line by line.
    pub fn read(path: &Path, required: &[&str], optional: &[&str]) -> Result<Self, crate::Error> {
        let file = crate::files::open_regular(path)?;
        let reader = std::io::BufReader::new(file);
        Ok(Self::parse_reader(path, reader, required, optional)?)
    }

    /// Parses `bytes`; `path` names the file in errors. `t` and every name in `required` must be
    /// in the header; names in `optional` are read when present. Values must be finite; `f32`
    /// columns must also fit an f32.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        required: &[&str],
        optional: &[&str],
    ) -> Result<Self, TableError> {
        Self::parse_reader(path, bytes, required, optional)
    }

    /// [`Table::parse`] from a reader, line by line.
    pub fn parse_reader(
        path: &Path,
        reader: impl BufRead,
        required: &[&str],
        optional: &[&str],
    ) -> Result<Self, TableError> {
        let err = |line, column: Option<&str>, kind| table_error(path, line, column, kind);
        let mut lines = Lines {
            reader,
            after_cr: false,
        };
        let mut buf = Vec::new();
        let mut finest: Option<f64> = None; // half a unit in the time column's last digit
        let mut index: Option<(usize, Vec<(String, usize)>)> = None; // header line, columns
        let mut table = Table {
            path: path.to_path_buf(),
            t: Vec::new(),
            columns: Vec::new(),
            lines: Vec::new(),
            dt: 0.0,
            header_line: 0,
            header: String::new(),
        };
        let mut n_lines = 0;
        loop {
            let line = n_lines + 1;
            match lines.next(&mut buf) {
                Ok(Line::Text) => {}
                Ok(Line::End) => break,
                Ok(Line::TooLong) => return Err(err(line, None, TableErrorKind::LineTooLong)),
                Err(e) => {
                    return Err(err(line, None, TableErrorKind::Unreadable(e.to_string())));
                }
            }
            n_lines = line;
            let raw =
                std::str::from_utf8(&buf).map_err(|_| err(line, None, TableErrorKind::NotUtf8))?;
            let raw = if line == 1 {
                raw.strip_prefix('\u{feff}').unwrap_or(raw)
            } else {
                raw
            };
            let s = raw.trim();
            if s.is_empty() || s.starts_with('#') {
                continue;
            }
            let Some((_, cols)) = &index else {
                let (cols, names) = header_columns(path, line, s, required, optional)?;
                table.columns = cols
                    .iter()
                    .skip(1)
                    .map(|(n, _)| (n.clone(), Vec::new()))
                    .collect();
                table.header_line = line;
                table.header = names;
                index = Some((line, cols));
                continue;
            };
            let values = row_values(path, line, s, cols, &mut finest)?;
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
        table.check_uniform(finest)?;
        table.dt = (table.t[n - 1] - table.t[0]) / (n - 1) as f64;
        Ok(table)
    }

    /// Refuses a time step off the typical one. Steps are compared with the median step, which
    /// a missing row does not move, so the error names the gap itself; each step may be off by
    /// the rounding of the printed times (`finest`: half a unit in the finest digit the column
    /// shows; a writer that drops trailing zeros prints `0.006` exactly, one that rounds prints
    /// every time to the same decimals).
    fn check_uniform(&self, finest: Option<f64>) -> Result<(), TableError> {
        let mut steps: Vec<f64> = self.t.windows(2).map(|w| w[1] - w[0]).collect();
        steps.sort_by(f64::total_cmp);
        let typical = steps[steps.len() / 2];
        let allowed = UNIFORM_TOLERANCE + rounding_allowance(finest, typical);
        for (k, w) in self.t.windows(2).enumerate() {
            let step = w[1] - w[0];
            let rel = (step - typical).abs() / typical;
            if rel > allowed {
                let kind = TableErrorKind::NonUniform {
                    step,
                    typical,
                    rel,
                    allowed,
                };
                return Err(table_error(
                    &self.path,
                    self.lines[k + 1],
                    Some(TIME_COLUMN),
                    kind,
                ));
            }
        }
        Ok(())
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

fn table_error(path: &Path, line: usize, column: Option<&str>, kind: TableErrorKind) -> TableError {
    TableError {
        path: path.to_path_buf(),
        line,
        column: column.map(str::to_owned),
        kind,
    }
}

/// The header `s` (at `line`): the time column, then every required and present optional
/// column, each with its field index; and the header as an error quotes it.
fn header_columns(
    path: &Path,
    line: usize,
    s: &str,
    required: &[&str],
    optional: &[&str],
) -> Result<(Vec<(String, usize)>, String), TableError> {
    let names: Vec<&str> = s.split(',').map(field).collect();
    let shown = crate::files::excerpt(&names.join(", "));
    let mut cols = Vec::new();
    for (col, needed) in std::iter::once((TIME_COLUMN, true))
        .chain(required.iter().map(|c| (*c, true)))
        .chain(optional.iter().map(|c| (*c, false)))
    {
        let mut hits = names.iter().enumerate().filter(|(_, &n)| n == col);
        match (hits.next(), hits.next(), needed) {
            (Some((i, _)), None, _) => cols.push((col.to_owned(), i)),
            (Some(_), Some(_), _) => {
                return Err(table_error(
                    path,
                    line,
                    Some(col),
                    TableErrorKind::DuplicateColumn,
                ))
            }
            (None, _, true) => {
                let kind = TableErrorKind::MissingColumn {
                    found: shown.clone(),
                };
                return Err(table_error(path, line, Some(col), kind));
            }
            (None, _, false) => {}
        }
    }
    Ok((cols, shown))
}

/// The values of the data row `s` (at `line`) in `cols`' order; notes in `finest` the rounding
/// its time cell's printed digits imply.
fn row_values(
    path: &Path,
    line: usize,
    s: &str,
    cols: &[(String, usize)],
    finest: &mut Option<f64>,
) -> Result<Vec<f64>, TableError> {
    let err = |name: &str, kind| table_error(path, line, Some(name), kind);
    let fields: Vec<&str> = s.split(',').map(field).collect();
    let mut values = Vec::with_capacity(cols.len());
    for (name, i) in cols {
        let text = fields.get(*i).copied().ok_or_else(|| {
            err(
                name,
                TableErrorKind::MissingField {
                    fields: fields.len(),
                },
            )
        })?;
        let v: f64 = text.parse().map_err(|_| {
            err(
                name,
                TableErrorKind::NotANumber {
                    text: crate::files::excerpt(text),
                },
            )
        })?;
        let shown = crate::files::excerpt(text);
        if !v.is_finite() {
            return Err(err(name, TableErrorKind::NotFinite { text: shown }));
        }
        if name != TIME_COLUMN && !(v as f32).is_finite() {
            return Err(err(name, TableErrorKind::OutOfF32Range { text: shown }));
        }
        if name == TIME_COLUMN {
            if let Some(h) = half_unit(text) {
                *finest = Some(finest.map_or(h, |f: f64| f.min(h)));
            }
        }
        values.push(v);
    }
    Ok(values)
}
