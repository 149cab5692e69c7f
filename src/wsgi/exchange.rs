//! One request/response exchange: the connection, the body being read, the response being
//! written. Shared (behind a mutex) by `wsgi.input`, `start_response` and `write()`, because
//! those Python objects can be called in any order while the app runs.

use super::input::BodyState;
use super::response::ResponseState;
use crate::worker::conn::{Conn, Waiter};

pub struct Exchange {
    /// The connection; `None` once the exchange is over (a kept `wsgi.input` then reads EOF).
    pub conn: Option<Conn>,
    pub body: BodyState,
    pub resp: ResponseState,
    pub waiter: Waiter,
}
