//! Figures as PNG files: the learning curve, and general line plots ([`plot_series`]).
//!
//! Text is drawn with a bundled font (DejaVu Sans, `trainer/reference/assets/fonts/`), so figures render
//! the same on a machine without any system fonts. Files are written atomically (rendered into a
//! temporary file beside the target, then renamed).

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// Why a figure was not written; both name the image file.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The image file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Drawing failed.
    #[error("cannot draw {}: {what}", path.display())]
    Draw {
        /// The image file.
        path: std::path::PathBuf,
        /// What the plotting library said.
        what: String,
    },
}

impl PlotError {
    fn write(path: &Path, source: std::io::Error) -> Self {
        PlotError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// One epoch of named numbers, as [`learning_curve`] reads it (the training crate's metrics
/// record).
pub trait EpochRecord {
    /// The value of `name`.
    fn get(&self, name: &str) -> Option<f64>;
    /// The names it holds, in order.
    fn names(&self) -> Vec<&str>;
}

/// The bundled font (Bitstream Vera license, see `assets/fonts/LICENSE`).
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Font family name the figures use; the bundled font is registered under it.
const FAMILY: &str = "sans-serif";

/// Line colours (the "tab10" palette), picked by [`Series::color`] or by position.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line of a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text (empty: not in the legend).
    pub name: String,
    /// X values; need not be sorted (v–i loops are drawn in the order given).
    pub xs: Vec<f64>,
    /// Y values, as many as `xs`. Non-finite points (and non-positive ones on a log axis) break
    /// the line.
    pub ys: Vec<f64>,
    /// Dashed instead of solid (by convention: measured data dashed, predictions solid).
    pub dashed: bool,
    /// Palette index (0–9, wraps); `None` takes the series' position. Give a prediction and its
    /// measurement the same index to pair them.
    pub color: Option<usize>,
    /// Draw a marker at every point instead of a line (scores per item, chosen epochs).
    pub markers: bool,
}

impl Series {
    /// A solid line with an automatic colour.
    pub fn new(name: impl Into<String>, xs: Vec<f64>, ys: Vec<f64>) -> Self {
        Series {
            name: name.into(),
            xs,
            ys,
            dashed: false,
            color: None,
            markers: false,
        }
    }

    /// The same series as markers without a line.
    #[must_use]
    pub fn markers(mut self) -> Self {
        self.markers = true;
        self
    }

    /// The same series, dashed.
    #[must_use]
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }

    /// The same series, in palette colour `index`.
    #[must_use]
    pub fn color(mut self, index: usize) -> Self {
        self.color = Some(index);
        self
    }
}

/// Size and axes of a figure made by [`plot_series_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Logarithmic y axis.
    pub log_y: bool,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            width: 1024,
            height: 640,
            log_y: false,
        }
    }
}

/// Draws `series` as lines in one chart, with a title, axis labels and a legend, into the PNG
/// file `path` (1024×640, linear axes).
pub fn plot_series(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    plot_series_with(
        path,
        title,
        x_label,
        y_label,
        series,
        &PlotOptions::default(),
    )
}

/// [`plot_series`] with a chosen size and y axis.
pub fn plot_series_with(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    options: &PlotOptions,
) -> Result<(), PlotError> {
    render_png(path, (options.width, options.height), |root| {
        let area = root.margin(8, 0, 0, 0).titled(title, (FAMILY, 28))?;
        draw_panel(&area, x_label, y_label, series, options.log_y, &[])
    })
}

/// Draws the learning curve of `records` into the PNG file `path` (1024×768): training and
/// validation loss (and any other `*_loss` terms, dashed) against the epoch on a log axis, and
/// below it the learning rate (`lr`), also on a log axis. Missing columns are left out.
pub fn learning_curve<R: EpochRecord>(path: &Path, records: &[R]) -> Result<(), PlotError> {
    learning_curve_sized(path, records, (1024, 768))
}

/// [`learning_curve`] at a chosen size in pixels.
pub fn learning_curve_sized<R: EpochRecord>(
    path: &Path,
    records: &[R],
    size: (u32, u32),
) -> Result<(), PlotError> {
    let column = |name: &str| -> Vec<f64> {
        records
            .iter()
            .map(|r| r.get(name).unwrap_or(f64::NAN))
            .collect()
    };
    let has = |name: &str| records.iter().any(|r| r.get(name).is_some());
    let epochs = column("epoch");

    let mut losses = Vec::new();
    if has("train_loss") || !has("val_loss") {
        losses.push(Series::new("training loss", epochs.clone(), column("train_loss")).color(0));
    }
    if has("val_loss") {
        losses.push(Series::new("validation loss", epochs.clone(), column("val_loss")).color(1));
    }
    let mut extra: Vec<&str> = Vec::new();
    for r in records {
        for key in r.names() {
            if key.ends_with("_loss")
                && key != "train_loss"
                && key != "val_loss"
                && !extra.contains(&key)
            {
                extra.push(key);
            }
        }
    }
    for (i, key) in extra.iter().enumerate() {
        losses.push(
            Series::new(*key, epochs.clone(), column(key))
                .dashed()
                .color(2 + i),
        );
    }

    let lr = has("lr").then(|| vec![Series::new("learning rate", epochs.clone(), column("lr"))]);
    render_png(path, size, |root| {
        let area = root
            .margin(8, 0, 0, 0)
            .titled("Learning curve", (FAMILY, 28))?;
        match &lr {
            Some(lr) => {
                let (_, h) = area.dim_in_pixel();
                let (top, bottom) = area.split_vertically(h * 2 / 3);
                draw_panel(&top, "epoch", "loss", &losses, true, &[])?;
                draw_panel(&bottom, "epoch", "learning rate", lr, true, &[])
            }
            None => draw_panel(&area, "epoch", "loss", &losses, true, &[]),
        }
    })
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Registers the bundled font (once per process).
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the bundled font does not load".to_string())
    }
}

/// Renders a white `size` canvas with `draw` into `path`, atomically.
fn render_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> DrawResult<()>,
) -> Result<(), PlotError> {
    let plot_err = |what: String| PlotError::Draw {
        path: path.to_path_buf(),
        what,
    };
    ensure_font().map_err(plot_err)?;
    if size.0 < 64 || size.1 < 64 {
        return Err(plot_err(format!(
            "{}×{} pixels is too small for a figure",
            size.0, size.1
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".odeflash-")
        .suffix(".png")
        .tempfile_in(dir)
        .map_err(|e| PlotError::write(path, e))?;
    {
        let root = BitMapBackend::new(tmp.path(), size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(e.to_string()))?;
        draw(&root).map_err(|e| plot_err(e.to_string()))?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    // The encoder wrote the file by name; make it durable before it replaces `path`.
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| PlotError::write(path, e))?;
    tmp.persist(path)
        .map_err(|e| PlotError::write(path, e.error))?;
    Ok(())
}

/// The points of `s` that can be drawn, as runs of consecutive drawable points.
fn segments(s: &Series, log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for (&x, &y) in s.xs.iter().zip(&s.ys) {
        if x.is_finite() && y.is_finite() && (!log_y || y > 0.0) {
            run.push((x, y));
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// The data range of `values`, padded by 5 % (multiplicatively on a log axis); a single value
/// gets a unit-wide (or a decade-wide) range around it.
fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    match (lo.is_finite(), log) {
        (false, false) => 0.0..1.0,
        (false, true) => 0.1..1.0,
        (true, false) if hi == lo => lo - 0.5..hi + 0.5,
        (true, true) if hi == lo => lo / 3.0..hi * 3.0,
        (true, false) => {
            let pad = (hi - lo) * 0.05;
            lo - pad..hi + pad
        }
        (true, true) => {
            let pad = (hi / lo).powf(0.05);
            lo / pad..hi * pad
        }
    }
}

/// One chart with axes, labels, lines and legend, filling `area`. With `categories`, x = 0, 1,
/// ... are named by them (ticks at the integers) and the x axis spans all of them.
fn draw_panel(
    area: &Area<'_>,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
    categories: &[String],
) -> DrawResult<()> {
    let segs: Vec<Vec<Vec<(f64, f64)>>> = series.iter().map(|s| segments(s, log_y)).collect();
    let points = || segs.iter().flatten().flatten();
    let x_range = if categories.is_empty() {
        axis_range(points().map(|p| p.0), false)
    } else {
        -0.6..categories.len() as f64 - 0.4
    };
    let y_range = axis_range(points().map(|p| p.1), log_y);
    let ticks = (
        TickFormat::new(&x_range, false),
        TickFormat::new(&y_range, log_y),
    );

    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(84);
    let axes = Axes {
        x_label,
        y_label,
        ticks,
        categories,
    };
    if log_y {
        let chart = builder.build_cartesian_2d(x_range, y_range.log_scale())?;
        draw_lines(chart, &axes, series, &segs)
    } else {
        let chart = builder.build_cartesian_2d(x_range, y_range)?;
        draw_lines(chart, &axes, series, &segs)
    }
}

/// Axis labels and tick formats of one chart.
struct Axes<'s> {
    x_label: &'s str,
    y_label: &'s str,
    ticks: (TickFormat, TickFormat),
    categories: &'s [String],
}

fn draw_lines<'a, Y>(
    mut chart: ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    axes: &Axes<'_>,
    series: &[Series],
    segs: &[Vec<Vec<(f64, f64)>>],
) -> DrawResult<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (x_ticks, y_ticks) = axes.ticks;
    let categories = axes.categories;
    let x_format = |v: &f64| {
        if categories.is_empty() {
            return x_ticks.format(*v);
        }
        let k = v.round();
        if (v - k).abs() < 1e-6 && k >= 0.0 {
            categories.get(k as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let y_format = |v: &f64| y_ticks.format(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(axes.x_label)
        .y_desc(axes.y_label)
        .axis_desc_style((FAMILY, 18))
        .label_style((FAMILY, 14))
        .y_label_formatter(&y_format)
        .x_label_formatter(&x_format)
        .light_line_style(RGBColor(235, 235, 235));
    if !categories.is_empty() {
        // Nice steps are 1, 2, 5 x 10^k: asking for one label per category puts them at the
        // integers.
        mesh.x_labels(categories.len() + 1);
    }
    mesh.draw()?;

    let mut any_legend = false;
    for (i, (s, runs)) in series.iter().zip(segs).enumerate() {
        let color = PALETTE[s.color.unwrap_or(i) % PALETTE.len()];
        let style = color.stroke_width(2);
        let mut labelled = false;
        for run in runs {
            let anno = if run.len() == 1 || s.markers {
                chart.draw_series(run.iter().map(|&p| Circle::new(p, 4, color.filled())))?
            } else if s.dashed {
                chart.draw_series(DashedLineSeries::new(run.iter().copied(), 8, 5, style))?
            } else {
                chart.draw_series(LineSeries::new(run.iter().copied(), style))?
            };
            if !labelled && !s.name.is_empty() {
                labelled = true;
                any_legend = true;
                if s.markers {
                    anno.label(s.name.as_str())
                        .legend(move |(x, y)| Circle::new((x + 12, y), 4, color.filled()));
                } else {
                    // A gap of 0 draws the legend's sample line solid.
                    let (dash, gap) = if s.dashed { (6, 4) } else { (24, 0) };
                    anno.label(s.name.as_str()).legend(move |(x, y)| {
                        EmptyElement::at((x, y))
                            + DashedPathElement::new(vec![(0, 0), (24, 0)], dash, gap, style)
                    });
                }
            }
        }
    }
    if any_legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()?;
    }
    Ok(())
}

/// One chart of a figure made by [`plot_panels`].
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title above the chart (empty: none).
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines and markers.
    pub series: Vec<Series>,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Names of x = 0, 1, ... for a chart over items rather than a number (empty: numeric x).
    pub categories: Vec<String>,
}

impl Panel {
    /// A chart with linear axes.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        series: Vec<Series>,
    ) -> Self {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series,
            log_y: false,
            categories: Vec::new(),
        }
    }

    /// The same chart with a logarithmic y axis.
    #[must_use]
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// The same chart over named items at x = 0, 1, ...
    #[must_use]
    pub fn categories(mut self, names: Vec<String>) -> Self {
        self.categories = names;
        self
    }
}

/// Draws a figure of several charts into the PNG file `path` (`size` pixels): `top`, if given,
/// across the whole width above a grid of `grid` with `columns` charts a row (a learning curve
/// over the v-i loops of chosen epochs; three views of one trajectory side by side).
pub fn plot_panels(
    path: &Path,
    title: &str,
    top: Option<&Panel>,
    grid: &[Panel],
    columns: usize,
    size: (u32, u32),
) -> Result<(), PlotError> {
    render_png(path, size, |root| {
        let area = root.margin(8, 0, 0, 0).titled(title, (FAMILY, 26))?;
        let (_, h) = area.dim_in_pixel();
        let rows = grid.len().div_ceil(columns.max(1));
        let rest = match (top, rows) {
            (Some(p), 0) => return draw_titled(&area, p),
            (Some(p), _) => {
                // The top chart gets as much height as one row of the grid, at least half.
                let share = (h / (rows as u32 + 1)).max(h / 2);
                let (upper, lower) = area.split_vertically(share);
                draw_titled(&upper, p)?;
                lower
            }
            (None, _) => area,
        };
        if rows == 0 {
            return Ok(());
        }
        let cells = rest.split_evenly((rows, columns.max(1)));
        for (cell, panel) in cells.iter().zip(grid) {
            draw_titled(cell, panel)?;
        }
        Ok(())
    })
}

fn draw_titled(area: &Area<'_>, p: &Panel) -> DrawResult<()> {
    let inner = if p.title.is_empty() {
        area.clone()
    } else {
        area.titled(&p.title, (FAMILY, 18))?
    };
    draw_panel(
        &inner,
        &p.x_label,
        &p.y_label,
        &p.series,
        p.log_y,
        &p.categories,
    )
}

/// How an axis labels its ticks: all plain (`0.25`, `100`) or all scientific (`1e-4`, `2.5e3`),
/// chosen from the axis range so that one axis does not mix the two.
#[derive(Debug, Clone, Copy)]
struct TickFormat {
    scientific: bool,
    /// Decimals for plain labels (trailing zeros are trimmed).
    decimals: usize,
    /// Ticks closer to 0 than this are 0 (rounding noise such as `-2.2e-16`).
    zero_below: f64,
}

impl TickFormat {
    fn new(range: &Range<f64>, log: bool) -> Self {
        let (lo, hi) = (range.start, range.end);
        let span = (hi - lo).abs();
        let magnitude = lo.abs().max(hi.abs());
        if log {
            // Decades from `lo`: plain only for a range that stays within 0.001..10000.
            let plain = lo >= 1e-3 && hi < 1e4;
            TickFormat {
                scientific: !plain,
                decimals: (-lo.log10()).ceil().clamp(0.0, 6.0) as usize + 1,
                zero_below: 0.0,
            }
        } else {
            let scientific = magnitude >= 1e4 || (magnitude > 0.0 && magnitude < 1e-3);
            let step = span / 10.0;
            let decimals = if step > 0.0 {
                (-step.log10()).ceil().clamp(0.0, 8.0) as usize + 1
            } else {
                2
            };
            TickFormat {
                scientific,
                decimals,
                zero_below: span * 1e-9,
            }
        }
    }

    fn format(&self, v: f64) -> String {
        if v == 0.0 || v.abs() < self.zero_below {
            return "0".to_string();
        }
        if self.scientific {
            let s = format!("{v:.2e}");
            // "1.00e-4" → "1e-4", "2.50e3" → "2.5e3".
            match s.split_once('e') {
                Some((m, e)) => format!("{}e{e}", trim_fraction(m)),
                None => s,
            }
        } else {
            trim_fraction(&format!("{v:.*}", self.decimals)).to_string()
        }
    }
}

/// "0.2500" → "0.25", "100.0" → "100", "100" → "100".
fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height from a PNG's IHDR chunk, after checking the signature.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert!(bytes.len() > 24, "too short for a PNG");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR", "first chunk is IHDR");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    /// A metrics row: `epoch` first, then the named values.
    struct Record(Vec<(String, f64)>);

    impl Record {
        fn new(epoch: u64) -> Self {
            Record(vec![("epoch".into(), epoch as f64)])
        }
        fn with(mut self, name: &str, value: f64) -> Self {
            self.0.push((name.into(), value));
            self
        }
    }

    impl EpochRecord for Record {
        fn get(&self, name: &str) -> Option<f64> {
            self.0.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
        }
        fn names(&self) -> Vec<&str> {
            self.0.iter().map(|(n, _)| n.as_str()).collect()
        }
    }

    fn records(n: u64) -> Vec<Record> {
        (1..=n)
            .map(|e| {
                let e_f = e as f64;
                Record::new(e)
                    .with("train_loss", 0.5 * (-0.15 * e_f).exp() + 1e-4)
                    .with("val_loss", 0.6 * (-0.12 * e_f).exp() + 3e-4)
                    .with("physics_loss", 0.05 / e_f)
                    .with(
                        "lr",
                        1e-3 * (0.5 + 0.5 * (std::f64::consts::PI * e_f / n as f64).cos()) + 1e-6,
                    )
            })
            .collect()
    }

    #[test]
    fn learning_curve_is_a_png_of_the_requested_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("learning_curve.png");
        learning_curve(&path, &records(40)).unwrap();
        assert_eq!(png_size(&std::fs::read(&path).unwrap()), (1024, 768));
        learning_curve_sized(&path, &records(3), (640, 480)).unwrap();
        assert_eq!(png_size(&std::fs::read(&path).unwrap()), (640, 480));
        // Degenerate inputs still draw: no records, one record, no lr, NaN losses.
        learning_curve::<Record>(&path, &[]).unwrap();
        learning_curve(&path, &records(1)).unwrap();
        let partial: Vec<Record> = (1..5)
            .map(|e| Record::new(e).with("train_loss", if e == 2 { f64::NAN } else { 1.0 }))
            .collect();
        learning_curve(&path, &partial).unwrap();
        // Only the figure is left in the directory.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn plot_series_draws_solid_and_dashed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.png");
        let t: Vec<f64> = (0..200).map(|i| i as f64 * 1e-4).collect();
        let v: Vec<f64> = t.iter().map(|t| (t * 400.0).sin()).collect();
        let meas: Vec<f64> = v.iter().map(|v| v * 0.95 + 0.02).collect();
        let series = [
            Series::new("predicted v", t.clone(), v.clone()).color(0),
            Series::new("measured v", t.clone(), meas).dashed().color(0),
            Series::new("", t, v.iter().map(|v| -v).collect()),
        ];
        plot_series(&path, "Transient", "time (s)", "voltage (V)", &series).unwrap();
        assert_eq!(png_size(&std::fs::read(&path).unwrap()), (1024, 640));

        let options = PlotOptions {
            width: 300,
            height: 200,
            log_y: true,
        };
        plot_series_with(&path, "Log", "x", "y", &series, &options).unwrap();
        assert_eq!(png_size(&std::fs::read(&path).unwrap()), (300, 200));
    }

    #[test]
    fn panels_with_markers_and_categories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panels.png");
        let names: Vec<String> = (1..=18).map(|k| k.to_string()).collect();
        let scores = Series::new(
            "model",
            (0..18).map(f64::from).collect(),
            (0..18).map(|k| 1e-3 * f64::from(k + 1)).collect(),
        )
        .markers();
        let bars = Panel::new("L_b", "trajectory", "L_b", vec![scores])
            .log_y()
            .categories(names);
        let t: Vec<f64> = (0..50).map(f64::from).collect();
        let loop_ = Panel::new("epoch 1", "v", "i", vec![Series::new("", t.clone(), t)]);
        plot_panels(
            &path,
            "Figure",
            Some(&bars),
            &[loop_.clone(), loop_.clone(), loop_],
            3,
            (900, 700),
        )
        .unwrap();
        assert_eq!(png_size(&std::fs::read(&path).unwrap()), (900, 700));
        plot_panels(&path, "Only top", Some(&bars), &[], 2, (400, 300)).unwrap();
        plot_panels(&path, "Empty", None, &[], 2, (400, 300)).unwrap();
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir/plot.png");
        let err = plot_series(&path, "t", "x", "y", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing-dir/plot.png"), "{err}");
        let path = dir.path().join("tiny.png");
        let options = PlotOptions {
            width: 10,
            height: 10,
            log_y: false,
        };
        let err = plot_series_with(&path, "t", "x", "y", &[], &options)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tiny.png") && err.contains("too small"),
            "{err}"
        );
    }

    /// The bundled font really draws glyphs (no system fonts involved): text on a white canvas
    /// leaves dark pixels.
    #[test]
    fn text_renders_with_the_bundled_font() {
        ensure_font().unwrap();
        let (w, h) = (200u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.draw_text(
                "Loss 1e-3",
                &(FAMILY, 32).into_font().color(&BLACK),
                (5, 10),
            )
            .unwrap();
            root.present().unwrap();
        }
        let dark = buf.chunks(3).filter(|p| p[0] < 128).count();
        assert!(dark > 100, "only {dark} dark pixels");
    }

    #[test]
    fn tick_labels() {
        let linear = TickFormat::new(&(-1.1..1.1), false);
        assert_eq!(linear.format(-2.220446049250313e-16), "0");
        assert_eq!(linear.format(0.25), "0.25");
        assert_eq!(linear.format(-0.8), "-0.8");
        assert_eq!(TickFormat::new(&(0.0..200.0), false).format(100.0), "100");
        let small = TickFormat::new(&(0.0..2e-4), false);
        assert_eq!(small.format(1e-4), "1e-4");
        assert_eq!(small.format(2.5e-5), "2.5e-5");
        assert_eq!(TickFormat::new(&(0.0..3e5), false).format(2.5e5), "2.5e5");
        let decades = TickFormat::new(&(1e-6..1e-3), true);
        assert_eq!(decades.format(1e-3), "1e-3");
        assert_eq!(decades.format(1e-6), "1e-6");
        let plain_log = TickFormat::new(&(0.01..2.0), true);
        assert_eq!(plain_log.format(0.01), "0.01");
        assert_eq!(plain_log.format(1.0), "1");
    }
}
