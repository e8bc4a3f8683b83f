//! Stage timings, for finding where a compile spends its time (the
//! benchmarks time whole runs; tests never time anything).
//!
//! Off unless the CLI turns them on (`KEELSON_TIMINGS=1`): the library reads
//! no environment. Laps are collected here and printed by the CLI's output
//! module at the end of a command, so no stage writes to stderr itself.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ON: AtomicBool = AtomicBool::new(false);
static LAPS: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

/// Turns collecting laps on or off for this process.
pub fn enable(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// The laps collected so far, in the order they were taken; clears them.
pub fn take() -> Vec<(String, Duration)> {
    std::mem::take(&mut *LAPS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A stopwatch that records the time since its last lap under a name.
pub(crate) struct Laps {
    last: Instant,
    on: bool,
}

impl Laps {
    pub(crate) fn start() -> Laps {
        Laps {
            last: Instant::now(),
            on: ON.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn lap(&mut self, what: &str) {
        if self.on {
            let now = Instant::now();
            LAPS.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((what.to_string(), now - self.last));
            self.last = now;
        }
    }
}
