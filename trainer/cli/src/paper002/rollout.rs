//! The learned equations as a simulator: integrated from every observed start over the whole
//! observed interval (adaptive Radau5) and compared with the observations, not only the one-step
//! maps they were trained on.

use serde::Serialize;

use super::data::Case;
use odeflash_reference::stiff::{solve_adaptive, Options};
use odeflash_training::poly::expand::Equations;

/// How well the learned equations reproduce the data as a simulator: each trajectory integrated
/// from its observed start over the whole observed interval (not interval by interval).
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    /// Relative L2 error per state, `||x_pred - x_obs|| / ||x_obs||` over every trajectory and
    /// observation time.
    pub per_state: Vec<f64>,
    /// The same over all states together.
    pub overall: f64,
    /// Why the integration failed (the errors are then infinite).
    pub failed: Option<String>,
}

/// The learned polynomial right-hand side in f64, for the adaptive solver.
struct Learned<'a> {
    eq: &'a Equations,
    drive: Option<fn(f64) -> f64>,
}

impl odeflash_reference::stiff::OdeSystem for Learned<'_> {
    fn dim(&self) -> usize {
        self.eq.rows.len()
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        let mut z = y.to_vec();
        z.push(self.drive.map_or(0.0, |u| u(t)));
        for (d, row) in dy.iter_mut().zip(&self.eq.rows) {
            *d = row.eval(&z);
        }
    }
}

/// Integrates `eq` from the start of every trajectory of `case` (adaptive Radau5, rtol 1e-8) and
/// measures the relative L2 error against the observations.
pub fn rollout(case: &Case, eq: &Equations) -> Rollout {
    let n = eq.rows.len();
    let system = Learned {
        eq,
        drive: case.drive,
    };
    let opts = Options {
        rtol: 1e-8,
        atol: 1e-10,
        max_steps: 200_000,
        ..Options::default()
    };
    let (mut err, mut norm) = (vec![0.0f64; n], vec![0.0f64; n]);
    for (k, tr) in case.trajectories.iter().enumerate() {
        match solve_adaptive(&system, &tr.x[0], tr.t[0], &tr.t, &opts) {
            Ok(sol) => {
                for (p, o) in sol.y.iter().zip(&tr.x) {
                    for i in 0..n {
                        err[i] += (p[i] - o[i]).powi(2);
                        norm[i] += o[i].powi(2);
                    }
                }
            }
            Err(e) => {
                return Rollout {
                    per_state: vec![f64::INFINITY; n],
                    overall: f64::INFINITY,
                    failed: Some(format!("trajectory {}: {e}", k + 1)),
                }
            }
        }
    }
    let rel = |e: f64, r: f64| (e / r.max(f64::MIN_POSITIVE)).sqrt();
    Rollout {
        per_state: err.iter().zip(&norm).map(|(&e, &r)| rel(e, r)).collect(),
        overall: rel(err.iter().sum(), norm.iter().sum()),
        failed: None,
    }
}

pub(super) fn rollout_text(r: &Rollout) -> String {
    match &r.failed {
        Some(why) => format!("the learned equations could not be integrated: {why}"),
        None => format!(
            "rollout from the observed starts: relative L2 error {:.3e} overall, per state [{}]",
            r.overall,
            r.per_state
                .iter()
                .map(|e| format!("{e:.2e}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paper002::data::{case, kaps_initial_conditions};

    /// HIRES's true equations rolled out from Table 7's 20 starts reproduce the reference data.
    #[test]
    fn rollout_of_the_true_hires_reproduces_the_data() {
        let case = case("hires", 11, Some(20.0), None).unwrap();
        assert_eq!(case.trajectories.len(), 20);
        let rows: Vec<odeflash_training::poly::expand::Polynomial> = case
            .truth
            .iter()
            .map(|r| odeflash_training::poly::expand::Polynomial {
                vars: 9,
                terms: r.clone(),
            })
            .collect();
        let eq = Equations {
            vars: case.vars.clone(),
            rows,
        };
        let r = rollout(&case, &eq);
        assert!(r.failed.is_none() && r.overall < 1e-6, "{r:?}");
        assert!(r.per_state.iter().all(|e| *e < 1e-5), "{r:?}");
    }

    /// The rollout of the true equations reproduces the reference data (to the solvers'
    /// tolerances), and a 10% error in one coefficient shows up as a percent-level error.
    #[test]
    fn rollout_of_the_truth_reproduces_the_data() {
        let case = case("toy2d", 21, Some(1.0), None).unwrap();
        assert_eq!(case.trajectories.len(), kaps_initial_conditions().len());
        let rows: Vec<odeflash_training::poly::expand::Polynomial> = case
            .truth
            .iter()
            .map(|r| odeflash_training::poly::expand::Polynomial {
                vars: 3,
                terms: r.clone(),
            })
            .collect();
        let mut eq = Equations {
            vars: case.vars.clone(),
            rows,
        };
        let r = rollout(&case, &eq);
        assert!(r.failed.is_none());
        assert!(r.overall < 1e-6, "{r:?}");
        // y2' = y1 - y2 - y2^2 with the y1 coefficient 10% off.
        eq.rows[1].terms.insert(vec![1, 0, 0], 1.1);
        let r = rollout(&case, &eq);
        assert!(r.per_state[1] > 1e-2 && r.per_state[1] < 0.2, "{r:?}");
    }
}
