//! Finished responses held back until the end of the runtime's turn, so that the responses of
//! one turn go out back to back (gthread with connections kept alive; plain TCP; never before a
//! close).
//!
//! Why: written one by one as each app returns, every response wakes a client that has gone back
//! to sleep in the meantime (one app call later). Waking a sleeping CPU costs the sender an
//! interrupt and, in a VM, an exit that also evicts the app's working set: measured here, a
//! Flask request ran 30% slower that way than when the turn's responses were written together.
//!
//! How: the write that completes a response copies it into the connection's [`Out`] instead of
//! sending it; the connection's task sends it after its turn (`serve_conn` yields first, so
//! the other ready connections run their apps before). Bounded: a watchdog thread looks every
//! [`TICK`] and sends what is held when the runtime thread has neither started nor ended an app
//! call since its previous look (a slow app, a slow `close()` of a response iterable, or the
//! thread preempted), so a response never waits more than about two ticks behind a stalled
//! runtime thread, nor [`MAX_WAIT`] in any case. With several runtime threads (gthread N > 1)
//! the look is over all of them: a response held on a thread that then runs a long call goes
//! out when another thread takes its connection's task (queued behind the call, stealable; the
//! gate in `handoff` lets a thread in within two of its ticks) or after [`MAX_WAIT`]. Measured
//! there (Flask, 2 workers × 4 threads, alternated probes): 17.1-18.7k req/s against 14.4-15.7k
//! with each response sent at once. A turn of fast
//! calls is not interrupted: its responses go out together at its end, as they would from a
//! single-threaded event loop. (Sending whatever had waited 1 ms, every 1 ms, cost 3-6% of a
//! pinned worker's throughput: the watchdog's wake-ups and the sends it made in the middle of
//! long turns of fast Flask calls.)
//!
//! Invariants:
//! * A connection's bytes go out in order: nothing else is written on it while its `Out` holds
//!   bytes (the blocking writers send the held bytes first; `serve_conn` sends them before
//!   reading the next request; the close sends them before the FIN).
//! * The watchdog never writes to a descriptor after its connection dropped it: `Out::close`
//!   runs (under the same lock) before the descriptor is closed.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, send};

use super::doze::Doze;
use crate::unix::uring::SendRing;

/// How often the watchdog looks while responses are held.
pub const TICK: Duration = Duration::from_millis(2);
/// The longest a finished response is held, whatever the runtime thread does.
pub const MAX_WAIT: Duration = Duration::from_millis(20);
/// Larger responses are sent at once (holding them would mean copying them).
pub const MAX_HELD: usize = 64 * 1024;
/// The watchdog sleeps until it is needed again after this many ticks with nothing held.
const IDLE_AFTER: u32 = 10;

thread_local! {
    /// App calls since the runtime thread last parked (ran out of work), and in the turn
    /// before that.
    static TURN_CALLS: Cell<u32> = const { Cell::new(0) };
    static LAST_TURN_CALLS: Cell<u32> = const { Cell::new(0) };
    /// How long the runtime thread's app calls take, in ns: a moving average over about the
    /// last eight.
    static CALL_NS: Cell<u32> = const { Cell::new(0) };
}

/// Counts app calls on the runtime thread, twice each (start and end). The watchdog compares
/// two looks to tell a stalled runtime thread from one that is getting through its turn.
static CALL_SEQ: AtomicU64 = AtomicU64::new(0);

/// Marks the start of an app call on the runtime thread; returns whether its response may be
/// held: only when other responses are likely to go out with it, that is when another call
/// ran in this turn (since the runtime last ran out of work) or the previous turn had several.
/// A call alone in its turn (low load) is sent at once: holding it gains nothing and would
/// keep the watchdog awake (measured at a fixed low rate: 29-33 → 39-40 µs of CPU per request
/// when such calls were held).
///
/// Turns, not time: the earlier rule (a streak of calls less than 50 µs apart) was broken by
/// every preemption and every gap between a turn's sends and the next requests, and then
/// sent each turn's first four responses one by one: 12.5% of the responses of an unpinned
/// two-worker Flask run.
pub fn call_starts() -> bool {
    CALL_SEQ.fetch_add(1, Ordering::Relaxed);
    let before = TURN_CALLS.with(|c| c.replace(c.get().saturating_add(1)));
    may_hold(before, LAST_TURN_CALLS.with(Cell::get))
}

/// Whether a connection with a complete request head should let the turn's other connections
/// read theirs before its app runs: when other app calls are likely in this turn (the rule of
/// [`call_starts`], without counting a call) and the app's calls take long
/// ([`LONG_CALL_NS`] on average). The turn then reads and parses every ready request before
/// the first app runs, so the apps run back to back without the kernel's receive path and the
/// parser in between to evict their code and data. Measured on Flask: about a quarter fewer
/// instruction-cache misses of rgun's own code, 2-5% more requests a second. Short calls (a
/// hello app) fit the caches either way and only pay the extra pass: more tail latency.
pub fn reads_first() -> bool {
    CALL_NS.with(Cell::get) >= LONG_CALL_NS
        && may_hold(TURN_CALLS.with(Cell::get), LAST_TURN_CALLS.with(Cell::get))
}

/// App calls longer than this on average (a Flask view takes ~45 µs here, a hello app ~2 µs)
/// run after the turn's reads ([`reads_first`]).
const LONG_CALL_NS: u32 = 15_000;

/// Whether a call may be held, after `before` calls in its turn and `last_turn` in the turn
/// before.
fn may_hold(before: u32, last_turn: u32) -> bool {
    before >= 1 || last_turn >= 2
}

/// Records that an app call on this thread has returned; `started` when it was timed (one
/// runtime thread: the time feeds [`reads_first`]).
pub fn call_ended(started: Option<Instant>) {
    CALL_SEQ.fetch_add(1, Ordering::Relaxed);
    let Some(started) = started else {
        return;
    };
    // A call preempted for a time slice measures milliseconds: bounded, so that one such
    // call does not make a short-call app look long for the next dozens of calls.
    let took = started
        .elapsed()
        .as_nanos()
        .min(u128::from(4 * LONG_CALL_NS)) as u32;
    CALL_NS.with(|avg| avg.set(moving_average(avg.get(), took)));
}

/// Seven eighths of `avg` and one eighth of `sample`.
fn moving_average(avg: u32, sample: u32) -> u32 {
    avg - avg / 8 + sample / 8
}

/// The runtime thread is about to wait for events (its `on_thread_park` hook): a turn ends.
/// A wait with no call since the last one (a timer, a partial request head) leaves the count
/// of the last turn with calls.
pub fn runtime_parks() {
    let n = TURN_CALLS.with(|c| c.replace(0));
    if n > 0 {
        LAST_TURN_CALLS.with(|c| c.set(n));
    }
}

/// Whether the watchdog should send what is held: no app call started or ended between two
/// looks one tick apart. Inside one call (odd count) that is a slow call; between calls (even)
/// the runtime thread was not running (preempted: only app calls take that long), and a held
/// response would otherwise wait for its next time slice.
fn stalled(previous: u64, now: u64) -> bool {
    now == previous
}

/// One connection's held bytes.
#[derive(Debug)]
pub struct Out {
    /// Set while bytes are held: lets writers skip the lock when nothing is held.
    held: AtomicBool,
    /// In the watchdog's list (from its first held response until the connection closes).
    listed: AtomicBool,
    /// The connection has closed: the watchdog drops it from its list.
    closed: AtomicBool,
    state: Mutex<OutState>,
}

#[derive(Debug)]
struct OutState {
    /// `None` once the connection is closing (the descriptor may be reused afterwards).
    fd: Option<RawFd>,
    bytes: Vec<u8>,
    /// How much of `bytes` went out already.
    sent: usize,
    since: Instant,
}

impl Out {
    pub fn new(fd: RawFd) -> Arc<Out> {
        Arc::new(Out {
            held: AtomicBool::new(false),
            listed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            state: Mutex::new(OutState {
                fd: Some(fd),
                bytes: Vec::new(),
                sent: 0,
                since: Instant::now(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, unless another thread has it.
    fn try_lock(&self) -> Option<MutexGuard<'_, OutState>> {
        match self.state.try_lock() {
            Ok(st) => Some(st),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Whether bytes are held.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Holds `bufs` (appended to what is held already) and registers with the watchdog. False
    /// when there is no watchdog (its thread could not start): the caller sends them.
    pub fn hold(self: &Arc<Self>, bufs: &[&[u8]]) -> bool {
        let Some(ob) = outbox() else {
            return false;
        };
        let mut st = self.lock();
        if st.bytes.len() == st.sent {
            st.bytes.clear();
            st.sent = 0;
            st.since = Instant::now();
        }
        for b in bufs {
            st.bytes.extend_from_slice(b);
        }
        self.held.store(true, Ordering::SeqCst);
        drop(st);
        if !self.listed.swap(true, Ordering::AcqRel) {
            ob.lock().push(self.clone());
        }
        TURN_HELD.with(|t| t.borrow_mut().push(self.clone()));
        // Woken here, not when the next call starts: the call that holds its response is still
        // running (the iterable's `close()`, the app's own work after the last write).
        ob.doze.wake();
        true
    }

    /// Sends what it can without waiting. `Ok(true)` when nothing is held any more.
    pub fn send_now(&self) -> std::io::Result<bool> {
        let mut st = self.lock();
        let done = st.send_now();
        if matches!(done, Ok(true) | Err(_)) {
            self.unheld();
        }
        done
    }

    /// Nothing is held any more (called under the state lock).
    fn unheld(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// Drops the held bytes and forgets the descriptor: the connection is going away.
    pub fn close(&self) {
        let mut st = self.lock();
        st.fd = None;
        st.bytes = Vec::new();
        st.sent = 0;
        self.unheld();
        self.closed.store(true, Ordering::Release);
    }
}

impl OutState {
    fn send_now(&mut self) -> std::io::Result<bool> {
        let Some(fd) = self.fd else {
            return Ok(true);
        };
        while self.sent < self.bytes.len() {
            let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
            match send(fd, &self.bytes[self.sent..], flags) {
                Ok(n) => {
                    self.advance(n);
                }
                Err(nix::errno::Errno::EAGAIN) => return Ok(false),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    self.bytes.clear();
                    self.sent = 0;
                    return Err(e.into());
                }
            }
        }
        Ok(true)
    }

    /// The descriptor and the bytes still to send, if any.
    fn pending(&self) -> Option<(RawFd, &[u8])> {
        let fd = self.fd?;
        (self.sent < self.bytes.len()).then(|| (fd, &self.bytes[self.sent..]))
    }

    /// `n` more bytes went out; true (and the buffer emptied) once all have.
    fn advance(&mut self, n: usize) -> bool {
        self.sent += n;
        let done = self.sent >= self.bytes.len();
        if done {
            self.bytes.clear();
            self.sent = 0;
        }
        done
    }
}

thread_local! {
    /// The responses this thread held since it last sent its turn's (any of them may have gone
    /// out since: those are skipped).
    static TURN_HELD: RefCell<Vec<Arc<Out>>> = const { RefCell::new(Vec::new()) };
    /// This thread's io_uring for [`send_turn`]: `None` until first needed, then the ring or
    /// nothing (io_uring unavailable here; each connection sends its own).
    static RING: RefCell<Option<Option<SendRing>>> = const { RefCell::new(None) };
}

/// Sends every response this thread holds, in one system call (io_uring) when there are
/// several: the first connection of a turn's send pass calls it, and the others find theirs
/// sent.
///
/// Why: each `send` wakes the client reading that connection, and the woken client preempts
/// the worker when the call returns. Sent one connection at a time, a turn's responses cost a
/// preemption each (and the app's caches with it): 0.25-0.8 involuntary context switches per
/// Flask request with wrk beside the workers, against 0.08-0.11 sent together, for 10-19% more
/// requests a second (`bench/RESULTS.md`, session 18). Inside one call the wake-ups only mark
/// the worker for preemption, which happens once, when the call returns.
///
/// What is not sent whole (a full socket buffer, an error) stays held: the connection's task
/// sends the rest, or meets the error, as without this.
pub fn send_turn() {
    TURN_HELD.with(|turn| {
        let outs = std::mem::take(&mut *turn.borrow_mut());
        if outs.iter().filter(|o| o.is_held()).nth(1).is_some() {
            RING.with(|ring| {
                let mut ring = ring.borrow_mut();
                let ring = ring.get_or_insert_with(open_ring);
                if let Some(r) = ring.as_mut().filter(|r| r.usable()) {
                    send_together(r, &outs);
                }
            });
        }
        let mut outs = outs;
        outs.clear();
        let mut slot = turn.borrow_mut();
        if slot.is_empty() {
            // Keeps the allocation for the next turn.
            *slot = outs;
        }
    });
}

fn open_ring() -> Option<SendRing> {
    match SendRing::new() {
        Ok(r) => Some(r),
        Err(e) => {
            crate::observe::debug(&format!(
                "io_uring unavailable ({e}): held responses are sent one connection at a time."
            ));
            None
        }
    }
}

/// Sends what `outs` hold through `ring`, each under its lock.
fn send_together(ring: &mut SendRing, outs: &[Arc<Out>]) {
    // Never waits for a lock: another thread holding one is sending those bytes (the watchdog,
    // the connection's task), and with several runtime threads an `Out` can be in two threads'
    // lists in different orders, which waiting could turn into a deadlock.
    let mut held: Vec<(&Arc<Out>, MutexGuard<'_, OutState>)> = outs
        .iter()
        .filter(|o| o.is_held())
        .filter_map(|o| Some((o, o.try_lock()?)))
        .filter(|(o, st)| o.is_held() && st.pending().is_some())
        .collect();
    let jobs: Vec<(RawFd, &[u8])> = held.iter().filter_map(|(_, st)| st.pending()).collect();
    let mut results = vec![0; jobs.len()];
    if let Err(e) = ring.send_each(&jobs, &mut results) {
        crate::observe::debug(&format!(
            "io_uring sends stopped ({e}): sent one at a time."
        ));
    }
    drop(jobs);
    for ((out, st), sent) in held.iter_mut().zip(results) {
        if let Ok(n) = usize::try_from(sent)
            && st.advance(n)
        {
            out.unheld();
        }
    }
}

/// The worker's held responses, and its watchdog.
struct Outbox {
    list: Mutex<Vec<Arc<Out>>>,
    /// The watchdog's sleep while nothing is held.
    doze: Doze,
}

/// The worker's outbox, its watchdog started on first use. `None` if the thread cannot start.
fn outbox() -> Option<&'static Outbox> {
    static OUTBOX: OnceLock<Option<Outbox>> = OnceLock::new();
    OUTBOX
        .get_or_init(|| {
            let started = std::thread::Builder::new()
                .name("rgun-outbox".into())
                .spawn(watchdog);
            match started {
                Ok(_) => Some(Outbox {
                    list: Mutex::new(Vec::new()),
                    doze: Doze::new(),
                }),
                Err(e) => {
                    crate::observe::warning(&format!(
                        "Cannot start the outbox thread ({e}); responses are sent at once."
                    ));
                    None
                }
            }
        })
        .as_ref()
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Out>>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every [`TICK`] while something is held, sends what is held if the runtime thread has
/// stalled since the previous look, and what has been held [`MAX_WAIT`] in any case; sleeps
/// when nothing has been held for a while.
fn watchdog() {
    let Some(ob) = outbox() else {
        return;
    };
    let mut idle = 0u32;
    let mut seq = CALL_SEQ.load(Ordering::Relaxed);
    loop {
        if idle >= IDLE_AFTER {
            // A `hold` either wakes it or its bytes are seen by this last look.
            ob.doze
                .sleep_unless(|| ob.lock().iter().any(|o| o.held.load(Ordering::SeqCst)));
            idle = 0;
            // The first look after a sleep: compared with the next one, a tick later.
            seq = CALL_SEQ.load(Ordering::Relaxed);
        }
        std::thread::sleep(TICK);
        let previous = seq;
        seq = CALL_SEQ.load(Ordering::Relaxed);
        let stuck = stalled(previous, seq);
        let mut list = ob.lock();
        list.retain(|o| !o.closed.load(Ordering::Acquire));
        if list.iter().any(|o| o.is_held()) {
            idle = 0;
        } else {
            idle += 1;
        }
        for out in list.iter().filter(|o| o.is_held()) {
            let mut st = out.lock();
            if out.is_held() && (stuck || st.since.elapsed() >= MAX_WAIT) {
                let done = st.send_now();
                if matches!(done, Ok(true) | Err(_)) {
                    out.unheld();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (a, b)
    }

    #[test]
    fn a_call_is_held_when_others_share_its_turn() {
        // Low load: one call per turn, each sent at once.
        assert!(!may_hold(0, 1));
        assert!(!may_hold(0, 0));
        // A second call in a turn goes out with the first's turn.
        assert!(may_hold(1, 1));
        assert!(may_hold(5, 0));
        // Under load the first call of a turn is held too: the turn before had several.
        assert!(may_hold(0, 2));
        assert!(may_hold(0, 30));
    }

    #[test]
    fn the_average_call_time_follows_the_recent_calls() {
        let mut avg = 0;
        for _ in 0..40 {
            avg = moving_average(avg, 45_000);
        }
        // Near the long calls' time after a few dozen of them, never above it.
        assert!((40_000..=45_000).contains(&avg), "{avg}");
        for _ in 0..40 {
            avg = moving_average(avg, 2_000);
        }
        assert!(avg < LONG_CALL_NS, "{avg}");
        // No overflow at the extremes (the arithmetic panics in tests if it overflows).
        assert_eq!(moving_average(u32::MAX, u32::MAX), u32::MAX);
        assert!(moving_average(0, u32::MAX) >= u32::MAX / 8);
    }

    #[test]
    fn no_call_started_or_ended_between_two_looks_is_a_stall() {
        // Inside call 3 (odd) at both looks: the same call ran the whole tick.
        assert!(stalled(3, 3));
        // Between the same two calls at both looks: the runtime thread did not run.
        assert!(stalled(4, 4));
        // Calls ended and started in between: the runtime thread is getting through its turn.
        assert!(!stalled(3, 5));
        assert!(!stalled(3, 4));
        assert!(!stalled(4, 6));
    }

    #[test]
    fn held_bytes_go_out_in_order_when_sent() {
        let (ours, mut peer) = pair();
        let out = Out::new(ours.as_raw_fd());
        assert!(out.hold(&[b"HTTP/1.1 200 OK\r\n", b"\r\n"]));
        assert!(out.hold(&[b"body"]));
        assert!(out.is_held());
        assert!(out.send_now().unwrap());
        assert!(!out.is_held());
        let mut got = [0u8; 23];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\nbody");
    }

    #[test]
    fn the_watchdog_sends_what_nobody_else_does() {
        let (ours, mut peer) = pair();
        let out = Out::new(ours.as_raw_fd());
        assert!(out.hold(&[b"late"]));
        // Nothing here sends it: the read returns once the watchdog has (or times out).
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"late");
        drop(out);
    }

    #[test]
    fn a_turns_held_responses_go_out_together_and_a_full_socket_keeps_its_own() {
        if SendRing::new().is_err() {
            // No io_uring here: each connection sends its own (the other tests).
            return;
        }
        let (a, mut a_peer) = pair();
        let (b, mut b_peer) = pair();
        let (full, _full_peer) = pair();
        full.set_nonblocking(true).unwrap();
        while (&full).write(&[b'x'; 65536]).is_ok_and(|n| n > 0) {}
        let outs = [&a, &b, &full].map(|s| Out::new(s.as_raw_fd()));
        assert!(outs[0].hold(&[b"first"]));
        assert!(outs[1].hold(&[b"second"]));
        assert!(outs[2].hold(&[b"third"]));
        send_turn();
        assert!(!outs[0].is_held() && !outs[1].is_held());
        let mut got = [0u8; 5];
        a_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"first");
        let mut got = [0u8; 6];
        b_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"second");
        // Its task sends it once the client reads.
        assert!(outs[2].is_held());
        for o in &outs {
            o.close();
        }
    }

    #[test]
    fn a_closed_connection_is_never_written_to() {
        let (ours, peer) = pair();
        let out = Out::new(ours.as_raw_fd());
        out.close();
        // The descriptor is forgotten: whoever sends (the watchdog included) writes nothing.
        assert!(out.hold(&[b"never"]));
        assert!(out.send_now().unwrap());
        assert!(!out.is_held());
        peer.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8];
        let err = (&peer).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }
}
