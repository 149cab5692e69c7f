//! Server hooks (`on_starting`, `post_fork`, `pre_request`, ...) and the Python objects they
//! receive: `server`, `worker`, `cfg`, `log` (`python/rgun/_objects.py`), kept current here.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::{Config, Value};

/// Calls hook `name` with `args` if the config sets it.
pub fn call<'py>(
    py: Python<'py>,
    cfg: &Config,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyResult<()> {
    let Some(hook) = cfg.object(name) else {
        return Ok(());
    };
    hook.bind(py).call1(args)?;
    Ok(())
}

/// A setting value as the Python object gunicorn's `cfg` would return.
pub fn value_to_py(py: Python<'_>, v: &Value) -> Py<PyAny> {
    let obj: PyResult<Bound<'_, PyAny>> = match v {
        Value::None => Ok(py.None().into_bound(py)),
        Value::Bool(b) => Ok(pyo3::types::PyBool::new(py, *b).to_owned().into_any()),
        Value::Int(i) => Ok(i
            .into_pyobject(py)
            .map(|o| o.into_any())
            .unwrap_or_else(|e| match e {})),
        Value::Str(s) => Ok(pyo3::types::PyString::new(py, s).into_any()),
        Value::List(l) => pyo3::types::PyList::new(py, l).map(|o| o.into_any()),
        Value::Dict(d) => {
            let dict = PyDict::new(py);
            for (k, v) in d {
                let _ = dict.set_item(k, v);
            }
            Ok(dict.into_any())
        }
        Value::Object(o) => Ok(o.bind(py).clone()),
    };
    obj.map(Bound::unbind).unwrap_or_else(|_| py.None())
}

/// gunicorn's `cfg` object for hooks and the logger (`rgun._objects.Config`).
pub fn config_object(py: Python<'_>, cfg: &Config) -> PyResult<Py<PyAny>> {
    let values = PyDict::new(py);
    for (name, value) in cfg.iter() {
        values.set_item(name, value_to_py(py, value))?;
    }
    Ok(py
        .import("rgun._objects")?
        .getattr("Config")?
        .call1((values,))?
        .unbind())
}

/// The long-lived hook objects of a process tree: created in the master, inherited by workers.
pub struct Objects {
    module: Py<PyModule>,
    pub cfg: Py<PyAny>,
    pub log: Py<PyAny>,
    pub server: Py<PyAny>,
}

impl Objects {
    /// Builds `server` around the `cfg` and `log` objects ([`config_object`],
    /// [`super::logging::setup`]).
    pub fn new(
        py: Python<'_>,
        cfg: &Config,
        cfg_obj: Py<PyAny>,
        log: Py<PyAny>,
    ) -> PyResult<Objects> {
        let module = py.import("rgun._objects")?;
        let worker_class = module.getattr(if cfg.is_gthread() {
            "ThreadWorker"
        } else {
            "SyncWorker"
        })?;
        let server = module
            .getattr("Arbiter")?
            .call1((&cfg_obj, &log, py.None(), worker_class))?;
        Ok(Objects {
            module: module.unbind(),
            cfg: cfg_obj,
            log,
            server: server.unbind(),
        })
    }

    /// SIGHUP: the new `cfg` and `log` objects, also set on `server`.
    pub fn replace(&mut self, py: Python<'_>, cfg_obj: Py<PyAny>, log: Py<PyAny>) {
        set_attr(py, &self.server, "cfg", cfg_obj.clone_ref(py));
        set_attr(py, &self.server, "log", log.clone_ref(py));
        self.cfg = cfg_obj;
        self.log = log;
    }

    /// A new `worker` object (pid `"[booting]"` until the fork).
    pub fn new_worker(
        &self,
        py: Python<'_>,
        age: u64,
        ppid: u32,
        timeout: i64,
        max_requests: u64,
    ) -> PyResult<Py<PyAny>> {
        let server = self.server.bind(py);
        let class = server.getattr("worker_class")?;
        let max = if max_requests == u64::MAX {
            i64::MAX
        } else {
            max_requests as i64
        };
        let w = class.call1((
            age,
            ppid,
            server.getattr("LISTENERS")?,
            server.getattr("app")?,
            timeout as f64 / 2.0,
            &self.cfg,
            &self.log,
            max,
        ))?;
        Ok(w.unbind())
    }

    /// Mirrors the listeners into `server.LISTENERS`.
    pub fn set_listeners(&self, py: Python<'_>, listeners: &[(i32, String, i32)]) -> PyResult<()> {
        let class = self.module.bind(py).getattr("Listener")?;
        let list = pyo3::types::PyList::empty(py);
        for (fd, name, family) in listeners {
            list.append(class.call1((fd, name, family))?)?;
        }
        self.server.bind(py).setattr("LISTENERS", list)
    }

    /// The class used for `req` objects.
    pub fn class(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        Ok(self.module.bind(py).getattr(name)?.unbind())
    }
}

/// Sets `obj.name = value`, ignoring failures (hook objects are informational).
pub fn set_attr<'py>(py: Python<'py>, obj: &Py<PyAny>, name: &str, value: impl IntoPyObject<'py>) {
    let _ = obj.bind(py).setattr(name, value);
}
