//! `odeflash inspect`: what a model file holds and what running it costs.

use std::fmt::Write as _;
use std::io::Write;

use odeflash_runtime::spec::ModelSpec;
use odeflash_runtime::{
    Activation, Dynamics, IteratorForm, Layer, Mlp, Model, Readout, Solver, Weights,
};

use crate::args::InspectArgs;
use crate::Error;
use odeflash_reference::files::{claim_file, decode, read_model, write_atomic};

/// The solver and sub-steps the cost summary assumes (the `simulate` defaults).
pub const DEFAULT_SOLVER: Solver = Solver::Rk4;

/// Runs the command.
pub fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<(), Error> {
    let blob = read_model(&args.model)?;
    let model = decode(&args.model, &blob)?;
    if args.json {
        let spec = ModelSpec::from_model(&model);
        let mut json = serde_json::to_string_pretty(&spec).map_err(Error::Serialize)?;
        json.push('\n');
        match &args.out {
            Some(path) => {
                claim_file(path, args.force)?;
                write_atomic(path, json.as_bytes())
            }
            None => out.write_all(json.as_bytes()).map_err(Error::Stdout),
        }
    } else {
        let text = report(&args.model.display().to_string(), &model);
        out.write_all(text.as_bytes()).map_err(Error::Stdout)
    }
}

fn activation(a: Activation) -> String {
    match a {
        Activation::LeakyRelu { slope } => format!("leaky_relu(slope={slope})"),
        Activation::Elu { alpha } => format!("elu(alpha={alpha})"),
        a => a.name().into(),
    }
}

fn precision(l: &Layer<'_>) -> &'static str {
    match l.weights {
        Weights::F32(_) => "f32",
        Weights::Int8 { .. } => "int8",
    }
}

fn quantization(model: &Model<'_>) -> &'static str {
    let mut layers: Vec<&Layer<'_>> = model.dynamics.layers().collect();
    if let Readout::Net { g, .. } = &model.readout {
        layers.extend(g.layers.iter());
    }
    let int8 = layers.iter().filter(|l| precision(l) == "int8").count();
    if int8 == 0 {
        "f32"
    } else if int8 == layers.len() {
        "int8 weights (one f32 scale per output row), f32 activations"
    } else {
        "mixed f32 / int8 weights"
    }
}

fn bound(lo: f32, hi: f32) -> String {
    if lo.is_finite() || hi.is_finite() {
        format!("bounds [{lo}, {hi}]")
    } else {
        "unbounded".into()
    }
}

fn net(s: &mut String, title: &str, m: &Mlp<'_>) {
    let _ = writeln!(
        s,
        "  {title}: {} -> {}, {} layers, {} MACs",
        m.n_in(),
        m.n_out(),
        m.layers.len(),
        m.macs()
    );
    for (i, l) in m.layers.iter().enumerate() {
        let _ = writeln!(
            s,
            "    layer {i}: {:>4} -> {:<4} {:<14} {}",
            l.n_in,
            l.n_out,
            activation(l.activation),
            precision(l)
        );
    }
}

/// The text report for `model`, read from `file`.
pub fn report(file: &str, model: &Model<'_>) -> String {
    let mut s = String::new();
    let kv = |s: &mut String, k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(s, "{:<22}{v}", format!("{k}:"));
    };
    kv(&mut s, "file", &file);
    kv(&mut s, "kind", &model.kind().as_str());
    kv(&mut s, "name", &model.name);
    kv(&mut s, "states", &model.n_states());
    for (i, ((x0, lo), hi)) in model
        .x0
        .iter()
        .zip(model.lower)
        .zip(model.upper)
        .enumerate()
    {
        kv(
            &mut s,
            &format!("  x[{i}]"),
            &format!("x0 = {x0}, {}", bound(*lo, *hi)),
        );
    }
    let readout = match &model.readout {
        Readout::None => "none (the drive goes straight into the net)".to_string(),
        Readout::Linear { r_on, r_off } => {
            format!("linear in x[0]: R_on = {r_on} ohm, R_off = {r_off} ohm")
        }
        Readout::Net { g_min, g_max, .. } => {
            format!("memductance net g: G = g_min + (g_max - g_min) g(x), g_min = {g_min} S, g_max = {g_max} S")
        }
    };
    kv(&mut s, "readout", &readout);
    let circuit = match model.circuit {
        Some(c) => format!("{} ohm", c.series_resistance),
        None => "none".into(),
    };
    kv(&mut s, "series resistor", &circuit);
    let iterator = match &model.dynamics {
        Dynamics::Iterator { dt, form, .. } => {
            let form = match form {
                IteratorForm::Residual => "residual",
                IteratorForm::Direct => "direct",
            };
            format!("{dt} s ({form} form)")
        }
        Dynamics::Ode { .. } | Dynamics::PolyOde { .. } => "none (continuous-time ODE)".into(),
    };
    kv(&mut s, "iterator dt", &iterator);
    kv(&mut s, "quantization", &quantization(model));
    let _ = writeln!(s, "nets:");
    match &model.dynamics {
        Dynamics::Ode { f } => net(&mut s, "f (vector field: [x, u] -> dx/dt)", f),
        Dynamics::Iterator { net: m, .. } => net(&mut s, "net (map: [x[n], u[n]] -> x[n+1])", m),
        Dynamics::PolyOde { net: p } => {
            let _ = writeln!(
                s,
                "  f (Π-net V1 vector field: [x, u] -> dx/dt): degree {}, {} -> {} -> {}, {} MACs",
                p.degree(),
                p.n_in(),
                p.width(),
                p.n_out(),
                p.macs()
            );
        }
    }
    if let Readout::Net { g, .. } = &model.readout {
        net(&mut s, "g (memductance: x -> (0, 1))", g);
    }

    let cost = model.cost(DEFAULT_SOLVER, 1);
    kv(&mut s, "flash", &format!("{} bytes", cost.flash_bytes));
    let state_macs = model.dynamics.macs();
    let readout_macs = model.readout_macs();
    kv(
        &mut s,
        "MACs per evaluation",
        &format!(
            "{} (state net {state_macs} + memductance net {readout_macs})",
            cost.macs_per_eval
        ),
    );
    match &model.dynamics {
        Dynamics::Ode { .. } | Dynamics::PolyOde { .. } => {
            kv(
                &mut s,
                "MACs per step",
                &format!(
                    "{} ({}, 1 substep: {} evaluations + {readout_macs} for the observation)",
                    cost.macs_per_step,
                    DEFAULT_SOLVER.cli_name(),
                    cost.evals_per_step
                ),
            );
            kv(
                &mut s,
                "scratch RAM",
                &format!(
                    "{} bytes ({} f32, {}, 1 substep)",
                    cost.scratch_bytes,
                    cost.scratch_f32,
                    DEFAULT_SOLVER.cli_name()
                ),
            );
            let _ = writeln!(
                s,
                "by solver (1 substep; sub-steps multiply MACs, not RAM; implicit ones at {} Newton iterations):",
                odeflash_runtime::SimConfig::DEFAULT_NEWTON_ITERS
            );
            let _ = writeln!(
                s,
                "  {:<14} {:>6} {:>14} {:>14}",
                "solver", "stages", "scratch bytes", "MACs per step"
            );
            for solver in Solver::EVERY {
                let c = model.cost(solver, 1);
                let _ = writeln!(
                    s,
                    "  {:<14} {:>6} {:>14} {:>14}",
                    solver.cli_name(),
                    solver.stages(),
                    c.scratch_bytes,
                    c.macs_per_step
                );
            }
        }
        Dynamics::Iterator { .. } => {
            kv(
                &mut s,
                "MACs per step",
                &format!(
                    "{} (iterator net: 1 evaluation per sample + {readout_macs} for the observation)",
                    cost.macs_per_step
                ),
            );
            kv(
                &mut s,
                "scratch RAM",
                &format!("{} bytes ({} f32)", cost.scratch_bytes, cost.scratch_f32),
            );
        }
    }
    s
}
