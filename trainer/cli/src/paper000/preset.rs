//! Paper 000's training presets for the memristor surrogates (SingleNN-MemODE, DualNN-MemODE,
//! iterator net): nets, solver, loss, optimizer and schedule, scaled to the dataset's drive.

use odeflash_runtime::{Activation, Solver};

use crate::args::{MemristorModelArg, PresetArg};
use crate::Error;
use odeflash_reference::memristor::{MemristorDataset, MemristorTrajectory};
use odeflash_training::config::{Experiment, WindowStart};
use odeflash_training::loss::LossConfig;
use odeflash_training::nn::MlpDef;
use odeflash_training::optim::{
    AdaBeliefConfig, AdamWConfig, OptimizerConfig, ReduceLrOnPlateauConfig,
};
use odeflash_training::surrogate::{Bounds, Kind, Memristor};

/// The experiment and model of a preset before command-line overrides.
pub fn preset(
    kind: MemristorModelArg,
    preset: PresetArg,
    ds: &MemristorDataset,
) -> Result<(Experiment, Memristor), Error> {
    use Activation::*;
    let mut exp = Experiment {
        loss: LossConfig::paper(),
        ..Experiment::default()
    };
    exp.train.window_start = WindowStart::Learned;
    exp.train.window = 100;
    exp.solver.method = Solver::Rk4;
    // Switching is stiff against the sample step at low drive frequencies: one step per sample.
    exp.solver.stride = 1;
    let train = ds.train();
    if train.is_empty() {
        return Err(Error::Input(format!(
            "{}: no training trajectories",
            ds.dir.display()
        )));
    }
    // Rates of order 2 pi f at the geometric mean of the drive frequencies: a unit net output
    // switches the state within a period in the middle of the range. Scaling to the fastest
    // drive instead (2 pi f_max) makes the slow trajectories' rates tiny net outputs and stalls
    // training (measured: base loss 0.19 vs 0.005 on the same two trajectories).
    let f_mid = (train
        .iter()
        .map(|t| t.frequency.max(1e-9).ln())
        .sum::<f64>()
        / train.len() as f64)
        .exp();
    let v_max = train
        .iter()
        .flat_map(|t| t.v.iter())
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-3);
    // The most common series resistor is the rig's: it goes into exported models.
    let mut rs: Vec<f64> = train.iter().map(|t| t.r_s).collect();
    rs.sort_by(f64::total_cmp);
    let r_s = rs
        .chunk_by(|a, b| a == b)
        .max_by_key(|c| c.len())
        .map_or(rs[0], |c| c[0]) as f32;
    let paper = preset == PresetArg::Paper;
    let (kind, hidden, act, n, g_hidden) = match (kind, paper) {
        (MemristorModelArg::Single, true) => (Kind::Single, vec![64, 128, 128, 64], Silu, 1, 0),
        (MemristorModelArg::Single, false) => (Kind::Single, vec![16, 16], Silu, 1, 0),
        (MemristorModelArg::Dual, true) => (Kind::Dual, vec![120, 240, 240, 120], Gelu, 6, 80),
        (MemristorModelArg::Dual, false) => (Kind::Dual, vec![16, 32, 16], Gelu, 2, 16),
        (MemristorModelArg::Iterator, true) => (Kind::Iterator, vec![64, 64], Tanh, 1, 0),
        (MemristorModelArg::Iterator, false) => (Kind::Iterator, vec![16, 16], Tanh, 1, 0),
    };
    let mut layers: Vec<(usize, Activation)> = hidden.iter().map(|&h| (h, act)).collect();
    layers.push((n, Identity));
    let mut f = MlpDef::new(n + 1, layers);
    f.input_scale[n] = 1.0 / v_max;
    if kind != Kind::Dual {
        // x in (0, 1): centred and scaled to (-1, 1).
        f.input_offset[0] = 0.5;
        f.input_scale[0] = 2.0;
    }
    let dt = train[0].dt;
    let rate = std::f64::consts::TAU * f_mid;
    f.output_scale = vec![
        if kind == Kind::Iterator {
            (rate * dt) as f32
        } else {
            rate as f32
        };
        n
    ];
    let g = (kind == Kind::Dual).then(|| MlpDef::new(n, vec![(g_hidden, Relu), (1, Sigmoid)]));
    if kind == Kind::Iterator && train.iter().any(|t| (t.dt - dt).abs() > 1e-9 * dt) {
        return Err(Error::Input(
            "an iterator net is tied to one sample interval, but the training trajectories have several: \
             train it on data of one sample rate"
                .into(),
        ));
    }
    (
        exp.optimizer,
        exp.train.lr,
        exp.train.batch_size,
        exp.train.epochs,
    ) = match (kind, paper) {
        (Kind::Dual, true) => (
            OptimizerConfig::AdaBelief(AdaBeliefConfig::default()),
            6.30e-3,
            14,
            100,
        ),
        (Kind::Dual, false) => (
            OptimizerConfig::AdaBelief(AdaBeliefConfig::default()),
            1e-2,
            4,
            30,
        ),
        (_, true) => (
            OptimizerConfig::AdamW(AdamWConfig::default()),
            1.89e-2,
            2,
            100,
        ),
        (_, false) => (OptimizerConfig::AdamW(AdamWConfig::default()), 1e-2, 4, 30),
    };
    exp.scheduler = Some(ReduceLrOnPlateauConfig {
        factor: 0.5,
        patience: 25,
        ..ReduceLrOnPlateauConfig::default()
    });
    let bounds = Bounds::default();
    let model = Memristor {
        kind,
        f,
        g,
        bounds,
        r_init: resistance_range(&train, &bounds),
        x0: vec![if kind == Kind::Dual { 0.0 } else { 0.5 }; n],
        series_resistance: r_s,
        dt: dt as f32,
        name: format!(
            "{}-{}",
            match kind {
                Kind::Single => "single-nn-memode",
                Kind::Dual => "dual-nn-memode",
                Kind::Iterator => "iterator-memristor",
            },
            if paper { "paper" } else { "small" }
        ),
    };
    Ok((exp, model))
}

/// `R_on` and `R_off` to start from: the extremes of the measured `i / v` over samples where the
/// voltage is well above the noise (1st and 99th percentiles, so a few noisy samples do not
/// decide), kept inside the bounds. Starting at the device's range instead of a generic guess
/// lets the state net learn the switching instead of first dragging the resistances over
/// orders of magnitude.
pub fn resistance_range(train: &[&MemristorTrajectory], bounds: &Bounds) -> [f64; 2] {
    let mut g: Vec<f64> = train
        .iter()
        .flat_map(|t| {
            let v_max = t.v.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            t.v.iter()
                .zip(&t.i)
                .filter(move |(v, _)| v.abs() > 0.2 * v_max && v.abs() > 1e-3)
                .map(|(&v, &i)| f64::from(i) / f64::from(v))
                .filter(|g| g.is_finite() && *g > 0.0)
        })
        .collect();
    if g.len() < 10 {
        return [2e3, 100e3];
    }
    g.sort_by(f64::total_cmp);
    let pick = |q: f64| g[((g.len() - 1) as f64 * q).round() as usize];
    let r_off = (1.0 / pick(0.01)).clamp(bounds.r_on_min * 4.0, bounds.r_off_max * 0.95);
    let r_on = (1.0 / pick(0.99)).clamp(bounds.r_on_min * 1.05, r_off / 2.0);
    [r_on, r_off]
}
