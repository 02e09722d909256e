//! Trajectory datasets for state-observed systems: `DIR/train/*.csv` and `DIR/validation/*.csv`,
//! each with a time column `t`, an optional drive `u`, and the state columns `x0, x1, ...`.
//! Files are read in name order; every defect is reported with file, line and column.

use std::path::{Path, PathBuf};

use crate::csv::Table;
use crate::rng::Rng;
use crate::Error;

/// Name of the optional drive column.
pub const DRIVE: &str = "u";

/// One measured trajectory.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    /// The file it came from.
    pub path: PathBuf,
    /// Sample interval, seconds.
    pub dt: f64,
    /// Drive per sample (zeros when the file has none).
    pub drive: Vec<f32>,
    /// Observed channels, each one value per sample.
    pub channels: Vec<Vec<f32>>,
    /// Per-trajectory constants the model needs (the series resistance of a memristor rig).
    pub consts: Vec<f32>,
    /// Leading samples left out of validation losses: the time a model started from an unknown
    /// state needs to settle.
    pub warmup: usize,
}

impl Trajectory {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.drive.len()
    }

    /// Whether it has no samples (never for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.drive.is_empty()
    }

    /// Channel values at sample `s`.
    pub fn at(&self, s: usize) -> Vec<f32> {
        self.channels.iter().map(|c| c[s]).collect()
    }

    /// Unbiased variance of each channel (paper 000 eq. 3); 1 for a constant channel.
    pub fn variances(&self) -> Vec<f64> {
        self.derivative_variances(0)
    }

    /// Unbiased variance of each channel's `order`-th finite difference (in sample units; the
    /// normalized losses are then independent of the sample interval).
    pub fn derivative_variances(&self, order: usize) -> Vec<f64> {
        self.derivative_variances_over(order, 1)
    }

    /// [`Self::derivative_variances`] of differences over `stride` samples.
    pub fn derivative_variances_over(&self, order: usize, stride: usize) -> Vec<f64> {
        let s = stride.max(1);
        self.channels
            .iter()
            .map(|c| {
                let mut c: Vec<f32> = c.clone();
                for _ in 0..order {
                    c = (s..c.len()).map(|k| c[k] - c[k - s]).collect();
                }
                let c = &c;
                let n = c.len() as f64;
                let mean = c.iter().map(|&v| v as f64).sum::<f64>() / n;
                let var =
                    c.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
                // A constant channel carries no information to normalize by.
                if var > 0.0 {
                    var
                } else {
                    1.0
                }
            })
            .collect()
    }
}

/// Training and validation trajectories.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Training split.
    pub train: Vec<Trajectory>,
    /// Validation split.
    pub validation: Vec<Trajectory>,
}

fn csv_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::read(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Input(format!("{}: no .csv files", dir.display())));
    }
    Ok(files)
}

/// Reads one trajectory with `n_states` state columns.
pub fn read_trajectory(path: &Path, n_states: usize) -> Result<Trajectory, Error> {
    let names: Vec<String> = (0..n_states).map(|i| format!("x{i}")).collect();
    let required: Vec<&str> = names.iter().map(String::as_str).collect();
    let table = Table::read(path, &required, &[DRIVE])?;
    Ok(Trajectory {
        path: path.to_path_buf(),
        dt: table.dt,
        drive: table
            .column_f32(DRIVE)
            .unwrap_or_else(|| vec![0.0; table.len()]),
        channels: names.iter().filter_map(|n| table.column_f32(n)).collect(),
        consts: Vec::new(),
        warmup: 0,
    })
}

/// Loads `dir/train` and `dir/validation`. All files must share one sample interval.
pub fn load(dir: &Path, n_states: usize) -> Result<Dataset, Error> {
    let read = |split: &str| -> Result<Vec<Trajectory>, Error> {
        csv_files(&dir.join(split))?
            .iter()
            .map(|p| read_trajectory(p, n_states))
            .collect()
    };
    let data = Dataset {
        train: read("train")?,
        validation: read("validation")?,
    };
    let dt0 = data.train[0].dt;
    for t in data.train.iter().chain(&data.validation) {
        if (t.dt - dt0).abs() > 1e-6 * dt0 {
            return Err(Error::Input(format!(
                "{}: sample interval {} s differs from {} s in {}",
                t.path.display(),
                t.dt,
                dt0,
                data.train[0].path.display()
            )));
        }
    }
    Ok(data)
}

/// The damped, driven oscillator `p'' + 2 zeta w p' + w^2 p = u(t)` used to test that a neural
/// ODE learns a known system: states `(p, p')`, `w = 2 rad/s`, `zeta = 0.1`.
pub struct Oscillator {
    /// Natural frequency, rad/s.
    pub w: f64,
    /// Damping ratio.
    pub zeta: f64,
}

impl Default for Oscillator {
    fn default() -> Self {
        Oscillator { w: 2.0, zeta: 0.1 }
    }
}

impl Oscillator {
    /// The vector field.
    pub fn f(&self, x: [f64; 2], u: f64) -> [f64; 2] {
        [
            x[1],
            u - self.w * self.w * x[0] - 2.0 * self.zeta * self.w * x[1],
        ]
    }

    /// A reference trajectory: RK4 with 50 sub-steps per sample in f64, drive `a sin(om t)`.
    pub fn trajectory(
        &self,
        x0: [f64; 2],
        a: f64,
        om: f64,
        dt: f64,
        samples: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<[f64; 2]>) {
        let m = 50;
        let h = dt / m as f64;
        let u = |t: f64| a * (om * t).sin();
        let mut x = x0;
        let (mut ts, mut us, mut xs) = (vec![0.0], vec![u(0.0)], vec![x]);
        for s in 1..samples {
            for j in 0..m {
                let t = (s - 1) as f64 * dt + j as f64 * h;
                let add = |x: [f64; 2], k: [f64; 2], c: f64| [x[0] + c * k[0], x[1] + c * k[1]];
                let k1 = self.f(x, u(t));
                let k2 = self.f(add(x, k1, h / 2.0), u(t + h / 2.0));
                let k3 = self.f(add(x, k2, h / 2.0), u(t + h / 2.0));
                let k4 = self.f(add(x, k3, h), u(t + h));
                x = [
                    x[0] + h / 6.0 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]),
                    x[1] + h / 6.0 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]),
                ];
            }
            let t = s as f64 * dt;
            ts.push(t);
            us.push(u(t));
            xs.push(x);
        }
        (ts, us, xs)
    }

    /// Writes a dataset: `train` trajectories and `validation` ones with random initial states
    /// and drives, `samples` samples `dt` apart.
    pub fn write_dataset(
        &self,
        dir: &Path,
        train: usize,
        validation: usize,
        samples: usize,
        dt: f64,
        seed: u64,
    ) -> Result<(), Error> {
        let mut rng = Rng::new(seed);
        for (split, count) in [("train", train), ("validation", validation)] {
            let sub = dir.join(split);
            std::fs::create_dir_all(&sub).map_err(|e| Error::write(&sub, e))?;
            for k in 0..count {
                let x0 = [rng.uniform() * 2.0 - 1.0, rng.uniform() * 2.0 - 1.0];
                let a = rng.uniform() * 2.0;
                let om = 0.5 + rng.uniform() * 2.5;
                let (t, u, x) = self.trajectory(x0, a, om, dt, samples);
                let mut s = format!(
                    "# damped driven oscillator: w = {} rad/s, zeta = {}, u = {a:.4} sin({om:.4} t)\nt,u,x0,x1\n",
                    self.w, self.zeta
                );
                for ((t, u), x) in t.iter().zip(&u).zip(&x) {
                    s.push_str(&format!(
                        "{t},{},{},{}\n",
                        *u as f32, x[0] as f32, x[1] as f32
                    ));
                }
                let path = sub.join(format!("{split}-{k:02}.csv"));
                crate::files::write_atomic(&path, s.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// `NMSE(z, z~)` of paper 000 eq. 4: mean squared error divided by the unbiased variance of the
/// measured sequence (eq. 3).
pub fn nmse(measured: &[f32], predicted: &[f64]) -> f64 {
    let var = crate::memristor::data::unbiased_variance(measured);
    nmse_with(measured, predicted, var)
}

/// [`nmse`] with the variance given: that of the whole measured trajectory when only part of it
/// is scored (after a warm-up). A prediction that left finite values scores infinity.
pub fn nmse_with<P: Copy + Into<f64>>(measured: &[f32], predicted: &[P], var: f64) -> f64 {
    let n = measured.len().min(predicted.len());
    if n == 0 {
        return f64::INFINITY;
    }
    let se: f64 = measured
        .iter()
        .zip(predicted)
        .map(|(&m, &p)| (f64::from(m) - p.into()).powi(2))
        .sum();
    let r = se / n as f64 / var;
    if r.is_finite() {
        r
    } else {
        f64::INFINITY
    }
}
