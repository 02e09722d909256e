//! Adaptive differential evolution on the unit cube `[0, 1]^d`.
//!
//! DE/rand/1/bin (Storn & Price 1997) with two adaptive ingredients:
//! - JADE-style parameter adaptation (Zhang & Sanderson 2009): every trial draws its own
//!   `F ~ Cauchy(mu_F, 0.1)` (redrawn while `<= 0`, capped at 1) and `CR ~ N(mu_CR, 0.1)`
//!   (clipped to [0, 1]); after each generation `mu_CR` moves towards the arithmetic mean and
//!   `mu_F` towards the Lehmer mean of the values that produced improvements, with rate `c`.
//! - radius-limited donor selection: the population is a ring and the three donors of a trial are
//!   drawn from the `radius` neighbours on either side of its target. This follows the idea of the
//!   radius-limited sampler that BlackBoxOptim.jl (Feldt) uses in its default
//!   `adaptive_de_rand_1_bin_radiuslimited`, the optimizer paper 000 used; it keeps sub-populations
//!   apart for longer on multimodal landscapes. It is not a port of that code.
//!
//! Generations are synchronous: all trials of a generation are built first and evaluated in
//! parallel (`std::thread::scope`), so results depend on the seed only, not on thread timing. A
//! component that leaves [0, 1] is put halfway between its parent's value and the bound (JADE).
//! The initial population is a Latin hypercube, optionally with given points injected.

use crate::rng::Rng;

/// Settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DeConfig {
    /// Population size (at least 5).
    pub population: usize,
    /// Generations.
    pub generations: usize,
    /// Seed.
    pub seed: u64,
    /// Worker threads for evaluations (0: all cores).
    pub threads: usize,
    /// Donor neighbourhood half-width on the ring (0: the whole population).
    pub radius: usize,
    /// Adaptation rate `c` of `mu_F` and `mu_CR`.
    pub adapt_rate: f64,
    /// Initial `mu_F`.
    pub f0: f64,
    /// Initial `mu_CR`.
    pub cr0: f64,
    /// Stop when the population's best and worst values are this close (relative).
    pub tol: f64,
}

impl Default for DeConfig {
    fn default() -> Self {
        DeConfig {
            population: 40,
            generations: 150,
            seed: 1,
            threads: 0,
            radius: 8,
            adapt_rate: 0.1,
            f0: 0.5,
            cr0: 0.5,
            tol: 1e-12,
        }
    }
}

/// The outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct DeResult {
    /// Best point (unit cube).
    pub best: Vec<f64>,
    /// Its value.
    pub best_value: f64,
    /// Objective evaluations.
    pub evaluations: usize,
    /// Generations run.
    pub generations: usize,
    /// Best value after each generation (index 0: the initial population).
    pub history: Vec<f64>,
    /// Final `mu_F`, `mu_CR`.
    pub mu: (f64, f64),
}

/// Number of worker threads for `threads` (0: all cores).
pub fn worker_threads(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Evaluates `f` on every point, on up to `threads` threads; order preserved.
pub fn par_map<T: Sync, R: Send + Default + Clone>(
    items: &[T],
    threads: usize,
    f: &(dyn Fn(&T) -> R + Sync),
) -> Vec<R> {
    let threads = worker_threads(threads).min(items.len()).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out = vec![R::default(); items.len()];
    let chunks: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(k) else { break };
                        mine.push((k, f(item)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for (k, r) in chunks.into_iter().flatten() {
        out[k] = r;
    }
    out
}

/// Non-finite values count as +infinity.
fn clean(v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else {
        v
    }
}

/// Minimizes `f` over `[0, 1]^dim`. `initial` points (clamped) replace the first members of the
/// Latin-hypercube population. `progress(generation, best)` is called after each generation.
pub fn minimize(
    f: &(dyn Fn(&[f64]) -> f64 + Sync),
    dim: usize,
    config: &DeConfig,
    initial: &[Vec<f64>],
    progress: &mut dyn FnMut(usize, f64),
) -> DeResult {
    let np = config.population.max(5);
    let mut rng = Rng::new(config.seed);
    // Latin hypercube: each dimension's strata permuted independently.
    let mut pop: Vec<Vec<f64>> = vec![vec![0.0; dim]; np];
    for j in 0..dim {
        let perm = rng.permutation(np);
        for (k, p) in pop.iter_mut().enumerate() {
            p[j] = (perm[k] as f64 + rng.uniform()) / np as f64;
        }
    }
    for (p, x) in pop.iter_mut().zip(initial) {
        for (pj, xj) in p.iter_mut().zip(x) {
            *pj = xj.clamp(0.0, 1.0);
        }
    }
    let eval = |pts: &[Vec<f64>]| -> Vec<f64> {
        par_map(pts, config.threads, &|x: &Vec<f64>| clean(f(x)))
    };
    let mut fit = eval(&pop);
    let mut evaluations = np;
    let best_of = |fit: &[f64]| {
        fit.iter().enumerate().fold(
            (0, f64::INFINITY),
            |(bi, bv), (i, &v)| if v < bv { (i, v) } else { (bi, bv) },
        )
    };
    let mut history = vec![best_of(&fit).1];
    let (mut mu_f, mut mu_cr) = (config.f0, config.cr0);
    let mut generations = 0;
    for g in 0..config.generations {
        // Build every trial of this generation.
        let mut trials = Vec::with_capacity(np);
        let mut params = Vec::with_capacity(np);
        for i in 0..np {
            let cr = (mu_cr + 0.1 * rng.normal()).clamp(0.0, 1.0);
            let mut fi;
            loop {
                // Cauchy(mu_f, 0.1) by inversion.
                fi = mu_f + 0.1 * (std::f64::consts::PI * (rng.uniform() - 0.5)).tan();
                if fi > 0.0 {
                    break;
                }
            }
            let fi = fi.min(1.0);
            let donors = pick_donors(&mut rng, i, np, config.radius);
            let (a, b, c) = (&pop[donors[0]], &pop[donors[1]], &pop[donors[2]]);
            let jrand = (rng.next_u64() % dim.max(1) as u64) as usize;
            let parent = &pop[i];
            let mut trial = parent.clone();
            for j in 0..dim {
                if j == jrand || rng.uniform() < cr {
                    let mut t = a[j] + fi * (b[j] - c[j]);
                    if t < 0.0 {
                        t = 0.5 * parent[j];
                    } else if t > 1.0 {
                        t = 0.5 * (parent[j] + 1.0);
                    }
                    trial[j] = t;
                }
            }
            trials.push(trial);
            params.push((fi, cr));
        }
        let tf = eval(&trials);
        evaluations += np;
        let (mut sf, mut sf2, mut scr, mut ns) = (0.0, 0.0, 0.0, 0usize);
        for i in 0..np {
            if tf[i] <= fit[i] {
                if tf[i] < fit[i] {
                    let (fi, cr) = params[i];
                    sf += fi;
                    sf2 += fi * fi;
                    scr += cr;
                    ns += 1;
                }
                pop[i] = std::mem::take(&mut trials[i]);
                fit[i] = tf[i];
            }
        }
        if ns > 0 {
            let c = config.adapt_rate;
            mu_cr = (1.0 - c) * mu_cr + c * scr / ns as f64;
            if sf > 0.0 {
                mu_f = (1.0 - c) * mu_f + c * sf2 / sf;
            }
        }
        generations = g + 1;
        let best = best_of(&fit).1;
        history.push(best);
        progress(generations, best);
        let worst = fit.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if worst.is_finite() && worst - best <= config.tol * best.abs().max(1e-300) {
            break;
        }
    }
    let (bi, bv) = best_of(&fit);
    DeResult {
        best: pop[bi].clone(),
        best_value: bv,
        evaluations,
        generations,
        history,
        mu: (mu_f, mu_cr),
    }
}

/// Three distinct donors, none equal to `i`, from the ring neighbourhood of radius `radius`
/// (the whole population when `radius` is 0 or the population is small).
fn pick_donors(rng: &mut Rng, i: usize, np: usize, radius: usize) -> [usize; 3] {
    let window = if radius == 0 || 2 * radius + 1 >= np {
        None
    } else {
        Some(radius)
    };
    let mut out = [usize::MAX; 3];
    let mut k = 0;
    while k < 3 {
        let cand = match window {
            None => (rng.next_u64() % np as u64) as usize,
            Some(r) => {
                let off = (rng.next_u64() % (2 * r as u64 + 1)) as usize;
                (i + np + off - r) % np
            }
        };
        if cand != i && !out[..k].contains(&cand) {
            out[k] = cand;
            k += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn donors_are_distinct_and_local() {
        let mut rng = Rng::new(3);
        for i in 0..50 {
            let d = pick_donors(&mut rng, i, 50, 4);
            assert!(d.iter().all(|&j| j != i));
            assert!(d[0] != d[1] && d[1] != d[2] && d[0] != d[2]);
            for &j in &d {
                let dist = (j as i64 - i as i64)
                    .rem_euclid(50)
                    .min((i as i64 - j as i64).rem_euclid(50));
                assert!(dist <= 4);
            }
        }
    }

    #[test]
    fn par_map_keeps_order() {
        let xs: Vec<u64> = (0..100).collect();
        let ys = par_map(&xs, 3, &|x: &u64| x * 2);
        assert_eq!(ys, (0..100).map(|x| x * 2).collect::<Vec<_>>());
    }
}
