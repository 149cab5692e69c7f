//! `start_response` and the `write()` callable it returns (PEP 3333), with gunicorn's rules:
//! a second call needs `exc_info`, `exc_info` after the headers went out re-raises, and
//! every name and value is validated.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyAssertionError, PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::exchange::Exchange;
use super::response::HeaderError;
use crate::worker::conn::IoStop;

#[pyclass(module = "rgun", name = "StartResponse")]
pub struct StartResponse {
    pub ex: Arc<Mutex<Exchange>>,
}

#[pyclass(module = "rgun", name = "Write")]
pub struct Write {
    pub ex: Arc<Mutex<Exchange>>,
}

fn lock(ex: &Arc<Mutex<Exchange>>) -> PyResult<MutexGuard<'_, Exchange>> {
    ex.try_lock()
        .map_err(|_| PyRuntimeError::new_err("the response is being written by another thread"))
}

/// One `(name, value)` of a header list: apps pass 2-tuples; anything else unpacks like
/// gunicorn's `for name, value in headers`.
/// The items of the headers argument: a list, the common case, read by index; anything else
/// through Python's iterator protocol.
enum Items<'py> {
    List(pyo3::types::list::BoundListIterator<'py>),
    Any(Bound<'py, pyo3::types::PyIterator>),
}

impl<'py> Iterator for Items<'py> {
    type Item = PyResult<Bound<'py, PyAny>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Items::List(it) => it.next().map(Ok),
            Items::Any(it) => it.next(),
        }
    }
}

fn header_pair<'py>(item: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    match item.cast::<PyTuple>() {
        Ok(t) if t.len() == 2 => Ok((t.get_item(0)?, t.get_item(1)?)),
        _ => item.extract(),
    }
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr().map(|r| r.to_string()).unwrap_or_default()
}

/// Turns a failed socket write into the exception the app (or the handler) sees.
pub fn io_stop_to_py(stop: IoStop) -> PyErr {
    match stop {
        IoStop::Interrupted(e) => e,
        IoStop::Io(e) => PyOSError::new_err((e.raw_os_error().unwrap_or(0), e.to_string())),
    }
}

/// gunicorn's `InvalidResponseHeaderName` / `InvalidResponseHeader` (from `rgun._errors`),
/// carrying the `repr()` of the header name.
fn header_error(py: Python<'_>, class: &str, quoted: String) -> PyErr {
    let make = || -> PyResult<PyErr> {
        Ok(PyErr::from_value(
            py.import("rgun._errors")?
                .getattr(class)?
                .call1((quoted.clone(),))?,
        ))
    };
    make().unwrap_or_else(|e| e)
}

fn py_repr(py: Python<'_>, s: &str) -> String {
    pyo3::types::PyString::new(py, s)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// The exception gunicorn raises for each kind of bad `start_response` argument.
fn header_error_to_py(py: Python<'_>, e: HeaderError) -> PyErr {
    match e {
        HeaderError::Status(s) => {
            pyo3::exceptions::PyValueError::new_err(format!("Invalid status {}", py_repr(py, &s)))
        }
        HeaderError::Name(n) => header_error(py, "InvalidResponseHeaderName", py_repr(py, &n)),
        HeaderError::Value(n) => header_error(py, "InvalidResponseHeader", py_repr(py, &n)),
        HeaderError::Type(t) => PyTypeError::new_err(t),
        HeaderError::Length(v) => pyo3::exceptions::PyValueError::new_err(format!(
            "invalid literal for int() with base 10: {}",
            py_repr(py, &v)
        )),
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, Write>> {
        let mut ex = lock(&self.ex)?;
        match exc_info {
            Some(info) if info.is_truthy()? => {
                if ex.resp.status.is_some() && ex.resp.headers_sent {
                    let value = info.get_item(1)?;
                    let tb = info.get_item(2)?;
                    let err = PyErr::from_value(value.call_method1("with_traceback", (tb,))?);
                    return Err(err);
                }
            }
            _ => {
                if ex.resp.status.is_some() {
                    return Err(PyAssertionError::new_err("Response headers already set!"));
                }
            }
        }
        let Ok(status) = status.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "{} is not a string",
                repr(status)
            )));
        };
        let to_py = |e: HeaderError| header_error_to_py(py, e);
        ex.resp.set_status(status.to_str()?).map_err(to_py)?;
        let items = match headers.cast::<PyList>() {
            Ok(list) => Items::List(list.iter()),
            Err(_) => Items::Any(headers.try_iter()?),
        };
        for item in items {
            let (name, value) = header_pair(&item?)?;
            if !name.is_instance_of::<pyo3::types::PyString>() {
                return Err(PyTypeError::new_err(format!(
                    "{} is not a string",
                    repr(&name)
                )));
            }
            let name_s = name.cast::<PyString>()?.to_str()?;
            if !super::response::is_token(name_s) {
                return Err(header_error(py, "InvalidResponseHeaderName", repr(&name)));
            }
            let Ok(value_s) = value.cast::<PyString>() else {
                return Err(PyTypeError::new_err(format!(
                    "{} is not a string",
                    repr(&value)
                )));
            };
            ex.resp
                .add_header(name_s, value_s.to_str()?)
                .map_err(to_py)?;
        }
        ex.resp.end_headers();
        drop(ex);
        super::spare::write(py, &self.ex)
    }
}

#[pymethods]
impl Write {
    fn __call__(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut guard = lock(&self.ex)?;
        let Exchange {
            conn, resp, waiter, ..
        } = &mut *guard;
        let Some(conn) = conn.as_ref() else {
            return Err(PyOSError::new_err("the response is already complete"));
        };
        if resp.status.is_none() {
            return Err(PyAssertionError::new_err("write() before start_response()"));
        }
        let Ok(bytes) = data.cast::<PyBytes>() else {
            resp.write(conn, waiter, b"").map_err(io_stop_to_py)?;
            return Err(PyTypeError::new_err(format!(
                "{} is not a byte",
                repr(data)
            )));
        };
        resp.write(conn, waiter, bytes.as_bytes())
            .map_err(io_stop_to_py)
    }
}

/// `environ['wsgi.early_hints'](headers)`: a `103 Early Hints` response, before the final one.
#[pyclass(module = "rgun", name = "EarlyHints")]
pub struct EarlyHints {
    pub ex: Arc<Mutex<Exchange>>,
}

fn latin1_str(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    match obj.cast::<PyBytes>() {
        Ok(b) => Ok(b.as_bytes().iter().map(|c| *c as char).collect()),
        Err(_) => obj.extract(),
    }
}

#[pymethods]
impl EarlyHints {
    fn __call__(&self, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let guard = lock(&self.ex)?;
        if guard.resp.headers_sent || guard.resp.version < (1, 1) {
            return Ok(());
        }
        let mut out = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
        let items = match headers.cast::<PyList>() {
            Ok(list) => Items::List(list.iter()),
            Err(_) => Items::Any(headers.try_iter()?),
        };
        for item in items {
            let (name, value) = header_pair(&item?)?;
            let name = latin1_str(&name)?;
            let value = latin1_str(&value)?;
            let quoted = pyo3::types::PyString::new(headers.py(), &name)
                .repr()?
                .to_string();
            if !super::response::is_token(&name) {
                return Err(header_error(
                    headers.py(),
                    "InvalidResponseHeaderName",
                    quoted,
                ));
            }
            if !value
                .chars()
                .all(|c| matches!(c as u32, 0x20 | 0x09 | 0x21..=0x7e | 0x80..=0xff))
            {
                return Err(header_error(headers.py(), "InvalidResponseHeader", quoted));
            }
            super::response::latin1(&name, &mut out);
            out.extend_from_slice(b": ");
            super::response::latin1(super::response::trim_sp_htab(&value), &mut out);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let Exchange { conn, waiter, .. } = &*guard;
        if let Some(conn) = conn.as_ref() {
            conn.write_all_blocking(&[&out], waiter)
                .map_err(io_stop_to_py)?;
        }
        Ok(())
    }
}
