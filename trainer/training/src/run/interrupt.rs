//! Ctrl-C during training: the first press asks the training loop to stop cleanly, the second
//! exits at once.
//!
//! The loop polls [`Interrupt::requested`] after each batch; when it is set, it writes a
//! checkpoint and stops with [`INTERRUPTED_MESSAGE`]. `SIGTERM` and `SIGHUP` (a batch scheduler's
//! time limit, a closed terminal) count as a first press too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::RunError;

/// What the training loop prints when it stops after an interrupt.
pub const INTERRUPTED_MESSAGE: &str = "interrupted; resume with --resume";

/// Exit status after a second Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_IMMEDIATELY_STATUS: i32 = 130;

/// The flag a training loop polls. Cheap to clone; clones share the flag.
#[derive(Debug, Clone)]
pub struct Interrupt {
    presses: Arc<AtomicUsize>,
}

/// The flag the process-wide handler sets, once installed.
static INSTALLED: Mutex<Option<Interrupt>> = Mutex::new(None);

impl Interrupt {
    /// Installs the process-wide Ctrl-C handler and returns its flag. Installing again returns
    /// the same flag; only a failure to install (another handler owns the signal) is an error.
    pub fn install() -> Result<Interrupt, RunError> {
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flag) = installed.as_ref() {
            return Ok(flag.clone());
        }
        let flag = Interrupt::manual();
        let presses = Arc::clone(&flag.presses);
        ctrlc::set_handler(move || {
            if presses.fetch_add(1, Ordering::SeqCst) == 0 {
                eprintln!(
                    "\ninterrupt: finishing the current batch, then writing a checkpoint \
                     (press Ctrl-C again to exit immediately)"
                );
            } else {
                eprintln!("\ninterrupted again: exiting without a checkpoint");
                std::process::exit(EXIT_IMMEDIATELY_STATUS);
            }
        })
        .map_err(RunError::Interrupt)?;
        *installed = Some(flag.clone());
        Ok(flag)
    }

    /// A flag not connected to any signal: for tests, or for stopping a loop from another thread
    /// with [`Interrupt::request`].
    pub fn manual() -> Interrupt {
        Interrupt {
            presses: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether a stop was asked for: the training loop should checkpoint and stop.
    pub fn requested(&self) -> bool {
        self.presses.load(Ordering::SeqCst) > 0
    }

    /// Asks for a stop, like a first Ctrl-C (a second call does not exit the process).
    pub fn request(&self) {
        self.presses.fetch_max(1, Ordering::SeqCst);
    }

    /// Forgets earlier presses: the next Ctrl-C is again a first one.
    pub fn clear(&self) {
        self.presses.store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_flag() {
        let flag = Interrupt::manual();
        let other = flag.clone();
        assert!(!flag.requested());
        other.request();
        other.request();
        assert!(flag.requested());
        flag.clear();
        assert!(!other.requested());
        // Not connected to the installed handler.
        let installed = Interrupt::install().unwrap();
        assert!(!Arc::ptr_eq(&installed.presses, &flag.presses));
    }

    #[test]
    fn installing_twice_is_fine() {
        let a = Interrupt::install().unwrap();
        let b = Interrupt::install().unwrap();
        assert!(Arc::ptr_eq(&a.presses, &b.presses));
    }

    /// A real SIGINT sent to this test process sets the flag (and does not kill the process).
    #[cfg(unix)]
    #[test]
    fn sigint_sets_the_flag() {
        let flag = Interrupt::install().unwrap();
        flag.clear();
        let status = std::process::Command::new("kill")
            .args(["-s", "INT", &std::process::id().to_string()])
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                eprintln!("skipped: cannot run `kill`: {other:?}");
                return;
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !flag.requested() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(flag.requested());
        // Back to "no press yet", so that nothing else in this process sees a second press.
        flag.clear();
    }
}
