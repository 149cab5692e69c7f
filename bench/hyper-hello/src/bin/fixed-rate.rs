//! fixed-rate: an open-loop (wrk2-style) HTTP/1.1 load client for loopback benchmarks.
//!
//! `fixed-rate PORT PATH RATE SECONDS CONNS` prints one JSON line on stdout.
//!
//! Connection i sends its k-th request at the intended time t0 + (k*CONNS + i) / RATE, so the
//! total offered rate is RATE whatever the server does. Latency is measured from the intended
//! time (no coordinated omission): a request that had to wait because its connection was still
//! busy with a slow response is charged that wait. The only part subtracted is the client's own
//! timer lag (tokio timers have 1 ms granularity): when a connection was already free at the
//! intended time, latency starts when the request was actually written.
//! Keep-alive is used when the server allows it; a closed connection is reopened (the reconnect
//! is part of the latency). Every request has a 5 s timeout; the run is bounded by SECONDS + 6 s.
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default)]
struct Stats {
    lat_us: Vec<u32>,
    errors: u64,
    non2xx: u64,
    reconnects: u64,
}

enum Outcome {
    Ok { status: u16, keep: bool },
    Closed,
}

async fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Write one request and read one response (Content-Length or close-delimited bodies).
async fn exchange(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<Outcome> {
    s.write_all(req).await?;
    buf.clear();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Outcome::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12).and_then(|x| x.parse().ok()).unwrap_or(0);
    let mut keep = head.starts_with("http/1.1");
    let mut clen: Option<usize> = None;
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            clen = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("connection:") {
            let v = v.trim();
            if v == "close" {
                keep = false;
            } else if v == "keep-alive" {
                keep = true;
            }
        }
    }
    let mut have = buf.len() - head_end;
    match clen {
        Some(n) => {
            while have < n {
                let r = s.read(&mut chunk).await?;
                if r == 0 {
                    return Ok(Outcome::Closed);
                }
                have += r;
            }
        }
        None => {
            keep = false;
            loop {
                if s.read(&mut chunk).await? == 0 {
                    break;
                }
            }
        }
    }
    Ok(Outcome::Ok { status, keep })
}

async fn conn_task(port: u16, req: Vec<u8>, idx: u64, conns: u64, rate: f64, t0: Instant, end: Instant) -> Stats {
    let mut st = Stats::default();
    let mut sock: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16384);
    let mut k: u64 = 0;
    loop {
        let intended = t0 + Duration::from_secs_f64((k * conns + idx) as f64 / rate);
        k += 1;
        if intended >= end {
            break;
        }
        let free_at = Instant::now();
        if free_at < intended {
            tokio::time::sleep_until(intended.into()).await;
        }
        let sent = Instant::now();
        // Timer lag is the client's fault; waiting for a busy connection is the server's.
        let start = if free_at <= intended { sent } else { intended };
        let mut done = false;
        for attempt in 0..2 {
            if sock.is_none() {
                match tokio::time::timeout(Duration::from_secs(5), connect(port)).await {
                    Ok(Ok(s)) => sock = Some(s),
                    _ => break,
                }
                if attempt > 0 || k > 1 {
                    st.reconnects += 1;
                }
            }
            let s = sock.as_mut().unwrap();
            match tokio::time::timeout(Duration::from_secs(5), exchange(s, &req, &mut buf)).await {
                Ok(Ok(Outcome::Ok { status, keep })) => {
                    let us = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    st.lat_us.push(us);
                    if !(200..400).contains(&status) {
                        st.non2xx += 1;
                    }
                    if !keep {
                        sock = None;
                    }
                    done = true;
                    break;
                }
                // A keep-alive connection the server had already closed: reopen and retry once.
                Ok(Ok(Outcome::Closed)) | Ok(Err(_)) => sock = None,
                Err(_) => {
                    sock = None;
                    break;
                }
            }
        }
        if !done {
            st.errors += 1;
        }
        if Instant::now() > end + Duration::from_secs(5) {
            break;
        }
    }
    st
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return -1.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 5 {
        eprintln!("usage: fixed-rate PORT PATH RATE SECONDS CONNS");
        std::process::exit(2);
    }
    let port: u16 = a[0].parse().expect("port");
    let path = a[1].clone();
    let rate: f64 = a[2].parse().expect("rate");
    let secs: f64 = a[3].parse().expect("seconds");
    let conns: u64 = a[4].parse().expect("conns");
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").into_bytes();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let all = rt.block_on(async move {
        let t0 = Instant::now() + Duration::from_millis(50);
        let end = t0 + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..conns)
            .map(|i| tokio::spawn(conn_task(port, req.clone(), i, conns, rate, t0, end)))
            .collect();
        let mut all = Stats::default();
        for t in tasks {
            if let Ok(s) = t.await {
                all.lat_us.extend(s.lat_us);
                all.errors += s.errors;
                all.non2xx += s.non2xx;
                all.reconnects += s.reconnects;
            }
        }
        all
    });
    let mut l = all.lat_us;
    l.sort_unstable();
    let n = l.len();
    println!(
        "{{\"requests\": {n}, \"rps\": {:.1}, \"target_rate\": {rate}, \"errors\": {}, \"non2xx\": {}, \"reconnects\": {}, \"p50\": {:.3}, \"p90\": {:.3}, \"p99\": {:.3}, \"p999\": {:.3}, \"max\": {:.3}}}",
        n as f64 / secs,
        all.errors,
        all.non2xx,
        all.reconnects,
        pct(&l, 50.0),
        pct(&l, 90.0),
        pct(&l, 99.0),
        pct(&l, 99.9),
        pct(&l, 100.0)
    );
}
