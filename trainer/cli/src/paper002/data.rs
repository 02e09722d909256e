//! Paper 002's training data: every trajectory of a stiff problem observed at equally spaced (or
//! geometric) times by the adaptive Radau5 reference solver, with the drive and the true
//! coefficients the learned equations are compared with.

use std::collections::BTreeMap;

use crate::Error;
use odeflash_reference::stiff::{
    hires_initial_conditions, problem, solve_adaptive, Options, Problem, PROBLEMS,
};
use odeflash_training::poly::expand::Monomial;
use odeflash_training::poly::fit::TimeSeries;

/// The training data of one problem: trajectories, the drive, the true coefficients.
pub struct Case {
    /// The problem.
    pub problem: Box<dyn Problem>,
    /// Observed trajectories.
    pub trajectories: Vec<TimeSeries>,
    /// `Some` for the linear problem, whose forcing `b e^{-t}` enters as the drive `u = e^{-t}`.
    pub drive: Option<fn(f64) -> f64>,
    /// True right-hand side, one map per state (monomials over `[x.., u]`).
    pub truth: Vec<BTreeMap<Monomial, f64>>,
    /// Variable names `[x.., u]`.
    pub vars: Vec<String>,
}

/// Kaps' problem from off its slow manifold `y1 = y2^2`: from the standard `(1, 1)` the solution
/// `(e^{-2t}, e^{-t})` is the same for every `mu`, so the stiff coefficient cannot be identified;
/// starting off the manifold, the fast decay of `y1 - y2^2` at rate `mu + 2` is in the data.
pub fn kaps_initial_conditions() -> Vec<Vec<f64>> {
    vec![
        vec![1.0, 1.0],
        vec![2.0, 1.0],
        vec![0.2, 0.8],
        vec![1.5, 0.5],
    ]
}

/// `points` observation times in `[0, t_end]`: equally spaced, or with `t_first`, 0 followed by
/// `points - 1` geometrically spaced times from `t_first` to `t_end`.
pub fn observation_times(
    points: usize,
    t_end: f64,
    t_first: Option<f64>,
) -> Result<Vec<f64>, Error> {
    if points < 2 {
        return Err(Error::Usage("--points must be at least 2".into()));
    }
    match t_first {
        None => Ok((0..points)
            .map(|k| t_end * k as f64 / (points - 1) as f64)
            .collect()),
        Some(t1) => {
            if !(t1 > 0.0 && t1 < t_end) || points < 3 {
                return Err(Error::Usage(format!(
                    "--t-first {t1} must lie in (0, {t_end}) with at least 3 points"
                )));
            }
            let ratio = (t_end / t1).ln() / (points - 2) as f64;
            let mut t = vec![0.0];
            t.extend((0..points - 1).map(|k| t1 * (ratio * k as f64).exp()));
            t[points - 1] = t_end;
            Ok(t)
        }
    }
}

fn exp_neg(t: f64) -> f64 {
    (-t).exp()
}

/// Generates `points` equally spaced observations of every trajectory of `name` (HIRES: the 20
/// initial conditions of Table 7) with the adaptive Radau5 at rtol 1e-10, atol 1e-12.
pub fn case(
    name: &str,
    points: usize,
    t_end: Option<f64>,
    t_first: Option<f64>,
) -> Result<Case, Error> {
    let p = problem(name).ok_or_else(|| {
        Error::Usage(format!(
            "unknown problem `{name}`; one of {}",
            PROBLEMS.join(", ")
        ))
    })?;
    if points < 2 {
        return Err(Error::Usage("--points must be at least 2".into()));
    }
    let n = p.dim();
    let t_end = t_end.unwrap_or(p.t_end());
    if !(t_end > 0.0 && t_end.is_finite()) {
        return Err(Error::Usage(format!("--t-end {t_end} must be positive")));
    }
    let t = observation_times(points, t_end, t_first)?;
    let starts: Vec<Vec<f64>> = if name == "hires" {
        hires_initial_conditions()
            .iter()
            .map(|y| y.to_vec())
            .collect()
    } else if name == "toy2d" {
        kaps_initial_conditions()
    } else {
        vec![p.initial()]
    };
    let opts = Options {
        rtol: 1e-10,
        atol: 1e-12,
        max_steps: 10_000_000,
        ..Options::default()
    };
    let mut trajectories = Vec::new();
    for y0 in starts {
        let sol = solve_adaptive(p.as_ref(), &y0, 0.0, &t, &opts)
            .map_err(|e| Error::Train(format!("reference solution of {name}: {e}")))?;
        trajectories.push(TimeSeries {
            t: t.clone(),
            x: sol.y,
        });
    }
    let mut truth: Vec<BTreeMap<Monomial, f64>> = p
        .polynomial()
        .iter()
        .map(|terms| {
            terms
                .iter()
                .map(|term| {
                    let mut m: Monomial = term.powers.iter().map(|&e| e as u8).collect();
                    m.push(0);
                    (m, term.coefficient)
                })
                .collect()
        })
        .collect();
    let drive = if name == "linear" {
        // The forcing b e^{-t}: its amplitude is what the forcing adds at t = 0.
        let mut b = vec![0.0; n];
        p.forcing(0.0, &mut b);
        truth[0].insert(vec![0, 1], b[0]);
        Some(exp_neg as fn(f64) -> f64)
    } else {
        None
    };
    let mut vars = p.state_names();
    vars.push("u".into());
    Ok(Case {
        problem: p,
        trajectories,
        drive,
        truth,
        vars,
    })
}

impl Case {
    /// Highest total degree of the true right-hand side.
    pub fn degree(&self) -> usize {
        self.truth
            .iter()
            .flat_map(|r| r.keys())
            .map(|m| m.iter().map(|&e| e as usize).sum::<usize>())
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The stiff coefficient: the largest non-constant true coefficient in magnitude (the first
    /// one on ties), as `(state, monomial, value)`.
    pub fn stiff_term(&self) -> (usize, Monomial, f64) {
        let mut best = (0, Vec::new(), 0.0f64);
        for (i, row) in self.truth.iter().enumerate() {
            for (m, &c) in row {
                let drive = m.last().copied().unwrap_or(0) > 0;
                if !drive && m.iter().any(|&e| e > 0) && c.abs() > best.2.abs() {
                    best = (i, m.clone(), c);
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equally spaced and geometric observation times: both ends, increasing, constant ratio.
    #[test]
    fn observation_times_are_equal_or_geometric() {
        let t = observation_times(5, 2.0, None).unwrap();
        assert_eq!(t, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        let g = observation_times(5, 8.0, Some(1.0)).unwrap();
        assert_eq!(g.len(), 5);
        assert_eq!((g[0], g[1], g[4]), (0.0, 1.0, 8.0));
        assert!(
            (g[2] - 2.0).abs() < 1e-12 && (g[3] - 4.0).abs() < 1e-12,
            "{g:?}"
        );
        assert!(observation_times(5, 8.0, Some(9.0)).is_err());
        assert!(observation_times(2, 8.0, Some(1.0)).is_err());
    }
}
