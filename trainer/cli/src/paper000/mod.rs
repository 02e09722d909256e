//! Paper 000 (memristor surrogates): the training presets, the start fitted to a compact model,
//! and `eval`'s tables and figures.

pub mod compact_start;
pub mod eval;
pub mod preset;

use odeflash_reference::dataset::Dataset;
use odeflash_reference::memristor::MemristorDataset;

use crate::Error;

/// Refuses a warm-up (`--warmup-periods`, skipped at the start of each record) that leaves
/// fewer than two samples of a record to train on or score: `train memristor` and `eval`'s
/// `skip` mode. `data` is `ds` as training sees it (`memristor::data::training_view`).
pub fn check_warmup(
    data: &Dataset,
    ds: &MemristorDataset,
    warmup_periods: f64,
) -> Result<(), Error> {
    for t in data.train.iter().chain(&data.validation) {
        if t.warmup + 2 > t.len() {
            let per_period = ds
                .trajectories
                .iter()
                .find(|m| m.path == t.path)
                .map_or(f64::NAN, |m| m.samples_per_period());
            return Err(Error::Usage(format!(
                "--warmup-periods {warmup_periods}: leaves fewer than two samples of {} to \
                 score ({} samples, {per_period:.1} per period); give fewer warm-up periods",
                t.path.display(),
                t.len(),
            )));
        }
    }
    Ok(())
}
