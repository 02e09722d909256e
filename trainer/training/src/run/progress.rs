//! The training progress bar: epochs × batches, with the loss and an ETA.
//!
//! Drawn on standard error, and only when standard error is a terminal and the run is not
//! `--quiet`. Epoch summary lines ([`Progress::log`]) are printed above the bar, or as plain lines
//! on standard error when the bar is hidden because it is not a terminal (logs keep them);
//! `--quiet` silences them too.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const TEMPLATE: &str =
    "{prefix:>13} [{bar:30.cyan/blue}] {percent:>3}% {msg}  {elapsed_precise} ETA {eta_precise}";

/// Progress of a training run over `epochs × batches_per_epoch` batches. Epochs are numbered
/// from 1.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    epochs: u64,
    batches_per_epoch: u64,
    quiet: bool,
    /// `f64` bits of the last validation loss (NaN: none yet).
    val_loss: AtomicU64,
    /// The epoch being run (0: none started).
    epoch: AtomicU64,
    /// Batches done in the current epoch.
    batch: AtomicU64,
}

impl Progress {
    /// A bar on standard error, hidden if `quiet` or if standard error is not a terminal.
    pub fn new(epochs: u64, batches_per_epoch: u64, quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Self::with_target(epochs, batches_per_epoch, quiet, target)
    }

    /// A bar that draws nothing and prints nothing (tests, library use).
    pub fn hidden(epochs: u64, batches_per_epoch: u64) -> Self {
        Self::with_target(
            epochs,
            batches_per_epoch,
            true,
            ProgressDrawTarget::hidden(),
        )
    }

    fn with_target(
        epochs: u64,
        batches_per_epoch: u64,
        quiet: bool,
        target: ProgressDrawTarget,
    ) -> Self {
        let bar =
            ProgressBar::with_draw_target(Some(epochs.saturating_mul(batches_per_epoch)), target)
                .with_style(style());
        Progress {
            bar,
            epochs,
            batches_per_epoch,
            quiet,
            val_loss: AtomicU64::new(f64::NAN.to_bits()),
            epoch: AtomicU64::new(0),
            batch: AtomicU64::new(0),
        }
    }

    /// Starts epoch `epoch` (1-based). The first call may start past epoch 1 (a resumed run): the
    /// bar then starts part-full and the ETA counts only batches run in this process.
    pub fn start_epoch(&self, epoch: u64) {
        let first = self.epoch.swap(epoch, Ordering::Relaxed) == 0;
        self.batch.store(0, Ordering::Relaxed);
        self.bar.set_position(
            epoch
                .saturating_sub(1)
                .saturating_mul(self.batches_per_epoch),
        );
        if first {
            self.bar.reset_eta();
            self.bar.reset_elapsed();
        }
        self.bar
            .set_prefix(format!("epoch {epoch}/{}", self.epochs));
        self.update_message(None);
    }

    /// One batch done, with its training loss.
    pub fn batch(&self, loss: f64) {
        self.batch.fetch_add(1, Ordering::Relaxed);
        self.bar.inc(1);
        self.update_message(Some(loss));
    }

    /// The epoch's validation loss, shown from now on.
    pub fn set_val_loss(&self, val_loss: f64) {
        self.val_loss.store(val_loss.to_bits(), Ordering::Relaxed);
    }

    /// Prints a line (an epoch summary, a note) above the bar; see the module documentation for
    /// where it goes when the bar is hidden.
    pub fn log(&self, line: &str) {
        if !self.bar.is_hidden() {
            self.bar.println(line);
        } else if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Leaves the bar as it is (finished or interrupted) and moves below it.
    pub fn finish(&self) {
        self.bar.abandon();
    }

    /// Whether the bar is drawn.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Batches done over the whole run (including epochs before a resume).
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// The text after the bar.
    pub fn message(&self) -> String {
        self.bar.message()
    }

    fn update_message(&self, loss: Option<f64>) {
        let mut msg = format!(
            "batch {}/{}",
            self.batch.load(Ordering::Relaxed),
            self.batches_per_epoch
        );
        if let Some(loss) = loss {
            msg.push_str(&format!(" loss {loss:.3e}"));
        }
        let val = f64::from_bits(self.val_loss.load(Ordering::Relaxed));
        if !val.is_nan() {
            msg.push_str(&format!(" val {val:.3e}"));
        }
        self.bar.set_message(msg);
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(TEMPLATE)
        .expect("the progress template is valid")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_is_hidden() {
        assert!(Progress::new(2, 3, true).is_hidden());
        assert!(Progress::hidden(2, 3).is_hidden());
    }

    #[test]
    fn counts_batches_over_epochs() {
        let p = Progress::hidden(3, 4);
        p.start_epoch(1);
        for _ in 0..4 {
            p.batch(0.5);
        }
        assert_eq!(p.position(), 4);
        p.set_val_loss(0.25);
        p.start_epoch(2);
        p.batch(0.001_234_5);
        assert_eq!(p.position(), 5);
        assert_eq!(p.message(), "batch 1/4 loss 1.234e-3 val 2.500e-1");
        p.log("epoch 2: quiet, so not printed");
        p.finish();
    }

    #[test]
    fn resumed_run_starts_part_full() {
        let p = Progress::hidden(10, 5);
        p.start_epoch(7);
        assert_eq!(p.position(), 30);
        assert_eq!(p.message(), "batch 0/5");
    }

    #[test]
    fn template_is_valid() {
        let _ = style();
    }
}
