//! Finished responses held back until the end of the runtime's turn, so that the responses of
//! one turn go out back to back (one-thread gthread: the current-thread runtime with
//! connections kept alive; plain TCP; never before a close).
//!
//! Why: written one by one as each app returns, every response wakes a client that has gone back
//! to sleep in the meantime (one app call later). Waking a sleeping CPU costs the sender an
//! interrupt and, in a VM, an exit that also evicts the app's working set: measured here, a
//! Flask request ran 30% slower that way than when the turn's responses were written together.
//!
//! How: the write that completes a response copies it into the connection's [`Out`] instead of
//! sending it; the connection's task sends it after its turn (`serve_conn` yields first, so
//! the other ready connections run their apps before). Bounded: a watchdog thread sends
//! whatever has waited [`MAX_WAIT`], so a slow app (or a slow `close()` of the response
//! iterable) never holds back a response that is ready.
//!
//! Invariants:
//! * A connection's bytes go out in order: nothing else is written on it while its `Out` holds
//!   bytes (the blocking writers send the held bytes first; `serve_conn` sends them before
//!   reading the next request; the close sends them before the FIN).
//! * The watchdog never writes to a descriptor after its connection dropped it: `Out::close`
//!   runs (under the same lock) before the descriptor is closed.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, send};

/// The longest a finished response waits for its turn to end.
pub const MAX_WAIT: Duration = Duration::from_millis(1);
/// Larger responses are sent at once (holding them would mean copying them).
pub const MAX_HELD: usize = 64 * 1024;
/// The watchdog sleeps until it is needed again after this many ticks with nothing held.
const IDLE_AFTER: u32 = 10;
/// An app call that starts within this of the previous one's end (on the runtime thread)...
const BUSY_GAP: Duration = Duration::from_micros(50);
/// ...and follows this many such calls finds the worker busy...
const BUSY_STREAK: u32 = 4;
/// ...until a call starts this long after the previous one's end (the worker ran out of
/// requests). A shorter delay (the runtime thread was preempted, or sent a batch of held
/// responses) neither ends a busy period nor counts towards one.
const IDLE_GAP: Duration = Duration::from_micros(200);

thread_local! {
    /// When the runtime thread's last app call returned.
    static LAST_CALL_END: Cell<Option<Instant>> = const { Cell::new(None) };
    /// How many app calls started right after the previous one since the worker was last idle.
    static STREAK: Cell<u32> = const { Cell::new(0) };
}

/// Whether an app call starting now should have its response held: only when the worker is
/// busy (calls have followed each other closely for a while), since only then are there other
/// responses for it to go out with. At low load holding gains nothing and keeps the watchdog
/// ticking (measured at a fixed low rate: 29-33 → 39-40 µs of CPU per request when the
/// requests that happened to follow another closely were held). Under load, ending the busy
/// period at the first late call wrote the next few responses one by one (Flask keep-alive, one
/// pinned worker: 13.9-14.4k req/s, 15.1-15.2k with [`IDLE_GAP`]).
pub fn busy() -> bool {
    let gap = LAST_CALL_END.with(|t| t.get().map(|end| end.elapsed()));
    STREAK.with(|s| {
        let n = next_streak(s.get(), gap);
        s.set(n);
        n >= BUSY_STREAK
    })
}

/// The busy streak after an app call that starts `gap` after the previous one's end.
fn next_streak(streak: u32, gap: Option<Duration>) -> u32 {
    match gap {
        Some(g) if g < BUSY_GAP => streak.saturating_add(1),
        Some(g) if g < IDLE_GAP => streak,
        _ => 0,
    }
}

/// Records that an app call on this thread has returned.
pub fn call_ended() {
    LAST_CALL_END.with(|t| t.set(Some(Instant::now())));
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
        if ob.asleep.load(Ordering::SeqCst) {
            ob.wake_up();
        }
        true
    }

    /// Sends what it can without waiting. `Ok(true)` when nothing is held any more.
    pub fn send_now(&self) -> std::io::Result<bool> {
        let mut st = self.lock();
        let done = st.send_now();
        if matches!(done, Ok(true) | Err(_)) {
            self.held.store(false, Ordering::Release);
        }
        done
    }

    /// Drops the held bytes and forgets the descriptor: the connection is going away.
    pub fn close(&self) {
        let mut st = self.lock();
        st.fd = None;
        st.bytes = Vec::new();
        st.sent = 0;
        self.held.store(false, Ordering::Release);
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
                Ok(n) => self.sent += n,
                Err(nix::errno::Errno::EAGAIN) => return Ok(false),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    self.bytes.clear();
                    self.sent = 0;
                    return Err(e.into());
                }
            }
        }
        self.bytes.clear();
        self.sent = 0;
        Ok(true)
    }
}

/// The worker's held responses, and its watchdog.
struct Outbox {
    list: Mutex<Vec<Arc<Out>>>,
    wake: Condvar,
    /// The watchdog sleeps until notified (nothing was held for a while).
    asleep: AtomicBool,
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
                    wake: Condvar::new(),
                    asleep: AtomicBool::new(false),
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

    fn wake_up(&self) {
        // Under the lock, so the watchdog is either before its check or waiting.
        let _list = self.lock();
        if self.asleep.swap(false, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }
}

/// Every [`MAX_WAIT`], sends what has been held longer than that; sleeps when nothing has been
/// held for a while.
fn watchdog() {
    let Some(ob) = outbox() else {
        return;
    };
    let mut idle = 0u32;
    loop {
        let mut list = ob.lock();
        if idle >= IDLE_AFTER {
            // Announce the sleep before the last look: a `hold` either sees `asleep` (and wakes
            // this thread) or its bytes are seen here (both sides use SeqCst).
            ob.asleep.store(true, Ordering::SeqCst);
            if list.iter().any(|o| o.held.load(Ordering::SeqCst)) {
                ob.asleep.store(false, Ordering::SeqCst);
            }
            while ob.asleep.load(Ordering::SeqCst) {
                list = ob.wake.wait(list).unwrap_or_else(|e| e.into_inner());
            }
            idle = 0;
        }
        drop(list);
        std::thread::sleep(MAX_WAIT);
        let mut list = ob.lock();
        list.retain(|o| !o.closed.load(Ordering::Acquire));
        if list.iter().any(|o| o.is_held()) {
            idle = 0;
        } else {
            idle += 1;
        }
        for out in list.iter().filter(|o| o.is_held()) {
            let mut st = out.lock();
            if out.is_held() && st.since.elapsed() >= MAX_WAIT {
                let done = st.send_now();
                if matches!(done, Ok(true) | Err(_)) {
                    out.held.store(false, Ordering::Release);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (a, b)
    }

    #[test]
    fn busy_starts_after_a_streak_and_ends_when_the_worker_idles() {
        let us = Duration::from_micros;
        let mut n = next_streak(0, None);
        for _ in 0..BUSY_STREAK {
            n = next_streak(n, Some(us(10)));
        }
        assert!(n >= BUSY_STREAK);
        // A late call (preempted runtime thread) keeps the streak...
        let kept = next_streak(n, Some(us(120)));
        assert_eq!(kept, n);
        // ...an idle worker ends it, as does the first call of a worker.
        assert_eq!(next_streak(kept, Some(us(250))), 0);
        assert_eq!(next_streak(kept, None), 0);
        // A late call before the streak is long enough does not count towards it either.
        assert_eq!(next_streak(2, Some(us(120))), 2);
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
