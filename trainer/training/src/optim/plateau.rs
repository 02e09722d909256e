//! Learning-rate reduction on a metric plateau, as `torch.optim.lr_scheduler.ReduceLROnPlateau`.

use serde::{Deserialize, Serialize};

use super::{check, OptimError};

const NAME: &str = "reduce_lr_on_plateau";

/// Whether lower or higher metric values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateauMode {
    /// Lower is better (a loss). The default.
    #[default]
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Relative: better than `best * (1 - threshold)` (mode min). The default.
    #[default]
    Rel,
    /// Absolute: better than `best - threshold` (mode min).
    Abs,
}

/// Settings of [`ReduceLrOnPlateau`]; defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReduceLrOnPlateauConfig {
    /// Lower or higher is better (default `min`).
    pub mode: PlateauMode,
    /// Factor applied to the learning rate on a plateau, in `[0, 1)` (default 0.1).
    pub factor: f64,
    /// Number of steps without improvement tolerated; the rate drops on the next one
    /// (default 10).
    pub patience: u64,
    /// Minimal significant improvement (default `1e-4`).
    pub threshold: f64,
    /// Relative or absolute `threshold` (default `rel`).
    pub threshold_mode: ThresholdMode,
    /// Steps after a reduction during which bad steps are not counted (default 0).
    pub cooldown: u64,
    /// Lower bound on the learning rate (default 0).
    pub min_lr: f64,
    /// A reduction smaller than this is skipped (default `1e-8`).
    pub eps: f64,
}

impl Default for ReduceLrOnPlateauConfig {
    fn default() -> Self {
        Self {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

impl ReduceLrOnPlateauConfig {
    /// Checks the settings (PyTorch refuses `factor >= 1`; the others must be finite and
    /// non-negative).
    ///
    /// # Errors
    ///
    /// [`OptimError::InvalidConfig`] naming the setting out of range.
    pub fn validate(&self) -> Result<(), OptimError> {
        check::require(NAME, "factor", (0.0..1.0).contains(&self.factor), || {
            format!("factor must be in [0, 1), got {}", self.factor)
        })?;
        check::non_negative(NAME, "threshold", self.threshold)?;
        check::non_negative(NAME, "min_lr", self.min_lr)?;
        check::non_negative(NAME, "eps", self.eps)
    }
}

/// Reduces the learning rate when a metric stops improving, with the semantics of PyTorch's
/// `ReduceLROnPlateau` for one parameter group. Each [`step`](Self::step):
///
/// ```text
/// if is_better(metric, best):  best = metric, num_bad = 0   else: num_bad += 1
/// if cooldown_counter > 0:     cooldown_counter -= 1, num_bad = 0
/// if num_bad > patience:
///     new_lr = max(lr * factor, min_lr);  if lr - new_lr > eps: lr = new_lr
///     cooldown_counter = cooldown, num_bad = 0
/// ```
///
/// where, in mode `min`, `is_better(a, best)` is `a < best * (1 - threshold)` (`rel`) or
/// `a < best - threshold` (`abs`); in mode `max`, `a > best * (1 + threshold)` or
/// `a > best + threshold`. Before the first metric `best` is the worst value (`+inf` in mode
/// min), so a NaN metric never counts as an improvement.
///
/// The whole scheduler (settings and state) is serde-serializable for checkpoints; `best` is
/// `None` until a first improvement, so the state never holds an infinity (which JSON cannot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReduceLrOnPlateau {
    config: ReduceLrOnPlateauConfig,
    lr: f64,
    best: Option<f64>,
    num_bad_epochs: u64,
    cooldown_counter: u64,
}

impl ReduceLrOnPlateau {
    /// A scheduler starting at learning rate `lr`.
    ///
    /// # Errors
    ///
    /// If `config` is out of range ([`ReduceLrOnPlateauConfig::validate`]) or `lr` is negative
    /// or not finite.
    pub fn new(config: ReduceLrOnPlateauConfig, lr: f64) -> Result<Self, OptimError> {
        config.validate()?;
        check::non_negative(NAME, "initial learning rate", lr)?;
        Ok(Self {
            config,
            lr,
            best: None,
            num_bad_epochs: 0,
            cooldown_counter: 0,
        })
    }

    /// Records `metric` (one value per epoch, typically the validation loss) and returns the
    /// learning rate to use from now on.
    pub fn step(&mut self, metric: f64) -> f64 {
        if self.is_better(metric) {
            self.best = Some(metric);
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.config.patience {
            let new_lr = (self.lr * self.config.factor).max(self.config.min_lr);
            if self.lr - new_lr > self.config.eps {
                self.lr = new_lr;
            }
            self.cooldown_counter = self.config.cooldown;
            self.num_bad_epochs = 0;
        }
        self.lr
    }

    fn is_better(&self, a: f64) -> bool {
        let c = &self.config;
        let best = self.best.unwrap_or(match c.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        });
        match (c.mode, c.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - c.threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - c.threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (1.0 + c.threshold),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + c.threshold,
        }
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The best metric so far, if any.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// Steps since the last improvement (reset by reductions and during cooldown).
    pub fn num_bad_epochs(&self) -> u64 {
        self.num_bad_epochs
    }

    /// Whether the scheduler is in its cooldown after a reduction.
    pub fn in_cooldown(&self) -> bool {
        self.cooldown_counter > 0
    }

    /// The settings.
    pub fn config(&self) -> &ReduceLrOnPlateauConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut ReduceLrOnPlateau, metrics: &[f64]) -> Vec<f64> {
        metrics.iter().map(|&m| s.step(m)).collect()
    }

    #[test]
    fn scripted_sequence_with_cooldown_and_min_lr() {
        // lr 1.0, factor 0.5, patience 2, rel threshold 0.1 (better means < 0.9 * best),
        // cooldown 1, min_lr 0.2. Worked out with PyTorch's rules:
        //  1: 10.0  first value, best 10, bad 0                                   lr 1.0
        //  2:  9.5  not < 9.0: bad 1                                              lr 1.0
        //  3:  9.2  bad 2                                                         lr 1.0
        //  4:  9.1  bad 3 > 2: reduce to 0.5, cooldown 1, bad 0                   lr 0.5
        //  5:  9.0  not < 9.0: bad 1, but in cooldown: counter 0, bad 0           lr 0.5
        //  6:  8.0  < 9.0: best 8, bad 0                                          lr 0.5
        //  7:  8.0  not < 7.2: bad 1                                              lr 0.5
        //  8:  7.5  bad 2                                                         lr 0.5
        //  9:  7.3  bad 3: reduce to 0.25, cooldown 1, bad 0                      lr 0.25
        // 10:  7.3  cooldown: counter 0, bad 0                                    lr 0.25
        // 11:  7.3  bad 1                                                         lr 0.25
        // 12:  7.3  bad 2                                                         lr 0.25
        // 13:  7.3  bad 3: max(0.125, min_lr 0.2) = 0.2, 0.05 > eps: reduce       lr 0.2
        // 14:  7.3  cooldown: counter 0, bad 0                                    lr 0.2
        // 15:  7.3  bad 1                                                         lr 0.2
        // 16:  7.3  bad 2                                                         lr 0.2
        // 17:  7.3  bad 3: max(0.1, 0.2) = 0.2, no change, but cooldown 1, bad 0  lr 0.2
        // 18:  7.0  < 7.2: best 7, bad 0; cooldown: counter 0                     lr 0.2
        // 19:  7.0  not < 6.3: bad 1                                              lr 0.2
        let config = ReduceLrOnPlateauConfig {
            factor: 0.5,
            patience: 2,
            threshold: 0.1,
            cooldown: 1,
            min_lr: 0.2,
            ..ReduceLrOnPlateauConfig::default()
        };
        let mut s = ReduceLrOnPlateau::new(config, 1.0).unwrap();
        let metrics = [
            10.0, 9.5, 9.2, 9.1, 9.0, 8.0, 8.0, 7.5, 7.3, 7.3, 7.3, 7.3, 7.3, 7.3, 7.3, 7.3, 7.3,
            7.0, 7.0,
        ];
        let expected = [
            1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2,
            0.2, 0.2, 0.2,
        ];
        assert_eq!(run(&mut s, &metrics), expected);
        assert_eq!(s.best(), Some(7.0));
        assert_eq!(s.num_bad_epochs(), 1);
        assert!(!s.in_cooldown());
    }

    #[test]
    fn defaults_are_pytorch_defaults() {
        let c = ReduceLrOnPlateauConfig::default();
        assert_eq!(c.mode, PlateauMode::Min);
        assert_eq!(c.threshold_mode, ThresholdMode::Rel);
        assert_eq!(
            (
                c.factor,
                c.patience,
                c.threshold,
                c.cooldown,
                c.min_lr,
                c.eps
            ),
            (0.1, 10, 1e-4, 0, 0.0, 1e-8)
        );
        let parsed: ReduceLrOnPlateauConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, c);
        // Patience 10: the 12th step without improvement (11 bad steps) reduces.
        let mut s = ReduceLrOnPlateau::new(c, 1e-3).unwrap();
        let lrs = run(&mut s, &[1.0; 12]);
        assert!(lrs[..11].iter().all(|&lr| lr == 1e-3));
        assert!((lrs[11] - 1e-4).abs() < 1e-18);
    }

    #[test]
    fn abs_threshold_and_max_mode() {
        // Mode min, abs threshold 0.5: better means < best - 0.5. Patience 0: every bad step
        // reduces (factor 0.5).
        //  1.0 -> best 1.0; 0.6 not < 0.5: reduce to 0.5; 0.4 < 0.5: best 0.4;
        //  0.0 not < -0.1: reduce to 0.25.
        let config = ReduceLrOnPlateauConfig {
            factor: 0.5,
            patience: 0,
            threshold: 0.5,
            threshold_mode: ThresholdMode::Abs,
            ..ReduceLrOnPlateauConfig::default()
        };
        let mut s = ReduceLrOnPlateau::new(config.clone(), 1.0).unwrap();
        assert_eq!(run(&mut s, &[1.0, 0.6, 0.4, 0.0]), [1.0, 0.5, 0.5, 0.25]);

        // Mode max, rel threshold 0.1: better means > 1.1 * best.
        //  1.0 -> best 1.0; 1.05 not > 1.1: reduce; 1.2 > 1.1: best 1.2; 1.3 not > 1.32: reduce.
        let config = ReduceLrOnPlateauConfig {
            mode: PlateauMode::Max,
            threshold: 0.1,
            threshold_mode: ThresholdMode::Rel,
            ..config
        };
        let mut s = ReduceLrOnPlateau::new(config, 1.0).unwrap();
        assert_eq!(run(&mut s, &[1.0, 1.05, 1.2, 1.3]), [1.0, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn reductions_below_eps_are_skipped() {
        // 1.5e-8 * 0.5 = 0.75e-8: the reduction 0.75e-8 is not > eps 1e-8, so lr stays.
        let config = ReduceLrOnPlateauConfig {
            factor: 0.5,
            patience: 0,
            ..ReduceLrOnPlateauConfig::default()
        };
        let mut s = ReduceLrOnPlateau::new(config.clone(), 1.5e-8).unwrap();
        assert_eq!(run(&mut s, &[1.0, 1.0, 1.0]), [1.5e-8; 3]);
        // 3e-8 -> 1.5e-8 is a reduction of 1.5e-8 > eps, then stuck at 1.5e-8.
        let mut s = ReduceLrOnPlateau::new(config, 3e-8).unwrap();
        assert_eq!(run(&mut s, &[1.0, 1.0, 1.0]), [3e-8, 1.5e-8, 1.5e-8]);
    }

    #[test]
    fn nan_metric_counts_as_bad() {
        let config = ReduceLrOnPlateauConfig {
            factor: 0.5,
            patience: 1,
            ..ReduceLrOnPlateauConfig::default()
        };
        let mut s = ReduceLrOnPlateau::new(config, 1.0).unwrap();
        assert_eq!(run(&mut s, &[f64::NAN, f64::NAN]), [1.0, 0.5]);
        assert_eq!(s.best(), None);
    }

    #[test]
    fn serde_round_trip_resumes_identically() {
        let config = ReduceLrOnPlateauConfig {
            factor: 0.5,
            patience: 2,
            cooldown: 2,
            ..ReduceLrOnPlateauConfig::default()
        };
        let metrics = [5.0, 5.0, 5.0, 5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0];
        let mut whole = ReduceLrOnPlateau::new(config.clone(), 0.1).unwrap();
        let expected = run(&mut whole, &metrics);

        let mut first = ReduceLrOnPlateau::new(config, 0.1).unwrap();
        let mut got = run(&mut first, &metrics[..5]);
        let json = serde_json::to_string(&first).unwrap();
        let mut resumed: ReduceLrOnPlateau = serde_json::from_str(&json).unwrap();
        assert_eq!(resumed, first);
        got.extend(run(&mut resumed, &metrics[5..]));
        assert_eq!(got, expected);
        assert_eq!(resumed, whole);

        // A fresh scheduler (best = None) serializes too.
        let fresh = ReduceLrOnPlateau::new(ReduceLrOnPlateauConfig::default(), 1.0).unwrap();
        let back: ReduceLrOnPlateau =
            serde_json::from_str(&serde_json::to_string(&fresh).unwrap()).unwrap();
        assert_eq!(back, fresh);
    }

    #[test]
    fn invalid_settings_are_refused() {
        let bad = |c: ReduceLrOnPlateauConfig| ReduceLrOnPlateau::new(c, 1.0).is_err();
        let d = ReduceLrOnPlateauConfig::default;
        assert!(bad(ReduceLrOnPlateauConfig { factor: 1.0, ..d() }));
        assert!(bad(ReduceLrOnPlateauConfig {
            factor: -0.1,
            ..d()
        }));
        assert!(bad(ReduceLrOnPlateauConfig {
            min_lr: f64::NAN,
            ..d()
        }));
        assert!(ReduceLrOnPlateau::new(d(), -1.0).is_err());
        assert!(serde_json::from_str::<ReduceLrOnPlateauConfig>(r#"{"patiense": 3}"#).is_err());
    }
}
