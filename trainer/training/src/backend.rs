//! The backends: burn's `flex` CPU backend by default, burn-cuda with the `cuda` feature.
//!
//! Training code is generic over `B: AutodiffBackend`; the CLI picks the backend at run time with
//! `--backend cpu|cuda` and monomorphizes the training loop for each.

use serde::{Deserialize, Serialize};

/// The CPU backend (no autodiff).
pub type Cpu = burn::backend::Flex;
/// The CPU backend with autodiff.
pub type CpuAd = burn::backend::Autodiff<Cpu>;

/// The CUDA backend (no autodiff).
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;
/// The CUDA backend with autodiff.
#[cfg(feature = "cuda")]
pub type GpuAd = burn::backend::Autodiff<Gpu>;

/// Which backend a run uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// burn's flex CPU backend.
    #[default]
    Cpu,
    /// burn-cuda on GPU 0 (binary built with `--features cuda`).
    Cuda,
}

impl BackendKind {
    /// Checks the binary can run this backend; the error says how to get it.
    pub fn check_available(self) -> Result<(), String> {
        match self {
            BackendKind::Cpu => Ok(()),
            BackendKind::Cuda => {
                if cfg!(feature = "cuda") {
                    Ok(())
                } else {
                    Err(
                        "this odeflash was built without CUDA support: rebuild with \
                         `cargo build --release -p odeflash-cli --features cuda` (needs only the \
                         NVIDIA driver at run time), or use `--backend cpu`"
                            .into(),
                    )
                }
            }
        }
    }
}

/// The first CUDA device, checked to work: a missing driver or GPU is an error, not a panic.
#[cfg(feature = "cuda")]
pub fn cuda_device() -> Result<burn::backend::cuda::CudaDevice, crate::Error> {
    use burn::tensor::Tensor;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let device = burn::backend::cuda::CudaDevice::default();
        let t = Tensor::<Gpu, 1>::ones([4], &device);
        let _ = t.sum().into_data();
        device
    });
    std::panic::set_hook(previous);
    probe.map_err(|_| {
        crate::Error::Usage(
            "--backend cuda: no usable CUDA device (is the NVIDIA driver installed and a GPU visible?)".into(),
        )
    })
}
