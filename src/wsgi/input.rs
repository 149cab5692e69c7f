//! `wsgi.input`: the request body, streamed from the socket as the app reads it (never held
//! whole), de-chunked, with gunicorn's `read`/`readline`/`readlines`/iteration semantics.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use rgun_h1::{BodyDecoder, BodyFraming, ParseError, ParserConfig};

use super::exchange::Exchange;
use crate::worker::conn::{Conn, IoStop, Waiter};

/// From this size on, `read(n)` of a Content-Length body bypasses the decoded-bytes buffer.
const DIRECT_READ_MIN: usize = 32 * 1024;

/// Decoded-but-unread body bytes and the decoder that produces them.
#[derive(Debug)]
pub struct BodyState {
    decoder: Option<BodyDecoder>,
    out: Vec<u8>,
    pos: usize,
    /// The body error that ended reading, kept so the request handler can answer it.
    pub error: Option<ParseError>,
}

impl BodyState {
    /// Lets go of the decoder and the decoded bytes once the exchange is over (nothing reads
    /// them any more: a kept `wsgi.input` then reads EOF), since the exchange itself may live
    /// on in objects waiting for the thread's next request (`spare`).
    pub fn release(&mut self) {
        self.decoder = None;
        self.out = Vec::new();
        self.pos = 0;
    }
}

/// Why the body could not be read further.
pub enum BodyStop {
    Parse(ParseError),
    Io(IoStop),
}

impl BodyState {
    pub fn new(framing: &BodyFraming, cfg: &ParserConfig) -> BodyState {
        let decoder = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => None,
            f => Some(BodyDecoder::new(f, cfg)),
        };
        BodyState {
            decoder,
            out: Vec::new(),
            pos: 0,
            error: None,
        }
    }

    fn available(&self) -> usize {
        self.out.len() - self.pos
    }

    /// Whether the whole body has been decoded (so the connection can be reused).
    pub fn finished(&self) -> bool {
        self.decoder.as_ref().is_none_or(BodyDecoder::is_done) && self.error.is_none()
    }

    /// Decodes until `want` bytes are available (or the body ends).
    fn fill(&mut self, conn: &mut Conn, waiter: &Waiter, want: usize) -> Result<(), BodyStop> {
        loop {
            if self.available() >= want {
                return Ok(());
            }
            let Some(dec) = self.decoder.as_mut() else {
                return Ok(());
            };
            if dec.is_done() {
                return Ok(());
            }
            if self.pos > 0 && self.pos == self.out.len() {
                self.out.clear();
                self.pos = 0;
            }
            if !conn.pending().is_empty() {
                let used = dec
                    .decode(conn.pending(), &mut self.out)
                    .map_err(BodyStop::Parse)?;
                conn.consume(used);
                if used > 0 || dec.is_done() {
                    continue;
                }
            }
            match conn.read_blocking(waiter) {
                Ok(0) => {
                    dec.decode_eof().map_err(BodyStop::Parse)?;
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(BodyStop::Io(e)),
            }
        }
    }

    /// How many bytes a take of `n` (`None` = all that remain) gets.
    fn take_len(&self, n: Option<usize>) -> usize {
        n.map_or(self.available(), |n| n.min(self.available()))
    }

    /// Takes `n` decoded bytes (at most [`BodyState::available`]) as a Python `bytes`.
    fn take_bytes<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let b = PyBytes::new(py, &self.out[self.pos..self.pos + n]);
        self.pos += n;
        b
    }

    /// `read(n)` of a Content-Length body with nothing decoded ahead, for large `n`: the bytes
    /// go from the connection's buffer and the socket straight into the `bytes` object (one
    /// copy after the kernel's, none through `out`). `None` when this path does not apply.
    fn read_length_direct<'py>(
        &mut self,
        py: Python<'py>,
        conn: &mut Conn,
        waiter: &Waiter,
        size: Option<usize>,
    ) -> Option<Result<Bound<'py, PyBytes>, BodyStop>> {
        let left = self.decoder.as_ref()?.length_left()?;
        let left = usize::try_from(left).ok()?;
        let k = size.map_or(left, |s| s.min(left));
        if self.available() > 0 || k < DIRECT_READ_MIN || conn.is_tls() {
            return None;
        }
        let mut filled = 0;
        let mut stop = None;
        let made = PyBytes::new_with(py, k, |buf| {
            let pending = conn.pending();
            filled = pending.len().min(k);
            buf[..filled].copy_from_slice(&pending[..filled]);
            conn.consume(filled);
            while filled < k {
                match conn.read_blocking_into(waiter, &mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        stop = Some(BodyStop::Io(e));
                        break;
                    }
                }
            }
            Ok(())
        });
        if let Some(dec) = self.decoder.as_mut() {
            dec.skip_length(filled as u64);
        }
        if let Some(stop) = stop {
            return Some(Err(stop));
        }
        let made = match made {
            Ok(b) => b,
            Err(e) => return Some(Err(BodyStop::Io(IoStop::Interrupted(e)))),
        };
        if filled < k {
            // The client closed early: the body ends here, as the decoder says at EOF.
            if let Some(dec) = self.decoder.as_mut()
                && let Err(e) = dec.decode_eof()
            {
                return Some(Err(BodyStop::Parse(e)));
            }
            return Some(Ok(PyBytes::new(py, &made.as_bytes()[..filled])));
        }
        Some(Ok(made))
    }

    fn find_newline(&self, from: usize) -> Option<usize> {
        memchr::memchr(b'\n', &self.out[self.pos + from..]).map(|i| i + from)
    }

    /// Reads and discards the rest of the body (before reusing the connection), up to `limit`
    /// bytes. `Ok(true)`: the body is fully consumed; `Ok(false)`: too much was left or the
    /// socket failed; `Err`: the rest of the body is malformed.
    pub fn drain(
        &mut self,
        conn: &mut Conn,
        waiter: &Waiter,
        limit: usize,
    ) -> Result<bool, ParseError> {
        let mut seen = 0usize;
        loop {
            seen += self.available();
            self.pos = self.out.len();
            if self.decoder.as_ref().is_none_or(BodyDecoder::is_done) {
                return Ok(self.error.is_none());
            }
            if seen > limit {
                return Ok(false);
            }
            match self.fill(conn, waiter, self.available() + 1) {
                Ok(()) => {
                    if self.available() == 0
                        && !self.decoder.as_ref().is_none_or(BodyDecoder::is_done)
                    {
                        return Ok(false);
                    }
                }
                Err(BodyStop::Parse(e)) => return Err(e),
                Err(BodyStop::Io(_)) => return Ok(false),
            }
        }
    }
}

/// The `wsgi.input` object.
#[pyclass(module = "rgun", name = "Body")]
pub struct Input {
    pub ex: Arc<Mutex<Exchange>>,
}

/// gunicorn's exception for a body parse error (`gunicorn.http.errors.InvalidChunkSize`, ...),
/// built by `rgun._errors.body_error`.
fn parse_error_to_py(py: Python<'_>, e: &ParseError) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let exc = py
            .import("rgun._errors")?
            .call_method1("body_error", (e.name(), e.log_text()))?;
        Ok(PyErr::from_value(exc))
    };
    make().unwrap_or_else(|err| err)
}

fn stop_to_py(py: Python<'_>, ex: &mut Exchange, stop: BodyStop) -> PyErr {
    match stop {
        BodyStop::Parse(e) => {
            let err = parse_error_to_py(py, &e);
            ex.body.error = Some(e);
            err
        }
        BodyStop::Io(IoStop::Interrupted(e)) => e,
        BodyStop::Io(IoStop::Io(e)) => {
            let gone = ParseError::NoMoreData(None);
            let err = parse_error_to_py(py, &gone);
            let _ = e;
            ex.body.error = Some(gone);
            err
        }
    }
}

impl Input {
    /// Reads with `f` on the live connection and body (an empty result once the exchange is
    /// over), for `read`/`readline`; `size == Some(0)` reads nothing. `f` returns how many of
    /// the decoded bytes to take.
    fn read_with<'py>(
        &self,
        py: Python<'py>,
        size: Option<usize>,
        f: impl FnOnce(&mut Conn, &mut BodyState, &Waiter, Option<usize>) -> Result<usize, BodyStop>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if size == Some(0) {
            return Ok(PyBytes::new(py, b""));
        }
        self.with(py, |ex| {
            let Exchange {
                conn, body, waiter, ..
            } = ex;
            match conn.as_mut() {
                Some(conn) => {
                    let n = f(conn, body, waiter, size)?;
                    Ok(body.take_bytes(py, n))
                }
                None => Ok(PyBytes::new(py, b"")),
            }
        })
    }

    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Exchange) -> Result<R, BodyStop>,
    ) -> PyResult<R> {
        let mut guard = self
            .ex
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("wsgi.input is being read by another thread"))?;
        let ex = &mut *guard;
        match f(ex) {
            Ok(r) => Ok(r),
            Err(stop) => Err(stop_to_py(py, ex, stop)),
        }
    }
}

fn size_arg(size: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    match size {
        None => Ok(None),
        Some(s) if s.is_none() => Ok(None),
        Some(s) => {
            if !s.is_instance_of::<pyo3::types::PyInt>() {
                return Err(PyTypeError::new_err("size must be an integral type"));
            }
            let n: i64 = s.extract()?;
            Ok(usize::try_from(n).ok())
        }
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        size: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let want = size_arg(size)?;
        if want != Some(0) {
            let direct = self.with(py, |ex| {
                let Exchange {
                    conn, body, waiter, ..
                } = ex;
                match conn.as_mut() {
                    Some(conn) => body.read_length_direct(py, conn, waiter, want).transpose(),
                    None => Ok(None),
                }
            })?;
            if let Some(bytes) = direct {
                return Ok(bytes);
            }
        }
        self.read_with(py, want, |conn, body, waiter, size| {
            body.fill(conn, waiter, size.unwrap_or(usize::MAX))?;
            Ok(body.take_len(size))
        })
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &self,
        py: Python<'py>,
        size: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.read_with(py, size_arg(size)?, |conn, body, waiter, size| {
            let limit = size.unwrap_or(usize::MAX);
            let mut scanned = 0;
            loop {
                if let Some(i) = body.find_newline(scanned) {
                    return Ok(body.take_len(Some((i + 1).min(limit))));
                }
                scanned = body.available();
                if scanned >= limit {
                    return Ok(body.take_len(Some(limit)));
                }
                let before = body.available();
                body.fill(conn, waiter, before + 1)?;
                if body.available() == before {
                    return Ok(body.take_len(None));
                }
            }
        })
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &self,
        py: Python<'py>,
        hint: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let _ = hint;
        let data = self.read(py, None)?;
        let lines = PyList::empty(py);
        let bytes = data.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1);
            lines.append(PyBytes::new(py, &bytes[start..end]))?;
            start = end;
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok(if line.as_bytes().is_empty() {
            None
        } else {
            Some(line)
        })
    }
}
