//! CPython C API that pyo3 does not wrap.
//!
//! Invariant: with `tstate.rs`, the only `unsafe` outside `src/unix/`; each call says why it is
//! sound.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

unsafe extern "C" {
    /// A new empty dict whose table holds `minused` items without growing. Private but exported
    /// by every CPython 3 (it backs the `BUILD_MAP` opcode); pyo3-ffi leaves it out as private.
    fn _PyDict_NewPresized(minused: ffi::Py_ssize_t) -> *mut ffi::PyObject;
}

/// An empty dict with room for `items` items: inserting up to that many never resizes it, and
/// its copies (`dict.copy` clones a dense table, size included) keep the room.
pub fn dict_with_room(py: Python<'_>, items: usize) -> PyResult<Bound<'_, PyDict>> {
    let n = ffi::Py_ssize_t::try_from(items).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: attached (`py`); the function only allocates and returns a new reference, or
    // NULL with an exception set (out of memory), which `from_owned_ptr_or_err` turns into the
    // error.
    let any = unsafe { Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(n))? };
    // The function returns a dict in every CPython; the checked cast keeps a mistake an error.
    Ok(any.cast_into::<PyDict>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dict_with_room_takes_its_items_without_growing() {
        Python::initialize();
        Python::attach(|py| {
            let sizeof = |d: &Bound<'_, PyDict>| -> usize {
                let sys = py.import("sys").unwrap();
                sys.call_method1("getsizeof", (d,))
                    .unwrap()
                    .extract()
                    .unwrap()
            };
            let d = dict_with_room(py, 40).unwrap();
            assert_eq!(d.len(), 0);
            for i in 0..14 {
                d.set_item(format!("KEY_{i}"), i).unwrap();
            }
            let copy = d.copy().unwrap();
            let size = sizeof(&copy);
            for i in 14..40 {
                copy.set_item(format!("KEY_{i}"), i).unwrap();
            }
            assert_eq!(sizeof(&copy), size, "the copy grew within its room");
            let keys: Vec<String> = copy.keys().extract().unwrap();
            assert_eq!(keys[0], "KEY_0");
            assert_eq!(keys[39], "KEY_39");
        });
    }
}
