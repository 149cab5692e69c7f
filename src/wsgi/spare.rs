//! The Python objects every request gets (`start_response`, the `write` it returns,
//! `wsgi.input`, `wsgi.early_hints`), reused from one request to the next on the same thread.
//!
//! Each holds only the request's exchange. Creating and freeing four objects per request costs
//! allocations and instructions on the hottest path, so each thread keeps the last ones it
//! handed out and gives them to its next request, pointed at the new exchange, **only when
//! nothing else holds them**: the thread's slot is then their only reference. An object the
//! app kept (in a global, a thread, a cycle not yet collected) is never reused; the next
//! request gets a new one, so a kept object still answers for its own request (an empty read,
//! "already complete") and never for a later one.
//!
//! Invariant: a reused object's previous exchange is over (its connection taken back by
//! `finish`, which every request reaches): a thread serves one request at a time, and an
//! object is only taken for a new request after the handler that created the previous one
//! returned.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use pyo3::PyClass;
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::False;
use pyo3::pyclass_init::PyClassInitializer;

use super::exchange::Exchange;
use super::input::Input;
use super::start_response::{EarlyHints, StartResponse, Write};

type Ex = Arc<Mutex<Exchange>>;

/// A per-request object: it holds the exchange and nothing else.
pub trait PerRequest: PyClass<Frozen = False> + Into<PyClassInitializer<Self>> {
    fn new(ex: Ex) -> Self;
    fn exchange(&mut self) -> &mut Ex;
}

macro_rules! per_request {
    ($($t:ty),*) => {$(
        impl PerRequest for $t {
            fn new(ex: Ex) -> Self {
                Self { ex }
            }
            fn exchange(&mut self) -> &mut Ex {
                &mut self.ex
            }
        }
    )*};
}
per_request!(StartResponse, Write, Input, EarlyHints);

#[derive(Default)]
struct Spare {
    start: Option<Py<StartResponse>>,
    write: Option<Py<Write>>,
    input: Option<Py<Input>>,
    hints: Option<Py<EarlyHints>>,
}

thread_local! {
    static SPARE: RefCell<Spare> = RefCell::new(Spare::default());
}

/// The slot's object pointed at `ex` if the slot holds its only reference, else a new one
/// (which the slot keeps for the next request). The slot is not borrowed while Python runs
/// (allocating, or freeing an object the app let go of).
fn take<'py, T: PerRequest>(
    py: Python<'py>,
    slot: fn(&mut Spare) -> &mut Option<Py<T>>,
    ex: &Ex,
) -> PyResult<Bound<'py, T>> {
    let kept = SPARE.with(|s| slot(&mut s.borrow_mut()).take());
    let reused = kept.as_ref().map(|k| k.bind(py)).filter(|k| {
        only_reference(k.as_any())
            && k.try_borrow_mut()
                .map(|mut obj| *obj.exchange() = ex.clone())
                .is_ok()
    });
    let obj = match reused {
        Some(k) => k.clone(),
        None => Bound::new(py, T::new(ex.clone()))?,
    };
    let unshared = obj.clone().unbind();
    let previous = SPARE.with(|s| slot(&mut s.borrow_mut()).replace(unshared));
    drop((kept, previous));
    Ok(obj)
}

/// Whether the caller's reference is `obj`'s only one. With the GIL the count is exact while
/// the thread is attached; a free-threaded CPython's can be stale (why pyo3 deprecates
/// `get_refcnt`), so there nothing is reused.
#[allow(deprecated)]
pub(crate) fn only_reference(obj: &Bound<'_, PyAny>) -> bool {
    static GIL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let gil = *GIL.get_or_init(|| {
        let py = obj.py();
        let enabled = py
            .import("sys")
            .and_then(|sys| sys.getattr_opt("_is_gil_enabled"))
            .and_then(|f| f.map_or(Ok(true), |f| f.call0()?.is_truthy()));
        enabled.unwrap_or(false)
    });
    gil && obj.get_refcnt() == 1
}

pub fn start_response<'py>(py: Python<'py>, ex: &Ex) -> PyResult<Bound<'py, StartResponse>> {
    take(py, |s| &mut s.start, ex)
}

pub fn write<'py>(py: Python<'py>, ex: &Ex) -> PyResult<Bound<'py, Write>> {
    take(py, |s| &mut s.write, ex)
}

pub fn input<'py>(py: Python<'py>, ex: &Ex) -> PyResult<Bound<'py, Input>> {
    take(py, |s| &mut s.input, ex)
}

pub fn early_hints<'py>(py: Python<'py>, ex: &Ex) -> PyResult<Bound<'py, EarlyHints>> {
    take(py, |s| &mut s.hints, ex)
}
