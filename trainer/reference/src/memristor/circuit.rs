//! The series-resistor circuit of paper 000 Fig. 1: the device voltage `v` from the supply
//! `v_s` through `R_s`, solving `v + R_s i(v) = v_s`. The one solve behind the compact models
//! and the synthetic device.

/// Solves `v + R_s i(v) = v_s` for `v`, with `current(v) = (i, di/dv)` increasing in `v`, by
/// safeguarded Newton from `guess`; `bracket`, when known (for a current with the sign of `v`:
/// between 0 and `v_s`), bounds the root from the start. Converges to machine precision; returns
/// `v` and the iterations used.
///
/// Every iterate tightens a bracket `[lo, hi]`. While one side is still unknown, a Newton step
/// that creeps (the exponential region of a diode far from the root) is replaced by a step that
/// doubles each time, so a bracket is found in a few iterations from any start; once the
/// bracket is finite, a step that leaves it (or is not finite) becomes bisection.
pub fn solve_divider(
    v_s: f64,
    r_s: f64,
    guess: f64,
    bracket: Option<(f64, f64)>,
    mut current: impl FnMut(f64) -> (f64, f64),
) -> (f64, u32) {
    let (mut lo, mut hi) = bracket.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    let mut v = if guess.is_finite() { guess } else { v_s };
    if bracket.is_some() {
        v = v.clamp(lo, hi);
    }
    let mut expand = 0.125_f64;
    let mut last_step = f64::INFINITY;
    let mut it = 0;
    while it < 400 {
        it += 1;
        let (i, di) = current(v);
        let h = v + r_s * i - v_s;
        if h == 0.0 {
            break;
        }
        if h > 0.0 {
            hi = v;
        } else {
            lo = v;
        }
        let newton = v - h / (1.0 + r_s * di);
        if (newton - v).abs() <= 1e-15 * (1.0 + v.abs()) {
            v = newton;
            break;
        }
        let next = if lo.is_finite() && hi.is_finite() {
            if newton.is_finite() && newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            }
        } else if newton.is_finite() && (newton - v).abs() < 0.5 * last_step {
            // Converging fast from one side: plain Newton.
            newton
        } else {
            // Creeping (or no usable step): move towards the root by a growing step.
            expand *= 2.0;
            let dir = if hi.is_infinite() { 1.0 } else { -1.0 };
            let n_step = if newton.is_finite() {
                (newton - v) * dir
            } else {
                0.0
            };
            v + dir * n_step.max(expand)
        };
        let step = (next - v).abs();
        last_step = step;
        v = next;
        if step <= 1e-15 * (1.0 + v.abs()) || hi - lo <= 1e-15 * (1.0 + v.abs()) {
            break;
        }
    }
    (v, it)
}
