//! gunicorn's validators, with its coercions and exception messages. A failure is a Python
//! exception whose `str()` is what gunicorn prints after `Error: `.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString, PyTuple};

use super::Value;
use super::spec::{Setting, Validator};

pyo3::create_exception!(rgun, ConfigError, pyo3::exceptions::PyException);

fn s(v: &Bound<'_, PyAny>) -> String {
    v.str().map(|s| s.to_string()).unwrap_or_default()
}

fn py_call<'py>(py: Python<'py>, module: &str, path: &str) -> PyResult<Bound<'py, PyAny>> {
    let mut obj = py.import(module)?.into_any();
    for part in path.split('.') {
        obj = obj.getattr(part)?;
    }
    Ok(obj)
}

/// Converts a validated Python object into a [`Value`].
pub fn to_value(v: &Bound<'_, PyAny>) -> Value {
    if v.is_none() {
        return Value::None;
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Value::Bool(b.is_true());
    }
    if v.is_instance_of::<PyInt>()
        && let Ok(i) = v.extract::<i64>()
    {
        return Value::Int(i);
    }
    if let Ok(st) = v.cast::<PyString>() {
        return Value::Str(st.to_string());
    }
    if let Ok(l) = v.cast::<PyList>()
        && let Ok(items) = l
            .iter()
            .map(|x| x.extract::<String>())
            .collect::<PyResult<Vec<_>>>()
    {
        return Value::List(items);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let pairs: PyResult<Vec<(String, String)>> = d
            .iter()
            .map(|(k, x)| {
                Ok((
                    k.cast::<PyString>()?.to_string(),
                    x.cast::<PyString>()?.to_string(),
                ))
            })
            .collect();
        if let Ok(p) = pairs {
            return Value::Dict(p);
        }
    }
    Value::Object(v.clone().unbind())
}

fn strip<'py>(v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    v.call_method0("strip")
}

/// `validate_string`: `None` stays, a `str` is stripped, anything else is `Not a string`.
fn string<'py>(v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if v.is_none() {
        return Ok(v.clone());
    }
    if !v.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!("Not a string: {}", s(v))));
    }
    strip(v)
}

/// `validate_pos_int`.
fn pos_int<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let int = py.import("builtins")?.getattr("int")?;
    let n = if v.is_instance_of::<PyInt>() {
        int.call1((v,))?
    } else {
        int.call1((v, 0))?
    };
    if n.lt(0)? {
        return Err(PyValueError::new_err(format!(
            "Value must be positive: {}",
            s(&n)
        )));
    }
    if n.extract::<i64>().is_err() {
        return Err(PyValueError::new_err(format!(
            "Value must be at most {}: {}",
            i64::MAX,
            s(&n)
        )));
    }
    Ok(n)
}

/// `validate_bool`.
fn boolean<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if v.is_none() || v.is_instance_of::<PyBool>() {
        return Ok(v.clone());
    }
    if !v.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "Invalid type for casting: {}",
            s(v)
        )));
    }
    let norm = v.call_method0("lower")?.call_method0("strip")?.to_string();
    match norm.as_str() {
        "true" => Ok(PyBool::new(py, true).to_owned().into_any()),
        "false" => Ok(PyBool::new(py, false).to_owned().into_any()),
        _ => Err(PyValueError::new_err(format!("Invalid boolean: {}", s(v)))),
    }
}

/// `validate_list_string`: falsy → `[]`, a bare `str` → one item, each item `validate_string`.
fn list_string<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if !v.is_truthy()? {
        return Ok(PyList::empty(py).into_any());
    }
    let items = if v.is_instance_of::<PyString>() {
        PyList::new(py, [v])?.into_any()
    } else {
        v.clone()
    };
    let out = PyList::empty(py);
    for item in items.try_iter()? {
        let item = item?;
        if item.is_none() {
            // gunicorn keeps a None item (and fails later); rgun refuses it here.
            return Err(PyTypeError::new_err("Not a string: None"));
        }
        out.append(string(&item)?)?;
    }
    Ok(out.into_any())
}

/// `validate_string_to_list`: a comma-separated string (only a string) → list.
fn string_to_list<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let v = string(v)?;
    let out = PyList::empty(py);
    if v.is_none() || !v.is_truthy()? {
        return Ok(out.into_any());
    }
    for part in v.to_string().split(',') {
        if !part.is_empty() {
            out.append(PyString::new(py, part).call_method0("strip")?)?;
        }
    }
    Ok(out.into_any())
}

/// `validate_string_to_addr_list`: as [`string_to_list`], each item `*` or a strict IP/CIDR.
fn addr_list<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let list = string_to_list(py, v)?;
    let ip_network = py_call(py, "ipaddress", "ip_network")?;
    for addr in list.try_iter()? {
        let addr = addr?;
        if addr.to_string() != "*" {
            ip_network.call1((addr,))?;
        }
    }
    Ok(list)
}

/// `validate_class`: a function or method is called; a class is kept; else a string.
fn class<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let inspect = py.import("inspect")?;
    let mut v = v.clone();
    if inspect.call_method1("isfunction", (&v,))?.is_truthy()?
        || inspect.call_method1("ismethod", (&v,))?.is_truthy()?
    {
        v = v.call0()?;
    }
    if inspect.call_method1("isclass", (&v,))?.is_truthy()? {
        return Ok(v);
    }
    string(&v)
}

/// `util.get_arity`: the number of positional parameters.
fn arity(py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<usize> {
    let inspect = py.import("inspect")?;
    let param = inspect.getattr("Parameter")?;
    let kinds = [
        param.getattr("POSITIONAL_ONLY")?,
        param.getattr("POSITIONAL_OR_KEYWORD")?,
    ];
    let sig = inspect.call_method1("signature", (f,))?;
    let mut n = 0;
    for p in sig
        .getattr("parameters")?
        .call_method0("values")?
        .try_iter()?
    {
        let kind = p?.getattr("kind")?;
        if kinds.iter().any(|k| k.eq(&kind).unwrap_or(false)) {
            n += 1;
        }
    }
    Ok(n)
}

/// `validate_callable(arity)`; `None` arity skips the arity check.
fn callable<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    want: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut v = v.clone();
    if v.is_instance_of::<PyString>() {
        let text = v.to_string();
        let Some((mod_name, obj_name)) = text.rsplit_once('.') else {
            return Err(PyTypeError::new_err(format!(
                "Value '{text}' is not import string. Format: module[.submodules...].object"
            )));
        };
        let import = py.import("builtins")?.getattr("__import__")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("fromlist", PyList::new(py, [obj_name])?)?;
        let module = match import.call((mod_name,), Some(&kwargs)) {
            Ok(m) => m,
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyImportError>(py) => {
                return Err(PyTypeError::new_err(s(e.value(py).as_any())));
            }
            Err(e) => return Err(e),
        };
        v = match module.getattr(obj_name) {
            Ok(o) => o,
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => {
                return Err(PyTypeError::new_err(format!(
                    "Can not load '{obj_name}' from '{mod_name}'"
                )));
            }
            Err(e) => return Err(e),
        };
    }
    if !v.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "Value is not callable: {}",
            s(&v)
        )));
    }
    if let Some(n) = want
        && arity(py, &v)? != n
    {
        return Err(PyTypeError::new_err(format!(
            "Value must have an arity of: {n}"
        )));
    }
    Ok(v)
}

/// Python source of the adapter `validate_post_request` builds for 2- and 3-argument hooks.
const POST_REQUEST_ADAPTER: &str = "\
def validate_post_request(val, largs):
    if largs == 3:
        return lambda worker, req, env, _r: val(worker, req, env)
    return lambda worker, req, _e, _r: val(worker, req)
";

/// `validate_post_request`: 2, 3 or 4 positional args; the result always takes 4.
fn post_request<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let f = callable(py, v, None)?;
    match arity(py, &f)? {
        4 => Ok(f),
        n @ (2 | 3) => {
            let ns = PyDict::new(py);
            let code = std::ffi::CString::new(POST_REQUEST_ADAPTER).expect("no NUL");
            py.run(&code, Some(&ns), Some(&ns))?;
            let adapt = ns
                .get_item("validate_post_request")?
                .expect("adapter defined");
            adapt.call1((f, n))
        }
        _ => Err(PyTypeError::new_err("Value must have an arity of: 4")),
    }
}

/// `validate_user` / `validate_group`.
fn user_or_group<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    user: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if v.is_none() {
        let id = if user {
            nix::unistd::geteuid().as_raw()
        } else {
            nix::unistd::getegid().as_raw()
        };
        return Ok(id.into_pyobject(py)?.into_any());
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(v.clone());
    }
    if v.call_method0("isdigit")?.is_truthy()? {
        return py.import("builtins")?.getattr("int")?.call1((v,));
    }
    let (module, func, field, what) = if user {
        ("pwd", "getpwnam", "pw_uid", "user")
    } else {
        ("grp", "getgrnam", "gr_gid", "group")
    };
    match py.import(module)?.call_method1(func, (v,)) {
        Ok(entry) => entry.getattr(field),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => {
            Err(ConfigError::new_err(format!("No such {what}: '{}'", s(v))))
        }
        Err(e) => Err(e),
    }
}

/// `validate_chdir`: made absolute against the launch directory; must exist.
fn chdir<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let v = string(v)?;
    let path = py.import("os")?.getattr("path")?;
    let joined = path.call_method1("join", (super::defaults::getcwd(), &v))?;
    let abs = path.call_method1("abspath", (path.call_method1("normpath", (joined,))?,))?;
    if !path.call_method1("exists", (&abs,))?.is_truthy()? {
        return Err(ConfigError::new_err(format!(
            "can't chdir to {}",
            v.repr()?
        )));
    }
    Ok(abs)
}

/// A validator that lower-cases and strips a string and checks it against `choices`.
fn choice<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    none: Option<&str>,
    choices: &[&str],
    not_str: &str,
    bad: impl Fn(&str) -> String,
) -> PyResult<Bound<'py, PyAny>> {
    if v.is_none() {
        return Ok(match none {
            Some(d) => PyString::new(py, d).into_any(),
            None => v.clone(),
        });
    }
    if !v.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(not_str.replace("{}", &s(v))));
    }
    let norm = v.call_method0("lower")?.call_method0("strip")?.to_string();
    if choices.contains(&norm.as_str()) {
        Ok(PyString::new(py, &norm).into_any())
    } else {
        Err(PyValueError::new_err(bad(&norm)))
    }
}

fn list_of_files_or_patterns<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let list = list_string(py, v)?;
    let out = PyList::empty(py);
    let glob = py_call(py, "glob", "glob")?;
    let exists = py_call(py, "os", "path.exists")?;
    for entry in list.try_iter()? {
        let entry = entry?;
        let text = entry.to_string();
        if !text.contains(['*', '?', '[']) {
            if !exists.call1((&entry,))?.is_truthy()? {
                return Err(PyValueError::new_err(format!(
                    "File {text} does not exists."
                )));
            }
        } else {
            let kwargs = PyDict::new(py);
            kwargs.set_item("recursive", true)?;
            if !glob.call((&entry,), Some(&kwargs))?.is_truthy()? {
                let warn = py_call(py, "warnings", "warn")?;
                let cat = py_call(py, "builtins", "RuntimeWarning")?;
                warn.call1((format!("Pattern {text} currently matches no files."), cat))?;
            }
        }
        out.append(entry)?;
    }
    Ok(out.into_any())
}

/// `validate_statsd_address`: `unix:<digits>` is kept as the tuple `('unix', port)` (a
/// compatibility rule of gunicorn's), anything else goes through `util.parse_address` with the
/// default port 8125: a unix path (str), an fd (int) or `(host, port)`.
fn statsd_address<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let v = string(v)?;
    if v.is_none() {
        return Ok(v);
    }
    let re = py.import("re")?;
    let regression = re.call_method1("match", (r"^unix:(\d+)$", &v))?;
    if !regression.is_none() {
        let port = int_of(py, &regression.call_method1("group", (1,))?)?;
        return Ok(PyTuple::new(py, [PyString::new(py, "unix").into_any(), port])?.into_any());
    }
    parse_address(py, &v.to_string(), "8125")
        .map_err(|_| PyTypeError::new_err("Value must be one of ('host:port', 'unix://PATH')"))
}

fn int_of<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    py.import("builtins")?.getattr("int")?.call1((v,))
}

/// gunicorn's `util.parse_address` (any error stands for its RuntimeError).
fn parse_address<'py>(
    py: Python<'py>,
    netloc: &str,
    default_port: &str,
) -> PyResult<Bound<'py, PyAny>> {
    if netloc.starts_with("unix:") {
        // `re.split(r'unix:(//)?', netloc)[-1]`: what follows the last `unix:` (and `//`).
        let rest = &netloc[netloc.rfind("unix:").unwrap_or(0) + 5..];
        return Ok(PyString::new(py, rest.strip_prefix("//").unwrap_or(rest)).into_any());
    }
    if let Some(fd) = netloc.strip_prefix("fd://") {
        return int_of(py, &PyString::new(py, fd));
    }
    let netloc = match netloc.strip_prefix("tcp://") {
        // `netloc.split("tcp://")[1]`
        Some(rest) => rest.split("tcp://").next().unwrap_or(""),
        None => netloc,
    };
    let (host, port) = if netloc.contains('[') && netloc.contains(']') {
        let before = netloc.split(']').next().unwrap_or("");
        let host: String = before.chars().skip(1).collect();
        let port = netloc.split("]:").nth(1).unwrap_or(default_port);
        (host, port)
    } else if netloc.contains(':') {
        let mut parts = netloc.split(':');
        let host = parts.next().unwrap_or("").to_string();
        (host, parts.next().unwrap_or(default_port))
    } else if netloc.is_empty() {
        ("0.0.0.0".to_string(), default_port)
    } else {
        (netloc.to_string(), default_port)
    };
    let port = int_of(py, &PyString::new(py, port))?;
    let host = PyString::new(py, &host).call_method0("lower")?;
    Ok(PyTuple::new(py, [host, port])?.into_any())
}

fn http_protocols<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let h1 = || PyList::new(py, ["h1"]).map(|l| l.into_any());
    if v.is_none() {
        return h1();
    }
    if !v.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("http_protocols must be a string"));
    }
    let text = strip(v)?.to_string();
    let protos: Vec<String> = text
        .split(',')
        .map(|p| {
            PyString::new(py, p)
                .call_method0("strip")
                .map(|x| x.to_string())
        })
        .collect::<PyResult<Vec<_>>>()?
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.to_lowercase())
        .collect();
    if protos.is_empty() {
        return h1();
    }
    for p in &protos {
        if p != "h1" && p != "h2" {
            return Err(PyValueError::new_err(format!(
                "Invalid protocol '{p}'. Valid protocols: h1, h2"
            )));
        }
    }
    let mut seen = protos.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != protos.len() {
        return Err(PyValueError::new_err("Duplicate protocols specified"));
    }
    Ok(PyList::new(py, protos)?.into_any())
}

fn int_any<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let int = py.import("builtins")?.getattr("int")?;
    if v.is_instance_of::<PyInt>() {
        int.call1((v,))
    } else {
        int.call1((v, 0))
    }
}

/// Runs `s`'s validator on `v` and returns the validated Python object.
pub fn validate_object<'py>(
    py: Python<'py>,
    st: &Setting,
    v: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    match st.validator {
        Validator::String => string(v),
        Validator::PosInt => pos_int(py, v),
        Validator::Bool => boolean(py, v),
        Validator::Callable(n) => callable(py, v, Some(usize::from(n))),
        Validator::PostRequest => post_request(py, v),
        Validator::ListString => list_string(py, v),
        Validator::StringToAddrList => addr_list(py, v),
        Validator::StringToList => string_to_list(py, v),
        Validator::Class => class(py, v),
        Validator::Dict => {
            if v.is_instance_of::<PyDict>() {
                Ok(v.clone())
            } else {
                Err(PyTypeError::new_err(format!(
                    "Value is not a dictionary: {} ",
                    s(v)
                )))
            }
        }
        Validator::ReloadEngine => {
            let engines = PyDict::new(py);
            for e in ["auto", "poll", "inotify"] {
                engines.set_item(e, true)?;
            }
            if engines.contains(v)? {
                Ok(v.clone())
            } else {
                Err(ConfigError::new_err(format!(
                    "Invalid reload_engine: {}",
                    v.repr()?
                )))
            }
        }
        Validator::ListOfFilesOrPatterns => list_of_files_or_patterns(py, v),
        Validator::Chdir => chdir(py, v),
        Validator::User => user_or_group(py, v, true),
        Validator::Group => user_or_group(py, v, false),
        Validator::StatsdAddress => statsd_address(py, v),
        Validator::ProxyProtocol => {
            if v.is_none() {
                return Ok(PyString::new(py, "off").into_any());
            }
            if let Ok(b) = v.cast::<PyBool>() {
                return Ok(PyString::new(py, if b.is_true() { "auto" } else { "off" }).into_any());
            }
            if !v.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(
                    "proxy_protocol must be string or bool",
                ));
            }
            let norm = v.call_method0("lower")?.call_method0("strip")?.to_string();
            let mapped = match norm.as_str() {
                "false" | "off" | "0" | "none" => "off",
                "true" | "auto" | "1" => "auto",
                "v1" => "v1",
                "v2" => "v2",
                _ => {
                    return Err(PyValueError::new_err(
                        "proxy_protocol must be: off, v1, v2, or auto",
                    ));
                }
            };
            Ok(PyString::new(py, mapped).into_any())
        }
        Validator::SslVersion => {
            if !v.eq(2)? {
                eprintln!(
                    "Warning: option `ssl_version` is deprecated and it is ignored. Use ssl_context instead."
                );
            }
            Ok(v.clone())
        }
        Validator::HttpProtocols => http_protocols(py, v),
        Validator::Http2Cleartext => {
            if let Ok(b) = v.cast::<PyBool>() {
                return Ok(PyString::new(
                    py,
                    if b.is_true() {
                        "prior-knowledge"
                    } else {
                        "off"
                    },
                )
                .into_any());
            }
            choice(
                py,
                v,
                Some("off"),
                &["off", "prior-knowledge", "upgrade", "both"],
                "Invalid type for casting: {}",
                |x| format!("Invalid http2_cleartext: {x}"),
            )
        }
        Validator::Http2StreamLimit => {
            let n = pos_int(py, v)?;
            if n.lt(1)? {
                return Err(PyValueError::new_err(format!(
                    "HTTP/2 max concurrent streams must be at least 1: {}",
                    s(&n)
                )));
            }
            Ok(n)
        }
        Validator::Http2WindowSize => {
            let n = pos_int(py, v)?;
            if n.gt(2_147_483_647i64)? {
                return Err(PyValueError::new_err(format!(
                    "HTTP/2 window size must be at most 2147483647: {}",
                    s(&n)
                )));
            }
            Ok(n)
        }
        Validator::Http2FrameSize => {
            let n = int_any(py, v)?;
            if n.lt(16384)? || n.gt(16_777_215)? {
                return Err(PyValueError::new_err(format!(
                    "http2_max_frame_size must be between 16384 and 16777215, got {}",
                    s(&n)
                )));
            }
            Ok(n)
        }
        Validator::HeaderMap => choice(
            py,
            v,
            None,
            &["drop", "refuse", "dangerous"],
            "Invalid type for casting: {}",
            |_| format!("Invalid header map behaviour: {}", s(v)),
        ),
        Validator::AsgiLoop => choice(
            py,
            v,
            Some("auto"),
            &["auto", "asyncio", "uvloop"],
            "Invalid type for casting: {}",
            |x| format!("Invalid ASGI loop: {x}"),
        ),
        Validator::AsgiLifespan => choice(
            py,
            v,
            Some("auto"),
            &["auto", "on", "off"],
            "Invalid type for casting: {}",
            |x| format!("Invalid ASGI lifespan: {x}"),
        ),
        Validator::HttpParser => choice(
            py,
            v,
            Some("auto"),
            &["auto", "fast", "python"],
            "http_parser must be a string",
            |_| "http_parser must be one of: auto, fast, python".to_string(),
        ),
    }
}

/// Runs `s`'s validator on `v` and converts the result to a [`Value`].
pub fn validate(py: Python<'_>, st: &Setting, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let out = validate_object(py, st, v)?;
    Ok(match st.validator {
        // Hooks, classes and dicts keep their Python identity where it matters.
        Validator::Callable(_) | Validator::PostRequest => Value::Object(out.unbind()),
        _ => to_value(&out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::spec::find;

    /// Evaluates `expr` in Python, validates it for `name` and returns `str(result)` or the
    /// error text.
    fn check(name: &str, expr: &str) -> Result<String, String> {
        Python::initialize();
        Python::attach(|py| {
            let code = std::ffi::CString::new(expr).unwrap();
            let v = py.eval(&code, None, None).unwrap();
            validate_object(py, find(name).unwrap(), &v)
                .map(|o| o.str().unwrap().to_string())
                .map_err(|e| e.value(py).str().unwrap().to_string())
        })
    }

    #[test]
    fn pos_int() {
        assert_eq!(check("workers", "'0x10'").unwrap(), "16");
        assert_eq!(check("workers", "' 3 '").unwrap(), "3");
        assert_eq!(check("workers", "True").unwrap(), "1");
        assert_eq!(
            check("workers", "-1").unwrap_err(),
            "Value must be positive: -1"
        );
        assert_eq!(
            check("umask", "'011'").unwrap_err(),
            "invalid literal for int() with base 0: '011'"
        );
        assert_eq!(
            check("workers", "2.5").unwrap_err(),
            "int() can't convert non-string with explicit base"
        );
    }

    #[test]
    fn booleans_and_strings() {
        assert_eq!(check("daemon", "' TRUE '").unwrap(), "True");
        assert_eq!(
            check("daemon", "'yes'").unwrap_err(),
            "Invalid boolean: yes"
        );
        assert_eq!(
            check("daemon", "1").unwrap_err(),
            "Invalid type for casting: 1"
        );
        assert_eq!(check("pidfile", "'  /x  '").unwrap(), "/x");
        assert_eq!(check("pidfile", "5").unwrap_err(), "Not a string: 5");
    }

    #[test]
    fn lists() {
        assert_eq!(check("bind", "'0.0.0.0:80'").unwrap(), "['0.0.0.0:80']");
        assert_eq!(check("bind", "''").unwrap(), "[]");
        assert_eq!(
            check("forwarded_allow_ips", "'10.0.0.0/8, *'").unwrap(),
            "['10.0.0.0/8', '*']"
        );
        assert_eq!(
            check("forwarded_allow_ips", "['1.2.3.4']").unwrap_err(),
            "Not a string: ['1.2.3.4']"
        );
        assert_eq!(
            check("forwarded_allow_ips", "'192.168.1.1/24'").unwrap_err(),
            "192.168.1.1/24 has host bits set"
        );
        assert_eq!(check("forwarder_headers", "'A,,B'").unwrap(), "['A', 'B']");
    }

    #[test]
    fn hooks() {
        assert!(
            check("on_starting", "lambda s: None")
                .unwrap()
                .starts_with("<function")
        );
        assert_eq!(
            check("on_starting", "lambda a, b: None").unwrap_err(),
            "Value must have an arity of: 1"
        );
        assert_eq!(
            check("post_request", "lambda a: None").unwrap_err(),
            "Value must have an arity of: 4"
        );
        assert!(
            check("post_request", "lambda a, b: None")
                .unwrap()
                .contains("validate_post_request.<locals>.<lambda>")
        );
        assert_eq!(
            check("on_starting", "'os.getcwd'").unwrap_err(),
            "Value must have an arity of: 1"
        );
        assert_eq!(
            check("on_starting", "'os.nothere'").unwrap_err(),
            "Can not load 'nothere' from 'os'"
        );
        assert_eq!(
            check("on_starting", "'nodots'").unwrap_err(),
            "Value 'nodots' is not import string. Format: module[.submodules...].object"
        );
        assert_eq!(
            check("on_starting", "5").unwrap_err(),
            "Value is not callable: 5"
        );
    }

    #[test]
    fn choices_and_classes() {
        assert_eq!(check("proxy_protocol", "'TRUE'").unwrap(), "auto");
        assert_eq!(check("header_map", "'Refuse '").unwrap(), "refuse");
        assert_eq!(
            check("header_map", "'x'").unwrap_err(),
            "Invalid header map behaviour: x"
        );
        assert_eq!(
            check("http_parser", "'x'").unwrap_err(),
            "http_parser must be one of: auto, fast, python"
        );
        assert_eq!(check("worker_class", "' gthread '").unwrap(), "gthread");
        assert_eq!(check("worker_class", "int").unwrap(), "<class 'int'>");
        assert_eq!(
            check("secure_scheme_headers", "5").unwrap_err(),
            "Value is not a dictionary: 5 "
        );
        assert_eq!(check("user", "'0'").unwrap(), "0");
        assert_eq!(
            check("user", "'no-such-user-x'").unwrap_err(),
            "No such user: 'no-such-user-x'"
        );
    }
}
