//! The sleep of a background thread that ticks only while there is work (the hand-off and
//! outbox watchdogs), and the wake-up that ends it.
//!
//! Invariant: no wake-up is lost. The sleeper announces its sleep before its last look for
//! work, and a producer publishes its work before it looks whether the sleeper sleeps (both
//! sides SeqCst), so either the last look sees the work or the producer sees the sleep. The
//! notification is sent under the lock the sleeper checks its flag under, so it cannot fall
//! between that check and the wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

pub struct Doze {
    asleep: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Doze {
    pub const fn new() -> Doze {
        Doze {
            asleep: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// The background thread: sleeps until [`Doze::wake`], unless `work_waiting` (its last
    /// look, after the sleep is announced) finds work.
    pub fn sleep_unless(&self, work_waiting: impl FnOnce() -> bool) {
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.asleep.store(true, Ordering::SeqCst);
        if work_waiting() {
            self.asleep.store(false, Ordering::SeqCst);
        }
        while self.asleep.load(Ordering::SeqCst) {
            g = self.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A producer, after publishing its work with a SeqCst store: wakes the thread if it
    /// sleeps. One load when it does not.
    pub fn wake(&self) {
        if self.asleep.load(Ordering::SeqCst) {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            if self.asleep.swap(false, Ordering::SeqCst) {
                self.wake.notify_one();
            }
        }
    }

    /// Whether the thread sleeps (or is about to).
    #[cfg(test)]
    pub fn asleep(&self) -> bool {
        self.asleep.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn work_published_before_or_during_the_sleep_is_never_slept_through() {
        let doze = Arc::new(Doze::new());
        // Work found by the last look: no sleep at all.
        doze.sleep_unless(|| true);
        assert!(!doze.asleep());
        // Work published while the thread sleeps: the wake-up ends the sleep. Many rounds, so
        // that the producer's publish falls on every side of the sleeper's announcement.
        let work = Arc::new(AtomicU32::new(0));
        let sleeper = {
            let (doze, work) = (doze.clone(), work.clone());
            std::thread::spawn(move || {
                let mut taken = 0;
                while taken < 2000 {
                    doze.sleep_unless(|| work.load(Ordering::SeqCst) > taken);
                    taken = work.load(Ordering::SeqCst);
                }
            })
        };
        for _ in 0..2000 {
            work.fetch_add(1, Ordering::SeqCst);
            doze.wake();
        }
        sleeper.join().unwrap();
    }
}
