//! gunicorn 27.0.1's request vectors (`shared/gunicorn-vectors`) run through the codec the
//! way gunicorn's own harness runs them: every request and body on the connection, fed in
//! several split patterns, must give gunicorn's result.

#[path = "support/json.rs"]
mod json;

use std::fs;
use std::path::{Path, PathBuf};

use json::Json;
use rgun_h1::{
    BodyDecoder, HeadParser, HeaderMapPolicy, ParseError, ParserConfig, Peer, ProxyMode,
    RequestHead, Status, parse_head, parse_head_eof,
};

/// Where CI puts the vectors: `shared/` beside the repository checkout.
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/gunicorn-vectors"
);
/// A git worktree nested one level deeper (`<root>/wt/<name>`) sees them one level up.
const VECTORS_FROM_WORKTREE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../../shared/gunicorn-vectors"
);

/// The vector directory: `$GUNICORN_VECTORS` if set, else the first known location that exists.
fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GUNICORN_VECTORS") {
        return PathBuf::from(dir);
    }
    [VECTORS, VECTORS_FROM_WORKTREE]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from(VECTORS))
}

/// The README's decoding steps for `.http` files, in order.
fn decode_http(raw: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\n').collect();
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        // Steps 2-6 are plain replacements applied one after another; none of their results
        // contains a backslash, so a single left-to-right pass gives the same bytes.
        match text.get(i + 1) {
            Some(b'r') if text.get(i + 2..i + 4) == Some(b"\\n") => {
                out.extend_from_slice(b"\r\n");
                i += 4;
            }
            Some(b'0') => {
                out.push(0);
                i += 2;
            }
            Some(b'n') => {
                out.push(b'\n');
                i += 2;
            }
            Some(b't') => {
                out.push(b'\t');
                i += 2;
            }
            Some(b'x') => {
                let hex = std::str::from_utf8(&text[i + 2..i + 4]).expect("hex escape");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 4;
            }
            _ => panic!("malformed .http escape at byte {i}"),
        }
    }
    out
}

fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1 char"))
        .collect()
}

fn config_for(settings: &Json) -> ParserConfig {
    let int = |key: &str, default: i64| {
        settings
            .get(key)
            .and_then(Json::num)
            .map_or(default, |n| n as i64)
    };
    let flag = |key: &str| settings.get(key) == Some(&Json::Bool(true));
    let mut cfg = ParserConfig::from_settings(
        int("limit_request_line", 4094),
        int("limit_request_fields", 100),
        int("limit_request_field_size", 8190),
    );
    cfg.permit_unconventional_http_method = flag("permit_unconventional_http_method");
    cfg.permit_unconventional_http_version = flag("permit_unconventional_http_version");
    cfg.casefold_http_method = flag("casefold_http_method");
    cfg.permit_obsolete_folding = flag("permit_obsolete_folding");
    cfg.strip_header_spaces = flag("strip_header_spaces");
    if let Some(map) = settings.get("header_map").and_then(Json::str) {
        cfg.header_map = HeaderMapPolicy::from_setting(map).expect("header_map");
    }
    if let Some(mode) = settings.get("proxy_protocol").and_then(Json::str) {
        cfg.proxy_protocol = ProxyMode::from_setting(mode).expect("proxy_protocol");
    }
    cfg
}

/// One request as the harness observed it.
struct Seen {
    head: Box<RequestHead>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

/// Serves a connection like gunicorn's parser loop: parse a head, drain its body, stop when
/// the request says close or the input ends. `chunks` are the reads, in order.
/// `incremental` picks [`HeadParser`] over the stateless [`parse_head`].
fn run_connection(
    chunks: &[&[u8]],
    cfg: &ParserConfig,
    peer: &Peer,
    incremental: bool,
) -> Result<Vec<Seen>, ParseError> {
    let mut reads = chunks.iter();
    let mut parser = HeadParser::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = Vec::new();
    let mut first = true;
    loop {
        let (head, used) = loop {
            let status = if incremental {
                parser.parse(&buf, cfg, peer, first)?
            } else {
                parse_head(&buf, cfg, peer, first)?
            };
            match status {
                Status::Complete(done) => break done,
                Status::Partial => match reads.next() {
                    Some(chunk) => buf.extend_from_slice(chunk),
                    None => {
                        let eof = if incremental {
                            parser.eof(&buf, cfg, peer, first)
                        } else {
                            parse_head_eof(&buf, cfg, peer, first)
                        };
                        return match eof {
                            Some(err) => Err(err),
                            None => Ok(seen),
                        };
                    }
                },
            }
        };
        buf.drain(..used);
        first = false;

        let mut decoder = BodyDecoder::new(&head.body, cfg);
        let mut body = Vec::new();
        loop {
            let used = decoder.decode(&buf, &mut body)?;
            buf.drain(..used);
            if decoder.is_done() {
                break;
            }
            match reads.next() {
                Some(chunk) => buf.extend_from_slice(chunk),
                None => {
                    decoder.decode_eof()?;
                    break;
                }
            }
        }
        let close = head.should_close();
        seen.push(Seen {
            head,
            body,
            trailers: decoder.trailers().to_vec(),
        });
        if close {
            return Ok(seen);
        }
    }
}

/// Deterministic read patterns: whole, byte by byte, fixed sizes, 1 + rest, and a few
/// pseudo-random size sequences (a small LCG, so runs are reproducible).
fn split_patterns(data: &[u8]) -> Vec<(String, Vec<&[u8]>)> {
    let fixed = |n: usize| data.chunks(n).collect::<Vec<_>>();
    let mut patterns = vec![
        ("whole".to_owned(), vec![data]),
        ("bytes".to_owned(), fixed(1)),
        ("by 2".to_owned(), fixed(2)),
        ("by 7".to_owned(), fixed(7)),
        (
            "1 + rest".to_owned(),
            if data.is_empty() {
                vec![]
            } else {
                vec![&data[..1], &data[1..]]
            },
        ),
    ];
    for (seed, max) in [(1u64, 4usize), (7, 16), (42, 64), (1234, 4096)] {
        let mut state = seed;
        let mut pieces = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let n = 1 + (state >> 33) as usize % max;
            let end = (pos + n).min(data.len());
            pieces.push(&data[pos..end]);
            pos = end;
        }
        patterns.push((format!("random seed {seed} max {max}"), pieces));
    }
    patterns
}

fn pairs(list: &Json) -> Vec<(String, String)> {
    list.arr()
        .iter()
        .map(|pair| {
            let item = pair.arr();
            (
                item[0].str().unwrap().to_owned(),
                item[1].str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Compares what was parsed with a valid vector's expectations; `Err` describes a mismatch.
fn check_valid(seen: &[Seen], expected: &Json) -> Result<(), String> {
    let requests = expected.get("requests").unwrap().arr();
    if seen.len() != requests.len() {
        return Err(format!(
            "{} requests parsed, {} expected",
            seen.len(),
            requests.len()
        ));
    }
    for (i, (got, want)) in seen.iter().zip(requests).enumerate() {
        let uri = want.get("uri").unwrap();
        let text = |j: &Json, key: &str| j.get(key).and_then(Json::str).unwrap().to_owned();
        let version = want.get("version").unwrap().arr();
        let want_version = (
            version[0].num().unwrap() as u8,
            version[1].num().unwrap() as u8,
        );
        let checks = [
            ("method", got.head.method().to_owned(), text(want, "method")),
            ("uri", got.head.uri().to_owned(), text(uri, "raw")),
            ("path", got.head.path().to_owned(), text(uri, "path")),
            ("query", got.head.query().to_owned(), text(uri, "query")),
            (
                "fragment",
                got.head.fragment().to_owned(),
                text(uri, "fragment"),
            ),
            (
                "version",
                format!("{:?}", got.head.version),
                format!("{want_version:?}"),
            ),
            (
                "headers",
                format!("{:?}", got.head.headers),
                format!("{:?}", pairs(want.get("headers").unwrap())),
            ),
            (
                "body",
                format!("{:?}", got.body),
                format!("{:?}", latin1_bytes(&text(want, "body"))),
            ),
            (
                "trailers",
                format!("{:?}", got.trailers),
                format!("{:?}", pairs(want.get("trailers").unwrap())),
            ),
        ];
        for (what, got, want) in checks {
            if got != want {
                return Err(format!("request {i}: {what} is {got:?}, expected {want:?}"));
            }
        }
        if let Some(info) = want.get("proxy_protocol_info") {
            let proxy = got
                .head
                .proxy
                .as_ref()
                .ok_or(format!("request {i}: no PROXY info"))?;
            let port = |key: &str| info.get(key).and_then(Json::num).map(|n| n as u16);
            let addr = |key: &str| info.get(key).and_then(Json::str).map(str::to_owned);
            let ok = Some(proxy.proxy_protocol) == info.get("proxy_protocol").and_then(Json::str)
                && proxy.client_addr == addr("client_addr")
                && proxy.client_port == port("client_port")
                && proxy.proxy_addr == addr("proxy_addr")
                && proxy.proxy_port == port("proxy_port");
            if !ok {
                return Err(format!(
                    "request {i}: PROXY info {proxy:?}, expected {info:?}"
                ));
            }
        } else if i > 0 && got.head.proxy.is_some() {
            return Err(format!("request {i}: PROXY info on a later request"));
        }
    }
    Ok(())
}

/// Compares a failure with an invalid vector's expectations.
fn check_invalid(
    result: Result<Vec<Seen>, ParseError>,
    expected: &Json,
    check_message: bool,
) -> Result<(), String> {
    let err = match result {
        Ok(seen) => return Err(format!("no error ({} requests parsed)", seen.len())),
        Err(err) => err,
    };
    let want_name = expected.get("exception").and_then(Json::str).unwrap();
    let want_status = expected
        .get("http_status")
        .and_then(Json::num)
        .map(|n| n as u16);
    if err.name() != want_name || err.status() != want_status {
        return Err(format!(
            "raised {} ({:?}), expected {want_name} ({want_status:?}): {err}",
            err.name(),
            err.status()
        ));
    }
    let want_reason = expected
        .get("http_reason")
        .and_then(Json::str)
        .unwrap_or("");
    if err.reason() != want_reason {
        return Err(format!(
            "reason {:?}, expected {want_reason:?}",
            err.reason()
        ));
    }
    let want_message = expected.get("message").and_then(Json::str).unwrap();
    if check_message && err.log_text() != want_message {
        return Err(format!(
            "message {:?}, expected {want_message:?}",
            err.log_text()
        ));
    }
    Ok(())
}

fn vector_files(kind: &str) -> Vec<PathBuf> {
    let dir = vectors_dir().join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    files.sort();
    files
}

/// Runs one vector in every split pattern; returns the failures.
fn run_vector(kind: &str, http: &Path) -> Vec<String> {
    let data = decode_http(&fs::read(http).unwrap());
    let expected = json::parse(&fs::read_to_string(http.with_extension("json")).unwrap()).unwrap();
    let cfg = config_for(expected.get("settings").unwrap());
    // The harness peer has no IP: trusted front end, allowed to send PROXY headers.
    let peer = Peer::unix();
    let mut failures = Vec::new();
    let patterns = split_patterns(&data);
    // Every pattern through the incremental parser; a few also through the stateless one
    // (byte-by-byte is quadratic there, so it is left out).
    let runs = patterns
        .iter()
        .map(|(name, chunks)| (name.clone(), chunks, true))
        .chain(
            patterns
                .iter()
                .filter(|(name, _)| name == "whole" || name == "by 7")
                .map(|(name, chunks)| (format!("{name}, stateless"), chunks, false)),
        );
    for (pattern, chunks, incremental) in runs {
        let result = run_connection(chunks, &cfg, &peer, incremental);
        let outcome = match kind {
            "valid" => result
                .map_err(|e| format!("raised {}: {e}", e.name()))
                .and_then(|seen| check_valid(&seen, &expected)),
            // Some messages (e.g. LimitRequestLine sizes) depend on how the bytes were split;
            // the JSON records the whole-input run.
            _ => check_invalid(result, &expected, pattern.starts_with("whole")),
        };
        if let Err(why) = outcome {
            failures.push(format!(
                "{kind}/{} [{pattern}]: {why}",
                http.file_stem().unwrap().to_string_lossy()
            ));
        }
    }
    failures
}

#[test]
fn gunicorn_vectors() {
    let mut total = 0;
    let mut passed = 0;
    let mut failures = Vec::new();
    for kind in ["valid", "invalid"] {
        let files = vector_files(kind);
        let mut kind_passed = 0;
        for http in &files {
            let vector_failures = run_vector(kind, http);
            if vector_failures.is_empty() {
                kind_passed += 1;
            }
            failures.extend(vector_failures);
        }
        println!(
            "{kind}: {kind_passed}/{} vectors pass in every split pattern",
            files.len()
        );
        total += files.len();
        passed += kind_passed;
    }
    for failure in &failures {
        println!("FAIL {failure}");
    }
    println!("gunicorn vectors: {passed}/{total}");
    assert_eq!(total, 143, "vector set incomplete");
    assert_eq!(passed, total, "{} failing runs", failures.len());
}

#[test]
fn http_escapes_decode_like_treq() {
    assert_eq!(
        decode_http(b"GET / HTTP/1.1\\r\\n\n\\r\\n"),
        b"GET / HTTP/1.1\r\n\r\n"
    );
    assert_eq!(decode_http(b"a\\0b\\nc\\td\\x0De"), b"a\0b\nc\td\re");
}
