//! Whole-record ("free-run") training of the memristor surrogates: every training record is
//! simulated from the model's own initial state, as validation and the device run it, and paper
//! 000's objective over the record after its warm-up is differentiated by a hand-written reverse
//! pass through the solver, in f64 loops over slices.
//!
//! Why: with windows, learned window starts absorb what the dynamics get wrong. On the 2-period
//! synthetic set SingleNN reached a windowed base loss of 0.007 but a free-run validation L_b of
//! 0.068, six times MMS's; the continuity weight, its continuation and truncated back-propagation
//! did not close the gap. burn cannot differentiate a whole record instead: its graph bookkeeping
//! grows quadratically with the steps of one graph. A memristor net costs a few hundred
//! multiply-adds per evaluation, so a reverse pass over 10^5 steps written as loops is cheap, and
//! its memory is one state per sample: each step's stages are recomputed from its start state.

use odeflash_runtime::{Activation, Tableau};

use crate::config::SolverConfig;
use crate::diffsolve::implicit::ImplicitMethod;
use crate::loss::{adaptive_weights, LossConfig, Terms};
use crate::nn::MlpDef;
use crate::surrogate::{Kind, Memristor, KOHM};
use crate::Error;
use odeflash_reference::dataset::Trajectory;

/// `(a(z), a'(z))` in f64 with the runtime's definitions.
fn act(a: &Activation, z: f64) -> (f64, f64) {
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    match *a {
        Activation::Identity => (z, 1.0),
        Activation::Relu => {
            if z > 0.0 {
                (z, 1.0)
            } else {
                (0.0, 0.0)
            }
        }
        Activation::LeakyRelu { slope } => {
            if z > 0.0 {
                (z, 1.0)
            } else {
                (f64::from(slope) * z, f64::from(slope))
            }
        }
        Activation::Elu { alpha } => {
            if z > 0.0 {
                (z, 1.0)
            } else {
                let e = z.exp();
                (f64::from(alpha) * (e - 1.0), f64::from(alpha) * e)
            }
        }
        Activation::Gelu => {
            const K: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)
            const C: f64 = 0.044_715;
            let t = (K * (z + C * z * z * z)).tanh();
            (
                0.5 * z * (1.0 + t),
                0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * K * (1.0 + 3.0 * C * z * z),
            )
        }
        Activation::Silu => {
            let s = sig(z);
            (z * s, s + z * s * (1.0 - s))
        }
        Activation::Tanh => {
            let t = z.tanh();
            (t, 1.0 - t * t)
        }
        Activation::Sigmoid => {
            let s = sig(z);
            (s, s * (1.0 - s))
        }
        Activation::Sin => (z.sin(), z.cos()),
        Activation::Softplus => (z.max(0.0) + (-z.abs()).exp().ln_1p(), sig(z)),
    }
}

/// The dense-layer loops of the free run, which take nearly all of its time. They are compiled
/// twice, for the baseline instruction set and for AVX2 with fused multiply-add, and the second
/// is used where the CPU has it: the baseline build runs them as two-wide SSE2 multiplies and
/// adds, about a quarter of what the FMA units do.
mod dense {
    use std::sync::OnceLock;

    /// `z += Σ_i h[i] W[i, :]` for row-major `W` of `[h.len(), z.len()]`.
    pub(super) type Forward = fn(z: &mut [f64], h: &[f64], w: &[f64]);
    /// `gw += h ⊗ zbar` and `hbar[i] = W[i, :] · zbar`, for `W` and `gw` as in [`Forward`].
    pub(super) type Backward =
        fn(gw: &mut [f64], w: &[f64], h: &[f64], zbar: &[f64], hbar: &mut [f64]);

    #[derive(Clone, Copy)]
    pub(super) struct Kernels {
        pub forward: Forward,
        pub backward: Backward,
    }

    /// The kernels for this CPU, picked on first use.
    pub(super) fn kernels() -> Kernels {
        static PICK: OnceLock<Kernels> = OnceLock::new();
        *PICK.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return x86::KERNELS;
            }
            PORTABLE
        })
    }

    /// The baseline build.
    pub(super) const PORTABLE: Kernels = Kernels {
        forward: forward::<false>,
        backward: backward::<false>,
    };

    #[inline(always)]
    fn fmadd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    /// Four input rows per pass over `z`, so that `z` is loaded and stored once per four
    /// multiply-adds; each element still sums its terms in input order.
    #[inline(always)]
    pub(super) fn forward<const FMA: bool>(z: &mut [f64], h: &[f64], w: &[f64]) {
        let n = z.len();
        debug_assert_eq!(w.len(), h.len() * n);
        let mut hs = h.chunks_exact(4);
        let mut ws = w.chunks_exact(4 * n);
        for (h4, w4) in (&mut hs).zip(&mut ws) {
            let (w0, r) = w4.split_at(n);
            let (w1, r) = r.split_at(n);
            let (w2, w3) = r.split_at(n);
            let [h0, h1, h2, h3] = [h4[0], h4[1], h4[2], h4[3]];
            for ((((zo, &a), &b), &c), &d) in z.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                *zo = fmadd::<FMA>(
                    h3,
                    d,
                    fmadd::<FMA>(h2, c, fmadd::<FMA>(h1, b, fmadd::<FMA>(h0, a, *zo))),
                );
            }
        }
        for (&hi, wi) in hs.remainder().iter().zip(ws.remainder().chunks_exact(n)) {
            for (zo, &a) in z.iter_mut().zip(wi) {
                *zo = fmadd::<FMA>(hi, a, *zo);
            }
        }
    }

    /// Eight partial sums per dot product, so that the reduction is not one chain of dependent
    /// adds (the compiler keeps a single chain's order and cannot vectorize it).
    #[inline(always)]
    pub(super) fn backward<const FMA: bool>(
        gw: &mut [f64],
        w: &[f64],
        h: &[f64],
        zbar: &[f64],
        hbar: &mut [f64],
    ) {
        let n = zbar.len();
        debug_assert_eq!(w.len(), h.len() * n);
        debug_assert_eq!(gw.len(), w.len());
        debug_assert_eq!(hbar.len(), h.len());
        let rows = gw.chunks_exact_mut(n).zip(w.chunks_exact(n));
        for (((gr, wr), &hi), hb) in rows.zip(h).zip(hbar.iter_mut()) {
            let mut acc = [0.0f64; 8];
            let mut gc = gr.chunks_exact_mut(8);
            let mut wc = wr.chunks_exact(8);
            let mut zc = zbar.chunks_exact(8);
            for ((g8, w8), z8) in (&mut gc).zip(&mut wc).zip(&mut zc) {
                for k in 0..8 {
                    g8[k] = fmadd::<FMA>(hi, z8[k], g8[k]);
                    acc[k] = fmadd::<FMA>(w8[k], z8[k], acc[k]);
                }
            }
            let mut s =
                ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            let tail = gc
                .into_remainder()
                .iter_mut()
                .zip(wc.remainder())
                .zip(zc.remainder());
            for ((g, &wv), &zv) in tail {
                *g = fmadd::<FMA>(hi, zv, *g);
                s = fmadd::<FMA>(wv, zv, s);
            }
            *hb = s;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    mod x86 {
        use super::Kernels;

        #[target_feature(enable = "avx2,fma")]
        unsafe fn forward_avx2(z: &mut [f64], h: &[f64], w: &[f64]) {
            super::forward::<true>(z, h, w)
        }

        #[target_feature(enable = "avx2,fma")]
        unsafe fn backward_avx2(
            gw: &mut [f64],
            w: &[f64],
            h: &[f64],
            zbar: &[f64],
            hbar: &mut [f64],
        ) {
            super::backward::<true>(gw, w, h, zbar, hbar)
        }

        fn forward(z: &mut [f64], h: &[f64], w: &[f64]) {
            // SAFETY: only reachable through `KERNELS`, which `kernels()` returns after
            // `is_x86_feature_detected!` confirmed AVX2 and FMA on this CPU.
            unsafe { forward_avx2(z, h, w) }
        }

        fn backward(gw: &mut [f64], w: &[f64], h: &[f64], zbar: &[f64], hbar: &mut [f64]) {
            // SAFETY: as in `forward`.
            unsafe { backward_avx2(gw, w, h, zbar, hbar) }
        }

        /// Only for CPUs with AVX2 and FMA.
        pub(in super::super) const KERNELS: Kernels = Kernels { forward, backward };
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use odeflash_reference::rng::Rng;

        /// Sizes below, at and above the blocks of four rows and eight lanes.
        const SIZES: [usize; 7] = [1, 3, 4, 7, 8, 13, 33];

        /// The kernels this CPU uses and the baseline, against plain loops: the baseline forward
        /// pass and weight gradient bit for bit (same operations in the same order), the rest
        /// to rounding.
        #[test]
        fn kernels_match_plain_loops() {
            let mut rng = Rng::new(3);
            let mut r = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.normal()).collect() };
            for (name, k, exact) in [
                ("portable", PORTABLE, true),
                ("this CPU's", kernels(), false),
            ] {
                for &ni in &SIZES {
                    for &no in &SIZES {
                        let (h, w, z0, zbar, g0) = (r(ni), r(ni * no), r(no), r(no), r(ni * no));
                        let mut want = z0.clone();
                        for i in 0..ni {
                            for o in 0..no {
                                want[o] += h[i] * w[i * no + o];
                            }
                        }
                        let mut z = z0.clone();
                        (k.forward)(&mut z, &h, &w);
                        let (mut gw, mut hbar) = (g0.clone(), vec![f64::NAN; ni]);
                        (k.backward)(&mut gw, &w, &h, &zbar, &mut hbar);
                        let close = |a: f64, b: f64, scale: f64| (a - b).abs() <= 1e-13 * scale;
                        for o in 0..no {
                            let scale =
                                1.0 + (0..ni).map(|i| (h[i] * w[i * no + o]).abs()).sum::<f64>();
                            assert!(
                                if exact {
                                    z[o] == want[o]
                                } else {
                                    close(z[o], want[o], scale)
                                },
                                "{name} forward {ni}x{no}, output {o}: {} vs {}",
                                z[o],
                                want[o]
                            );
                        }
                        for i in 0..ni {
                            let dot: f64 = (0..no).map(|o| w[i * no + o] * zbar[o]).sum();
                            let scale = 1.0
                                + (0..no)
                                    .map(|o| (w[i * no + o] * zbar[o]).abs())
                                    .sum::<f64>();
                            assert!(
                                close(hbar[i], dot, scale),
                                "{name} backward {ni}x{no}, input {i}"
                            );
                            for o in 0..no {
                                let want = g0[i * no + o] + h[i] * zbar[o];
                                let got = gw[i * no + o];
                                assert!(
                                    if exact {
                                        got == want
                                    } else {
                                        close(got, want, 1.0 + want.abs())
                                    },
                                    "{name} weight gradient {ni}x{no} at ({i}, {o})"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A net's definition and its parameters (`[in, out]` weights and biases, layer by layer).
#[derive(Clone, Copy)]
struct NetParams<'a> {
    def: &'a MlpDef,
    p: &'a [Vec<f64>],
    k: dense::Kernels,
}

/// One evaluation's activations, kept for its reverse pass.
#[derive(Clone, Debug, Default)]
struct NetTape {
    input: Vec<f64>,
    pre: Vec<Vec<f64>>,
    post: Vec<Vec<f64>>,
    bar: [Vec<f64>; 2],
}

impl<'a> NetParams<'a> {
    fn new(def: &'a MlpDef, p: &'a [Vec<f64>]) -> Self {
        NetParams {
            def,
            p,
            k: dense::kernels(),
        }
    }

    fn tape(&self) -> NetTape {
        let widths: Vec<usize> = self.def.layers.iter().map(|l| l.0).collect();
        let widest = widths
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.def.inputs);
        NetTape {
            input: vec![0.0; self.def.inputs],
            pre: widths.iter().map(|&w| vec![0.0; w]).collect(),
            post: widths.iter().map(|&w| vec![0.0; w]).collect(),
            bar: [vec![0.0; widest], vec![0.0; widest]],
        }
    }

    fn forward(&self, x: &[f64], t: &mut NetTape, out: &mut [f64]) {
        let d = self.def;
        for (i, v) in t.input.iter_mut().enumerate() {
            *v = (x[i] - f64::from(d.input_offset[i])) * f64::from(d.input_scale[i]);
        }
        for (l, (_, a)) in d.layers.iter().enumerate() {
            let (w, b) = (&self.p[2 * l], &self.p[2 * l + 1]);
            let (done, rest) = t.post.split_at_mut(l);
            let h: &[f64] = if l == 0 { &t.input } else { &done[l - 1] };
            let pre = &mut t.pre[l];
            pre.copy_from_slice(b);
            (self.k.forward)(pre, h, w);
            for (y, &z) in rest[0].iter_mut().zip(pre.iter()) {
                *y = act(a, z).0;
            }
        }
        let last = &t.post[d.layers.len() - 1];
        for (o, y) in out.iter_mut().enumerate() {
            *y = last[o] * f64::from(d.output_scale[o]) + f64::from(d.output_offset[o]);
        }
    }

    /// Adds `ybar`'s pull-back to `xbar` (inputs) and `grads` (this net's parameters).
    fn backward(&self, t: &mut NetTape, ybar: &[f64], xbar: &mut [f64], grads: &mut [Vec<f64>]) {
        let d = self.def;
        let layers = d.layers.len();
        let [hbar, zbar] = &mut t.bar;
        for (o, &yb) in ybar.iter().enumerate() {
            hbar[o] = yb * f64::from(d.output_scale[o]);
        }
        for l in (0..layers).rev() {
            let (n, a) = &d.layers[l];
            let n = *n;
            let w = &self.p[2 * l];
            for o in 0..n {
                zbar[o] = hbar[o] * act(a, t.pre[l][o]).1;
            }
            for (g, &z) in grads[2 * l + 1].iter_mut().zip(&zbar[..n]) {
                *g += z;
            }
            let h: &[f64] = if l == 0 { &t.input } else { &t.post[l - 1] };
            (self.k.backward)(&mut grads[2 * l], w, h, &zbar[..n], &mut hbar[..h.len()]);
        }
        for (i, xb) in xbar.iter_mut().enumerate().take(d.inputs) {
            *xb += hbar[i] * f64::from(d.input_scale[i]);
        }
    }
}

/// The memristor's vector field and readout for one record (one series resistor).
struct Field<'a> {
    m: &'a Memristor,
    f: NetParams<'a>,
    g: Option<NetParams<'a>>,
    /// Ohms (SingleNN and iterator memductance).
    r_on: f64,
    r_off: f64,
    rs: f64,
    /// Multiplies the net's output: the sample interval (solving in sample units), or 1 for an
    /// iterator net.
    scale: f64,
    n: usize,
    nf: usize,
}

/// One field evaluation's intermediates.
#[derive(Clone, Debug, Default)]
struct FieldTape {
    f: NetTape,
    g: NetTape,
    z: Vec<f64>,
    zbar: Vec<f64>,
    gval: f64,
    den: f64,
    v: f64,
}

impl<'a> Field<'a> {
    fn new(m: &'a Memristor, p: &'a [Vec<f64>], rs: f64, scale: f64) -> Self {
        let nf = m.f.n_params();
        let (r_on, r_off) = match &m.g {
            Some(_) => (1.0, 1.0),
            None => (p[nf][0] * KOHM, p[nf + 1][0] * KOHM),
        };
        Field {
            m,
            f: NetParams::new(&m.f, &p[..nf]),
            g: m.g
                .as_ref()
                .map(|def| NetParams::new(def, &p[nf..nf + def.n_params()])),
            r_on,
            r_off,
            rs,
            scale,
            n: m.f.outputs(),
            nf,
        }
    }

    fn tape(&self) -> FieldTape {
        FieldTape {
            f: self.f.tape(),
            g: self.g.map(|g| g.tape()).unwrap_or_default(),
            z: vec![0.0; self.n + 1],
            zbar: vec![0.0; self.n + 1],
            ..FieldTape::default()
        }
    }

    fn memductance(&self, x: &[f64], t: &mut NetTape) -> f64 {
        match &self.g {
            Some(net) => {
                let mut y = [0.0];
                net.forward(x, t, &mut y);
                let b = &self.m.bounds;
                b.g_min + (b.g_max - b.g_min) * y[0]
            }
            None => x[0] / self.r_on + (1.0 - x[0]) / self.r_off,
        }
    }

    fn memductance_back(
        &self,
        x: &[f64],
        t: &mut NetTape,
        gbar: f64,
        xbar: &mut [f64],
        grads: &mut [Vec<f64>],
    ) {
        match &self.g {
            Some(net) => {
                let b = &self.m.bounds;
                let nf = self.nf;
                net.backward(
                    t,
                    &[gbar * (b.g_max - b.g_min)],
                    xbar,
                    &mut grads[nf..nf + net.def.n_params()],
                );
            }
            None => {
                xbar[0] += gbar * (1.0 / self.r_on - 1.0 / self.r_off);
                grads[self.nf][0] -= gbar * x[0] / (self.r_on * self.r_on) * KOHM;
                grads[self.nf + 1][0] -= gbar * (1.0 - x[0]) / (self.r_off * self.r_off) * KOHM;
            }
        }
    }

    /// `out = scale * f(x, v_s / (1 + R_s G(x)))`.
    fn eval(&self, x: &[f64], vs: f64, t: &mut FieldTape, out: &mut [f64]) {
        self.observe(x, vs, t);
        t.z[..self.n].copy_from_slice(x);
        t.z[self.n] = t.v;
        self.f.forward(&t.z, &mut t.f, out);
        for o in out.iter_mut() {
            *o *= self.scale;
        }
    }

    /// Pull-back of `eval` (which must have filled `t` at this `x`).
    fn eval_back(
        &self,
        x: &[f64],
        t: &mut FieldTape,
        obar: &[f64],
        xbar: &mut [f64],
        grads: &mut [Vec<f64>],
    ) {
        let n = self.n;
        let ybar: [f64; 16] =
            std::array::from_fn(|o| if o < n { obar[o] * self.scale } else { 0.0 });
        t.zbar.fill(0.0);
        self.f
            .backward(&mut t.f, &ybar[..n], &mut t.zbar, &mut grads[..self.nf]);
        for (xb, zb) in xbar.iter_mut().zip(&t.zbar[..n]) {
            *xb += zb;
        }
        // The net sees v as the readout does: pull its cotangent back through the readout.
        let vbar = t.zbar[n];
        self.observe_back(x, t, vbar, 0.0, xbar, grads);
    }

    /// The observed channels `(v, i)` at state `x`; fills `t`.
    fn observe(&self, x: &[f64], vs: f64, t: &mut FieldTape) -> (f64, f64) {
        t.gval = self.memductance(x, &mut t.g);
        t.den = 1.0 + self.rs * t.gval;
        t.v = vs / t.den;
        (t.v, t.gval * t.v)
    }

    fn observe_back(
        &self,
        x: &[f64],
        t: &mut FieldTape,
        vbar: f64,
        ibar: f64,
        xbar: &mut [f64],
        grads: &mut [Vec<f64>],
    ) {
        // i = G v and v = v_s / (1 + R_s G), so dv/dG = -v R_s / (1 + R_s G).
        let (g, v) = (t.gval, t.v);
        let gbar = ibar * v + (vbar + ibar * g) * (-v * self.rs / t.den);
        self.memductance_back(x, &mut t.g, gbar, xbar, grads);
    }
}

/// How a record is stepped from one sample to the next.
#[derive(Clone, Copy)]
enum Scheme {
    /// An explicit Runge-Kutta method with `m` steps per sample.
    Rk(&'static Tableau, usize),
    /// `x[k+1] = x[k] + net(x[k], v_s[k])`.
    Iterator,
}

/// Workspace of one step: stage inputs, stage values, tapes.
struct StepWork {
    u: Vec<Vec<f64>>,
    k: Vec<Vec<f64>>,
    kbar: Vec<Vec<f64>>,
    tapes: Vec<FieldTape>,
    sub: Vec<Vec<f64>>,
    /// Whether sub-step `j` ended on a bound.
    clamped: Vec<bool>,
    ubar: Vec<f64>,
    xbar_out: Vec<f64>,
}

impl StepWork {
    fn new(field: &Field<'_>, scheme: Scheme) -> Self {
        let (s, m) = match scheme {
            Scheme::Rk(tab, m) => (tab.stages, m),
            Scheme::Iterator => (1, 1),
        };
        let n = field.n;
        StepWork {
            u: vec![vec![0.0; n]; s],
            k: vec![vec![0.0; n]; s],
            kbar: vec![vec![0.0; n]; s],
            tapes: (0..s).map(|_| field.tape()).collect(),
            sub: vec![vec![0.0; n]; m + 1],
            clamped: vec![false; m],
            ubar: vec![0.0; n],
            xbar_out: vec![0.0; n],
        }
    }
}

struct FreeRunStepper<'a> {
    field: Field<'a>,
    scheme: Scheme,
    bounds: Option<(f64, f64)>,
}

impl FreeRunStepper<'_> {
    /// One sub-step from `x` with drive `vs(c)` at stage node `c` (fraction of the sub-step);
    /// the result (clamped, as on the device) in `w.sub[j + 1]`; the stages stay in `w`.
    fn substep(&self, w: &mut StepWork, j: usize, vs: &dyn Fn(f64) -> f64) {
        let (tab, h) = match self.scheme {
            Scheme::Rk(tab, m) => (Some(tab), 1.0 / m as f64),
            Scheme::Iterator => (None, 1.0),
        };
        let (head, tail) = w.sub.split_at_mut(j + 1);
        let x = &head[j];
        let out = &mut tail[0];
        match tab {
            None => {
                w.u[0].copy_from_slice(x);
                self.field.eval(x, vs(0.0), &mut w.tapes[0], &mut w.k[0]);
                for ((o, &xi), &ki) in out.iter_mut().zip(x).zip(&w.k[0]) {
                    *o = xi + ki;
                }
            }
            Some(tab) => {
                for s in 0..tab.stages {
                    let (done, rest) = w.k.split_at_mut(s);
                    let u = &mut w.u[s];
                    u.copy_from_slice(x);
                    for (jj, kj) in done.iter().enumerate() {
                        let a = tab.a[s][jj];
                        if a != 0.0 {
                            for (ui, &kji) in u.iter_mut().zip(kj) {
                                *ui += h * a * kji;
                            }
                        }
                    }
                    self.field
                        .eval(u, vs(tab.c[s]), &mut w.tapes[s], &mut rest[0]);
                }
                out.copy_from_slice(x);
                for s in 0..tab.stages {
                    let b = tab.b[s];
                    if b != 0.0 {
                        for (o, &ks) in out.iter_mut().zip(&w.k[s]) {
                            *o += h * b * ks;
                        }
                    }
                }
            }
        }
        w.clamped[j] = false;
        if let Some((lo, hi)) = self.bounds {
            for o in out.iter_mut() {
                if *o < lo || *o > hi {
                    w.clamped[j] = true;
                    *o = o.clamp(lo, hi);
                }
            }
        }
    }

    fn substeps(&self) -> usize {
        match self.scheme {
            Scheme::Rk(_, m) => m,
            Scheme::Iterator => 1,
        }
    }

    /// Steps `x` from sample `k` to `k + 1`, leaving the result in `w.sub[m]`.
    fn step(&self, w: &mut StepWork, x: &[f64], vs0: f64, vs1: f64) {
        let m = self.substeps();
        w.sub[0].copy_from_slice(x);
        for j in 0..m {
            let p0 = j as f64 / m as f64;
            let vs = |c: f64| vs0 + (p0 + c / m as f64) * (vs1 - vs0);
            self.substep(w, j, &vs);
        }
    }

    /// Pull-back of [`Self::step`] from `x`: `xbar` holds the cotangent of the step's result on
    /// entry and that of `x` on return. A sub-step that ended on a bound passes the parameters'
    /// gradient straight through, as the burn solvers do, so a model pinned to a bound can still
    /// be pulled off it; the state's cotangent passes unchanged there (the pinned state does not
    /// depend on where it came from), instead of being multiplied by the step's Jacobian, which
    /// can exceed one at every step against the bound and blew gradients up to 1e15.
    fn step_back(
        &self,
        w: &mut StepWork,
        x: &[f64],
        vs0: f64,
        vs1: f64,
        xbar: &mut [f64],
        grads: &mut [Vec<f64>],
    ) {
        let m = self.substeps();
        // Start states of the sub-steps; the last one's stages are recomputed first below.
        w.sub[0].copy_from_slice(x);
        for j in 0..m - 1 {
            let p0 = j as f64 / m as f64;
            let vs = |c: f64| vs0 + (p0 + c / m as f64) * (vs1 - vs0);
            self.substep(w, j, &vs);
        }
        for j in (0..m).rev() {
            let p0 = j as f64 / m as f64;
            let vs = |c: f64| vs0 + (p0 + c / m as f64) * (vs1 - vs0);
            // Recompute this sub-step's stages from its start.
            self.substep(w, j, &vs);
            let clamped = w.clamped[j];
            if clamped {
                w.xbar_out.copy_from_slice(xbar);
            }
            match self.scheme {
                Scheme::Iterator => {
                    let StepWork { u, tapes, .. } = w;
                    let kbar = xbar.to_vec();
                    self.field
                        .eval_back(&u[0], &mut tapes[0], &kbar, xbar, grads);
                }
                Scheme::Rk(tab, m) => {
                    let h = 1.0 / m as f64;
                    let StepWork {
                        u,
                        kbar,
                        tapes,
                        ubar,
                        ..
                    } = w;
                    for (s, ks) in kbar.iter_mut().enumerate().take(tab.stages) {
                        for (kb, &xb) in ks.iter_mut().zip(xbar.iter()) {
                            *kb = h * tab.b[s] * xb;
                        }
                    }
                    for s in (0..tab.stages).rev() {
                        ubar.fill(0.0);
                        self.field
                            .eval_back(&u[s], &mut tapes[s], &kbar[s], ubar, grads);
                        for (xb, &ub) in xbar.iter_mut().zip(ubar.iter()) {
                            *xb += ub;
                        }
                        for (kj, &a) in kbar.iter_mut().zip(&tab.a[s]).take(s) {
                            if a != 0.0 {
                                for (kb, &ub) in kj.iter_mut().zip(ubar.iter()) {
                                    *kb += h * a * ub;
                                }
                            }
                        }
                    }
                }
            }
            if clamped {
                xbar.copy_from_slice(&w.xbar_out);
            }
        }
    }
}

/// Eq. 8 for one value, with its partial derivatives `(c, dc/dx, dc/da, dc/db)`.
fn constraint_scalar(x: f64, a: f64, b: f64, gamma: f64) -> (f64, f64, f64, f64) {
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    let part = |u: f64| {
        let s = sig(u / gamma);
        (s * u * u, s * (1.0 - s) / gamma * u * u + 2.0 * u * s)
    };
    let (lo, dlo) = part(a - x);
    let (hi, dhi) = part(x - b);
    (lo + hi, dhi - dlo, dlo, -dhi)
}

/// Weights of one record's terms in the batch objective: L_b, L_v, L_c (Algorithm 1's over the
/// batch size) and the state's constraint term per sample.
#[derive(Clone, Copy)]
struct Weights {
    terms: [f64; 3],
    state: f64,
}

/// One record's free run: states and observed channels at every sample.
struct Run {
    x: Vec<f64>,
    obs: [Vec<f64>; 2],
}

/// The whole-record objective of a batch of records and its gradient.
pub struct FreeRun<'a> {
    model: &'a Memristor,
    solver: &'a SolverConfig,
    loss: &'a LossConfig,
    threads: usize,
}

/// What [`FreeRun::evaluate`] returns.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// The objective (with Algorithm 1's weights of this batch).
    pub loss: f64,
    /// Its terms.
    pub terms: Terms,
    /// Its gradient, one vector per parameter tensor (the model's parameter order).
    pub grads: Vec<Vec<f32>>,
}

impl<'a> FreeRun<'a> {
    /// Checks that the solver can be differentiated here: explicit Runge-Kutta at one or more
    /// steps per sample, or an iterator net.
    pub fn new(
        model: &'a Memristor,
        solver: &'a SolverConfig,
        loss: &'a LossConfig,
    ) -> Result<Self, Error> {
        if model.kind != Kind::Iterator
            && (solver.adaptive().is_some()
                || ImplicitMethod::of_solver(solver.method).is_some()
                || solver.stride > 1)
        {
            return Err(Error::Input(
                "train.window_start = \"free_run\" differentiates fixed-step explicit Runge-Kutta \
                 solvers at one or more steps per sample: set solver.adaptive = false, \
                 solver.stride = 1 and an explicit solver.method"
                    .into(),
            ));
        }
        if model.f.outputs() > 16 {
            return Err(Error::Input(format!(
                "free-run training supports up to 16 latent states, the model has {}",
                model.f.outputs()
            )));
        }
        Ok(FreeRun {
            model,
            solver,
            loss,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        })
    }

    fn stepper<'p>(&self, p: &'p [Vec<f64>], t: &Trajectory) -> FreeRunStepper<'p>
    where
        'a: 'p,
    {
        let rs = t.consts.first().map_or(0.0, |&r| f64::from(r));
        let iterator = self.model.kind == Kind::Iterator;
        FreeRunStepper {
            field: Field::new(self.model, p, rs, if iterator { 1.0 } else { t.dt }),
            scheme: if iterator {
                Scheme::Iterator
            } else {
                Scheme::Rk(self.solver.method.tableau(), self.solver.substeps.max(1))
            },
            bounds: self.model.g.is_none().then_some((0.0, 1.0)),
        }
    }

    fn simulate(&self, p: &[Vec<f64>], t: &Trajectory) -> Result<Run, Error> {
        let st = self.stepper(p, t);
        let n = st.field.n;
        let l = t.len();
        let mut w = StepWork::new(&st.field, st.scheme);
        let mut tape = st.field.tape();
        let mut x = Vec::with_capacity(l * n);
        x.extend(self.model.x0.iter().map(|&v| f64::from(v)));
        let mut obs = [Vec::with_capacity(l), Vec::with_capacity(l)];
        for k in 0..l {
            let vs = f64::from(t.drive[k]);
            let xk = &x[k * n..(k + 1) * n];
            let (v, i) = st.field.observe(xk, vs, &mut tape);
            obs[0].push(v);
            obs[1].push(i);
            if k + 1 < l {
                st.step(
                    &mut w,
                    &x[k * n..(k + 1) * n],
                    vs,
                    f64::from(t.drive[k + 1]),
                );
                let next = &w.sub[st.substeps()];
                if next.iter().any(|v| !v.is_finite()) {
                    return Err(Error::Train(format!(
                        "{}: the free run left finite values at sample {} (lower train.lr or \
                         clip gradients)",
                        t.path.display(),
                        k + 1
                    )));
                }
                x.extend_from_slice(next);
            }
        }
        Ok(Run { x, obs })
    }

    /// L_b, L_v, L_c of one record after its warm-up.
    fn terms(&self, run: &Run, t: &Trajectory, var: &[Vec<f64>; 3]) -> [f64; 3] {
        let stride = self.loss.derivative_stride.max(1);
        let mut out = [0.0; 3];
        let s = t.warmup.min(t.len().saturating_sub(1));
        for (c, p) in run.obs.iter().enumerate() {
            let y = &t.channels[c];
            let e: Vec<f64> = p[s..]
                .iter()
                .zip(&y[s..])
                .map(|(&a, &b)| a - f64::from(b))
                .collect();
            for (order, o) in out.iter_mut().enumerate() {
                if order > 0 && !self.loss.derivatives {
                    break;
                }
                let d = difference(&e, order, stride);
                if !d.is_empty() {
                    *o += d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64 / var[order][c];
                }
            }
        }
        out
    }

    /// The objective's gradient for one record, with per-term weights `w` (Algorithm 1's
    /// weights over the batch size), added to `grads`.
    fn backward(
        &self,
        p: &[Vec<f64>],
        run: &Run,
        t: &Trajectory,
        var: &[Vec<f64>; 3],
        w: Weights,
        grads: &mut [Vec<f64>],
    ) {
        let Weights {
            terms: w,
            state: state_weight,
        } = w;
        let st = self.stepper(p, t);
        let n = st.field.n;
        let l = t.len();
        let stride = self.loss.derivative_stride.max(1);
        let s = t.warmup.min(l.saturating_sub(1));
        // Cotangents of the observed channels.
        let mut pbar = [vec![0.0; l], vec![0.0; l]];
        for (c, pb) in pbar.iter_mut().enumerate() {
            let e: Vec<f64> = run.obs[c][s..]
                .iter()
                .zip(&t.channels[c][s..])
                .map(|(&a, &b)| a - f64::from(b))
                .collect();
            for order in 0..3 {
                if order > 0 && !self.loss.derivatives {
                    break;
                }
                let d = difference(&e, order, stride);
                if d.is_empty() {
                    continue;
                }
                let scale = 2.0 * w[order] / d.len() as f64 / var[order][c];
                // d_j = sum_r coef_r e_{j + r} with binomial coefficients of alternating sign.
                let coef: &[f64] = match order {
                    0 => &[1.0],
                    1 => &[-1.0, 1.0],
                    _ => &[1.0, -2.0, 1.0],
                };
                for (j, dj) in d.iter().enumerate() {
                    for (r, cr) in coef.iter().enumerate() {
                        pb[s + j + r * stride] += scale * cr * dj;
                    }
                }
            }
        }
        let mut work = StepWork::new(&st.field, st.scheme);
        let mut tape = st.field.tape();
        let mut xbar = vec![0.0; n];
        let gamma = self.loss.gamma;
        for k in (0..l).rev() {
            let xk = &run.x[k * n..(k + 1) * n];
            let vs = f64::from(t.drive[k]);
            st.field.observe(xk, vs, &mut tape);
            st.field
                .observe_back(xk, &mut tape, pbar[0][k], pbar[1][k], &mut xbar, grads);
            if state_weight != 0.0 {
                xbar[0] += state_weight * constraint_scalar(xk[0], 0.0, 1.0, gamma).1;
            }
            if k > 0 {
                let xp = &run.x[(k - 1) * n..k * n];
                st.step_back(
                    &mut work,
                    xp,
                    f64::from(t.drive[k - 1]),
                    vs,
                    &mut xbar,
                    grads,
                );
            }
        }
    }

    /// The objective of a batch of records and its gradient at parameters `values`.
    pub fn evaluate(
        &self,
        values: &[Vec<f32>],
        trajs: &[&Trajectory],
        variances: &[&[Vec<f64>; 3]],
    ) -> Result<Evaluation, Error> {
        let p: Vec<Vec<f64>> = values
            .iter()
            .map(|v| v.iter().map(|&x| f64::from(x)).collect())
            .collect();
        let (loss, terms, grads) = self.evaluate_f64(&p, trajs, variances)?;
        Ok(Evaluation {
            loss,
            terms,
            grads: grads
                .into_iter()
                .map(|g| g.into_iter().map(|v| v as f32).collect())
                .collect(),
        })
    }

    /// [`Self::evaluate`] in f64 throughout.
    fn evaluate_f64(
        &self,
        p: &[Vec<f64>],
        trajs: &[&Trajectory],
        variances: &[&[Vec<f64>; 3]],
    ) -> Result<(f64, Terms, Vec<Vec<f64>>), Error> {
        let nb = trajs.len().max(1);
        let threads = self.threads.clamp(1, nb);
        let per = nb.div_ceil(threads);
        // Forward: every record's free run and terms.
        let runs: Vec<Result<(Run, [f64; 3]), Error>> = std::thread::scope(|sc| {
            let handles: Vec<_> = trajs
                .chunks(per)
                .zip(variances.chunks(per))
                .map(|(ts, vs)| {
                    sc.spawn(move || {
                        ts.iter()
                            .zip(vs)
                            .map(|(t, v)| {
                                let run = self.simulate(p, t)?;
                                let terms = self.terms(&run, t, v);
                                Ok((run, terms))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let runs: Vec<(Run, [f64; 3])> = runs.into_iter().collect::<Result<_, _>>()?;
        if runs.len() != trajs.len() {
            return Err(Error::Train("a free-run worker thread panicked".into()));
        }
        let mut mean = [0.0; 3];
        for (_, t) in &runs {
            for (m, v) in mean.iter_mut().zip(t) {
                *m += v / nb as f64;
            }
        }
        let lambda = if self.loss.derivatives && self.loss.adaptive {
            adaptive_weights(
                mean,
                self.loss.eps,
                self.loss.lambda_min,
                self.loss.lambda_max,
            )
        } else if self.loss.derivatives {
            [1.0; 3]
        } else {
            [1.0, 0.0, 0.0]
        };
        let mut terms = Terms {
            base: mean[0],
            velocity: mean[1],
            curvature: mean[2],
            constraint: 0.0,
        };
        let mut loss: f64 = lambda.iter().zip(&mean).map(|(l, m)| l * m).sum();
        let w = lambda.map(|l| l / nb as f64);

        // The constraint loss (eq. 8): resistances, and the state over every sample.
        let mut grads: Vec<Vec<f64>> = p.iter().map(|v| vec![0.0; v.len()]).collect();
        let cw = self.loss.constraint_weight;
        let mut state_weight = 0.0;
        if self.model.g.is_none() {
            let nf = self.model.f.n_params();
            let (on, off) = (p[nf][0], p[nf + 1][0]);
            let b = &self.model.bounds;
            let gamma = self.loss.gamma;
            let c1 = constraint_scalar(on, b.r_on_min / KOHM, off, gamma);
            let c2 = constraint_scalar(off, on, b.r_off_max / KOHM, gamma);
            let samples: usize = trajs.iter().map(|t| t.len()).sum();
            let c3: f64 = runs
                .iter()
                .flat_map(|(r, _)| r.x.iter().step_by(self.model.f.outputs()))
                .map(|&x| constraint_scalar(x, 0.0, 1.0, gamma).0)
                .sum::<f64>()
                / samples.max(1) as f64;
            terms.constraint = c1.0 + c2.0 + c3;
            loss += cw * terms.constraint;
            grads[nf][0] += cw * (c1.1 + c2.2);
            grads[nf + 1][0] += cw * (c1.3 + c2.1);
            state_weight = cw / samples.max(1) as f64;
        }

        // Reverse passes, one per record, summed.
        let parts: Vec<Vec<Vec<f64>>> = std::thread::scope(|sc| {
            let handles: Vec<_> = trajs
                .chunks(per)
                .zip(variances.chunks(per))
                .zip(runs.chunks(per))
                .map(|((ts, vs), rs)| {
                    sc.spawn(move || {
                        let mut g: Vec<Vec<f64>> = p.iter().map(|v| vec![0.0; v.len()]).collect();
                        for ((t, v), (run, _)) in ts.iter().zip(vs).zip(rs) {
                            self.backward(
                                p,
                                run,
                                t,
                                v,
                                Weights {
                                    terms: w,
                                    state: state_weight,
                                },
                                &mut g,
                            );
                        }
                        g
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        if parts.len() != trajs.chunks(per).len() {
            return Err(Error::Train("a free-run worker thread panicked".into()));
        }
        for part in parts {
            for (g, q) in grads.iter_mut().zip(part) {
                for (a, b) in g.iter_mut().zip(q) {
                    *a += b;
                }
            }
        }
        Ok((loss, terms, grads))
    }
}

/// Adam on the squared error of `def`'s outputs against `ys` at inputs `xs`, each error relative
/// to its target with a floor of 1% of the output's RMS, in batches of 512, the learning rate
/// decaying from 1e-2 to 1e-4. Returns the RMS error relative to the RMS target.
fn fit_net(
    def: &MlpDef,
    p: &mut [Vec<f64>],
    xs: &[Vec<f64>],
    ys: &[Vec<f64>],
    iterations: usize,
    rng: &mut odeflash_reference::rng::Rng,
) -> f64 {
    let outputs = def.outputs();
    // Relative error with a floor: a rate must be near zero where the device holds its state,
    // or a low-frequency record integrates the error for a second; a conductance must be right
    // in the off state, where it is smallest.
    let floor: Vec<f64> = (0..outputs)
        .map(|o| {
            let ms = ys.iter().map(|y| y[o] * y[o]).sum::<f64>() / ys.len().max(1) as f64;
            1e-4 * if ms > 0.0 { ms } else { 1.0 }
        })
        .collect();
    let batch = 512;
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let mut m: Vec<Vec<f64>> = p.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut s2 = m.clone();
    let mut out = vec![0.0; outputs];
    let mut ybar = vec![0.0; outputs];
    let mut xbar = vec![0.0; def.inputs];
    for it in 0..iterations {
        let mut g: Vec<Vec<f64>> = p.iter().map(|v| vec![0.0; v.len()]).collect();
        {
            let net = NetParams::new(def, p);
            let mut tape = net.tape();
            for _ in 0..batch {
                let k = ((rng.uniform() * xs.len() as f64) as usize).min(xs.len() - 1);
                net.forward(&xs[k], &mut tape, &mut out);
                for o in 0..outputs {
                    let y = ys[k][o];
                    ybar[o] = 2.0 * (out[o] - y) / (y * y + floor[o]) / batch as f64;
                }
                net.backward(&mut tape, &ybar, &mut xbar, &mut g);
            }
        }
        let frac = it as f64 / iterations.max(1) as f64;
        let lr = 1e-2 * (1e-2f64).powf(frac);
        let t = (it + 1) as i32;
        for ((pv, gv), (mv, sv)) in p.iter_mut().zip(&g).zip(m.iter_mut().zip(s2.iter_mut())) {
            for i in 0..pv.len() {
                mv[i] = b1 * mv[i] + (1.0 - b1) * gv[i];
                sv[i] = b2 * sv[i] + (1.0 - b2) * gv[i] * gv[i];
                let mh = mv[i] / (1.0 - b1.powi(t));
                let sh = sv[i] / (1.0 - b2.powi(t));
                pv[i] -= lr * mh / (sh.sqrt() + eps);
            }
        }
    }
    let net = NetParams::new(def, p);
    let mut tape = net.tape();
    let (mut se, mut sy) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        net.forward(x, &mut tape, &mut out);
        for o in 0..outputs {
            se += (out[o] - y[o]).powi(2);
            sy += y[o] * y[o];
        }
    }
    (se / sy.max(f64::MIN_POSITIVE)).sqrt()
}

/// A compact model as a start for a surrogate: its rate `dx/dt (x, v)` and memductance `G(x)`.
pub struct CompactStart<'a> {
    /// `dx/dt` at state `x` and memristor voltage `v`.
    pub rate: &'a (dyn Fn(f64, f64) -> f64 + Sync),
    /// `G(x)`, siemens.
    pub memductance: &'a (dyn Fn(f64) -> f64 + Sync),
    /// Its time constant, s: DualNN's extra latent states start decaying at a tenth of its rate.
    pub tau: f64,
    /// Largest memristor voltage to fit over, V.
    pub v_max: f64,
}

/// Fits a surrogate's nets to a compact model (e.g. a fitted MMS, eq. 10-11), so that gradient
/// descent on whole records starts from a model that already switches like the device: from a
/// random net it stalls in models whose loops have the wrong shape. SingleNN and iterator nets:
/// the state net learns the rate (an iterator net its forward-Euler increment over its sample
/// interval; `R_on`, `R_off` are set by the caller). DualNN: the first latent state is the
/// compact model's state, the others start as slow decays, and the G net learns `G(x_0)` on
/// `[G_min, G_max]`. States in `[0, 1]` (extra DualNN states in `[-0.5, 0.5]`), voltages in
/// `[-v_max, v_max]`, `iterations` Adam steps per net. Returns the relative RMS errors of the
/// state net and of the G net (0 without one).
pub fn fit_to_compact(
    model: &Memristor,
    values: &mut [Vec<f32>],
    start: &CompactStart<'_>,
    iterations: usize,
    seed: u64,
) -> Result<(f64, f64), Error> {
    let n = model.f.outputs();
    let nf = model.f.n_params();
    let per_step = if model.kind == Kind::Iterator {
        f64::from(model.dt)
    } else {
        1.0
    };
    let mut rng = odeflash_reference::rng::Rng::new(seed);
    let samples = 4096;
    let decay = 0.1 / start.tau;
    let (mut states, mut xs, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..samples {
        let x: Vec<f64> = (0..n)
            .map(|j| {
                let u = rng.uniform();
                if j == 0 {
                    u
                } else {
                    u - 0.5
                }
            })
            .collect();
        let v = (2.0 * rng.uniform() - 1.0) * start.v_max;
        let mut input = x.clone();
        input.push(v);
        xs.push(input);
        let mut y = vec![(start.rate)(x[0], v) * per_step];
        y.extend(x[1..].iter().map(|&xj| -decay * xj * per_step));
        ys.push(y);
        states.push(x);
    }
    let to64 = |v: &[Vec<f32>]| -> Vec<Vec<f64>> {
        v.iter()
            .map(|v| v.iter().map(|&x| f64::from(x)).collect())
            .collect()
    };
    let mut pf = to64(&values[..nf]);
    let rel_f = fit_net(&model.f, &mut pf, &xs, &ys, iterations, &mut rng);
    let mut fitted = vec![(0, pf)];
    let mut rel_g = 0.0;
    if let Some(gdef) = &model.g {
        let b = &model.bounds;
        let span = b.g_max - b.g_min;
        let gy: Vec<Vec<f64>> = states
            .iter()
            .map(|x| vec![(((start.memductance)(x[0]) - b.g_min) / span).clamp(1e-4, 1.0 - 1e-4)])
            .collect();
        let mut pg = to64(&values[nf..nf + gdef.n_params()]);
        rel_g = fit_net(gdef, &mut pg, &states, &gy, iterations, &mut rng);
        fitted.push((nf, pg));
    }
    for (at, p) in fitted {
        if p.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::Train(
                "fitting the surrogate to the compact model diverged".into(),
            ));
        }
        for (k, q) in p.iter().enumerate() {
            values[at + k] = q.iter().map(|&x| x as f32).collect();
        }
    }
    Ok((rel_f, rel_g))
}

/// `order`-th forward difference over `s` samples.
fn difference(e: &[f64], order: usize, s: usize) -> Vec<f64> {
    let mut d = e.to_vec();
    for _ in 0..order {
        d = (s..d.len()).map(|k| d[k] - d[k - s]).collect();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuAd};
    use crate::config::{Experiment, WindowStart};
    use crate::leaf::Leaf;
    use crate::model::TrainModel;
    use crate::surrogate::Bounds;
    use crate::train::{batch_objective, WindowPlan};
    use odeflash_reference::rng::Rng;
    use odeflash_runtime::Solver;

    fn memristor(kind: Kind, n: usize) -> Memristor {
        let mut f = MlpDef::new(
            n + 1,
            vec![
                (6, Activation::Silu),
                (5, Activation::Gelu),
                (n, Activation::Identity),
            ],
        );
        f.input_scale[n] = 2.0;
        f.output_scale = vec![if kind == Kind::Iterator { 0.3 } else { 300.0 }; n];
        if kind != Kind::Dual {
            f.input_offset[0] = 0.5;
            f.input_scale[0] = 2.0;
        }
        Memristor {
            kind,
            f,
            g: (kind == Kind::Dual)
                .then(|| MlpDef::new(n, vec![(5, Activation::Tanh), (1, Activation::Sigmoid)])),
            bounds: Bounds::default(),
            r_init: [2e3, 50e3],
            x0: vec![if kind == Kind::Dual { 0.1 } else { 0.4 }; n],
            series_resistance: 1e4,
            dt: 1e-3,
            name: "t".into(),
        }
    }

    /// A short record: a sine drive, channels from a made-up device, a warm-up.
    fn record(len: usize, warmup: usize, phase: f64) -> Trajectory {
        let drive: Vec<f32> = (0..len)
            .map(|k| (1.2 * (0.3 * k as f64 + phase).sin()) as f32)
            .collect();
        let v: Vec<f32> = drive.iter().map(|&d| 0.7 * d).collect();
        let i: Vec<f32> = drive
            .iter()
            .enumerate()
            .map(|(k, &d)| 2e-5 * d * (1.0 + 0.3 * (0.1 * k as f32).cos()))
            .collect();
        Trajectory {
            path: format!("rec{phase}.csv").into(),
            dt: 1e-3,
            drive,
            channels: vec![v, i],
            consts: vec![1e4],
            warmup,
        }
    }

    fn variances(t: &Trajectory) -> [Vec<f64>; 3] {
        [0, 1, 2].map(|o| t.derivative_variances(o))
    }

    /// The reverse pass against central differences of the f64 objective, for every surrogate,
    /// with the derivative terms, the constraint loss, a warm-up and two RK4 sub-steps.
    #[test]
    fn gradient_matches_finite_differences() {
        for (kind, n, method, substeps) in [
            (Kind::Single, 1, Solver::Rk4, 2),
            (Kind::Single, 1, Solver::Heun, 1),
            (Kind::Dual, 2, Solver::Rk4, 1),
            (Kind::Iterator, 1, Solver::Euler, 1),
        ] {
            let m = memristor(kind, n);
            let values = m.init(&mut Rng::new(3));
            let mut p: Vec<Vec<f64>> = values
                .iter()
                .map(|v| v.iter().map(|&x| f64::from(x)).collect())
                .collect();
            // Order-one output weights, so the state moves and the terms respond.
            let last = 2 * (m.f.layers.len() - 1);
            for w in &mut p[last] {
                *w *= 10.0;
            }
            let mut exp = Experiment::default();
            exp.solver.method = method;
            exp.solver.substeps = substeps;
            exp.loss = LossConfig {
                adaptive: false,
                derivative_stride: if substeps == 2 { 3 } else { 1 },
                ..LossConfig::paper()
            };
            let fr = FreeRun::new(&m, &exp.solver, &exp.loss).unwrap();
            let recs = [record(40, 6, 0.0), record(33, 0, 1.0)];
            let vars: Vec<[Vec<f64>; 3]> = recs.iter().map(variances).collect();
            let trajs: Vec<&Trajectory> = recs.iter().collect();
            let vr: Vec<&[Vec<f64>; 3]> = vars.iter().collect();
            let (loss, terms, g) = fr.evaluate_f64(&p, &trajs, &vr).unwrap();
            assert!(loss.is_finite() && terms.velocity > 0.0 && terms.curvature > 0.0);
            let mut checked = 0;
            let mut worst = 0.0f64;
            for (ti, t) in p.iter().enumerate() {
                for (e, _) in t.iter().enumerate().step_by(3) {
                    let h = 1e-6 * (1.0 + p[ti][e].abs());
                    let mut q = p.clone();
                    q[ti][e] += h;
                    let up = fr.evaluate_f64(&q, &trajs, &vr).unwrap().0;
                    q[ti][e] -= 2.0 * h;
                    let down = fr.evaluate_f64(&q, &trajs, &vr).unwrap().0;
                    let fd = (up - down) / (2.0 * h);
                    let err = (fd - g[ti][e]).abs() / (1e-6 * loss + fd.abs().max(g[ti][e].abs()));
                    worst = worst.max(err);
                    assert!(
                        err < 1e-4,
                        "{kind:?} {method:?}: parameter {ti}[{e}]: reverse {} vs differences {fd}",
                        g[ti][e]
                    );
                    checked += 1;
                }
            }
            assert!(checked > 20, "{checked}");
        }
    }

    /// Loss and gradient against burn's autodiff through the windowed objective, where one
    /// window spans the record and starts at the model's initial state: the same objective, by
    /// an independent implementation (f32 tensors, solver and loss of the training loop).
    #[test]
    fn matches_burn_autodiff_over_one_window() {
        for (kind, n) in [(Kind::Single, 1), (Kind::Dual, 2), (Kind::Iterator, 1)] {
            let m = memristor(kind, n);
            let mut values = m.init(&mut Rng::new(5));
            let last = 2 * (m.f.layers.len() - 1);
            for w in &mut values[last] {
                *w *= 10.0;
            }
            let mut exp = Experiment::default();
            exp.solver.method = Solver::Rk4;
            exp.loss = LossConfig {
                // Differences over neighbours (DualNN) and over 3 samples (the others).
                derivative_stride: if n == 1 { 3 } else { 1 },
                ..LossConfig::paper()
            };
            exp.train.window_start = WindowStart::Learned;
            exp.train.continuity_weight = 0.0;
            let recs = vec![record(50, 0, 0.0), record(50, 0, 2.0)];
            let vars: Vec<[Vec<f64>; 3]> = recs.iter().map(variances).collect();

            let fr = FreeRun::new(&m, &exp.solver, &exp.loss).unwrap();
            let trajs: Vec<&Trajectory> = recs.iter().collect();
            let vr: Vec<&[Vec<f64>; 3]> = vars.iter().collect();
            let ours = fr.evaluate(&values, &trajs, &vr).unwrap();

            let plan = WindowPlan::new(&[50, 50], 49).unwrap();
            let mut with_starts = values.clone();
            with_starts.push(m.x0.iter().chain(&m.x0).copied().collect());
            let mut shapes: Vec<[usize; 2]> = m.params().iter().map(|d| d.shape).collect();
            shapes.push([2, n]);
            let device = Default::default();
            let params = crate::nn::upload::<Cpu>(&with_starts, &shapes, &device);
            let (leaf, ad) = Leaf::<CpuAd>::new(&params);
            let (loss, terms) =
                batch_objective(&m, &exp, &recs, &vars, &plan, &[0, 1], &ad, true, &device)
                    .unwrap();
            let theirs = crate::nn::download(&leaf.grads(&loss.backward()));
            let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
            assert!(rel(ours.terms.base, terms.base) < 1e-4, "{kind:?}");
            assert!(rel(ours.terms.velocity, terms.velocity) < 1e-3, "{kind:?}");
            assert!(
                rel(ours.terms.curvature, terms.curvature) < 1e-3,
                "{kind:?}"
            );
            let norm: f64 = theirs[..values.len()]
                .iter()
                .flatten()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>()
                .sqrt();
            for (a, b) in ours
                .grads
                .iter()
                .zip(&theirs)
                .flat_map(|(a, b)| a.iter().zip(b))
            {
                assert!(
                    (f64::from(*a) - f64::from(*b)).abs() < 2e-3 * norm,
                    "{kind:?}: {a} vs burn {b} (gradient norm {norm})"
                );
            }
        }
    }

    /// The state net learns an MMS rate (eq. 11) well enough to hold the state where MMS does:
    /// relative RMS error, and the absolute error where the rate is near zero, both small.
    #[test]
    fn state_net_learns_a_compact_models_rate() {
        let m = memristor(Kind::Single, 1);
        let mut values = m.init(&mut Rng::new(1));
        let sig = |u: f64| 1.0 / (1.0 + (-u).exp());
        let rate = |x: f64, v: f64| {
            (sig(18.0 * (v - 0.4)) * (1.0 - x) - sig(-18.0 * (v + 0.3)) * x) / 4e-3
        };
        let g = |x: f64| x / 2e3 + (1.0 - x) / 1e5;
        let start = CompactStart {
            rate: &rate,
            memductance: &g,
            tau: 4e-3,
            v_max: 1.2,
        };
        let (rel, _) = fit_to_compact(&m, &mut values, &start, 15000, 2).unwrap();
        assert!(rel < 0.2, "relative RMS error {rel}");
        let p: Vec<Vec<f64>> = values
            .iter()
            .map(|v| v.iter().map(|&x| f64::from(x)).collect())
            .collect();
        let field = Field::new(&m, &p, 0.0, 1.0);
        let mut tape = field.tape();
        let mut out = [0.0];
        for x in [0.1, 0.5, 0.9] {
            // At rest: within 0.4% of the rate scale (1/tau = 250 /s), where a record integrates
            // the error for whole periods.
            field.eval(&[x], 0.0, &mut tape, &mut out);
            let want = rate(x, 0.0);
            assert!((out[0] - want).abs() < 1.0, "x {x}: {} vs {want}", out[0]);
            field.eval(&[x], 1.0, &mut tape, &mut out);
            let want = rate(x, 1.0);
            assert!(
                (out[0] - want).abs() < 0.2 * want.abs(),
                "x {x}: {} vs {want}",
                out[0]
            );
        }

        // DualNN: the first state follows the rate, the second decays, G follows the memductance.
        let mut d = memristor(Kind::Dual, 2);
        d.f.layers = vec![
            (16, Activation::Silu),
            (16, Activation::Silu),
            (2, Activation::Identity),
        ];
        let mut values = d.init(&mut Rng::new(1));
        let (rel_f, rel_g) = fit_to_compact(&d, &mut values, &start, 30000, 2).unwrap();
        assert!(
            rel_g < 0.02,
            "G net: relative RMS error {rel_g} (state net {rel_f})"
        );
        let p: Vec<Vec<f64>> = values
            .iter()
            .map(|v| v.iter().map(|&x| f64::from(x)).collect())
            .collect();
        let field = Field::new(&d, &p, 0.0, 1.0);
        let mut tape = field.tape();
        let mut out = [0.0; 2];
        // At rest within 1.5 /s (0.6% of 1/tau), switching where the window
        // leaves a large rate (25%), the second state decaying at 0.1 / tau (-7.5 /s at 0.3), G
        // within 5%.
        for (x, v, tol) in [
            (0.1, 0.0, 1.5),
            (0.5, 0.0, 1.5),
            (0.9, 0.0, 1.5),
            (0.1, 1.0, 0.25 * rate(0.1, 1.0)),
            (0.5, 1.0, 0.25 * rate(0.5, 1.0)),
            (0.5, -1.0, -0.25 * rate(0.5, -1.0)),
        ] {
            field.eval(&[x, 0.3], v, &mut tape, &mut out);
            assert!(
                (out[0] - rate(x, v)).abs() < tol,
                "x {x} v {v}: {out:?} vs {}",
                rate(x, v)
            );
            assert!((out[1] + 7.5).abs() < 0.5, "{out:?}");
        }
        for x in [0.05, 0.5, 0.95] {
            let got = field.memductance(&[x, 0.0], &mut tape.g);
            assert!(
                (got - g(x)).abs() < 0.05 * g(x),
                "G({x}) = {got} vs {}",
                g(x)
            );
        }
    }

    #[test]
    fn refuses_what_it_cannot_differentiate() {
        let m = memristor(Kind::Single, 1);
        let mut exp = Experiment::default();
        exp.solver.method = Solver::Trapezoid;
        assert!(FreeRun::new(&m, &exp.solver, &exp.loss).is_err());
        exp.solver.method = Solver::Rk4;
        exp.solver.stride = 4;
        assert!(FreeRun::new(&m, &exp.solver, &exp.loss).is_err());
    }
}
