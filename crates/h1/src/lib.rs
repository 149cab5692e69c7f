//! rgun's HTTP/1 codec: request heads parsed exactly as gunicorn 27.0.1's parser does, chunked
//! and length-delimited request bodies, and gunicorn's error pages. No I/O, no Python.
//!
//! The entry points are [`parse_head`] (one request head from the start of a read buffer),
//! [`BodyDecoder`] (the body that follows it) and [`error_page`] (the bytes gunicorn writes
//! for a [`ParseError`]). All of them work on whatever bytes have arrived so far, so a caller
//! can feed them straight from its socket buffer; they never read, block or allocate per byte.

mod body;
mod config;
mod error;
mod fields;
mod head;
mod headers;
mod proxy;
mod repr;
mod reqline;
mod spare;
mod target;
mod text;

pub use body::BodyDecoder;
pub use config::{HeaderMapPolicy, ParserConfig, Peer, ProxyMode};
pub use error::{BadVersion, ParseError, error_page, html_escape};
pub use fields::Fields;
pub use head::{BodyFraming, HeadParser, RequestHead, Status, parse_head, parse_head_eof};
pub use proxy::ProxyInfo;
pub use repr::{py_repr_bytes, py_repr_str};
pub use spare::recycle;
pub use target::{InvalidTarget, TargetParts, split_request_uri};
pub use text::{is_token, sp_htab_trimmed};
