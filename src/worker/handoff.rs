//! Keeping a multi-thread `gthread` worker on one runtime thread while its app calls are fast,
//! and handing over to another as soon as a call runs long.
//!
//! Only one thread runs Python at a time. Runtime threads that serve a fast app side by side
//! pass the GIL back and forth (a futex wait and wake, a context switch each, about once per
//! request: measured with `strace -f`, nearly every futex call of a 4-thread hello worker was in
//! `take_gil`/`drop_gil`), and a yield before each call that woke an idle thread to take the I/O
//! driver cost another: 15-19 µs of CPU per hello request against 8.4 µs for one thread.
//!
//! So a *gate* keeps the extra threads out while a thread is running fast work: a runtime thread
//! that tokio wakes (to share out queued tasks) waits in its unpark callback while another thread
//! runs anything but a long call, at most [`GATE_WAIT`] (a thread woken by the I/O driver may hold
//! tasks that no other thread can take: tokio's LIFO slot). A watchdog looks every [`TICK`] and
//! flags each call that has been running since its previous look (one to two ticks) as *long*: a
//! long call no longer counts as running, so one more thread may pass the gate (one waiting there
//! is let in, or an idle one woken by an empty task spawned from outside the runtime); it takes
//! over the I/O driver and the queued connections. A call counts from after it has the GIL.
//!
//! When calls run long often (at least one in [`SLOW_SHARE`] seen running for two ticks, over a
//! window of [`WINDOW`] ticks), the worker is *eager*: the gate stands open and every call yields
//! first so that tokio wakes an idle thread at once. For an app whose calls block (a database, a
//! remote API), the yield costs little against the call, and waiting for the watchdog before
//! each would delay the requests behind it.
//!
//! Measured: alternated probes (hello, 2 workers × 4 threads) 11.4-13.7 µs per request and p99
//! 3.5-8.9 ms against 14-18 µs and 9-19 ms with a yield before every call; in the bench's full
//! run S2 gthread 4 went from 52-75k req/s at 19-21 µs to 86.7k at 13.2 µs. The cost: the
//! watchdog's wake-ups while calls run (500 a second per worker; +12 µs per request of a 10 ms
//! sleep app at 770 req/s, none measurable at S8's 6,250 req/s).
//!
//! Invariants:
//! * Some thread may always run: the gate holds a thread back only while another thread is
//!   running and not in a long call, and never longer than [`GATE_WAIT`]; shutdown opens it.
//! * A call that runs longer than two ticks opens the gate for one more thread.
//! * The watchdog sleeps only while no call runs; a call that starts wakes it (`doze`: the
//!   starter sees the sleep or the watchdog's last look sees the call).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::doze::Doze;

/// How often the watchdog looks while calls run.
const TICK: Duration = Duration::from_millis(2);
/// The watchdog sleeps after this many looks with no call running.
const IDLE_AFTER: u32 = 20;
/// The longest a thread waits at the gate.
const GATE_WAIT: Duration = Duration::from_millis(2);
/// The watchdog decides whether the worker is eager once per this many ticks.
const WINDOW: u32 = 20;
/// One call in this many seen slow makes the worker eager.
const SLOW_SHARE: u64 = 16;

/// A slot's state: `calls << 2 | LONG | IN_CALL`.
const IN_CALL: u64 = 1;
const LONG: u64 = 2;

thread_local! {
    /// This runtime thread's slot in [`Watch::calls`], once it has made a call.
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Calls in progress on the runtime threads, and the gate.
pub struct Watch {
    /// Per runtime thread: its calls so far, and whether one runs and is long.
    calls: Box<[AtomicU64]>,
    next_slot: AtomicUsize,
    /// Calls flagged long and still running.
    long: AtomicUsize,
    /// Calls run long often: no gate, and a yield before each call.
    eager: AtomicBool,
    /// The watchdog's sleep while no call runs.
    doze: Doze,
    /// Runtime threads past the gate and not parked.
    running: AtomicUsize,
    /// Runtime threads waiting at the gate.
    waiting: AtomicUsize,
    /// The gate stands open for good (shutdown, or no watchdog).
    open: AtomicBool,
    /// Only for the waits at the gate; the counts are atomics (every park and unpark touches
    /// them: a lock there was contended with 32 threads).
    gate: Mutex<()>,
    gate_cv: Condvar,
}

/// An app call in progress on this runtime thread; ends when dropped.
pub struct Call<'a> {
    watch: &'a Watch,
    slot: &'a AtomicU64,
    calls: u64,
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let was = self.slot.swap(self.calls << 2, Ordering::SeqCst);
        if was & LONG != 0 {
            self.watch.long.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Watch {
    pub fn new(threads: usize) -> Arc<Watch> {
        Arc::new(Watch {
            calls: (0..threads.max(1)).map(|_| AtomicU64::new(0)).collect(),
            next_slot: AtomicUsize::new(0),
            long: AtomicUsize::new(0),
            eager: AtomicBool::new(false),
            doze: Doze::new(),
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            open: AtomicBool::new(false),
            gate: Mutex::new(()),
            gate_cv: Condvar::new(),
        })
    }

    /// Starts the watchdog. When its thread cannot start, the worker stays eager (the gate open,
    /// a yield before every call).
    pub fn start(self: &Arc<Self>, rt: tokio::runtime::Handle) -> bool {
        let w = self.clone();
        let started = std::thread::Builder::new()
            .name("rgun-handoff".into())
            .spawn(move || watchdog(&w, &rt));
        match started {
            Ok(_) => true,
            Err(e) => {
                crate::observe::warning(&format!(
                    "Cannot start the hand-off thread ({e}); every app call hands off first."
                ));
                self.eager.store(true, Ordering::Relaxed);
                self.open();
                false
            }
        }
    }

    /// Opens the gate for good (shutdown).
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.notify_gate(true);
    }

    /// Wakes one or all threads waiting at the gate. Under its lock, so that a thread between
    /// its check and its wait is not missed.
    fn notify_gate(&self, all: bool) {
        let _g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        if all {
            self.gate_cv.notify_all();
        } else {
            self.gate_cv.notify_one();
        }
    }

    /// A runtime thread starts (it runs until it first parks).
    pub fn thread_starts(&self) {
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    /// A runtime thread is about to wait for work. A thread waiting at the gate is not let in:
    /// there is no work to share (tokio would park it again at once), and its wait is bounded.
    pub fn thread_parks(&self) {
        let _ = self
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Whether a thread may pass the gate: no other thread runs anything but long calls.
    fn may_pass(&self) -> bool {
        self.open.load(Ordering::SeqCst)
            || self.eager()
            || self.running.load(Ordering::SeqCst) <= self.long.load(Ordering::SeqCst)
    }

    /// A runtime thread woke up: it waits while another thread runs fast work, at most
    /// [`GATE_WAIT`].
    pub fn thread_unparks(&self) {
        if !self.may_pass() {
            let until = std::time::Instant::now() + GATE_WAIT;
            let mut g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            self.waiting.fetch_add(1, Ordering::SeqCst);
            while !self.may_pass() {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                g = self
                    .gate_cv
                    .wait_timeout(g, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether to yield before each call (calls run long often).
    pub fn eager(&self) -> bool {
        self.eager.load(Ordering::Relaxed)
    }

    /// Marks an app call on this runtime thread (the GIL held) until the guard drops. No await
    /// may come between: the slot is the thread's.
    pub fn call(&self) -> Call<'_> {
        let slot = SLOT.get().unwrap_or_else(|| {
            let s = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.calls.len();
            SLOT.set(Some(s));
            s
        });
        let state = &self.calls[slot];
        let calls = (state.load(Ordering::Relaxed) >> 2) + 1;
        state.store(calls << 2 | IN_CALL, Ordering::SeqCst);
        self.doze.wake();
        Call {
            watch: self,
            slot: state,
            calls,
        }
    }

    fn any_running(&self) -> bool {
        self.calls
            .iter()
            .any(|c| c.load(Ordering::SeqCst) & IN_CALL != 0)
    }

    /// Flags the call in `slot` long if it is still the call seen as `state`; true if flagged.
    fn flag_long(&self, slot: &AtomicU64, state: u64) -> bool {
        // Counted first, so the call's end (which uncounts a flagged call) never comes before.
        self.long.fetch_add(1, Ordering::SeqCst);
        let flagged = slot
            .compare_exchange(state, state | LONG, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if !flagged {
            self.long.fetch_sub(1, Ordering::SeqCst);
        }
        flagged
    }
}

/// What the watchdog remembers of one runtime thread between looks.
#[derive(Clone, Copy, Default)]
struct Seen {
    state: u64,
    /// At how many looks in a row the same call was running.
    looks: u32,
}

/// What a look finds on one runtime thread.
#[derive(Debug, PartialEq)]
enum Found {
    Nothing,
    /// A call has been running since the previous look.
    Long,
    /// The same call, a look later.
    Slow,
}

impl Seen {
    fn look(&mut self, now: u64) -> Found {
        let same = now & !LONG == self.state & !LONG;
        self.looks = match (now & IN_CALL != 0, same) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => self.looks.saturating_add(1),
        };
        self.state = now;
        match self.looks {
            2 => Found::Long,
            3 => Found::Slow,
            _ => Found::Nothing,
        }
    }
}

/// Calls that started, and of them seen slow, in the current window.
#[derive(Default)]
struct Window {
    ticks: u32,
    started: u64,
    slow: u64,
}

impl Window {
    /// Eager when at least one call in [`SLOW_SHARE`] was slow. Threads stalled in a call by
    /// preemption or a GIL switch look slow too (a few per second under load), but against a
    /// fast app's call rate they are few.
    fn eager(&self) -> bool {
        self.slow > 0 && self.slow.saturating_mul(SLOW_SHARE) >= self.started
    }
}

fn watchdog(w: &Watch, rt: &tokio::runtime::Handle) {
    let mut seen = vec![Seen::default(); w.calls.len()];
    let mut idle = 0u32;
    let mut window = Window::default();
    loop {
        if idle >= IDLE_AFTER {
            // A call that starts now either wakes it or is seen by this last look.
            w.doze.sleep_unless(|| w.any_running());
            idle = 0;
        }
        std::thread::sleep(TICK);
        let mut running = false;
        for (s, slot) in seen.iter_mut().zip(w.calls.iter()) {
            let now = slot.load(Ordering::SeqCst);
            running |= now & IN_CALL != 0;
            window.started += (now >> 2) - (s.state >> 2);
            match s.look(now) {
                Found::Nothing => {}
                Found::Long => {
                    if w.flag_long(slot, now) {
                        w.let_one_more_in(rt);
                    }
                }
                Found::Slow => window.slow += 1,
            }
        }
        idle = if running { 0 } else { idle + 1 };
        window.ticks += 1;
        if window.ticks >= WINDOW {
            let eager = window.eager();
            if eager && !w.eager.swap(true, Ordering::Relaxed) {
                w.notify_gate(true);
            }
            if !eager {
                w.eager.store(false, Ordering::Relaxed);
            }
            window = Window::default();
        }
    }
}

impl Watch {
    /// A call went long: one more thread may pass the gate. Lets in one waiting there, or wakes
    /// an idle one (an empty task from outside the runtime: queued for all, a parked thread
    /// notified).
    fn let_one_more_in(&self, rt: &tokio::runtime::Handle) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.notify_gate(false);
        } else {
            drop(rt.spawn(async {}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_long_at_its_second_look_and_slow_at_its_third() {
        let mut s = Seen::default();
        assert_eq!(s.look(4 << 2 | IN_CALL), Found::Nothing);
        assert_eq!(s.look(4 << 2 | IN_CALL), Found::Long);
        assert_eq!(s.look(4 << 2 | IN_CALL | LONG), Found::Slow);
        assert_eq!(s.look(4 << 2 | IN_CALL | LONG), Found::Nothing);
        // Ended and another started in between: a new call.
        assert_eq!(s.look(5 << 2 | IN_CALL), Found::Nothing);
        assert_eq!(s.look(5 << 2 | IN_CALL), Found::Long);
        // Between calls, however long.
        assert_eq!(s.look(6 << 2), Found::Nothing);
        assert_eq!(s.look(6 << 2), Found::Nothing);
    }

    #[test]
    fn eager_when_one_call_in_sixteen_is_slow() {
        let w = |started, slow| Window {
            ticks: WINDOW,
            started,
            slow,
        };
        assert!(!w(0, 0).eager());
        assert!(!w(800, 2).eager());
        assert!(w(32, 2).eager());
        assert!(w(3, 4).eager());
    }

    #[test]
    fn a_long_call_is_flagged_and_the_gate_bounds_every_wait() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let watch = Watch::new(2);
        assert!(watch.start(rt.handle().clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let wait_for = |what: &str, f: &dyn Fn() -> bool| {
            while !f() {
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(TICK);
            }
        };
        watch.thread_starts();
        // A thread woken while another runs fast work is held back, but not for good.
        std::thread::scope(|s| s.spawn(|| watch.thread_unparks()).join().unwrap());
        watch.thread_parks();
        // A call held open is flagged long: it no longer counts as running.
        let call = watch.call();
        wait_for("never flagged long", &|| {
            watch.long.load(Ordering::SeqCst) == 1
        });
        assert!(!watch.open.load(Ordering::SeqCst));
        // Every call of the window was slow: the worker turns eager.
        wait_for("never eager", &|| watch.eager());
        drop(call);
        assert_eq!(watch.long.load(Ordering::SeqCst), 0);
        assert!(!watch.any_running());
        // With no call running the watchdog goes to sleep; the next call wakes it.
        wait_for("never slept", &|| watch.doze.asleep());
        let call = watch.call();
        assert!(!watch.doze.asleep());
        drop(call);
        assert_eq!(watch.running.load(Ordering::SeqCst), 1);
    }
}
