//! How many requests per second `rgun_h1` turns from wire bytes into an environ-ready form:
//! the head parsed (`HeadParser`, as the worker uses it), the body decoded (`BodyDecoder`),
//! and the CGI/WSGI variables built the way gunicorn's `wsgi.create` builds them
//! (REQUEST_METHOD, RAW_URI, PATH_INFO percent-decoded, QUERY_STRING, SERVER_PROTOCOL,
//! CONTENT_TYPE/CONTENT_LENGTH and `HTTP_*` with repeated names comma-joined). No Python:
//! this measures the codec, not the interpreter.
//!
//! Usage: `cargo run --release -- [--seconds S]` (S per case, default 1). Prints a table.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rgun_h1::{BodyDecoder, HeadParser, ParserConfig, Peer, RequestHead, Status};

const BROWSER: &[u8] = b"GET /search?q=rust+http+parser&source=hp&ei=abc123 HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-User: ?1\r\n\
Sec-Fetch-Dest: document\r\n\
Referer: https://www.example.com/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n\
Cookie: sessionid=8f14e45fceea167a5a36dedd4bea2543; csrftoken=c9f0f895fb98ab9159f51fd0297e236d; _ga=GA1.2.1234567890.1700000000\r\n\
\r\n";

const CURL: &[u8] = b"GET /api/v1/items/42 HTTP/1.1\r\n\
Host: localhost:8000\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
\r\n";

const POST_FORM: &[u8] = b"POST /login HTTP/1.1\r\n\
Host: localhost:8000\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
Content-Type: application/x-www-form-urlencoded\r\n\
Content-Length: 41\r\n\
\r\n\
username=alice&password=correct+horse+bat";

const CHUNKED: &[u8] = b"POST /upload HTTP/1.1\r\n\
Host: localhost:8000\r\n\
Transfer-Encoding: chunked\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n8;name=value\r\n01234567\r\n0\r\n\r\n";

fn thirty_headers() -> Vec<u8> {
    let mut v =
        b"GET /api/v2/orders/2024/11/28/items?limit=50&offset=100&sort=-created HTTP/1.1\r\n\
Host: api.internal.example.com\r\n"
            .to_vec();
    for i in 0..29 {
        v.extend_from_slice(
            format!(
                "X-Custom-Header-{i:02}: value-{i:02}-0123456789abcdefghijklmnopqrstuvwxyz\r\n"
            )
            .as_bytes(),
        );
    }
    v.extend_from_slice(b"\r\n");
    v
}

/// gunicorn's `wsgi.create` header and request variables, as owned strings.
fn environ(head: &RequestHead, out: &mut Vec<(String, String)>) {
    out.clear();
    out.push(("REQUEST_METHOD".into(), head.method.clone()));
    out.push(("RAW_URI".into(), head.uri.clone()));
    out.push(("PATH_INFO".into(), unquote_latin1(&head.path)));
    out.push(("QUERY_STRING".into(), head.query.clone()));
    out.push((
        "SERVER_PROTOCOL".into(),
        format!("HTTP/{}.{}", head.version.0, head.version.1),
    ));
    out.push(("wsgi.url_scheme".into(), head.scheme.into()));
    for (name, value) in &head.headers {
        let key = match name.as_str() {
            "CONTENT-TYPE" => "CONTENT_TYPE".to_owned(),
            "CONTENT-LENGTH" => "CONTENT_LENGTH".to_owned(),
            _ => {
                let mut k = String::with_capacity(5 + name.len());
                k.push_str("HTTP_");
                k.extend(name.chars().map(|c| if c == '-' { '_' } else { c }));
                k
            }
        };
        if let Some(slot) = out.iter_mut().find(|(k, _)| *k == key) {
            slot.1.push(',');
            slot.1.push_str(value);
        } else {
            out.push((key, value.clone()));
        }
    }
}

/// `urllib.parse.unquote_to_bytes(path).decode("latin-1")`.
fn unquote_latin1(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let hex = |c: u8| (c as char).to_digit(16);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(char::from((h * 16 + l) as u8));
            i += 3;
            continue;
        }
        // The path is latin-1 text already: one char per byte.
        out.push(char::from(b[i]));
        i += 1;
    }
    out
}

/// One request: head, body, environ. Returns bytes consumed.
fn one(
    buf: &[u8],
    parser: &mut HeadParser,
    cfg: &ParserConfig,
    peer: &Peer,
    env: &mut Vec<(String, String)>,
    body: &mut Vec<u8>,
) -> usize {
    let Ok(Status::Complete((head, used))) = parser.parse(buf, cfg, peer, false) else {
        panic!("benchmark request did not parse");
    };
    let mut dec = BodyDecoder::new(&head.body, cfg);
    body.clear();
    let used_body = dec.decode(&buf[used..], body).expect("body decodes");
    assert!(dec.is_done());
    environ(&head, env);
    used + used_body
}

/// CPU time this thread has run, in ns (Linux `schedstat`), so the rates do not depend on
/// what else the machine is doing. `None` elsewhere: then wall time is used.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn bench(name: &str, req: &[u8], per: Duration) -> (String, usize, f64, f64) {
    let cfg = ParserConfig::default();
    let peer = Peer {
        trusted: true,
        proxy_allowed: false,
        is_tls: false,
        ip: Some("127.0.0.1".into()),
    };
    let mut parser = HeadParser::new();
    let mut env = Vec::with_capacity(64);
    let mut body = Vec::with_capacity(256);
    // Warm up, and check the request is consumed whole.
    for _ in 0..1000 {
        let used = one(
            black_box(req),
            &mut parser,
            &cfg,
            &peer,
            &mut env,
            &mut body,
        );
        assert_eq!(used, req.len());
    }
    let start = Instant::now();
    let cpu_start = cpu_ns();
    let mut n = 0u64;
    // Run for `per` of CPU time (wall time when CPU time is unavailable).
    let spent = || match (cpu_start, cpu_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b - a),
        _ => start.elapsed(),
    };
    while spent() < per {
        for _ in 0..1000 {
            black_box(one(
                black_box(req),
                &mut parser,
                &cfg,
                &peer,
                &mut env,
                &mut body,
            ));
        }
        n += 1000;
    }
    let secs = spent().as_secs_f64();
    let rate = n as f64 / secs;
    (
        name.to_owned(),
        req.len(),
        rate,
        rate * req.len() as f64 / 1e6,
    )
}

fn main() {
    let mut seconds = 1.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            seconds = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--seconds S");
        }
    }
    let per = Duration::from_secs_f64(seconds);
    let thirty = thirty_headers();
    let cases: [(&str, &[u8]); 5] = [
        ("curl GET (3 headers)", CURL),
        ("browser GET (16 headers)", BROWSER),
        ("30 headers", &thirty),
        ("POST form, 41-byte body", POST_FORM),
        ("POST chunked, 3 chunks", CHUNKED),
    ];
    let clock = if cpu_ns().is_some() { "CPU" } else { "wall" };
    println!("rgun_h1 head + body + environ, one core, {seconds}s of {clock} time per case");
    println!();
    println!("| request | bytes | requests/s | ns/request | MB/s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, req) in cases {
        let (name, len, rate, mbs) = bench(name, req, per);
        println!(
            "| {name} | {len} | {:.0} | {:.0} | {mbs:.0} |",
            rate,
            1e9 / rate
        );
    }
}
