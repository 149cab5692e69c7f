//! `gunicorn.socket`: a `socket.socket` object over the connection's descriptor, one per
//! connection, made and let go of without socket.py's Python-level methods.
//!
//! `socket.socket(family, type, proto, fileno)` runs socket.py's `__init__` (a Python frame:
//! the C `_socket.socket.__init__`, then `_io_refs = 0` and `_closed = False`), and its
//! `detach()` is Python too (`_closed = True`, then the C `detach`). Together that was about
//! 5k instructions of every `Connection: close` request. Here the same steps run as C calls
//! from Rust: `socket.socket.__new__`, the C `__init__`, the two attributes, and at the end
//! `_closed = True` and the C `detach`. The object is the same: a `socket.socket` whose class,
//! attributes and behaviour are those of one made by the class call (a unit test compares
//! them).
//!
//! A connection's object is kept for the thread's next connection when nothing else holds it
//! ([`release`]): connections that close after one request (the sync worker's) get the same
//! descriptor number one after another (the kernel hands out the lowest free one), and the kept
//! object, already pointing at that number, then serves the next connection as it is. That
//! saves making and freeing it, and the `getsockname` that the C `__init__` always makes to
//! check a descriptor it is given: a system call per `Connection: close` request.
//!
//! Invariant: a kept object is referenced only by its thread's slot, and between its
//! connection's close and its reuse its number may name another descriptor, so it is used
//! for nothing until a connection with that number takes it; an object that is not taken is
//! detached first (its number set to -1), so freeing it never closes a descriptor. A slot
//! left at thread exit is leaked, not freed, for the same reason.

use std::cell::RefCell;
use std::mem::ManuallyDrop;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// What making and releasing the objects calls, looked up once per process.
struct Calls {
    class: Py<PyType>,
    new: Py<PyAny>,
    init: Py<PyAny>,
    detach: Py<PyAny>,
    fileno: Py<PyAny>,
    gettimeout: Py<PyAny>,
    getdefaulttimeout: Py<PyAny>,
    getweakrefcount: Py<PyAny>,
}

fn calls(py: Python<'_>) -> PyResult<&Calls> {
    static CALLS: PyOnceLock<Calls> = PyOnceLock::new();
    CALLS.get_or_try_init(py, || {
        let class = py
            .import("socket")?
            .getattr("socket")?
            .cast_into::<PyType>()?;
        let module = py.import("_socket")?;
        let base = module.getattr("socket")?;
        Ok(Calls {
            new: class.getattr("__new__")?.unbind(),
            init: base.getattr("__init__")?.unbind(),
            detach: base.getattr("detach")?.unbind(),
            fileno: base.getattr("fileno")?.unbind(),
            gettimeout: base.getattr("gettimeout")?.unbind(),
            getdefaulttimeout: module.getattr("getdefaulttimeout")?.unbind(),
            getweakrefcount: py.import("_weakref")?.getattr("getweakrefcount")?.unbind(),
            class: class.unbind(),
        })
    })
}

/// A connection's object kept for the thread's next connection (see the module's invariant).
struct Kept {
    fd: i32,
    family: i32,
    sock: Py<PyAny>,
}

thread_local! {
    static KEPT: RefCell<ManuallyDrop<Option<Kept>>> = const { RefCell::new(ManuallyDrop::new(None)) };
}

/// A `socket.socket` sharing `fd` (not a dup) of a connection whose socket has `family`;
/// give it back with [`release`] before `fd` closes. SOCK_STREAM sockets only.
pub fn open(py: Python<'_>, family: i32, fd: i32) -> PyResult<Py<PyAny>> {
    if let Some(kept) = KEPT.with(|k| k.borrow_mut().take()) {
        if kept.fd == fd && kept.family == family {
            return Ok(kept.sock);
        }
        detach(py, &kept.sock);
    }
    fresh(py, family, 1, fd)
}

fn fresh(py: Python<'_>, family: i32, kind: i32, fd: i32) -> PyResult<Py<PyAny>> {
    let c = calls(py)?;
    let sock = c.new.bind(py).call1((c.class.bind(py),))?;
    c.init.bind(py).call1((&sock, family, kind, 0, fd))?;
    sock.setattr(intern!(py, "_io_refs"), 0)?;
    sock.setattr(intern!(py, "_closed"), false)?;
    Ok(sock.unbind())
}

/// Gives back the object [`open`] made for the connection on `fd`, which is about to close:
/// kept for the thread's next connection when nothing else holds it and it is as a new one
/// would be, else detached.
pub fn release(py: Python<'_>, sock: Py<PyAny>, fd: i32, family: i32) {
    if !as_new(py, &sock, fd) {
        detach(py, &sock);
        return;
    }
    let earlier = KEPT.with(|k| k.borrow_mut().replace(Kept { fd, family, sock }));
    if let Some(earlier) = earlier {
        detach(py, &earlier.sock);
    }
}

/// Whether only the caller holds `sock` (no reference, no weak reference elsewhere) and it is
/// in the state [`fresh`] makes: open on `fd`, no file made from it in use, the timeout a new
/// object gets (the default timeout, when both are the usual `None`).
fn as_new(py: Python<'_>, sock: &Py<PyAny>, fd: i32) -> bool {
    let Ok(c) = calls(py) else {
        return false;
    };
    let sock = sock.bind(py);
    let none = |r: PyResult<Bound<'_, PyAny>>| r.is_ok_and(|v| v.is_none());
    let is = |r: PyResult<Bound<'_, PyAny>>, want: i64| {
        r.and_then(|v| v.extract::<i64>()).is_ok_and(|v| v == want)
    };
    super::spare::only_reference(sock)
        && sock.get_type().is(c.class.bind(py))
        && is(c.getweakrefcount.bind(py).call1((sock,)), 0)
        && is(c.fileno.bind(py).call1((sock,)), fd.into())
        && is(sock.getattr(intern!(py, "_io_refs")), 0)
        && sock
            .getattr(intern!(py, "_closed"))
            .and_then(|v| v.extract::<bool>())
            .is_ok_and(|closed| !closed)
        && none(c.gettimeout.bind(py).call1((sock,)))
        && none(c.getdefaulttimeout.bind(py).call0())
}

/// What `socket.detach()` does: marks the object closed and lets go of its descriptor, which
/// the object then never closes. Errors are ignored: the descriptor is rgun's either way.
pub fn detach(py: Python<'_>, sock: &Py<PyAny>) {
    let sock = sock.bind(py);
    let _ = sock.setattr(intern!(py, "_closed"), true);
    if let Ok(c) = calls(py) {
        let _ = c.detach.bind(py).call1((sock,));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// Runs `test` attached, with one end of a socket pair and its descriptor.
    fn with_socket(test: impl FnOnce(Python<'_>, &UnixStream, i32)) {
        Python::initialize();
        Python::attach(|py| {
            let (a, _b) = UnixStream::pair().unwrap();
            let fd = a.as_raw_fd();
            test(py, &a, fd);
        });
    }

    #[test]
    fn the_object_is_the_one_the_class_call_makes() {
        with_socket(|py, a, fd| {
            let ours = fresh(py, 1, 1, fd).unwrap();
            let ours = ours.bind(py);
            let socket = py.import("socket").unwrap();
            let theirs = socket
                .getattr("socket")
                .unwrap()
                .call1((1, 1, 0, fd))
                .unwrap();
            let look = |s: &Bound<'_, PyAny>| -> (String, String, i32, i32, bool, i64) {
                (
                    s.get_type().name().unwrap().to_string(),
                    s.repr().unwrap().to_string(),
                    s.getattr("family").unwrap().extract().unwrap(),
                    s.getattr("type").unwrap().extract().unwrap(),
                    s.getattr("_closed").unwrap().extract().unwrap(),
                    s.getattr("_io_refs").unwrap().extract().unwrap(),
                )
            };
            assert_eq!(look(ours), look(&theirs));
            assert!(
                ours.is_instance(&socket.getattr("socket").unwrap())
                    .unwrap()
            );
            theirs.call_method0("detach").unwrap();
            detach(py, &ours.clone().unbind());
            assert_eq!(look(ours), look(&theirs));
            assert_eq!(
                ours.call_method0("fileno")
                    .unwrap()
                    .extract::<i32>()
                    .unwrap(),
                -1
            );
            // The descriptor stayed open: rgun still owns it.
            assert!(nix::fcntl::fcntl(a, nix::fcntl::FcntlArg::F_GETFD).is_ok());
        });
    }

    #[test]
    fn an_object_nothing_holds_serves_the_next_connection_on_its_number() {
        with_socket(|py, a, fd| {
            let first = open(py, 1, fd).unwrap();
            let first_ptr = first.as_ptr();
            release(py, first, fd, 1);
            let again = open(py, 1, fd).unwrap();
            assert_eq!(again.as_ptr(), first_ptr, "kept and reused");
            let fileno = |s: &Py<PyAny>| -> i32 {
                s.bind(py)
                    .call_method0("fileno")
                    .unwrap()
                    .extract()
                    .unwrap()
            };
            assert_eq!(fileno(&again), fd);

            // Another family (or number): the kept one is detached (freeing it below must
            // not close the descriptor), a new one made.
            release(py, again, fd, 1);
            let other = open(py, 10, fd).unwrap();
            assert_eq!(fileno(&other), fd);

            // Held elsewhere: detached at once, never kept.
            let held = other.clone_ref(py);
            release(py, other, fd, 10);
            assert_eq!(fileno(&held), -1);
            let next = open(py, 10, fd).unwrap();
            assert_ne!(next.as_ptr(), held.as_ptr());

            // A timeout set by the app: not as new, so not kept.
            next.bind(py).call_method1("settimeout", (5.0,)).unwrap();
            let look = next.clone_ref(py);
            release(py, next, fd, 10);
            assert_eq!(fileno(&look), -1);
            drop(look);
            // The descriptor stayed open throughout: rgun owns it.
            assert!(nix::fcntl::fcntl(a, nix::fcntl::FcntlArg::F_GETFD).is_ok());
        });
    }
}
