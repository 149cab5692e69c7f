//! The environ dict, built the way gunicorn's `wsgi.create` builds it, in its key order: the
//! base keys, `wsgi.input`, `gunicorn.socket`, the request line's keys, the headers, then the
//! client and server keys (spec §12.1).
//!
//! Per connection, a template holds what does not change between its requests (the base keys,
//! `gunicorn.socket`, placeholders for the request line's keys, the peer's and the listener's
//! strings); a request copies it, or the last environ filled on its thread when it brings the
//! same header names ([`Shape`]). Header keys (`HTTP_...`) are interned once per worker.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rgun_h1::RequestHead;

use crate::unix::listeners::Family;
use crate::worker::addr_text;
use crate::worker::conn::{Conn, ListenerInfo};

/// What a connection's requests share in their environs.
pub struct ConnEnviron {
    /// The base environ plus `wsgi.input` (placeholder), `gunicorn.socket` and placeholders for
    /// `REQUEST_METHOD`, `QUERY_STRING`, `RAW_URI`, `SERVER_PROTOCOL`: copying it gives every
    /// request gunicorn's key order without inserting those keys again.
    pub template: Py<PyDict>,
    /// `REMOTE_ADDR`, `REMOTE_PORT` of the peer.
    remote: Option<(Py<PyString>, Py<PyString>)>,
    /// `SERVER_NAME`, `SERVER_PORT` of a TCP listener (unix listeners use the Host header).
    server: Option<(Py<PyString>, Py<PyString>)>,
    /// The connection's `gunicorn.socket`.
    sock: Py<PyAny>,
}

thread_local! {
    /// The last environ filled on this thread, for requests (of any connection) that bring
    /// the same keys. One per thread rather than one per connection: a worker keeping many
    /// connections alive then copies one warm dict per request instead of one of many cold
    /// ones (measured with a simulated 512 KiB L2: fewer misses per Flask request).
    static SHAPE: RefCell<Option<Shape>> = const { RefCell::new(None) };
}

/// An environ just after [`fill`] (before the app saw it), with what decided its keys and
/// their order: the header names in order, and the listener. A later request on this thread
/// with the same names (and no PROXY header) fills a copy of it: every key it sets is already
/// there, so setting only replaces values, in place; the connection's own values
/// (`gunicorn.socket`, the peer's and the listener's address) are set on the copy first. The
/// keys and their order are exactly those of a copy of the template filled from scratch.
struct Shape {
    env: Py<PyDict>,
    names: Vec<String>,
    /// The template it was filled from (the same base keys, for the same listener).
    listener: usize,
}

impl Shape {
    fn fits(&self, head: &RequestHead, listener: usize) -> bool {
        head.proxy.is_none()
            && self.listener == listener
            && self.names.len() == head.headers.len()
            && head
                .headers
                .iter()
                .zip(&self.names)
                .all(|((name, _), kept)| name == kept)
    }
}

thread_local! {
    static RECENT: RefCell<Recent> = const { RefCell::new(Recent { listener: None, ip: None }) };
}

/// The strings of the listener and of the peer address of this thread's last connection, for
/// the next one: most connections come in on the same listener from the same few addresses.
struct Recent {
    /// The listener (kept alive, so the pointer compared is its own) and its `SERVER_NAME`,
    /// `SERVER_PORT` (`None` for unix listeners).
    listener: Option<(Arc<ListenerInfo>, Option<ServerText>)>,
    /// A peer address and its `REMOTE_ADDR`.
    ip: Option<(IpAddr, Py<PyString>)>,
}

type ServerText = (Py<PyString>, Py<PyString>);

impl Recent {
    fn server_text(&mut self, py: Python<'_>, l: &Arc<ListenerInfo>) -> Option<ServerText> {
        if !self
            .listener
            .as_ref()
            .is_some_and(|(last, _)| Arc::ptr_eq(last, l))
        {
            let text = match (&l.family, &l.server_name_port) {
                (Family::Tcp, Some((n, p))) => {
                    Some((PyString::new(py, n).unbind(), PyString::new(py, p).unbind()))
                }
                _ => None,
            };
            self.listener = Some((l.clone(), text));
        }
        let (_, text) = self.listener.as_ref()?;
        text.as_ref()
            .map(|(n, p)| (n.clone_ref(py), p.clone_ref(py)))
    }

    fn ip_text(&mut self, py: Python<'_>, ip: IpAddr) -> Py<PyString> {
        match &self.ip {
            Some((last, text)) if *last == ip => text.clone_ref(py),
            _ => {
                let text = PyString::new(py, &addr_text::ip(ip)).unbind();
                self.ip = Some((ip, text.clone_ref(py)));
                text
            }
        }
    }
}

impl std::fmt::Debug for ConnEnviron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnEnviron")
    }
}

/// The keys a template adds to the base environ.
const TEMPLATE_KEYS: usize = 6;
/// The keys a request adds to a copy of its template without resizing it: the 8 every request
/// sets and a browser's dozen or more headers.
const REQUEST_ROOM: usize = 24;

/// The worker's template of templates: the base environ, then placeholders for `wsgi.input`,
/// `gunicorn.socket` and the request line's keys, in a table with room for a request's keys (a
/// copy of it then takes them without resizing: a resize per request was most of a hello
/// request's dict work). Each connection's template is a copy with its `gunicorn.socket`.
pub fn prototype<'py>(py: Python<'py>, base: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let t = crate::python::capi::dict_with_room(py, base.len() + TEMPLATE_KEYS + REQUEST_ROOM)?;
    for (k, v) in base.iter() {
        t.set_item(k, v)?;
    }
    let none = py.None();
    for key in [
        intern!(py, "wsgi.input"),
        intern!(py, "gunicorn.socket"),
        intern!(py, "REQUEST_METHOD"),
        intern!(py, "QUERY_STRING"),
        intern!(py, "RAW_URI"),
        intern!(py, "SERVER_PROTOCOL"),
    ] {
        t.set_item(key, &none)?;
    }
    Ok(t)
}

impl ConnEnviron {
    /// Builds the connection's template from the worker's [`prototype`]; `sock` is the
    /// connection's `gunicorn.socket`.
    pub fn new(
        py: Python<'_>,
        prototype: &Bound<'_, PyDict>,
        sock: Py<PyAny>,
        conn: &Conn,
    ) -> PyResult<ConnEnviron> {
        // A dense dict's copy clones its table: no insertion, and the room stays.
        let t = prototype.copy()?;
        t.set_item(intern!(py, "gunicorn.socket"), &sock)?;
        let remote = conn.peer.map(|a| {
            (
                RECENT.with(|r| r.borrow_mut().ip_text(py, a.ip())),
                PyString::new(py, &addr_text::decimal(a.port().into())).unbind(),
            )
        });
        let server = RECENT.with(|r| r.borrow_mut().server_text(py, &conn.listener));
        Ok(ConnEnviron {
            template: t.unbind(),
            remote,
            server,
            sock,
        })
    }

    /// The dict a request's [`fill`] starts from, and whether it is a copy of the last filled
    /// environ of this thread ([`Shape`], this connection's own values already set in it)
    /// rather than of the template. The connection's `last` request takes its template itself:
    /// a copy would only serve a request that never comes.
    pub fn start<'py>(
        &self,
        py: Python<'py>,
        head: &RequestHead,
        last: bool,
        listener: usize,
    ) -> PyResult<(Bound<'py, PyDict>, bool)> {
        let shaped = SHAPE.with(|s| {
            s.borrow()
                .as_ref()
                .filter(|shape| shape.fits(head, listener))
                .map(|shape| shape.env.clone_ref(py))
        });
        let Some(shaped) = shaped else {
            let t = self.template.bind(py);
            return Ok((if last { t.clone() } else { t.copy()? }, false));
        };
        let env = shaped.bind(py).copy()?;
        env.set_item(intern!(py, "gunicorn.socket"), &self.sock)?;
        match &self.remote {
            Some((addr, port)) => {
                env.set_item(intern!(py, "REMOTE_ADDR"), addr)?;
                env.set_item(intern!(py, "REMOTE_PORT"), port)?;
            }
            None => env.set_item(intern!(py, "REMOTE_ADDR"), intern!(py, ""))?,
        }
        if let Some((name, port)) = &self.server {
            env.set_item(intern!(py, "SERVER_NAME"), name)?;
            env.set_item(intern!(py, "SERVER_PORT"), port)?;
        }
        Ok((env, true))
    }
}

/// Keeps `env`, just filled for `head`, for this thread's next requests.
pub fn keep_shape(env: &Bound<'_, PyDict>, head: &RequestHead, listener: usize) -> PyResult<()> {
    if head.proxy.is_some() {
        return Ok(());
    }
    let kept = env.copy()?;
    // Set again by every request that takes a copy; holding it here would keep the
    // connection's socket object from being reused after the connection (`py_socket`).
    kept.set_item(intern!(env.py(), "gunicorn.socket"), env.py().None())?;
    let shape = Shape {
        env: kept.unbind(),
        names: head.headers.iter().map(|(n, _)| n.to_owned()).collect(),
        listener,
    };
    // The previous shape is freed outside the borrow (freeing a dict runs Python).
    let previous = SHAPE.with(|s| s.borrow_mut().replace(shape));
    drop(previous);
    Ok(())
}

/// `HTTP_...` environ keys by header name, interned once per worker (bounded, so a client
/// sending endless new names cannot grow it).
#[derive(Default)]
pub struct HeaderKeys(Mutex<HashMap<String, Py<PyString>>>);

impl HeaderKeys {
    const MAX: usize = 512;

    fn key<'py>(&self, py: Python<'py>, name: &str) -> Bound<'py, PyString> {
        if let Some(k) = common_key(py, name) {
            return k.clone();
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = map.get(name) {
            return k.bind(py).clone();
        }
        if map.len() >= Self::MAX {
            return PyString::new(py, &http_key(name));
        }
        let k = PyString::intern(py, &http_key(name));
        map.insert(name.to_string(), k.clone().unbind());
        k
    }
}

/// The keys of the headers most requests carry, without the map's lock and hash.
fn common_key<'py>(py: Python<'py>, name: &str) -> Option<&'py Bound<'py, PyString>> {
    Some(match name {
        "HOST" => intern!(py, "HTTP_HOST"),
        "USER-AGENT" => intern!(py, "HTTP_USER_AGENT"),
        "ACCEPT" => intern!(py, "HTTP_ACCEPT"),
        "ACCEPT-ENCODING" => intern!(py, "HTTP_ACCEPT_ENCODING"),
        "ACCEPT-LANGUAGE" => intern!(py, "HTTP_ACCEPT_LANGUAGE"),
        "CONNECTION" => intern!(py, "HTTP_CONNECTION"),
        "COOKIE" => intern!(py, "HTTP_COOKIE"),
        "REFERER" => intern!(py, "HTTP_REFERER"),
        "ORIGIN" => intern!(py, "HTTP_ORIGIN"),
        "AUTHORIZATION" => intern!(py, "HTTP_AUTHORIZATION"),
        "CACHE-CONTROL" => intern!(py, "HTTP_CACHE_CONTROL"),
        "X-FORWARDED-FOR" => intern!(py, "HTTP_X_FORWARDED_FOR"),
        "X-FORWARDED-PROTO" => intern!(py, "HTTP_X_FORWARDED_PROTO"),
        "X-REAL-IP" => intern!(py, "HTTP_X_REAL_IP"),
        "X-REQUEST-ID" => intern!(py, "HTTP_X_REQUEST_ID"),
        "IF-NONE-MATCH" => intern!(py, "HTTP_IF_NONE_MATCH"),
        "IF-MODIFIED-SINCE" => intern!(py, "HTTP_IF_MODIFIED_SINCE"),
        _ => return None,
    })
}

/// `%XX`-decodes `path` to bytes, then reads the bytes as latin-1 (`unquote_to_wsgi_str`).
pub fn unquote_to_wsgi_str(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes: Vec<u8> = path.chars().map(|c| c as u32 as u8).collect();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(out.iter().map(|b| *b as char).collect())
}

/// A gunicorn `ConfigurationProblem`: the path does not start with SCRIPT_NAME.
pub struct ConfigurationProblem(pub String);

/// Fills `env` (from [`ConnEnviron::start`]) with the request's keys; `shaped`: `env` is a
/// copy of the last filled environ, whose per-connection values are already right.
#[allow(clippy::too_many_arguments)]
pub fn fill<'py>(
    py: Python<'py>,
    env: &Bound<'py, PyDict>,
    shaped: bool,
    head: &RequestHead,
    conn: &Conn,
    ce: &ConnEnviron,
    keys: &HeaderKeys,
    script_name_env: &str,
) -> PyResult<Result<(), ConfigurationProblem>> {
    let method = match head.method() {
        "GET" => intern!(py, "GET").clone(),
        "POST" => intern!(py, "POST").clone(),
        "HEAD" => intern!(py, "HEAD").clone(),
        m => PyString::new(py, m),
    };
    env.set_item(intern!(py, "REQUEST_METHOD"), method)?;
    let query = if head.query().is_empty() {
        intern!(py, "").clone()
    } else {
        PyString::new(py, head.query())
    };
    env.set_item(intern!(py, "QUERY_STRING"), query)?;
    set_text(env, shaped, intern!(py, "RAW_URI"), head.uri())?;
    let proto = match head.version {
        (1, 1) => intern!(py, "HTTP/1.1").clone(),
        (1, 0) => intern!(py, "HTTP/1.0").clone(),
        (a, b) => PyString::new(py, &format!("HTTP/{a}.{b}")),
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), proto)?;

    let mut host: Option<&str> = None;
    let mut script_name = script_name_env;
    let mut repeated: Vec<(Bound<'py, PyString>, Vec<&str>)> = Vec::new();
    for (i, (name, value)) in head.headers.iter().enumerate() {
        match name {
            "HOST" => host = Some(value).filter(|h| !h.is_empty()),
            "SCRIPT_NAME" => script_name = value,
            "CONTENT-TYPE" => {
                set_text(env, shaped, intern!(py, "CONTENT_TYPE"), value)?;
                continue;
            }
            "CONTENT-LENGTH" => {
                set_text(env, shaped, intern!(py, "CONTENT_LENGTH"), value)?;
                continue;
            }
            _ => {}
        }
        let key = keys.key(py, name);
        if let Some((_, vals)) = repeated
            .iter_mut()
            .find(|(k, _)| k.is(&key) || k.as_any().eq(&key).unwrap_or(false))
        {
            vals.push(value);
        } else if head
            .headers
            .iter()
            .take(i)
            .any(|(n, _)| n != "CONTENT-TYPE" && n != "CONTENT-LENGTH" && same_key(n, name))
        {
            // An earlier header set this key (no other key the environ has so far starts
            // with `HTTP_`): the values are joined below.
            repeated.push((key, vec![value]));
        } else {
            set_text(env, shaped, &key, value)?;
        }
    }
    for (key, vals) in repeated {
        let first: String = env
            .get_item(&key)?
            .map(|v| v.extract())
            .transpose()?
            .unwrap_or_default();
        let mut joined = first;
        for v in vals {
            joined.push(',');
            joined.push_str(v);
        }
        env.set_item(key, joined)?;
    }

    let scheme = match head.scheme {
        "http" => intern!(py, "http").clone(),
        "https" => intern!(py, "https").clone(),
        s => PyString::new(py, s),
    };
    env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    // A shaped environ holds these already: no PROXY header on either request (the shape
    // matched), so both took them from the connection.
    match &ce.remote {
        _ if shaped => {}
        Some((addr, port)) => {
            env.set_item(intern!(py, "REMOTE_ADDR"), addr)?;
            env.set_item(intern!(py, "REMOTE_PORT"), port)?;
        }
        None => env.set_item(intern!(py, "REMOTE_ADDR"), intern!(py, ""))?,
    }

    if let Some((name, port)) = &ce.server {
        if !shaped {
            env.set_item(intern!(py, "SERVER_NAME"), name)?;
            env.set_item(intern!(py, "SERVER_PORT"), port)?;
        }
    } else {
        let (server_name, server_port) = match host {
            Some(h) => match h.split_once(':') {
                Some((n, p)) => (n.to_string(), p.split(':').next().unwrap_or("").to_string()),
                None => (
                    h.to_string(),
                    match head.scheme {
                        "https" => "443".to_string(),
                        _ => "80".to_string(),
                    },
                ),
            },
            None => (
                conn.listener.unix_path.clone().unwrap_or_default(),
                String::new(),
            ),
        };
        env.set_item(intern!(py, "SERVER_NAME"), server_name)?;
        env.set_item(intern!(py, "SERVER_PORT"), server_port)?;
    }

    let mut path = head.path();
    if !script_name.is_empty() {
        match path.strip_prefix(script_name) {
            Some(rest) => path = rest,
            None => {
                let repr = |s: &str| {
                    PyString::new(py, s)
                        .repr()
                        .map(|r| r.to_string())
                        .unwrap_or_default()
                };
                return Ok(Err(ConfigurationProblem(format!(
                    "Configuration problem: Request path {} does not start with SCRIPT_NAME {}",
                    repr(head.path()),
                    repr(script_name)
                ))));
            }
        }
    }
    set_text(
        env,
        shaped,
        intern!(py, "PATH_INFO"),
        &unquote_to_wsgi_str(path),
    )?;
    let script_name = if script_name.is_empty() {
        intern!(py, "").clone()
    } else {
        PyString::new(py, script_name)
    };
    env.set_item(intern!(py, "SCRIPT_NAME"), script_name)?;

    if let Some(p) = &head.proxy {
        env.set_item(intern!(py, "PROXY_PROTOCOL"), p.proxy_protocol)?;
        env.set_item(intern!(py, "REMOTE_ADDR"), p.client_addr.clone())?;
        env.set_item(
            intern!(py, "REMOTE_PORT"),
            p.client_port
                .map_or_else(|| "None".into(), |v| v.to_string()),
        )?;
        env.set_item(intern!(py, "PROXY_ADDR"), p.proxy_addr.clone())?;
        env.set_item(
            intern!(py, "PROXY_PORT"),
            p.proxy_port
                .map_or_else(|| "None".into(), |v| v.to_string()),
        )?;
    }
    Ok(Ok(()))
}

/// Sets `key` to the text `value`. In a shaped environ ([`Shape`]) the key holds the previous
/// request's value, which most requests repeat (the host, the user agent, cookies): an equal
/// value is left in place instead of replaced by a new string of the same text.
fn set_text(
    env: &Bound<'_, PyDict>,
    shaped: bool,
    key: &Bound<'_, PyString>,
    value: &str,
) -> PyResult<()> {
    if shaped
        && let Some(old) = env.get_item(key)?
        && let Ok(old) = old.cast::<PyString>()
        && old.to_str().is_ok_and(|t| t == value)
    {
        return Ok(());
    }
    env.set_item(key, PyString::new(env.py(), value))
}

/// Whether two header names give the same environ key (`-` and `_` both become `_`).
fn same_key(a: &str, b: &str) -> bool {
    let dash = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| dash(x) == dash(y))
}

fn http_key(name: &str) -> String {
    let mut k = String::with_capacity(5 + name.len());
    k.push_str("HTTP_");
    k.extend(name.chars().map(|c| if c == '-' { '_' } else { c }));
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keys_are_the_http_keys_of_their_names() {
        Python::initialize();
        Python::attach(|py| {
            for name in [
                "HOST",
                "USER-AGENT",
                "ACCEPT-ENCODING",
                "X-FORWARDED-PROTO",
                "COOKIE",
            ] {
                let k = common_key(py, name).expect("a common name");
                assert_eq!(k.to_str().unwrap(), http_key(name));
            }
            assert!(common_key(py, "X-UNUSUAL").is_none());
        });
    }

    #[test]
    fn names_that_differ_only_in_dash_and_underscore_share_a_key() {
        assert!(same_key("X-A", "X_A"));
        assert!(same_key("ACCEPT", "ACCEPT"));
        assert!(!same_key("X-A", "X-B"));
        assert!(!same_key("X-A", "X-AB"));
    }

    #[test]
    fn unquote_reads_bytes_as_latin1() {
        assert_eq!(unquote_to_wsgi_str("/a%20b"), "/a b");
        assert_eq!(unquote_to_wsgi_str("/%2F"), "//");
        assert_eq!(unquote_to_wsgi_str("/%C3%A9"), "/\u{c3}\u{a9}");
        assert_eq!(unquote_to_wsgi_str("/%zz%4"), "/%zz%4");
        assert_eq!(unquote_to_wsgi_str("/%41"), "/A");
    }
}
