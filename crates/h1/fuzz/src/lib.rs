//! The fuzz oracle for `rgun_h1`: one input is a parser configuration (2 bytes) followed by
//! the bytes a client sends on one connection. [`check`] serves that connection the way
//! rgun's worker does (head, body, next head... until close, error or end of input) several
//! times, with the input cut into different reads, and panics if any invariant breaks:
//!
//! * no panic anywhere in the codec (the fuzzer reports panics itself);
//! * a completed head consumed `0 < used <= buf.len()` bytes, a body decoder never consumed
//!   more than it was given and never produced more than its Content-Length;
//! * the same bytes give the same result (requests, bodies, trailers, final error class and
//!   status) whether they arrive whole, byte by byte or in pseudo-random splits, through the
//!   incremental [`HeadParser`] or the stateless [`parse_head`];
//! * the peer's EOF only resolves a stall: without EOF the connection yields a prefix of the
//!   requests it yields with EOF, and an error seen without EOF is seen with it too;
//! * one response per request: every parsed request gets one, an error with a status gets
//!   exactly one more (a well-formed `error_page` with a correct Content-Length), NoMoreData
//!   none, and nothing is parsed after an error or after a request that closes the connection.

use rgun_h1::{
    BodyDecoder, BodyFraming, HeadParser, HeaderMapPolicy, ParseError, ParserConfig, Peer,
    ProxyMode, RequestHead, Status, error_page, parse_head, parse_head_eof,
};

/// Parser settings and peer facts chosen by the input's first two bytes.
pub struct Setup {
    pub cfg: ParserConfig,
    pub peer: Peer,
}

/// Decodes the 2-byte configuration prefix. Bit layout of `a`: 0 obs-fold, 1 strip spaces,
/// 2 casefold, 3 unconventional method, 4 unconventional version, 5-6 header_map,
/// 7 small limits. `b`: 0-1 proxy mode, 2 trusted peer, 3 proxy allowed, 4 TLS,
/// 5 no request-line limit, 6 tiny limits.
pub fn setup(a: u8, b: u8) -> Setup {
    let mut cfg = if b & 0x40 != 0 {
        ParserConfig::from_settings(12, 2, 8)
    } else if a & 0x80 != 0 {
        ParserConfig::from_settings(40, 4, 30)
    } else {
        ParserConfig::default()
    };
    if b & 0x20 != 0 {
        cfg.limit_request_line = 0;
    }
    cfg.permit_obsolete_folding = a & 1 != 0;
    cfg.strip_header_spaces = a & 2 != 0;
    cfg.casefold_http_method = a & 4 != 0;
    cfg.permit_unconventional_http_method = a & 8 != 0;
    cfg.permit_unconventional_http_version = a & 16 != 0;
    cfg.header_map = match (a >> 5) & 3 {
        1 => HeaderMapPolicy::Refuse,
        2 => HeaderMapPolicy::Dangerous,
        _ => HeaderMapPolicy::Drop,
    };
    cfg.proxy_protocol = match b & 3 {
        1 => ProxyMode::V1,
        2 => ProxyMode::V2,
        3 => ProxyMode::Auto,
        _ => ProxyMode::Off,
    };
    let peer = Peer {
        trusted: b & 4 != 0,
        proxy_allowed: b & 8 != 0,
        is_tls: b & 16 != 0,
        ip: (b & 4 == 0).then(|| "10.0.0.1".to_owned()),
    };
    Setup { cfg, peer }
}

/// The 2-byte prefix that selects gunicorn's defaults with a trusted, proxy-allowed peer
/// (what the vectors expect), plus the vector's own settings.
pub fn prefix_for(
    obs_fold: bool,
    strip: bool,
    casefold: bool,
    unconventional_method: bool,
    header_map: HeaderMapPolicy,
    proxy: ProxyMode,
) -> [u8; 2] {
    let mut a = 0u8;
    a |= u8::from(obs_fold);
    a |= u8::from(strip) << 1;
    a |= u8::from(casefold) << 2;
    a |= u8::from(unconventional_method) << 3;
    a |= match header_map {
        HeaderMapPolicy::Drop => 0,
        HeaderMapPolicy::Refuse => 1,
        HeaderMapPolicy::Dangerous => 2,
    } << 5;
    let b = match proxy {
        ProxyMode::Off => 0,
        ProxyMode::V1 => 1,
        ProxyMode::V2 => 2,
        ProxyMode::Auto => 3,
    } | 4
        | 8;
    [a, b]
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The last request closes the connection, or the input ended between requests.
    Clean,
    /// More bytes are needed (only without EOF).
    Stalled,
    /// A parse error: its class, the status gunicorn answers with (`None`: no response), and
    /// whether it is one of the checks gunicorn makes on an *incomplete* line or section
    /// (so whether it fires depends on how the bytes were read; see [`equivalent`]).
    Error(&'static str, Option<u16>, bool),
}

/// One parsed request with its decoded body and trailers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub head: Box<RequestHead>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub requests: Vec<Served>,
    pub end: End,
    /// Responses a server would write: one per request, one per error page.
    pub responses: usize,
}

fn fail(err: &ParseError, requests: Vec<Served>) -> Outcome {
    let status = err.status();
    // The error page a worker writes must be well formed.
    match (status, err.response()) {
        (Some(code), Some(page)) => check_page(code, err.reason(), &page),
        (None, None) => {}
        (s, p) => panic!("status {s:?} but response {:?}", p.map(|p| p.len())),
    }
    if let Some(code) = status {
        check_page(
            code,
            err.reason(),
            &error_page(code, err.reason(), &err.message()),
        );
    }
    let _ = err.log_text();
    let responses = requests.len() + usize::from(status.is_some());
    Outcome {
        requests,
        end: End::Error(err.name(), status, read_sensitive(err)),
        responses,
    }
}

/// gunicorn's checks on incomplete input: the request-line limit, "max buffer headers", the
/// trailer-section cap, the chunk-size line cap ("line over N bytes") and the early bare-LF
/// rejection. Each fires or not depending on where the reads ended.
fn read_sensitive(err: &ParseError) -> bool {
    let text = err.log_text();
    err.name() == "LimitRequestLine"
        || [
            "bare LF as line terminator",
            "max buffer headers",
            "trailer section size",
            "with no terminator",
        ]
        .iter()
        .any(|m| text.contains(m))
}

fn check_page(code: u16, reason: &str, page: &[u8]) {
    let start = format!("HTTP/1.1 {code} {reason}\r\n");
    assert!(page.starts_with(start.as_bytes()), "bad status line");
    let end = page
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("error page head ends");
    let head = std::str::from_utf8(&page[..end]).expect("ascii head");
    let cl: usize = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .expect("numeric Content-Length");
    assert_eq!(cl, page.len() - end - 4, "error page Content-Length");
}

/// Serves one connection from `chunks` (the reads, in order). `eof`: the peer closes after
/// the last chunk. `incremental`: [`HeadParser`] rather than [`parse_head`].
pub fn serve(chunks: &[&[u8]], s: &Setup, incremental: bool, eof: bool) -> Outcome {
    let (cfg, peer) = (&s.cfg, &s.peer);
    let mut reads = chunks.iter();
    let mut parser = HeadParser::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut requests: Vec<Served> = Vec::new();
    let mut first = true;
    loop {
        let (head, used) = loop {
            let status = if incremental {
                parser.parse(&buf, cfg, peer, first)
            } else {
                parse_head(&buf, cfg, peer, first)
            };
            match status {
                Err(e) => return fail(&e, requests),
                Ok(Status::Complete((head, used))) => {
                    assert!(
                        used > 0 && used <= buf.len(),
                        "head used {used} of {}",
                        buf.len()
                    );
                    break (head, used);
                }
                Ok(Status::Partial) => match reads.next() {
                    Some(chunk) => buf.extend_from_slice(chunk),
                    None if !eof => {
                        let responses = requests.len();
                        return Outcome {
                            requests,
                            end: End::Stalled,
                            responses,
                        };
                    }
                    None => {
                        let at_eof = if incremental {
                            parser.eof(&buf, cfg, peer, first)
                        } else {
                            parse_head_eof(&buf, cfg, peer, first)
                        };
                        return match at_eof {
                            Some(e) => fail(&e, requests),
                            None => {
                                assert!(buf.is_empty(), "EOF with a pending head but no error");
                                let responses = requests.len();
                                Outcome {
                                    requests,
                                    end: End::Clean,
                                    responses,
                                }
                            }
                        };
                    }
                },
            }
        };
        buf.drain(..used);
        first = false;
        if head.proxy.is_some() {
            assert!(cfg.proxy_protocol != ProxyMode::Off && peer.proxy_allowed);
        }

        let mut decoder = BodyDecoder::new(&head.body, cfg);
        let mut body = Vec::new();
        loop {
            let before = body.len();
            let used = match decoder.decode(&buf, &mut body) {
                Ok(n) => n,
                Err(e) => return fail(&e, requests),
            };
            assert!(used <= buf.len(), "body used {used} of {}", buf.len());
            assert!(body.len() - before <= used, "more body out than input in");
            buf.drain(..used);
            if let BodyFraming::Length(n) = head.body {
                assert!(body.len() as u64 <= n, "body longer than Content-Length");
            }
            if decoder.is_done() {
                if let BodyFraming::Length(n) = head.body {
                    assert_eq!(body.len() as u64, n, "Length body done early");
                }
                break;
            }
            match reads.next() {
                Some(chunk) => buf.extend_from_slice(chunk),
                None if !eof => {
                    let responses = requests.len();
                    return Outcome {
                        requests,
                        end: End::Stalled,
                        responses,
                    };
                }
                None => {
                    if let Err(e) = decoder.decode_eof() {
                        return fail(&e, requests);
                    }
                    assert!(decoder.is_done());
                    break;
                }
            }
        }
        let close = head.should_close();
        if head.must_close {
            assert!(close);
        }
        let trailers = decoder.trailers().to_vec();
        requests.push(Served {
            head,
            body,
            trailers,
        });
        if close {
            let responses = requests.len();
            return Outcome {
                requests,
                end: End::Clean,
                responses,
            };
        }
    }
}

/// Read patterns for `data`, derived from `seed`: whole, byte by byte, 1 + rest, and
/// pseudo-random sizes.
pub fn splits(data: &[u8], seed: u64) -> Vec<Vec<&[u8]>> {
    let mut out = vec![vec![data], data.chunks(1).collect()];
    if data.len() > 1 {
        out.push(vec![&data[..1], &data[1..]]);
    }
    let mut state = seed | 1;
    for max in [3usize, 17, 200] {
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
        out.push(pieces);
    }
    out
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A short summary of an outcome (for the mutation driver's novelty heuristic).
pub fn signature(o: &Outcome) -> String {
    let framing: Vec<String> = o
        .requests
        .iter()
        .map(|r| format!("{:?}/{}", r.head.body, r.head.should_close()))
        .collect();
    format!(
        "{:?} {} {}",
        o.end,
        o.requests.len().min(4),
        framing.join(",")
    )
}

/// Whether two runs of the same bytes agree.
///
/// gunicorn's own verdict depends on how the bytes were read wherever it checks an
/// *incomplete* line or section (the request-line limit, "max buffer headers", the trailer
/// and chunk-size-line caps, the early bare-LF rejection), and rgun_h1 reproduces that. So
/// runs agree when they are equal, or when the one that stopped first stopped on such a
/// read-sensitive error and the requests before it are a prefix of the other run's
/// (with equal requests, two errors also agree when their statuses match).
pub fn equivalent(a: &Outcome, b: &Outcome) -> bool {
    if a == b {
        return true;
    }
    let sensitive = |o: &Outcome| matches!(o.end, End::Error(_, _, true));
    if let (End::Error(_, sa, _), End::Error(_, sb, _)) = (&a.end, &b.end)
        && a.requests == b.requests
        && sa == sb
    {
        return true;
    }
    let (short, long) = if a.requests.len() <= b.requests.len() {
        (a, b)
    } else {
        (b, a)
    };
    (sensitive(short) || (sensitive(long) && short.requests == long.requests))
        && long.requests.starts_with(&short.requests)
}

/// Runs every invariant on one fuzz input; returns the reference outcome.
pub fn check(input: &[u8]) -> Option<Outcome> {
    if input.len() < 2 {
        return None;
    }
    let s = setup(input[0], input[1]);
    let data = &input[2..];
    let reference = serve(&[data], &s, true, true);
    assert_eq!(
        reference.responses,
        reference.requests.len() + usize::from(matches!(reference.end, End::Error(_, Some(_), _)))
    );
    for chunks in splits(data, fnv(data)) {
        for incremental in [true, false] {
            // The stateless parser rescans the buffer per read: skip its byte-by-byte run
            // on big inputs to keep executions fast.
            if !incremental && chunks.len() > 512 {
                continue;
            }
            let got = serve(&chunks, &s, incremental, true);
            assert!(
                equivalent(&got, &reference),
                "split into {} reads (incremental {incremental}) differs from whole:\n{got:?}\n{reference:?}",
                chunks.len()
            );
        }
    }
    // Without the EOF: a prefix of the same requests, and the same error if one is seen.
    let open = serve(&[data], &s, true, false);
    assert!(open.requests.len() <= reference.requests.len());
    assert_eq!(open.requests[..], reference.requests[..open.requests.len()]);
    match &open.end {
        End::Error(..) => assert!(equivalent(&open, &reference), "error without EOF differs"),
        End::Clean => assert_eq!(open, reference, "clean end without EOF differs"),
        End::Stalled => {}
    }
    Some(reference)
}
