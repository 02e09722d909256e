//! Activation functions, the set in the paper's search space plus softplus.
//!
//! Evaluated with `libm` in f32 (within an ulp or two for the functions used here). `micromath` 2
//! was measured on [-10, 10] against f64: relative error 2.4e-3 in `exp` and absolute 1.1e-3 in
//! `sin` (libm: 6.7e-8 in `exp`), and it has no `tanh`; too coarse for the 1e-5 host/device
//! agreement this project promises, so it is not used.

use serde::{Deserialize, Serialize};

/// An element-wise activation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x` (linear output layers).
    Identity,
    /// `max(0, x)`.
    Relu,
    /// `x` for `x > 0`, `slope * x` otherwise.
    LeakyRelu {
        /// Slope for negative inputs (0.01 in most frameworks).
        slope: f32,
    },
    /// `x` for `x > 0`, `alpha * (exp(x) - 1)` otherwise.
    Elu {
        /// Saturation value for large negative inputs (1.0 in most frameworks).
        alpha: f32,
    },
    /// GELU in the tanh form the paper uses: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    Gelu,
    /// SiLU / swish: `x * sigmoid(x)`.
    Silu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `sin(x)` (the thesis's SIN activation).
    Sin,
    /// `ln(1 + exp(x))`.
    Softplus,
}

impl Activation {
    /// Short lower-case name, as in experiment files.
    pub const fn name(&self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Sin => "sin",
            Activation::Softplus => "softplus",
        }
    }

    /// Whether its parameters are usable (finite).
    pub fn is_valid(&self) -> bool {
        match *self {
            Activation::LeakyRelu { slope } => slope.is_finite(),
            Activation::Elu { alpha } => alpha.is_finite(),
            _ => true,
        }
    }

    /// Applies the activation to one value.
    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        match *self {
            Activation::Identity => x,
            Activation::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu { slope } => {
                if x > 0.0 {
                    x
                } else {
                    slope * x
                }
            }
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * libm::expm1f(x)
                }
            }
            Activation::Gelu => {
                const K: f32 = 0.797_884_6; // sqrt(2 / pi)
                0.5 * x * (1.0 + libm::tanhf(K * (x + 0.044_715 * x * x * x)))
            }
            Activation::Silu => x * sigmoid(x),
            Activation::Tanh => libm::tanhf(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Sin => sin(x),
            Activation::Softplus => {
                // max(x, 0) + log1p(exp(-|x|)) never overflows.
                let m = if x > 0.0 { x } else { 0.0 };
                m + libm::log1pf(libm::expf(-libm::fabsf(x)))
            }
        }
    }

    /// Derivative with respect to the pre-activation `x`, for the forward-mode Jacobians of the
    /// implicit solvers. At the kinks of ReLU and leaky ReLU (`x = 0`) it is the left derivative,
    /// as `apply` takes the left branch there.
    #[inline]
    pub fn derivative(&self, x: f32) -> f32 {
        match *self {
            Activation::Identity => 1.0,
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu { slope } => {
                if x > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    1.0
                } else {
                    alpha * libm::expf(x)
                }
            }
            Activation::Gelu => {
                const K: f32 = 0.797_884_6; // sqrt(2 / pi)
                let t = libm::tanhf(K * (x + 0.044_715 * x * x * x));
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * K * (1.0 + 3.0 * 0.044_715 * x * x)
            }
            Activation::Silu => {
                let s = sigmoid(x);
                s + x * s * (1.0 - s)
            }
            Activation::Tanh => {
                let t = libm::tanhf(x);
                1.0 - t * t
            }
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            Activation::Sin => cos(x),
            Activation::Softplus => sigmoid(x),
        }
    }

    /// Applies the activation in place.
    #[inline]
    pub fn apply_slice(&self, xs: &mut [f32]) {
        if matches!(self, Activation::Identity) {
            return;
        }
        for x in xs {
            *x = self.apply(*x);
        }
    }
}

/// `sin(x)` entirely in f32: libm's `sinf` reduces its argument in f64, which on an FPU-less or
/// single-precision core links about 3 KB of soft-float code. Cody-Waite reduction by pi/2 with a
/// three-part constant, then the Cephes minimax polynomials on [-pi/4, pi/4]; within 2 ulp of
/// the true value for |x| < 8192, and bounded (never NaN for finite x) beyond.
#[inline]
pub fn sin(x: f32) -> f32 {
    sin_quadrant(x, 0)
}

/// `cos(x)` with the same reduction and polynomials as [`sin`] (a quarter turn further).
#[inline]
pub fn cos(x: f32) -> f32 {
    sin_quadrant(x, 1)
}

/// `sin(x + shift * pi / 2)`, the quarter turns added after the reduction so they are exact.
#[inline]
// The constants are the published digits; the compiler rounds them to f32.
#[allow(clippy::excessive_precision)]
fn sin_quadrant(x: f32, shift: i32) -> f32 {
    if !x.is_finite() {
        return f32::NAN;
    }
    // pi/2 split so that k * P1 and k * P2 are exact for |k| < 2^12.
    const P1: f32 = 1.570_312_5;
    const P2: f32 = 4.837_512_969_970_703e-4;
    const P3: f32 = 7.549_789_954_891_5e-8;
    let k = libm::roundf(x * core::f32::consts::FRAC_2_PI);
    let r = ((x - k * P1) - k * P2) - k * P3;
    let z = r * r;
    let sin_r =
        r + r * z * (-1.666_665_461_1e-1 + z * (8.332_160_873_6e-3 + z * -1.951_529_589_1e-4));
    let cos_r = 1.0 - 0.5 * z
        + z * z
            * (4.166_664_568_298_827e-2
                + z * (-1.388_731_625_493_765e-3 + z * 2.443_315_711_809_948e-5));
    // Quadrant from the low two bits of k (k is integral; the cast saturates for huge |x|).
    match (k as i32).wrapping_add(shift) & 3 {
        0 => sin_r,
        1 => cos_r,
        2 => -sin_r,
        _ => -cos_r,
    }
}

/// Logistic sigmoid, written so `exp` never overflows.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f64 references written from the textbook definitions.
    fn reference(a: &Activation, x: f64) -> f64 {
        match *a {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu { slope } => {
                if x > 0.0 {
                    x
                } else {
                    slope as f64 * x
                }
            }
            Activation::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha as f64 * (x.exp() - 1.0)
                }
            }
            Activation::Gelu => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x.powi(3))).tanh())
            }
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Sin => x.sin(),
            Activation::Softplus => (1.0 + x.exp()).ln(),
        }
    }

    #[test]
    fn matches_f64_reference() {
        let all = [
            Activation::Identity,
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.01 },
            Activation::Elu { alpha: 1.0 },
            Activation::Gelu,
            Activation::Silu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Sin,
            Activation::Softplus,
        ];
        for a in &all {
            for i in -400..=400 {
                let x = i as f32 * 0.05;
                let got = a.apply(x) as f64;
                let want = reference(a, x as f64);
                let tol = 4.0 * f32::EPSILON as f64 * (1.0 + want.abs());
                assert!(
                    (got - want).abs() <= tol,
                    "{} at {x}: {got} vs {want}",
                    a.name()
                );
            }
        }
    }

    #[test]
    fn derivatives_match_central_differences_of_the_f64_reference() {
        let all = [
            Activation::Identity,
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.01 },
            Activation::Elu { alpha: 1.0 },
            Activation::Gelu,
            Activation::Silu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Sin,
            Activation::Softplus,
        ];
        for a in &all {
            for i in -400..=400 {
                // Off the kink at 0 of ReLU and leaky ReLU.
                let x = i as f32 * 0.05 + 0.013;
                let d = 1e-5;
                let fd = (reference(a, x as f64 + d) - reference(a, x as f64 - d)) / (2.0 * d);
                let got = a.derivative(x) as f64;
                assert!(
                    (got - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                    "{} at {x}: {got} vs {fd}",
                    a.name()
                );
            }
        }
    }

    #[test]
    fn sin_is_accurate_over_a_wide_range() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 0.04; // |x| up to 8000
            let err = (sin(x) as f64 - (x as f64).sin()).abs();
            worst = worst.max(err);
        }
        // Two ulp at magnitude one; the argument itself is exact in f32.
        assert!(worst <= 2.0 * f32::EPSILON as f64, "worst error {worst:e}");
    }

    #[test]
    fn extreme_inputs_stay_finite() {
        for a in [
            Activation::Sigmoid,
            Activation::Silu,
            Activation::Softplus,
            Activation::Gelu,
        ] {
            for x in [-1e30f32, -100.0, 100.0, 1e30] {
                assert!(a.apply(x).is_finite(), "{} at {x}", a.name());
            }
        }
    }
}
