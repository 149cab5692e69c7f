//! The environ dict, built the way gunicorn's `wsgi.create` builds it: a per-worker base dict
//! copied per request, then the request's keys (spec §12.1).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rgun_h1::RequestHead;

use crate::unix::listeners::Family;
use crate::worker::conn::Conn;

/// `%XX`-decodes `path` to bytes, then reads the bytes as latin-1 (`unquote_to_wsgi_str`).
pub fn unquote_to_wsgi_str(path: &str) -> String {
    let bytes: Vec<u8> = path.chars().map(|c| c as u32 as u8).collect();
    if !bytes.contains(&b'%') {
        return path.to_string();
    }
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
    out.iter().map(|b| *b as char).collect()
}

/// A gunicorn `ConfigurationProblem`: the path does not start with SCRIPT_NAME.
pub struct ConfigurationProblem(pub String);

/// Fills `env` (a copy of the base environ) with the request's keys.
pub fn fill<'py>(
    py: Python<'py>,
    env: &Bound<'py, PyDict>,
    head: &RequestHead,
    conn: &Conn,
    script_name_env: &str,
) -> PyResult<Result<(), ConfigurationProblem>> {
    env.set_item(
        intern!(py, "REQUEST_METHOD"),
        PyString::new(py, &head.method),
    )?;
    env.set_item(intern!(py, "QUERY_STRING"), PyString::new(py, &head.query))?;
    env.set_item(intern!(py, "RAW_URI"), PyString::new(py, &head.uri))?;
    let proto = match head.version {
        (1, 1) => intern!(py, "HTTP/1.1").clone(),
        (1, 0) => intern!(py, "HTTP/1.0").clone(),
        (a, b) => PyString::new(py, &format!("HTTP/{a}.{b}")),
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), proto)?;

    let mut host: Option<&str> = None;
    let mut script_name = script_name_env;
    let mut repeated: Vec<(String, Vec<&str>)> = Vec::new();
    for (name, value) in &head.headers {
        match name.as_str() {
            "HOST" => host = Some(value.as_str()).filter(|h| !h.is_empty()),
            "SCRIPT_NAME" => script_name = value,
            "CONTENT-TYPE" => {
                env.set_item(intern!(py, "CONTENT_TYPE"), PyString::new(py, value))?;
                continue;
            }
            "CONTENT-LENGTH" => {
                env.set_item(intern!(py, "CONTENT_LENGTH"), PyString::new(py, value))?;
                continue;
            }
            _ => {}
        }
        let key = http_key(name);
        if let Some((_, vals)) = repeated.iter_mut().find(|(k, _)| *k == key) {
            vals.push(value);
        } else if env.contains(&key)? {
            repeated.push((key, vec![value]));
        } else {
            env.set_item(PyString::new(py, &key), PyString::new(py, value))?;
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

    env.set_item(
        intern!(py, "wsgi.url_scheme"),
        PyString::new(py, head.scheme),
    )?;
    match conn.peer {
        Some(addr) => {
            env.set_item(intern!(py, "REMOTE_ADDR"), addr.ip().to_string())?;
            env.set_item(intern!(py, "REMOTE_PORT"), addr.port().to_string())?;
        }
        None => env.set_item(intern!(py, "REMOTE_ADDR"), intern!(py, ""))?,
    }

    let (server_name, server_port) = match (&conn.listener.family, &conn.listener.server_name_port)
    {
        (Family::Tcp, Some((n, p))) => (n.clone(), p.clone()),
        _ => match host {
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
        },
    };
    env.set_item(intern!(py, "SERVER_NAME"), server_name)?;
    env.set_item(intern!(py, "SERVER_PORT"), server_port)?;

    let mut path = head.path.as_str();
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
                    repr(&head.path),
                    repr(script_name)
                ))));
            }
        }
    }
    env.set_item(intern!(py, "PATH_INFO"), unquote_to_wsgi_str(path))?;
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
    fn unquote_reads_bytes_as_latin1() {
        assert_eq!(unquote_to_wsgi_str("/a%20b"), "/a b");
        assert_eq!(unquote_to_wsgi_str("/%2F"), "//");
        assert_eq!(unquote_to_wsgi_str("/%C3%A9"), "/\u{c3}\u{a9}");
        assert_eq!(unquote_to_wsgi_str("/%zz%4"), "/%zz%4");
        assert_eq!(unquote_to_wsgi_str("/%41"), "/A");
    }
}
