//! rgun's HTTP/1 codec: request heads parsed exactly as gunicorn 27.0.1's parser does, chunked
//! and length-delimited request bodies, and gunicorn's error pages. No I/O, no Python.
