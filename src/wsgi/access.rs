//! The access-log record of one exchange: values come from the environ *after* the app ran (so
//! middleware such as ProxyFix is reflected, as in gunicorn), the request headers, and the
//! response state.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::observe::AccessRecord;

pub struct Record<'a, 'py> {
    pub environ: &'a Bound<'py, PyDict>,
    pub headers: &'a rgun_h1::Fields,
    pub resp_headers: &'a super::header_list::HeaderList,
    pub status: String,
    pub sent: Option<u64>,
    pub duration: Duration,
}

fn py_str(v: &Bound<'_, PyAny>) -> String {
    v.str().map(|s| s.to_string()).unwrap_or_default()
}

impl AccessRecord for Record<'_, '_> {
    fn environ(&self, key: &str) -> Option<String> {
        self.environ
            .get_item(key)
            .ok()
            .flatten()
            .map(|v| py_str(&v))
    }

    fn environ_lower(&self, lower: &str) -> Option<String> {
        if let Some(v) = self.environ(&lower.to_ascii_uppercase()) {
            return Some(v);
        }
        let mut found = None;
        for (k, v) in self.environ.iter() {
            if k.str()
                .map(|s| s.to_string().to_lowercase() == lower)
                .unwrap_or(false)
            {
                found = Some(py_str(&v));
            }
        }
        found
    }

    fn request_header(&self, lower: &str) -> Option<String> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(lower))
            .map(|(_, v)| v.to_owned())
    }

    fn response_header(&self, lower: &str) -> Option<String> {
        self.resp_headers.last(lower).map(str::to_string)
    }

    fn status(&self) -> String {
        self.status.clone()
    }

    fn sent(&self) -> Option<u64> {
        self.sent
    }

    fn duration(&self) -> Duration {
        self.duration
    }
}
