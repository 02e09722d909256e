//! Capacity limits every decoded model is checked against.
//!
//! They bound the RAM a decoded [`crate::Model`] occupies (its layer tables live in fixed-size
//! `heapless` vectors) and the scratch a simulation can ask for. The paper's search space (one to
//! five hidden layers of 16 to 512 neurons) fits inside them.

/// Most layers (hidden plus output) in one MLP.
pub const MAX_LAYERS: usize = 8;
/// Widest layer, inputs included.
pub const MAX_WIDTH: usize = 512;
/// Most internal states of a model.
pub const MAX_STATES: usize = 16;
/// Longest model name, in bytes.
pub const MAX_NAME: usize = 64;
/// Most sub-steps per sample interval.
pub const MAX_SUBSTEPS: u16 = 1024;
