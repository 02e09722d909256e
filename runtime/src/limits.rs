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
/// Highest degree of a polynomial (Π-net) vector field: its number of `U` layers.
pub const MAX_DEGREE: usize = 8;
/// Most Newton iterations per implicit step.
pub const MAX_NEWTON_ITERS: u8 = 16;
/// Most unknowns of one Newton system (implicit stages times states): Radau IIA 5 on the most
/// states. Its augmented matrix, `N x (N + 1)` f32, is the largest part of an implicit step's
/// scratch (9.4 KB at this limit).
pub const MAX_NEWTON_UNKNOWNS: usize = crate::implicit::MAX_IMPLICIT_STAGES * MAX_STATES;
