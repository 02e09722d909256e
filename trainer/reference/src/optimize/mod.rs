//! Bounded global and local minimizers for small f64 problems (a dozen parameters): the two
//! stages of the compact-model fits.
//!
//! - [`de`]: adaptive differential evolution (JADE-style adaptation, radius-limited donors);
//! - [`lbfgsb`]: L-BFGS-B (dense, generalized Cauchy point, subspace minimization).

pub mod de;
pub mod lbfgsb;
