//! `odeflash solve`: integrates one of paper 002's stiff test problems in f64 and writes the
//! solution at chosen times as CSV; reference data for training and evaluation.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Instant;

use crate::args::SolveArgs;
use crate::Error;
use odeflash_reference::files::{claim_file, write_atomic};
use odeflash_reference::stiff::{
    problem, solve_adaptive, solve_fixed, FixedMethod, Options, PROBLEMS,
};

fn usage(msg: String) -> Error {
    Error::Usage(msg)
}

fn positive(flag: &str, v: f64) -> Result<f64, Error> {
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(usage(format!(
            "{flag} must be positive and finite (got {v})"
        )))
    }
}

/// The most fixed steps one solve takes (about a minute for the largest problem).
const MAX_FIXED_STEPS: f64 = 1e8;

/// The most output times.
const MAX_OUTPUTS: usize = 10_000_000;

/// Runs the command.
pub fn run(args: &SolveArgs, out: &mut dyn Write) -> Result<(), Error> {
    claim_file(&args.out, args.force)?;
    let prob = problem(&args.problem).ok_or_else(|| {
        usage(format!(
            "--problem: unknown problem `{}` (known: {})",
            args.problem,
            PROBLEMS.join(", ")
        ))
    })?;
    let fixed = if args.method == "radau5" {
        None
    } else {
        Some(FixedMethod::from_name(&args.method).ok_or_else(|| {
            usage(format!(
                "--method: unknown method `{}` (radau5, {})",
                args.method,
                FixedMethod::NAMES.join(", ")
            ))
        })?)
    };
    let t_end = positive("--t-end", args.t_end.unwrap_or_else(|| prob.t_end()))?;
    let t_out = output_times(args, t_end)?;
    let y0 = match &args.y0 {
        Some(y0) if y0.len() != prob.dim() => {
            return Err(usage(format!(
                "--y0 has {} value(s), {} has {} states",
                y0.len(),
                args.problem,
                prob.dim()
            )))
        }
        Some(y0) => y0.clone(),
        None => prob.initial(),
    };

    let start = Instant::now();
    let (sol, settings) = match fixed {
        None => {
            if args.dt.is_some() {
                return Err(usage(
                    "--dt is for fixed-step methods; radau5 chooses its own steps (set --rtol/--atol)"
                        .into(),
                ));
            }
            let opts = Options {
                rtol: positive("--rtol", args.rtol.unwrap_or(1e-6))?,
                atol: positive("--atol", args.atol.unwrap_or(1e-9))?,
                ..Options::default()
            };
            let settings = format!("radau5 (rtol {:e}, atol {:e})", opts.rtol, opts.atol);
            (
                solve_adaptive(prob.as_ref(), &y0, 0.0, &t_out, &opts),
                settings,
            )
        }
        Some(method) => {
            if args.rtol.is_some() || args.atol.is_some() {
                return Err(usage(format!(
                    "--rtol/--atol apply to radau5 only; {} takes --dt",
                    args.method
                )));
            }
            let dt = args.dt.ok_or_else(|| {
                usage(format!(
                    "--dt is required with the fixed-step method `{}`",
                    args.method
                ))
            })?;
            let dt = positive("--dt", dt)?;
            // A step far below the interval is a typo, and would run for hours.
            let steps = t_end / dt;
            if steps > MAX_FIXED_STEPS {
                return Err(usage(format!(
                    "--dt {dt}: {steps:.3e} steps to t = {t_end}, more than {MAX_FIXED_STEPS:e}; \
                     give a larger step"
                )));
            }
            (
                solve_fixed(prob.as_ref(), method, &y0, 0.0, &t_out, dt),
                format!("{} (dt {dt})", method.name()),
            )
        }
    };
    let elapsed = start.elapsed();
    let sol = sol.map_err(|source| Error::Stiff {
        problem: args.problem.clone(),
        source,
    })?;

    let mut csv = String::new();
    csv.push('t');
    for name in prob.state_names() {
        csv.push(',');
        csv.push_str(&name);
    }
    csv.push('\n');
    for (t, y) in sol.t.iter().zip(&sol.y) {
        let _ = write!(csv, "{t}");
        for v in y {
            let _ = write!(csv, ",{v}");
        }
        csv.push('\n');
    }
    write_atomic(&args.out, csv.as_bytes())?;

    let s = sol.stats;
    writeln!(
        out,
        "{} with {settings} to t = {t_end}: {} steps ({} rejected), {} Jacobians, {} LU \
         decompositions, {} f evaluations, {:.3} ms -> {}",
        args.problem,
        s.steps,
        s.rejected,
        s.jacobians,
        s.lu_decompositions,
        s.rhs_evals,
        elapsed.as_secs_f64() * 1e3,
        args.out.display()
    )
    .map_err(Error::Stdout)
}

/// The output times: `--output-times` (checked, `T` appended) or `--outputs` evenly spaced.
fn output_times(args: &SolveArgs, t_end: f64) -> Result<Vec<f64>, Error> {
    if let Some(times) = &args.output_times {
        let mut prev = 0.0;
        for &t in times {
            if !t.is_finite() || t < prev || t > t_end {
                return Err(usage(format!(
                    "--output-times must increase within [0, {t_end}] (got {t} after {prev})"
                )));
            }
            prev = t;
        }
        let mut times = times.clone();
        if times.last() != Some(&t_end) {
            times.push(t_end);
        }
        return Ok(times);
    }
    let n = args.outputs.unwrap_or(101);
    match n {
        0 => Err(usage("--outputs must be at least 1".into())),
        n if n > MAX_OUTPUTS => Err(usage(format!(
            "--outputs {n}: more than {MAX_OUTPUTS} output times; give fewer"
        ))),
        1 => Ok(vec![t_end]),
        _ => Ok((0..n)
            .map(|k| {
                if k + 1 == n {
                    t_end
                } else {
                    t_end * k as f64 / (n - 1) as f64
                }
            })
            .collect()),
    }
}
