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
}

fn calls(py: Python<'_>) -> PyResult<&Calls> {
    static CALLS: PyOnceLock<Calls> = PyOnceLock::new();
    CALLS.get_or_try_init(py, || {
        let class = py
            .import("socket")?
            .getattr("socket")?
            .cast_into::<PyType>()?;
        let base = py.import("_socket")?.getattr("socket")?;
        Ok(Calls {
            new: class.getattr("__new__")?.unbind(),
            init: base.getattr("__init__")?.unbind(),
            detach: base.getattr("detach")?.unbind(),
            class: class.unbind(),
        })
    })
}

/// A `socket.socket` sharing `fd` (not a dup): release it with [`detach`] before `fd` closes.
pub fn open(py: Python<'_>, family: i32, kind: i32, fd: i32) -> PyResult<Py<PyAny>> {
    let c = calls(py)?;
    let sock = c.new.bind(py).call1((c.class.bind(py),))?;
    c.init.bind(py).call1((&sock, family, kind, 0, fd))?;
    sock.setattr(intern!(py, "_io_refs"), 0)?;
    sock.setattr(intern!(py, "_closed"), false)?;
    Ok(sock.unbind())
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

    #[test]
    fn the_object_is_the_one_the_class_call_makes() {
        Python::initialize();
        Python::attach(|py| {
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let fd = a.as_raw_fd();
            let ours = open(py, 1, 1, fd).unwrap();
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
            assert!(nix::fcntl::fcntl(&a, nix::fcntl::FcntlArg::F_GETFD).is_ok());
        });
    }
}
