//! Per-epoch metrics: `metrics.jsonl` (one JSON object a line) and `metrics.csv`.
//!
//! Both files get the same records, in the same key order: the CSV header is written once, from
//! the first record's keys, and every later record must have the same keys (in any order: the
//! CSV columns follow the header). Each append is flushed and synced before it returns, so a
//! killed run loses at most the epoch it was in; [`MetricsWriter::open_resume`] then cuts both
//! files back to the checkpointed epoch.
//!
//! Values are numbers. Integral values (epochs, step counts) are written without a fraction
//! (`3`, not `3.0`), others in the shortest form that reads back exactly (`0.000125`, `1e-9`).
//! A non-finite value is `null` in the JSON lines (JSON has no NaN; it reads back as NaN) and
//! `NaN`, `inf` or `-inf` in the CSV.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RunError;
use odeflash_reference::files::write_atomic;

/// One epoch's metrics: an ordered list of name → value, starting with `epoch`.
///
/// Conventional names: `epoch`, `train_loss`, `val_loss`, `lr`, `grad_norm`, `seconds`, then any
/// extra loss terms. [`odeflash_reference::plot::learning_curve`] reads `train_loss`, `val_loss` and `lr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    fields: Vec<(String, f64)>,
}

impl odeflash_reference::plot::EpochRecord for Record {
    fn get(&self, name: &str) -> Option<f64> {
        Record::get(self, name)
    }
    fn names(&self) -> Vec<&str> {
        self.keys().collect()
    }
}

impl Record {
    /// A record holding only `epoch`.
    pub fn new(epoch: u64) -> Self {
        Record {
            fields: vec![("epoch".to_string(), epoch as f64)],
        }
    }

    /// Sets `name` to `value`: in place if the record has it, else appended at the end.
    pub fn set(&mut self, name: impl Into<String>, value: f64) -> &mut Self {
        let name = name.into();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name, value)),
        }
        self
    }

    /// [`Record::set`], by value: `Record::new(1).with("train_loss", 0.5)`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: f64) -> Self {
        self.set(name, value);
        self
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.fields.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    /// The epoch (NaN if the record has none, which only a hand-made file can cause).
    pub fn epoch(&self) -> f64 {
        self.get("epoch").unwrap_or(f64::NAN)
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(n, _)| n.as_str())
    }

    /// The (name, value) pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the record has no fields (only a deserialized `{}` can be empty).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The record as one JSON object, in key order, without a newline.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            // Serializing a string cannot fail.
            s.push_str(&serde_json::to_string(name).unwrap_or_default());
            s.push(':');
            push_number(&mut s, *value, true);
        }
        s.push('}');
        s
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            if value.is_finite() {
                map.serialize_entry(name, value)?;
            } else {
                map.serialize_entry(name, &None::<f64>)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = Record;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of numbers (or null)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
                let mut fields: Vec<(String, f64)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Option<f64>>()? {
                    if fields.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!("duplicate key `{name}`")));
                    }
                    fields.push((name, value.unwrap_or(f64::NAN)));
                }
                Ok(Record { fields })
            }
        }
        deserializer.deserialize_map(RecordVisitor)
    }
}

/// Appends `value` as written in the metrics files.
fn push_number(out: &mut String, value: f64, json: bool) {
    if value.is_finite() {
        if value == value.trunc() && value.abs() < 1e15 {
            let _ = write!(out, "{}", value as i64);
        } else {
            // serde_json prints the shortest representation that reads back exactly.
            let _ = write!(
                out,
                "{}",
                serde_json::Number::from_f64(value).expect("finite")
            );
        }
    } else if json {
        out.push_str("null");
    } else if value.is_nan() {
        out.push_str("NaN");
    } else if value > 0.0 {
        out.push_str("inf");
    } else {
        out.push_str("-inf");
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a metric has an empty name".into());
    }
    if name.contains([',', '"', '\n', '\r']) || name.trim() != name {
        return Err(format!(
            "metric name {name:?} cannot be a CSV column (no commas, quotes, line breaks, or \
             surrounding spaces)"
        ));
    }
    Ok(())
}

/// Appends per-epoch [`Record`]s to `metrics.jsonl` and `metrics.csv` in a run directory.
#[derive(Debug)]
pub struct MetricsWriter {
    jsonl_path: PathBuf,
    csv_path: PathBuf,
    jsonl: File,
    csv: File,
    /// The CSV header, once known.
    keys: Option<Vec<String>>,
    records: Vec<Record>,
}

impl MetricsWriter {
    /// File name of the JSON-lines file.
    pub const JSONL: &'static str = "metrics.jsonl";
    /// File name of the CSV file.
    pub const CSV: &'static str = "metrics.csv";

    /// Starts both files empty in `dir` (truncating any previous content).
    pub fn create(dir: &Path) -> Result<Self, RunError> {
        let jsonl_path = dir.join(Self::JSONL);
        let csv_path = dir.join(Self::CSV);
        for path in [&jsonl_path, &csv_path] {
            File::create(path).map_err(|e| RunError::write(path, e))?;
        }
        Self::open_append(jsonl_path, csv_path, None, Vec::new())
    }

    /// Reopens the files of a run being resumed from the checkpoint of `last_epoch`: keeps the
    /// records with `epoch <= last_epoch` and drops the rest (rows written after the checkpoint,
    /// a partial last line left by a kill), rewriting both files atomically. Missing files are
    /// treated as empty. If one file has fewer of the kept records than the other, both are
    /// rewritten from the longer one.
    pub fn open_resume(dir: &Path, last_epoch: u64) -> Result<Self, RunError> {
        let jsonl_path = dir.join(Self::JSONL);
        let csv_path = dir.join(Self::CSV);
        let keep = |r: &Record| r.epoch() <= last_epoch as f64;

        let (mut csv_header, mut csv_records) = match read_optional(&csv_path)? {
            Some(text) => parse_csv(&csv_path, &text, true)?,
            None => (None, Vec::new()),
        };
        csv_records.retain(keep);
        let mut jsonl_records = match read_optional(&jsonl_path)? {
            Some(text) => parse_jsonl(&jsonl_path, &text, true)?,
            None => Vec::new(),
        };
        jsonl_records.retain(keep);

        let records = if csv_records.len() >= jsonl_records.len() {
            csv_records
        } else {
            jsonl_records
        };
        let keys = match records.first() {
            Some(first) => Some(first.keys().map(str::to_string).collect::<Vec<_>>()),
            None => csv_header.take(),
        };
        // Every kept record must fit the header, or appends would write a malformed CSV.
        if let Some(keys) = &keys {
            for r in &records {
                check_keys(keys, r).map_err(|what| RunError::Record {
                    path: csv_path.clone(),
                    what,
                })?;
            }
        }

        let mut csv_text = String::new();
        let mut jsonl_text = String::new();
        if let Some(keys) = &keys {
            csv_text.push_str(&keys.join(","));
            csv_text.push('\n');
            for r in &records {
                push_csv_row(&mut csv_text, keys, r);
            }
        }
        for r in &records {
            jsonl_text.push_str(&r.to_json());
            jsonl_text.push('\n');
        }
        write_atomic(&jsonl_path, jsonl_text.as_bytes())?;
        write_atomic(&csv_path, csv_text.as_bytes())?;
        Self::open_append(jsonl_path, csv_path, keys, records)
    }

    fn open_append(
        jsonl_path: PathBuf,
        csv_path: PathBuf,
        keys: Option<Vec<String>>,
        records: Vec<Record>,
    ) -> Result<Self, RunError> {
        let open = |path: &Path| {
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(|e| RunError::write(path, e))
        };
        Ok(MetricsWriter {
            jsonl: open(&jsonl_path)?,
            csv: open(&csv_path)?,
            jsonl_path,
            csv_path,
            keys,
            records,
        })
    }

    /// Appends one epoch's record to both files, then flushes and syncs them.
    ///
    /// The first record fixes the CSV columns; a later record with other keys is refused, as is
    /// one whose epoch is not after the last record's.
    pub fn append(&mut self, record: Record) -> Result<(), RunError> {
        let refuse = |path: &Path, what: String| RunError::Record {
            path: path.to_path_buf(),
            what,
        };
        let epoch = record
            .get("epoch")
            .ok_or_else(|| refuse(&self.jsonl_path, "the record has no `epoch`".to_string()))?;
        if let Some(last) = self.records.last() {
            if epoch.is_nan() || epoch <= last.epoch() {
                return Err(refuse(
                    &self.jsonl_path,
                    format!(
                        "epoch {epoch} is not after the last recorded epoch {}",
                        last.epoch()
                    ),
                ));
            }
        }
        for name in record.keys() {
            check_name(name).map_err(|what| refuse(&self.csv_path, what))?;
        }
        let mut csv_text = String::new();
        let keys = match &self.keys {
            Some(keys) => {
                check_keys(keys, &record).map_err(|what| refuse(&self.csv_path, what))?;
                keys.clone()
            }
            None => {
                let keys: Vec<String> = record.keys().map(str::to_string).collect();
                csv_text.push_str(&keys.join(","));
                csv_text.push('\n');
                keys
            }
        };
        push_csv_row(&mut csv_text, &keys, &record);
        let mut json_line = record.to_json();
        json_line.push('\n');

        append_synced(&mut self.jsonl, &self.jsonl_path, json_line.as_bytes())?;
        append_synced(&mut self.csv, &self.csv_path, csv_text.as_bytes())?;
        self.keys = Some(keys);
        self.records.push(record);
        Ok(())
    }

    /// Every record of the run so far, including those kept from before a resume.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The CSV columns, once the first record fixed them.
    pub fn keys(&self) -> Option<&[String]> {
        self.keys.as_deref()
    }

    /// Path of `metrics.jsonl`.
    pub fn jsonl_path(&self) -> &Path {
        &self.jsonl_path
    }

    /// Path of `metrics.csv`.
    pub fn csv_path(&self) -> &Path {
        &self.csv_path
    }
}

fn append_synced(file: &mut File, path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .and_then(|()| file.sync_data())
        .map_err(|e| RunError::write(path, e))
}

/// Checks that `record` has exactly the names in `keys`.
fn check_keys(keys: &[String], record: &Record) -> Result<(), String> {
    let missing: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| record.get(k).is_none())
        .collect();
    let extra: Vec<&str> = record
        .keys()
        .filter(|k| !keys.iter().any(|h| h == k))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut what = format!(
        "epoch {}: the record's keys differ from the CSV columns ({})",
        record.epoch(),
        keys.join(",")
    );
    if !missing.is_empty() {
        let _ = write!(what, "; missing: {}", missing.join(","));
    }
    if !extra.is_empty() {
        let _ = write!(what, "; not in the header: {}", extra.join(","));
    }
    Err(what)
}

fn push_csv_row(out: &mut String, keys: &[String], record: &Record) {
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_number(out, record.get(key).unwrap_or(f64::NAN), false);
    }
    out.push('\n');
}

fn read_optional(path: &Path) -> Result<Option<String>, RunError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RunError::read(path, e)),
    }
}

/// Reads every record of a `metrics.jsonl` file.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>, RunError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunError::read(path, e))?;
    parse_jsonl(path, &text, false)
}

/// Reads every record of a `metrics.csv` file.
pub fn read_csv(path: &Path) -> Result<Vec<Record>, RunError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunError::read(path, e))?;
    Ok(parse_csv(path, &text, false)?.1)
}

/// Whether line `index` (0-based, of `count`) is the last one: a kill may have cut it short.
fn is_last(index: usize, count: usize) -> bool {
    index + 1 == count
}

fn parse_jsonl(path: &Path, text: &str, lenient_tail: bool) -> Result<Vec<Record>, RunError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Record>(line)
            .map_err(|e| e.to_string())
            .and_then(|r| match r.get("epoch") {
                Some(_) => Ok(r),
                None => Err("the record has no `epoch`".to_string()),
            });
        let parsed = parsed.and_then(|r| after_last(&records, r));
        match parsed {
            Ok(r) => records.push(r),
            Err(_) if lenient_tail && is_last(i, lines.len()) => {}
            Err(what) => {
                return Err(RunError::MetricsFile {
                    path: path.to_path_buf(),
                    line: i + 1,
                    what,
                })
            }
        }
    }
    Ok(records)
}

/// `record` when its epoch follows the last one's. Epochs out of order mean two processes
/// appended to one run (which the run lock now prevents), or a hand edit: resuming would
/// otherwise carry the mix into the new files.
fn after_last(records: &[Record], record: Record) -> Result<Record, String> {
    let epoch = record.epoch();
    match records.last() {
        Some(last) if epoch.partial_cmp(&last.epoch()) != Some(std::cmp::Ordering::Greater) => {
            Err(format!(
                "epoch {epoch} follows epoch {}: the records are out of order (two runs wrote \
             into this directory, or the file was edited); restore the file from a backup or \
             start the run again",
                last.epoch()
            ))
        }
        _ if epoch.is_nan() => Err("the record's `epoch` is not a number".into()),
        _ => Ok(record),
    }
}

type CsvContent = (Option<Vec<String>>, Vec<Record>);

fn parse_csv(path: &Path, text: &str, lenient_tail: bool) -> Result<CsvContent, RunError> {
    let lines: Vec<&str> = text.lines().collect();
    let err = |line: usize, what: String| RunError::MetricsFile {
        path: path.to_path_buf(),
        line,
        what,
    };
    let Some(header) = lines.first() else {
        return Ok((None, Vec::new()));
    };
    let keys: Vec<String> = header.split(',').map(str::to_string).collect();
    if !keys.iter().any(|k| k == "epoch") {
        // A header cut short by a kill is the only line: nothing was recorded yet.
        if lenient_tail && lines.len() == 1 {
            return Ok((None, Vec::new()));
        }
        return Err(err(1, "the header has no `epoch` column".into()));
    }
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let row = parse_csv_row(&keys, line).and_then(|r| after_last(&records, r));
        match row {
            Ok(r) => records.push(r),
            Err(_) if lenient_tail && is_last(i, lines.len()) => {}
            Err(what) => return Err(err(i + 1, what)),
        }
    }
    Ok((Some(keys), records))
}

fn parse_csv_row(keys: &[String], line: &str) -> Result<Record, String> {
    let cells: Vec<&str> = line.split(',').collect();
    if cells.len() != keys.len() {
        return Err(format!(
            "{} fields, the header has {}",
            cells.len(),
            keys.len()
        ));
    }
    let mut fields = Vec::with_capacity(keys.len());
    for (key, cell) in keys.iter().zip(cells) {
        let value = cell
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("`{key}`: {cell:?} is not a number"))?;
        fields.push((key.clone(), value));
    }
    Ok(Record { fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u64) -> Record {
        Record::new(epoch)
            .with("train_loss", 1.0 / (epoch as f64 + 1.0))
            .with("val_loss", 2.0 / (epoch as f64 + 1.0))
            .with("lr", 1e-3)
            .with("grad_norm", 0.25)
            .with("seconds", 1.5)
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn csv_and_jsonl_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricsWriter::create(dir.path()).unwrap();
        w.append(record(1).with("physics_loss", 1e-9)).unwrap();
        // Same keys in another order: the CSV follows the header.
        let mut r = Record::new(2).with("physics_loss", f64::NAN);
        for (k, v) in record(2).iter().skip(1) {
            r.set(k, v);
        }
        r.set("val_loss", f64::INFINITY);
        w.append(r).unwrap();

        assert_eq!(
            read(&dir.path().join("metrics.csv")),
            "epoch,train_loss,val_loss,lr,grad_norm,seconds,physics_loss\n\
             1,0.5,1,0.001,0.25,1.5,1e-9\n\
             2,0.3333333333333333,inf,0.001,0.25,1.5,NaN\n"
        );
        let jsonl = read(&dir.path().join("metrics.jsonl"));
        let lines: Vec<&str> = jsonl.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"epoch":1,"train_loss":0.5,"val_loss":1,"lr":0.001,"grad_norm":0.25,"seconds":1.5,"physics_loss":1e-9}"#
        );
        assert_eq!(lines.len(), 2);
        // Every line is a JSON object; non-finite values are null.
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.is_object());
        }
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert!(v["val_loss"].is_null());
        assert_eq!(v["physics_loss"], serde_json::Value::Null);
        assert!(v["epoch"].is_u64());

        // Reading back keeps the order and the values.
        let back = read_csv(&dir.path().join("metrics.csv")).unwrap();
        assert_eq!(back[0], record(1).with("physics_loss", 1e-9));
        assert_eq!(back[1].get("val_loss"), Some(f64::INFINITY));
        assert!(back[1].get("physics_loss").unwrap().is_nan());
        let back = read_jsonl(&dir.path().join("metrics.jsonl")).unwrap();
        assert_eq!(back[0], record(1).with("physics_loss", 1e-9));
        assert_eq!(w.records().len(), 2);
    }

    #[test]
    fn refuses_other_keys_and_repeated_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricsWriter::create(dir.path()).unwrap();
        w.append(record(1)).unwrap();
        let err = w
            .append(record(2).with("extra", 1.0))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metrics.csv") && err.contains("not in the header: extra"),
            "{err}"
        );
        let err = w.append(Record::new(2)).unwrap_err().to_string();
        assert!(err.contains("missing: train_loss"), "{err}");
        let err = w.append(record(1)).unwrap_err().to_string();
        assert!(err.contains("not after the last recorded epoch 1"), "{err}");
        let err = w
            .append(record(3).with("a,b", 1.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be a CSV column"), "{err}");
        // Nothing refused reached the files.
        assert_eq!(read(&dir.path().join("metrics.csv")).lines().count(), 2);
        assert_eq!(read(&dir.path().join("metrics.jsonl")).lines().count(), 1);
        w.append(record(2)).unwrap();
    }

    #[test]
    fn resume_truncates_to_the_checkpointed_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricsWriter::create(dir.path()).unwrap();
        for epoch in 1..=5 {
            w.append(record(epoch)).unwrap();
        }
        drop(w);
        let full_csv = read(&dir.path().join("metrics.csv"));
        let full_jsonl = read(&dir.path().join("metrics.jsonl"));
        // A kill part-way through writing epoch 6's lines.
        for (name, tail) in [
            ("metrics.jsonl", "{\"epoch\":6,\"tra"),
            ("metrics.csv", "6,0.1"),
        ] {
            let mut f = OpenOptions::new()
                .append(true)
                .open(dir.path().join(name))
                .unwrap();
            f.write_all(tail.as_bytes()).unwrap();
        }

        // The checkpoint is from epoch 3: epochs 4, 5 and the partial 6 go.
        let mut w = MetricsWriter::open_resume(dir.path(), 3).unwrap();
        assert_eq!(w.records().len(), 3);
        let csv = read(&dir.path().join("metrics.csv"));
        let jsonl = read(&dir.path().join("metrics.jsonl"));
        assert_eq!(
            csv,
            full_csv
                .lines()
                .take(4)
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
        assert_eq!(
            jsonl,
            full_jsonl
                .lines()
                .take(3)
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );

        // Appending continues after the kept rows, with no second header and no duplicates.
        w.append(record(4)).unwrap();
        drop(w);
        let csv = read(&dir.path().join("metrics.csv"));
        assert_eq!(csv.lines().filter(|l| l.starts_with("epoch")).count(), 1);
        let epochs: Vec<f64> = read_csv(&dir.path().join("metrics.csv"))
            .unwrap()
            .iter()
            .map(Record::epoch)
            .collect();
        assert_eq!(epochs, [1.0, 2.0, 3.0, 4.0]);
        let epochs: Vec<f64> = read_jsonl(&dir.path().join("metrics.jsonl"))
            .unwrap()
            .iter()
            .map(Record::epoch)
            .collect();
        assert_eq!(epochs, [1.0, 2.0, 3.0, 4.0]);
        // No temporary files left behind.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["metrics.csv", "metrics.jsonl"]);
    }

    #[test]
    fn resume_rebuilds_a_short_file_and_accepts_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricsWriter::create(dir.path()).unwrap();
        for epoch in 1..=3 {
            w.append(record(epoch)).unwrap();
        }
        drop(w);
        // The CSV lost its rows (a kill between the two appends, or a hand edit).
        std::fs::write(dir.path().join("metrics.csv"), "epoch,train_loss\n").unwrap();
        let w = MetricsWriter::open_resume(dir.path(), 2).unwrap();
        assert_eq!(w.records().len(), 2);
        assert_eq!(read_csv(w.csv_path()).unwrap(), [record(1), record(2)]);

        // Killed before the first epoch ended: nothing to keep, the header comes later.
        let empty = tempfile::tempdir().unwrap();
        let mut w = MetricsWriter::open_resume(empty.path(), 0).unwrap();
        assert!(w.keys().is_none());
        w.append(record(1)).unwrap();
        assert_eq!(read(w.csv_path()).lines().count(), 2);
    }

    #[test]
    fn interleaved_runs_are_refused_on_resume() {
        // Two writers: a second header in the middle, epochs repeated and out of order.
        let dir = tempfile::tempdir().unwrap();
        let mut w = MetricsWriter::create(dir.path()).unwrap();
        for epoch in 1..=2 {
            w.append(record(epoch)).unwrap();
        }
        drop(w);
        let csv = dir.path().join("metrics.csv");
        let jsonl = dir.path().join("metrics.jsonl");
        let (csv_text, jsonl_text) = (read(&csv), read(&jsonl));
        let mixed_csv = format!("{csv_text}{csv_text}");
        let mixed_jsonl = format!("{jsonl_text}{jsonl_text}");
        std::fs::write(&csv, &mixed_csv).unwrap();
        let err = MetricsWriter::open_resume(dir.path(), 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.csv:4:"), "{err}");

        // Epochs interleaved line by line, header intact.
        let lines: Vec<&str> = csv_text.lines().collect();
        std::fs::write(
            &csv,
            format!("{}\n{}\n{}\n{}\n", lines[0], lines[1], lines[1], lines[2]),
        )
        .unwrap();
        let err = MetricsWriter::open_resume(dir.path(), 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metrics.csv:3: epoch 1 follows epoch 1: the records are out of order"),
            "{err}"
        );
        std::fs::write(&csv, &csv_text).unwrap();
        std::fs::write(&jsonl, &mixed_jsonl).unwrap();
        let err = MetricsWriter::open_resume(dir.path(), 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metrics.jsonl:3: epoch 1 follows epoch 2"),
            "{err}"
        );
        // Reading for a report refuses the same file.
        assert!(read_jsonl(&jsonl).is_err());
    }

    #[test]
    fn corrupt_line_in_the_middle_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"epoch\":1}\nnot json\n{\"epoch\":2}\n").unwrap();
        let err = MetricsWriter::open_resume(dir.path(), 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.jsonl:2:"), "{err}");
    }
}
