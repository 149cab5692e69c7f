//! The master's imports that workers share.
//!
//! gunicorn's master has imported about 180 standard-library modules (its own dependencies:
//! `email`, `typing`, `datetime`, `urllib.parse`, `ssl`, ...) by the time it forks, so its
//! workers inherit them and their pages stay shared between the master and every worker. Flask
//! and Django import most of them; an rgun worker that had to import them itself held a private
//! copy of each (a Flask worker cost 3 MB more than under gunicorn). rgun imports the same list
//! (`compat/master_modules.txt`, extracted from gunicorn by `compat/extract_master_modules.py`)
//! first thing, before the configuration, as gunicorn's own imports come first, and freezes the
//! garbage collector's view of what the master holds before each fork ([`freeze`]), so a
//! worker's collections never write to those objects (which would copy their pages into the
//! worker). A reload unfreezes first ([`unfreeze`]), so the previous configuration's garbage can
//! still be collected in the master.

use pyo3::prelude::*;

const MASTER_MODULES: &str = include_str!("../../compat/master_modules.txt");

/// The modules of `compat/master_modules.txt`, in order.
fn names() -> impl Iterator<Item = &'static str> {
    MASTER_MODULES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Imports the modules gunicorn's master has imported. A module this Python does not have (the
/// list comes from one Python version) is skipped: it is only a memory optimisation.
pub fn import(py: Python<'_>) {
    for name in names() {
        let _ = py.import(name);
    }
}

/// `gc.freeze()`: moves every object the master holds now into the collector's permanent
/// generation, so that no later collection, in the master or in a worker, touches it.
pub fn freeze(py: Python<'_>) {
    gc(py, "freeze");
}

/// `gc.unfreeze()`: the master's objects are collectable again (until the next [`freeze`]).
pub fn unfreeze(py: Python<'_>) {
    gc(py, "unfreeze");
}

/// Calls `gc.<method>()`; neither call can fail in a working interpreter, and a failure would
/// cost only memory sharing.
fn gc(py: Python<'_>, method: &str) {
    let _ = py.import("gc").and_then(|gc| gc.call_method0(method));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_standard_library_modules_only() {
        let names: Vec<&str> = names().collect();
        assert!(names.len() > 100, "{} modules", names.len());
        for must in ["email.utils", "typing", "datetime", "urllib.parse"] {
            assert!(names.contains(&must), "{must} missing");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("gunicorn") || *n == "__main__")
        );
    }

    #[test]
    fn importing_skips_what_this_python_lacks() {
        Python::initialize();
        Python::attach(|py| {
            import(py);
            let modules = py.import("sys").unwrap().getattr("modules").unwrap();
            assert!(modules.contains("email.utils").unwrap());
            assert!(modules.contains("urllib.parse").unwrap());
        });
    }
}
