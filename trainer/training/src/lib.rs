//! Training on burn: the nets, the models and their losses, the differentiable solvers, the
//! optimizers, the training loop with its run directory, and the export with its parity check.
//!
//! - [`nn`]: nets as plain parameter tensors; [`leaf`]: all parameters as one autodiff leaf;
//! - [`model`]: the [`model::TrainModel`] trait and the generic neural ODE; [`surrogate`]: paper
//!   000's memristor surrogates; [`poly`]: paper 002's Π-nets;
//! - [`loss`]: paper 000's objective and constraint loss;
//! - [`diffsolve`]: differentiable explicit and implicit solvers; [`freerun`]: the hand-written
//!   reverse pass over whole records;
//! - [`optim`]: optimizers, clipping, learning-rate schedule;
//! - [`train`]: the training loop; [`config`]: the experiment file; [`run`]: the run directory;
//! - [`export`]: the model file, refused when the runtime drifts from the trained model;
//! - [`backend`]: the CPU backend, and CUDA with the `cuda` feature.

pub mod backend;
pub mod config;
pub mod diffsolve;
pub mod export;
pub mod freerun;
pub mod leaf;
pub mod loss;
pub mod model;
pub mod nn;
pub mod optim;
pub mod poly;
pub mod run;
pub mod surrogate;
pub mod train;

/// The workspace's error type: a failed command, naming its file.
pub use odeflash_reference::Error;

impl From<diffsolve::SolveError> for Error {
    fn from(e: diffsolve::SolveError) -> Self {
        Error::Training(Box::new(e))
    }
}

impl From<run::RunError> for Error {
    fn from(e: run::RunError) -> Self {
        Error::Training(Box::new(e))
    }
}
