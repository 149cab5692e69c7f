//! One persistent Python thread state per runtime thread.
//!
//! `Python::attach` on a thread CPython did not create calls `PyGILState_Ensure`, which creates a
//! thread state when the thread has none, and the matching `PyGILState_Release` of the outermost
//! attach destroys it again. A `gthread` runtime thread that calls the app inline would then run
//! every request on a fresh thread state: `threading.local()` data (Django's database
//! connections, for one) would be lost after each request, and creating and clearing a thread
//! state would cost time on every request.
//!
//! [`register`] (the runtime's thread-start callback) gives the thread one thread state for its
//! whole life: created attached by `PyGILState_Ensure`, then detached by `PyEval_SaveThread`, so
//! the thread holds no GIL between requests while CPython's gilstate counter stays at 1. Every
//! later `Python::attach` on the thread then only re-attaches that thread state (counter 2) and
//! detaches it again (counter 1) without destroying it. [`unregister`] (the thread-stop
//! callback) re-attaches it and releases the last reference, which clears and deletes it.
//!
//! [`attach_sticky`] is `Python::attach` that leaves the thread state attached afterwards: the
//! runtime thread keeps the GIL from one request to the next while it has work, and
//! [`release_sticky`] (the thread-park callback) detaches it before the thread sleeps. With a
//! CPU-bound app, threads then do not pass the GIL back and forth on every request. When another
//! runtime thread waits for the GIL, the holder hands it over at the first request boundary
//! after [`SLICE`] (1 ms), which bounds how long requests taken by other threads wait; other
//! Python threads get it at CPython's switch interval, or whenever the app blocks.
//!
//! The single runtime thread of a `sync` or one-thread `gthread` worker (the main thread) goes
//! further: it stays attached while it runs tasks and detaches only while the runtime waits for
//! events ([`park_attached`] and [`unpark_attached`], its park and unpark callbacks, while
//! [`hold_between_parks`] runs the runtime). Every `Python::attach` inside is then pyo3's
//! bookkeeping only: no `PyGILState_Ensure`/`Release`, no GIL taken and dropped per request
//! (about 770 instructions a request; callgrind). Blocking waits inside still let go of the GIL
//! (`Waiter::wait` detaches around `poll`), and other Python threads get it whenever the runtime
//! waits for events, or at CPython's switch interval while the app runs.
//!
//! Invariant: with `capi.rs`, the only `unsafe` outside `src/unix/`.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::ffi;

thread_local! {
    /// This thread's persistent thread state, while registered: the `PyGILState_Ensure` result
    /// to release and the detached thread state to restore.
    static HELD: Cell<Option<(ffi::PyGILState_STATE, *mut ffi::PyThreadState)>> =
        const { Cell::new(None) };
    /// Whether this thread's thread state is attached (the GIL held) between `Python::attach`
    /// calls, by [`attach_sticky`], until [`release_sticky`].
    static STICKY: Cell<bool> = const { Cell::new(false) };
    /// When this thread last took the GIL in [`attach_sticky`].
    static SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Registered threads waiting in [`attach_sticky`] for the GIL.
static WANTED: AtomicUsize = AtomicUsize::new(0);

/// How long a thread keeps the GIL across requests while another runtime thread waits for it:
/// it hands the GIL over at the first request boundary after this. Bounds the wait (and so the
/// tail latency) of requests queued on other threads without a hand-over per request.
const SLICE: Duration = Duration::from_millis(1);

/// Runs `f` attached to the interpreter and, on a registered thread, stays attached after `f`
/// returns (the GIL is kept for the next request) until [`release_sticky`], or until another
/// registered thread has waited for it and this thread has held it for [`SLICE`].
pub fn attach_sticky<R>(f: impl for<'py> FnOnce(pyo3::Python<'py>) -> R) -> R {
    // SAFETY: `PyGILState_Check` only reads the current thread state.
    let attached = unsafe { ffi::PyGILState_Check() } == 1;
    if let Some((_, tstate)) = HELD.get()
        && !STICKY.get()
        && !attached
    {
        WANTED.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `tstate` is this thread's registered thread state (the cell is thread-local)
        // and it is detached: not sticky, and not current on this thread (just checked), so
        // this thread holds no GIL. Restoring attaches it, taking the GIL.
        unsafe { ffi::PyEval_RestoreThread(tstate) };
        WANTED.fetch_sub(1, Ordering::Relaxed);
        STICKY.set(true);
        SINCE.set(Some(Instant::now()));
    }
    let out = pyo3::Python::attach(f);
    if STICKY.get()
        && WANTED.load(Ordering::Relaxed) > 0
        && SINCE.get().is_some_and(|t| t.elapsed() >= SLICE)
    {
        release_sticky();
    }
    out
}

/// Detaches a thread state [`attach_sticky`] left attached (releases the GIL). Call where the
/// thread is about to wait (the runtime's park callback), outside any `Python::attach`.
pub fn release_sticky() {
    if STICKY.get() {
        // SAFETY: the thread state is attached and current on this thread (sticky: attached by
        // `attach_sticky`, and every nested attach/detach since has been undone), and no
        // `Python::attach` is running on it (the caller's contract: the runtime parks outside
        // any task), so no code on this thread relies on holding the GIL after this.
        let tstate = unsafe { ffi::PyEval_SaveThread() };
        if let Some((gstate, _)) = HELD.get() {
            HELD.set(Some((gstate, tstate)));
        }
        STICKY.set(false);
    }
}

thread_local! {
    /// Set while [`hold_between_parks`] runs a runtime on this thread.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
    /// The thread state [`park_attached`] detached, until [`unpark_attached`] restores it.
    static PARKED: Cell<*mut ffi::PyThreadState> = const { Cell::new(std::ptr::null_mut()) };
}

/// Runs `f` (a current-thread runtime's `block_on`, whose park and unpark callbacks are
/// [`park_attached`] and [`unpark_attached`]) attached to the interpreter: the thread keeps the
/// GIL while it runs tasks and lets go of it only while the runtime waits for events.
pub fn hold_between_parks<R>(_py: pyo3::Python<'_>, f: impl FnOnce() -> R) -> R {
    HOLDING.set(true);
    let out = f();
    HOLDING.set(false);
    // Parked and not woken again (the runtime stopped in between): attach again before
    // returning to code that holds `py`.
    unpark_attached();
    out
}

/// The runtime is about to wait for events: detaches this thread's thread state (releases the
/// GIL) while [`hold_between_parks`] runs it; does nothing otherwise.
pub fn park_attached() {
    if HOLDING.get() && PARKED.get().is_null() {
        // SAFETY: `hold_between_parks` was entered with a `Python` token on this thread, so its
        // thread state is attached, and it still is: every nested attach/detach inside the
        // runtime's tasks has been undone (tokio calls this callback between task polls, never
        // inside one), and no earlier park left it detached (`PARKED` is null). No code on this
        // thread touches Python until `unpark_attached` restores it: the runtime's driver only
        // waits for I/O and timers and wakes tasks.
        PARKED.set(unsafe { ffi::PyEval_SaveThread() });
    }
}

/// The runtime has stopped waiting: attaches the thread state [`park_attached`] detached (takes
/// the GIL, waiting for it if another Python thread holds it).
pub fn unpark_attached() {
    let tstate = PARKED.replace(std::ptr::null_mut());
    if !tstate.is_null() {
        // SAFETY: `tstate` is the thread state `park_attached` detached on this very thread
        // (thread-local), not attached since (the cell was set until now).
        unsafe { ffi::PyEval_RestoreThread(tstate) };
    }
}

/// Gives the calling thread a persistent, detached Python thread state. Call on a thread that
/// is not attached to the interpreter, with the interpreter initialized (a worker process).
/// A second call on the same thread does nothing.
pub fn register() {
    HELD.with(|held| {
        if held.get().is_some() {
            return;
        }
        // SAFETY: the interpreter is initialized (the worker process runs Python code before
        // it builds the runtime whose threads call this, and joins those threads before the
        // interpreter finalizes). The caller is a new thread that holds no thread state and no
        // GIL, so `PyGILState_Ensure` creates this thread's gilstate thread state and attaches
        // it (blocking until the GIL is free). `PyEval_SaveThread` then detaches that same
        // thread state and releases the GIL; it stays registered as this thread's gilstate
        // state with its counter at 1, so it is never destroyed by a nested Ensure/Release.
        let saved = unsafe {
            let gstate = ffi::PyGILState_Ensure();
            (gstate, ffi::PyEval_SaveThread())
        };
        held.set(Some(saved));
    });
}

/// Destroys the thread state [`register`] created on this thread. Call when the thread ends,
/// outside any `Python::attach` (nothing attached on this thread).
pub fn unregister() {
    HELD.with(|held| {
        let Some((gstate, tstate)) = held.take() else {
            return;
        };
        if STICKY.replace(false) {
            // SAFETY: attached and current on this thread (sticky); releasing the last gilstate
            // reference clears and deletes it and releases the GIL.
            unsafe { ffi::PyGILState_Release(gstate) };
            return;
        }
        // SAFETY: `tstate` is the thread state `register` detached on this very thread (the
        // cell is thread-local), and it is not attached now: every `Python::attach` on this
        // thread has returned (this runs at thread exit, outside any task). Restoring it
        // re-attaches it (taking the GIL); `PyGILState_Release` with the state `register`'s
        // Ensure returned then drops the gilstate counter to 0, which clears and deletes the
        // thread state and releases the GIL. The interpreter is still alive: the runtime (and
        // so this thread) ends before the worker returns to Python for exit.
        unsafe {
            ffi::PyEval_RestoreThread(tstate);
            ffi::PyGILState_Release(gstate);
        }
    });
}
