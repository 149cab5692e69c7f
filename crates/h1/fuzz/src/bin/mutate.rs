//! A coverage-free mutation fuzzer on stable Rust: starts from the seed corpus, mutates with
//! HTTP-aware operators (a pseudo-random generator seeded from the command line, so a run is
//! reproducible), runs `rgun_h1_fuzz::check` on every input, and keeps inputs whose outcome
//! signature is new as further parents. A panic is written to `crashes/` and ends the run
//! with exit status 1.
//!
//! Usage: `mutate [--seconds N] [--seed S] [--max-len L] [--save DIR] CORPUS_DIR...`

use std::collections::HashSet;
use std::panic;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b" ",
    b"\t",
    b":",
    b"\x00",
    b"\x7f",
    b"\x80",
    b"\xff",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/0.9",
    b"HTTP/2",
    b"GET",
    b"POST",
    b"CONNECT",
    b"OPTIONS",
    b"*",
    b"/",
    b"?",
    b"#",
    b"%",
    b"%zz",
    b"%00",
    b"http://a:80/",
    b"[::1]",
    b"Host: a\r\n",
    b"Content-Length: ",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: ",
    b"chunked",
    b"identity",
    b"gzip",
    b", ",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Expect: 100-continue\r\n",
    b"Expect: ",
    b"X-Forwarded-Proto: https\r\n",
    b"X-Forwarded-Ssl: off\r\n",
    b"SCRIPT_NAME: /a\r\n",
    b"A_B: c\r\n",
    b" folded\r\n",
    b"0\r\n\r\n",
    b"5\r\nhello\r\n",
    b";ext=\"q\\\"\"",
    b";a=b",
    b"ffffffffffffffffff",
    b"0000000000000001",
    b"-1",
    b"+1",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP6 ::1 ::2 1 2\r\n",
    b"PROXY UNKNOWN\r\n",
    b"\r\n\r\n\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a",
    b"\x21\x11\x00\x0c",
    b"Trailer-X: 1\r\n",
    b"Content-Length: 99999999999999999999999\r\n",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, parent: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut d = parent.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = d.len();
        match rng.below(12) {
            // The 2-byte config prefix.
            0 if len >= 2 => {
                let i = rng.below(2);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 2 => {
                let i = 2 + rng.below(len - 2);
                d[i] ^= 1 << rng.below(8);
            }
            2 if len > 2 => {
                let i = 2 + rng.below(len - 2);
                d[i] = rng.next() as u8;
            }
            3 | 4 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = 2.min(len) + rng.below(len.saturating_sub(2) + 1);
                d.splice(i..i, t.iter().copied());
            }
            5 if len > 3 => {
                let i = 2 + rng.below(len - 2);
                let n = 1 + rng.below((len - i).min(16));
                d.drain(i..i + n);
            }
            6 if len > 3 => {
                // Overwrite with a token.
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = 2 + rng.below(len - 2);
                let end = (i + t.len()).min(len);
                d.splice(i..end, t.iter().copied());
            }
            7 if len > 3 => {
                // Duplicate a range (pipelining, repeated headers).
                let i = 2 + rng.below(len - 2);
                let n = 1 + rng.below((len - i).min(64));
                let copy = d[i..i + n].to_vec();
                let at = 2 + rng.below(len - 2);
                d.splice(at..at, copy);
            }
            8 if other.len() > 2 && len > 2 => {
                // Splice: our head, their tail.
                let i = 2 + rng.below(len - 2);
                let j = 2 + rng.below(other.len() - 2);
                d.truncate(i);
                d.extend_from_slice(&other[j..]);
            }
            9 if len > 2 => {
                let i = 2 + rng.below(len - 2);
                d.truncate(i);
            }
            10 if len > 2 => {
                // A long run of one byte (limits).
                let b = [b'a', b' ', b'0', b'\t', b'\r'][rng.below(5)];
                let n = [10usize, 100, 4100, 8200][rng.below(4)];
                let i = 2 + rng.below(len - 2);
                d.splice(i..i, std::iter::repeat_n(b, n));
            }
            _ if len > 2 => {
                // Change a digit (lengths, chunk sizes, versions).
                let digits: Vec<usize> = (2..len).filter(|&i| d[i].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    let i = digits[rng.below(digits.len())];
                    d[i] = b"0123456789abcdefABCDEF"[rng.below(22)];
                }
            }
            _ => d.extend_from_slice(b"\x00\x0cGET / HTTP/1.1\r\n\r\n"),
        }
    }
    d.truncate(max_len);
    d
}

fn main() {
    let mut seconds = 60u64;
    let mut seed = 1u64;
    let mut max_len = 20_000usize;
    let mut save: Option<PathBuf> = None;
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed S"),
            "--max-len" => {
                max_len = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--max-len L")
            }
            "--save" => save = Some(PathBuf::from(args.next().expect("--save DIR"))),
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for dir in &dirs {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            corpus.push(std::fs::read(&p).expect("read seed"));
        }
    }
    assert!(
        !corpus.is_empty(),
        "no seeds; usage: mutate [--seconds N] [--seed S] CORPUS_DIR..."
    );
    let seeds = corpus.len();
    // Panics are findings: report them ourselves, quietly.
    panic::set_hook(Box::new(|_| {}));
    let mut seen: HashSet<String> = HashSet::new();
    for input in &corpus {
        if let Ok(Some(o)) = panic::catch_unwind(|| rgun_h1_fuzz::check(input)) {
            seen.insert(rgun_h1_fuzz::signature(&o));
        } else if panic::catch_unwind(|| rgun_h1_fuzz::check(input)).is_err() {
            report(input, "seed");
        }
    }
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut execs = 0u64;
    let mut last_report = start;
    while Instant::now() < deadline {
        for _ in 0..64 {
            let parent = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            let input = mutate(&mut rng, parent, other, max_len);
            execs += 1;
            match panic::catch_unwind(|| rgun_h1_fuzz::check(&input)) {
                Ok(Some(o)) => {
                    let sig = rgun_h1_fuzz::signature(&o);
                    if corpus.len() < 50_000 && seen.insert(sig) {
                        if let Some(dir) = &save {
                            let _ = std::fs::create_dir_all(dir);
                            let _ =
                                std::fs::write(dir.join(format!("n{:05}", corpus.len())), &input);
                        }
                        corpus.push(input);
                    }
                }
                Ok(None) => {}
                Err(_) => report(&input, &format!("seed {seed}, exec {execs}")),
            }
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "#{execs} {:.0}s {:.0} exec/s corpus {} signatures {}",
                start.elapsed().as_secs_f64(),
                execs as f64 / start.elapsed().as_secs_f64(),
                corpus.len(),
                seen.len()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "done: {execs} executions in {secs:.0}s ({:.0}/s), seed {seed}, {seeds} seeds, corpus grew to {}, {} outcome signatures, 0 crashes",
        execs as f64 / secs,
        corpus.len(),
        seen.len()
    );
}

fn report(input: &[u8], what: &str) -> ! {
    let _ = panic::take_hook();
    let dir = PathBuf::from("crashes");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!(
        "crash-{:016x}",
        input
            .iter()
            .fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b))
    ));
    let _ = std::fs::write(&path, input);
    eprintln!(
        "CRASH ({what}), input written to {}: {:?}",
        path.display(),
        String::from_utf8_lossy(input)
    );
    // Re-run with the default hook so the panic message is shown.
    let _ = rgun_h1_fuzz::check(input);
    std::process::exit(1);
}
