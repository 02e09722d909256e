//! What `odeflash device-check` reports: the comparison of a device trajectory with the host's,
//! the firmware's flash and RAM, its instructions per step and the real-time rate they imply, and
//! for int8 models the quantization error measured on the device against the host's.
//!
//! [`CheckReport`] serializes to the JSON that `--json` writes (field names are the schema, documented
//! on each field; `schema` names its version) and renders as text with [`CheckReport::to_text`].
//! Numbers that do not exist (a relative difference against an all-zero signal) are `null`.

use std::fmt::Write as _;

use serde::Serialize;

/// The `schema` field of the JSON report.
pub const SCHEMA: &str = "odeflash-device-check/1";

/// A device-vs-host (or int8-vs-f32) comparison of one signal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignalDiff {
    /// `v` (memristor voltage), `i` (current) or `x0`, `x1`, ... (states).
    pub name: String,
    /// Largest absolute difference (volts, amperes or state units).
    pub max_abs_diff: f64,
    /// Largest absolute value of the reference.
    pub peak: f64,
    /// `max_abs_diff / peak`; `None` (JSON `null`) for an all-zero reference that differs.
    pub max_rel_diff: Option<f64>,
    /// Normalized mean squared error `sum (other - ref)^2 / sum ref^2`; `None` (JSON `null`) for
    /// an all-zero reference that differs.
    pub nmse: Option<f64>,
    /// Samples where both are the same f32, bit for bit.
    pub bit_identical: usize,
}

/// Compares `other` with `reference` (the same length; extra samples of either are ignored).
pub fn compare(name: &str, reference: &[f32], other: &[f32]) -> SignalDiff {
    let (mut max, mut peak, mut se, mut ss, mut same) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0);
    for (&r, &o) in reference.iter().zip(other) {
        let (r64, d) = (r as f64, o as f64 - r as f64);
        // NaN differences count as infinitely large.
        let d = if d.is_nan() { f64::INFINITY } else { d };
        max = max.max(d.abs());
        peak = peak.max(r64.abs());
        se += d * d;
        ss += r64 * r64;
        same += usize::from(r.to_bits() == o.to_bits());
    }
    let ratio = |num: f64, den: f64| -> Option<f64> {
        if num == 0.0 {
            Some(0.0)
        } else if den > 0.0 && (num / den).is_finite() {
            Some(num / den)
        } else {
            None
        }
    };
    SignalDiff {
        name: name.into(),
        max_abs_diff: max,
        peak,
        max_rel_diff: ratio(max, peak),
        nmse: ratio(se, ss),
        bit_identical: same,
    }
}

/// The model checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The model file.
    pub path: String,
    /// The name stored in it.
    pub name: String,
    /// `neural-ode`, `single-nn-memode`, `dual-nn-memode`, `iterator-net (...)`.
    pub kind: String,
    /// Weight storage: `f32` or `int8`.
    pub quant: String,
    /// Internal states.
    pub states: usize,
    /// File size, bytes.
    pub bytes: u64,
    /// Multiply-accumulates per sample with this solver (observation included).
    pub macs_per_step: u32,
}

/// The emulated device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// QEMU machine: `mps2-an386` or `microbit`.
    pub machine: String,
    /// `Cortex-M4F` or `Cortex-M0`.
    pub core: String,
    /// Rust target of the firmware.
    pub target: String,
    /// The firmware's ELF (a private copy per configuration, under the firmware target folder).
    pub firmware: String,
    /// QEMU's `--version` line.
    pub qemu: String,
}

/// The drive.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StimulusInfo {
    /// The on-device sine `amplitude * sin(2 pi frequency t)`.
    Sine {
        /// Volts.
        amplitude: f64,
        /// Hertz.
        frequency: f64,
    },
    /// A stimulus CSV, linked into the firmware as a table.
    Table {
        /// The file.
        path: String,
    },
}

/// What was run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunInfo {
    /// The drive.
    pub stimulus: StimulusInfo,
    /// Samples, the first one before any step.
    pub samples: usize,
    /// Steps taken on the device (`samples - 1`).
    pub steps: u32,
    /// Hz.
    pub sample_rate_hz: f64,
    /// Sample interval as the device and the host used it (f32), seconds.
    pub dt: f32,
    /// `euler`, `heun`, `rk4`, `rk5`, `dopri5` (ignored by iterator nets).
    pub solver: String,
    /// Solver steps per sample.
    pub substeps: u16,
}

/// Device against host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// How the host ran the model.
    pub host: String,
    /// Where device and host arithmetic differ, if anywhere.
    pub note: String,
    /// The bound on each signal's `max_rel_diff`.
    pub tolerance_rel: f64,
    /// Largest `max_rel_diff` over the signals (`null` if one is undefined).
    pub max_rel_diff: Option<f64>,
    /// Whether every signal is within the bound.
    pub within_tolerance: bool,
    /// Samples where v, i and every state are bit-identical.
    pub bit_identical_samples: usize,
    /// v, i, then the states.
    pub signals: Vec<SignalDiff>,
}

/// Flash, bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flash {
    /// Runtime, defmt and application: vector table, code, read-only data and `.data`'s initial
    /// values. Neither the model nor a stimulus table is included.
    pub code_bytes: u64,
    /// The model, in its own region (16-byte aligned).
    pub model_bytes: u64,
    /// The stimulus table linked into `.rodata` (`--stimulus`; 0 for the sine).
    pub stimulus_table_bytes: u64,
    /// All three.
    pub total_bytes: u64,
    /// Every allocated section of the ELF, bytes (RAM sections included).
    pub sections: Vec<Section>,
}

/// One ELF section.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    /// `.text`, `.rodata`, ...
    pub name: String,
    /// Bytes.
    pub bytes: u64,
}

/// RAM, bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ram {
    /// `.data`, `.bss`, `.uninit` (the simulator's scratch included).
    pub static_bytes: u64,
    /// Of `static_bytes`, the simulator's scratch.
    pub scratch_bytes: u64,
    /// Stack high-water mark while decoding the model (painted stack).
    pub stack_decode_bytes: u64,
    /// Stack high-water mark while stepping (repainted after decoding).
    pub stack_step_bytes: u64,
    /// `static_bytes` plus the larger of the two stack marks: the RAM the firmware needs.
    pub total_bytes: u64,
}

/// Instructions per step, counted in QEMU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Instructions {
    /// `plugin` (the TCG plugin, exact) or `icount-systick` (`-icount shift=0` and SysTick,
    /// within a few dozen instructions per step). Both are deterministic.
    pub method: String,
    /// Steps counted.
    pub steps: u64,
    /// Instructions in all of them.
    pub total: u64,
    /// `total / steps`.
    pub per_step_mean: f64,
    /// Fewest in one step (`null` with `icount-systick`).
    pub per_step_min: Option<u64>,
    /// Most in one step (`null` with `icount-systick`).
    pub per_step_max: Option<u64>,
    /// `per_step_mean / macs_per_step` of the model.
    pub per_mac: f64,
    /// Instructions inside the dense-layer kernel per multiply-accumulate (M4F VFMA kernel;
    /// `null` where the firmware has none).
    pub dense_kernel_per_mac: Option<f64>,
}

/// The real-time sample rate the instruction count implies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RealTime {
    /// Core clock, MHz.
    pub clock_mhz: f64,
    /// `clock / per_step_max`: the highest rate every step keeps up with, Hz.
    pub max_sample_rate_hz: f64,
    /// `clock / per_step_mean`, Hz.
    pub mean_sample_rate_hz: f64,
    /// Always `true`: one cycle per instruction is assumed, so these rates are upper bounds.
    pub upper_bound: bool,
    /// Why.
    pub note: String,
}

/// int8 models: the quantization error seen on the device and on the host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantization {
    /// The reference: the host's f32 twin of the model (int8 weights dequantized).
    pub reference: String,
    /// Relative tolerance of the agreement.
    pub tolerance_rel: f64,
    /// Whether device and host NMSE agree for every signal.
    pub agree: bool,
    /// Per signal.
    pub signals: Vec<QuantSignal>,
}

/// One signal's quantization error.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantSignal {
    /// `v`, `i`, `x0`, ...
    pub name: String,
    /// NMSE of the device's int8 run against the host's f32 twin.
    pub device_nmse: Option<f64>,
    /// NMSE of the host's int8 run against the host's f32 twin.
    pub host_nmse: Option<f64>,
    /// Whether they agree within the tolerance.
    pub agree: bool,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// No check failed.
    pub passed: bool,
    /// What failed, one sentence each.
    pub failures: Vec<String>,
}

/// Everything `odeflash device-check` measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckReport {
    /// [`SCHEMA`].
    pub schema: String,
    /// The model.
    pub model: ModelInfo,
    /// The emulated device.
    pub device: DeviceInfo,
    /// What was run.
    pub run: RunInfo,
    /// Device against host.
    pub device_vs_host: Agreement,
    /// Flash.
    pub flash: Flash,
    /// RAM.
    pub ram: Ram,
    /// Instructions per step (`null` if the firmware could not be counted).
    pub instructions: Option<Instructions>,
    /// Real-time rate (`null` without instruction counts).
    pub real_time: Option<RealTime>,
    /// int8 models only (`null` for f32 models).
    pub quantization: Option<Quantization>,
    /// Whether the checks passed.
    pub verdict: Verdict,
}

/// `1.23e-6`, or `-` for an undefined number.
fn sci(x: Option<f64>) -> String {
    match x {
        Some(0.0) => "0".into(),
        Some(v) => format!("{v:.2e}"),
        None => "-".into(),
    }
}

/// A rate in samples per second: whole numbers from 100 up, two decimals below.
fn rate(hz: f64) -> String {
    if hz >= 100.0 {
        thousands(hz.round() as u64)
    } else {
        format!("{hz:.2}")
    }
}

/// `24651` as `24,651`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl CheckReport {
    /// The JSON written by `--json`.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The text report.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        self.write_setup(&mut t);
        self.write_device_vs_host(&mut t);
        self.write_memory(&mut t);
        self.write_cost(&mut t);
        if let Some(q) = &self.quantization {
            write_quantization(&mut t, q);
        }
        let v = &self.verdict;
        if v.passed {
            let _ = writeln!(t, "\ndevice-check passed");
        } else {
            let _ = writeln!(t, "\ndevice-check FAILED:");
            for f in &v.failures {
                let _ = writeln!(t, "  - {f}");
            }
        }
        t
    }

    /// The `model:`, `device:` and `run:` lines.
    fn write_setup(&self, t: &mut String) {
        let m = &self.model;
        let d = &self.device;
        let r = &self.run;
        let _ = writeln!(
            t,
            "model:   {} ({}, {}, {}, {} state{}, {} B)",
            m.path,
            m.name,
            m.kind,
            m.quant,
            m.states,
            if m.states == 1 { "" } else { "s" },
            thousands(m.bytes)
        );
        let _ = writeln!(
            t,
            "device:  QEMU {} ({}, {}), {}",
            d.machine, d.core, d.target, d.qemu
        );
        let drive = match &r.stimulus {
            StimulusInfo::Sine {
                amplitude,
                frequency,
            } => format!("sine {amplitude} V, {frequency} Hz"),
            StimulusInfo::Table { path } => format!("table {path}"),
        };
        let _ = writeln!(
            t,
            "run:     {drive}, {} samples at {} Hz (dt {} s), {} x{}, {} steps",
            r.samples, r.sample_rate_hz, r.dt, r.solver, r.substeps, r.steps
        );
    }

    /// The device-vs-host table, its summary line and note.
    fn write_device_vs_host(&self, t: &mut String) {
        let a = &self.device_vs_host;
        let _ = writeln!(t, "\ndevice vs host (host: {}):", a.host);
        let _ = writeln!(
            t,
            "  {:<7} {:>12} {:>12} {:>10} {:>10}",
            "signal", "max |diff|", "peak", "of peak", "NMSE"
        );
        for s in &a.signals {
            let _ = writeln!(
                t,
                "  {:<7} {:>12} {:>12} {:>10} {:>10}",
                s.name,
                sci(Some(s.max_abs_diff)),
                sci(Some(s.peak)),
                sci(s.max_rel_diff),
                sci(s.nmse)
            );
        }
        let _ = writeln!(
            t,
            "  {} of {} samples bit-identical; largest difference {} of peak (bound {}): {}",
            a.bit_identical_samples,
            self.run.samples,
            sci(a.max_rel_diff),
            sci(Some(a.tolerance_rel)),
            if a.within_tolerance { "ok" } else { "FAILED" }
        );
        let _ = writeln!(t, "  {}", a.note);
    }

    /// The `flash:` and `RAM:` lines.
    fn write_memory(&self, t: &mut String) {
        let f = &self.flash;
        let table = if f.stimulus_table_bytes > 0 {
            format!(", {} B stimulus table", thousands(f.stimulus_table_bytes))
        } else {
            String::new()
        };
        let _ = writeln!(
            t,
            "\nflash:   {} B runtime + defmt + application, {} B model{table} ({} B total)",
            thousands(f.code_bytes),
            thousands(f.model_bytes),
            thousands(f.total_bytes)
        );
        let ram = &self.ram;
        let _ = writeln!(
            t,
            "RAM:     {} B static ({} B of it scratch) + stack high-water {} B decoding, {} B \
             stepping = {} B",
            thousands(ram.static_bytes),
            thousands(ram.scratch_bytes),
            thousands(ram.stack_decode_bytes),
            thousands(ram.stack_step_bytes),
            thousands(ram.total_bytes)
        );
    }

    /// The `cost:` lines (instructions per step) and the real-time rate.
    fn write_cost(&self, t: &mut String) {
        match &self.instructions {
            Some(c) => {
                let range = match (c.per_step_min, c.per_step_max) {
                    (Some(lo), Some(hi)) => format!("min {}, max {}", thousands(lo), thousands(hi)),
                    _ => "min and max not measured".into(),
                };
                let how = if c.method == "plugin" {
                    "TCG plugin, exact"
                } else {
                    "-icount and SysTick, within a few dozen"
                };
                let _ = writeln!(
                    t,
                    "cost:    {} instructions per step ({range}; {how}; {} steps), {:.2} per MAC",
                    thousands(c.per_step_mean.round() as u64),
                    thousands(c.steps),
                    c.per_mac
                );
                if let Some(k) = c.dense_kernel_per_mac {
                    let _ = writeln!(t, "         dense-layer kernel {k:.3} instructions per MAC");
                }
            }
            None => {
                let _ = writeln!(t, "cost:    instructions not counted");
            }
        }
        if let Some(rt) = &self.real_time {
            let _ = writeln!(
                t,
                "real time: at most {} samples/s at {} MHz (the slowest step; {} at the mean \
                 step)\n           {}",
                rate(rt.max_sample_rate_hz),
                rt.clock_mhz,
                rate(rt.mean_sample_rate_hz),
                rt.note
            );
        }
    }
}

/// The int8-vs-f32 table and whether device and host agree.
fn write_quantization(t: &mut String, q: &Quantization) {
    let _ = writeln!(t, "\nint8 vs f32 (reference: {})", q.reference);
    let _ = writeln!(
        t,
        "  {:<7} {:>16} {:>16}",
        "signal", "NMSE device int8", "NMSE host int8"
    );
    for s in &q.signals {
        let _ = writeln!(
            t,
            "  {:<7} {:>16} {:>16}",
            s.name,
            sci(s.device_nmse),
            sci(s.host_nmse)
        );
    }
    let _ = writeln!(
        t,
        "  device and host agree within {} relative: {}",
        sci(Some(q.tolerance_rel)),
        if q.agree { "yes" } else { "NO" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_measures_differences() {
        let d = compare("i", &[1.0, -2.0, 0.5], &[1.0, -2.0, 0.5]);
        assert_eq!(d.max_abs_diff, 0.0);
        assert_eq!(d.peak, 2.0);
        assert_eq!(d.max_rel_diff, Some(0.0));
        assert_eq!(d.nmse, Some(0.0));
        assert_eq!(d.bit_identical, 3);

        let d = compare("i", &[1.0, -2.0], &[1.5, -2.0]);
        assert_eq!(d.max_abs_diff, 0.5);
        assert_eq!(d.max_rel_diff, Some(0.25));
        assert_eq!(d.nmse, Some(0.25 / 5.0));
        assert_eq!(d.bit_identical, 1);

        let d = compare("i", &[0.0, 0.0], &[0.0, 1e-9]);
        assert_eq!(d.max_rel_diff, None);
        assert_eq!(d.nmse, None);
        let d = compare("i", &[1.0], &[f32::NAN]);
        assert_eq!(d.max_rel_diff, None);
    }

    #[test]
    fn thousands_separates() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1468156), "1,468,156");
    }
}
