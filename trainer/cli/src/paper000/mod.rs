//! Paper 000 (memristor surrogates): the training presets, the start fitted to a compact model,
//! and `eval`'s tables and figures.

pub mod compact_start;
pub mod eval;
pub mod preset;
