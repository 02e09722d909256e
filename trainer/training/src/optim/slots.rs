//! Per-parameter buffers shared by the optimizers: lazy creation, shape checks, export, import.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::{OptimError, OptimizerState, ParamBuffer};

/// The step count and the named buffers of an optimizer, one tensor per parameter and name.
pub(crate) struct Slots<B: Backend> {
    /// The optimizer's name, for messages and state checks.
    optimizer: &'static str,
    /// The buffers' names, in the order of [`Self::bufs`].
    names: &'static [&'static str],
    /// Steps taken.
    step: u64,
    /// The parameter shapes, once known (first step, or a loaded non-empty state).
    shapes: Option<Vec<[usize; 2]>>,
    /// `bufs[name][param]`; each inner list is empty until the shapes are known.
    bufs: Vec<Vec<Tensor<B, 2>>>,
}

impl<B: Backend> Slots<B> {
    pub(crate) fn new(optimizer: &'static str, names: &'static [&'static str]) -> Self {
        Self {
            optimizer,
            names,
            step: 0,
            shapes: None,
            bufs: names.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// Checks `params` against `grads` and the known shapes, creates zeroed buffers on first
    /// use, then counts the step and returns its number (1 for the first step).
    pub(crate) fn begin_step(&mut self, params: &[Tensor<B, 2>], grads: &[Tensor<B, 2>]) -> u64 {
        let optimizer = self.optimizer;
        assert_eq!(
            params.len(),
            grads.len(),
            "{optimizer}: {} parameters but {} gradients",
            params.len(),
            grads.len()
        );
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            assert_eq!(
                p.dims(),
                g.dims(),
                "{optimizer}: parameter {i} has shape {:?} but its gradient {:?}",
                p.dims(),
                g.dims()
            );
        }
        match &self.shapes {
            Some(shapes) => {
                assert_eq!(
                    shapes.len(),
                    params.len(),
                    "{optimizer}: state is for {} parameters, step got {}",
                    shapes.len(),
                    params.len()
                );
                for (i, (s, p)) in shapes.iter().zip(params).enumerate() {
                    assert_eq!(
                        *s,
                        p.dims(),
                        "{optimizer}: state of parameter {i} has shape {s:?}, parameter {:?}",
                        p.dims()
                    );
                }
                // Loaded buffers take the backend's default float type; follow the parameters'.
                for bufs in &mut self.bufs {
                    for (b, p) in bufs.iter_mut().zip(params) {
                        if b.dtype() != p.dtype() {
                            *b = b.clone().cast(p.dtype());
                        }
                    }
                }
            }
            None => {
                self.shapes = Some(params.iter().map(Tensor::dims).collect());
                for bufs in &mut self.bufs {
                    *bufs = params.iter().map(Tensor::zeros_like).collect();
                }
            }
        }
        self.step += 1;
        self.step
    }

    /// Runs `update(i, param, grad, buffers)` for every parameter `i`, storing the returned
    /// parameter and buffers. `N` must be the number of buffer names.
    pub(crate) fn update_each<const N: usize>(
        &mut self,
        params: &mut [Tensor<B, 2>],
        grads: &[Tensor<B, 2>],
        mut update: impl FnMut(
            Tensor<B, 2>,
            Tensor<B, 2>,
            [Tensor<B, 2>; N],
        ) -> (Tensor<B, 2>, [Tensor<B, 2>; N]),
    ) {
        assert_eq!(N, self.names.len(), "buffer count mismatch");
        let mut old: Vec<std::vec::IntoIter<Tensor<B, 2>>> = self
            .bufs
            .iter_mut()
            .map(|b| std::mem::take(b).into_iter())
            .collect();
        let mut new: Vec<Vec<Tensor<B, 2>>> =
            (0..N).map(|_| Vec::with_capacity(params.len())).collect();
        for (p, g) in params.iter_mut().zip(grads) {
            let bufs: [Tensor<B, 2>; N] = std::array::from_fn(|k| {
                old[k]
                    .next()
                    .expect("begin_step creates one buffer per parameter")
            });
            let (p_new, bufs_new) = update(p.clone(), g.clone(), bufs);
            *p = p_new;
            for (k, b) in bufs_new.into_iter().enumerate() {
                new[k].push(b);
            }
        }
        self.bufs = new;
    }

    /// The state as plain data.
    pub(crate) fn export(&self) -> OptimizerState {
        let buffers = self
            .names
            .iter()
            .zip(&self.bufs)
            .map(|(name, bufs)| {
                let list = bufs
                    .iter()
                    .map(|t| ParamBuffer {
                        shape: t.dims(),
                        values: t
                            .to_data()
                            .convert::<f32>()
                            .into_vec::<f32>()
                            .expect("converted to f32"),
                    })
                    .collect();
                ((*name).to_owned(), list)
            })
            .collect();
        OptimizerState {
            optimizer: self.optimizer.to_owned(),
            step: self.step,
            buffers,
        }
    }

    /// Replaces the state with `state`, checked first; buffers are created on `device`.
    pub(crate) fn import(
        &mut self,
        state: OptimizerState,
        device: &B::Device,
    ) -> Result<(), OptimError> {
        let optimizer = self.optimizer;
        let invalid = |message: String| OptimError::InvalidState { optimizer, message };
        if state.optimizer != optimizer {
            return Err(OptimError::WrongOptimizer {
                expected: optimizer,
                found: state.optimizer,
            });
        }
        let mut buffers: BTreeMap<String, Vec<ParamBuffer>> = state.buffers;
        let mut lists = Vec::with_capacity(self.names.len());
        for name in self.names {
            let list = buffers
                .remove(*name)
                .ok_or_else(|| invalid(format!("buffer `{name}` is missing")))?;
            lists.push((*name, list));
        }
        if let Some(extra) = buffers.keys().next() {
            return Err(invalid(format!("unexpected buffer `{extra}`")));
        }
        let mut shapes: Option<Vec<[usize; 2]>> = None;
        for (name, list) in &lists {
            for (i, b) in list.iter().enumerate() {
                let expected = b.shape[0].checked_mul(b.shape[1]);
                if expected != Some(b.values.len()) {
                    return Err(invalid(format!(
                        "buffer `{name}` of parameter {i} has shape {:?} but {} values",
                        b.shape,
                        b.values.len()
                    )));
                }
            }
            let these: Vec<[usize; 2]> = list.iter().map(|b| b.shape).collect();
            match &shapes {
                None => shapes = Some(these),
                Some(s) if *s != these => {
                    return Err(invalid(format!(
                        "buffer `{name}` has shapes {these:?}, another buffer {s:?}"
                    )))
                }
                Some(_) => {}
            }
        }
        if state.step == 0 && shapes.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(invalid("buffers present but step is 0".to_owned()));
        }
        // A fresh state (step 0) leaves the shapes to the next step, as does an optimizer
        // without buffers.
        let shapes = if state.step == 0 { None } else { shapes };
        self.bufs = lists
            .into_iter()
            .map(|(_, list)| {
                list.into_iter()
                    .map(|b| Tensor::from_data(TensorData::new(b.values, b.shape), device))
                    .collect()
            })
            .collect();
        self.shapes = shapes;
        self.step = state.step;
        Ok(())
    }
}
