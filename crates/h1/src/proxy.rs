//! PROXY protocol v1 (text) and v2 (binary) headers in front of a connection's first
//! request, validated the way gunicorn does (including its error texts).

use std::net::{Ipv4Addr, Ipv6Addr};

use memchr::memmem;

use crate::config::{Peer, ProxyMode};
use crate::error::ParseError;
use crate::text::latin1;

/// The v2 signature; it starts with CRLF CRLF so no HTTP request can look like it.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\x00\r\nQUIT\n";

/// What the PROXY header said (gunicorn's `req.proxy_protocol_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyInfo {
    /// `TCP4`, `TCP6`, or for v2 without addresses `LOCAL` / `UNSPEC`.
    pub proxy_protocol: &'static str,
    pub client_addr: Option<String>,
    pub client_port: Option<u16>,
    pub proxy_addr: Option<String>,
    pub proxy_port: Option<u16>,
}

impl ProxyInfo {
    fn without_addresses(proxy_protocol: &'static str) -> Self {
        Self {
            proxy_protocol,
            client_addr: None,
            client_port: None,
            proxy_addr: None,
            proxy_port: None,
        }
    }
}

/// Result of looking for a PROXY header at the start of a connection.
pub(crate) enum ProxyOutcome {
    /// Plain HTTP: a PROXY-enabled listener also serves clients that send no header.
    Absent,
    /// More bytes are needed to decide or to finish the header.
    Partial,
    /// A valid header of this many bytes.
    Found(ProxyInfo, usize),
}

pub(crate) fn parse_proxy(
    buf: &[u8],
    mode: ProxyMode,
    peer: &Peer,
) -> Result<ProxyOutcome, ParseError> {
    // gunicorn reads at least 12 bytes before deciding, whatever the mode.
    if buf.len() < 12 {
        return Ok(ProxyOutcome::Partial);
    }
    let is_v2 = mode.accepts_v2() && buf[..12] == V2_SIGNATURE[..];
    let is_v1 = !is_v2 && mode.accepts_v1() && buf.starts_with(b"PROXY ");
    if !is_v1 && !is_v2 {
        return Ok(ProxyOutcome::Absent);
    }
    if !peer.proxy_allowed {
        return Err(ParseError::ForbiddenProxyRequest(
            peer.ip.clone().unwrap_or_default(),
        ));
    }
    if is_v2 { parse_v2(buf) } else { parse_v1(buf) }
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`. gunicorn sets no length limit on the line.
fn parse_v1(buf: &[u8]) -> Result<ProxyOutcome, ParseError> {
    let Some(end) = memmem::find(buf, b"\r\n") else {
        return Ok(ProxyOutcome::Partial);
    };
    let line = latin1(&buf[..end]);
    let bits: Vec<&str> = line.split(' ').collect();
    if bits.len() != 6 {
        return Err(ParseError::InvalidProxyLine(line));
    }
    let proto = match bits[1] {
        "TCP4" => "TCP4",
        "TCP6" => "TCP6",
        other => {
            return Err(ParseError::InvalidProxyLine(format!(
                "protocol '{other}' not supported"
            )));
        }
    };
    let valid = |addr: &str| {
        if proto == "TCP4" {
            addr.parse::<Ipv4Addr>().is_ok()
        } else {
            addr.parse::<Ipv6Addr>().is_ok()
        }
    };
    if !valid(bits[2]) || !valid(bits[3]) {
        return Err(ParseError::InvalidProxyLine(line));
    }
    let port = |text: &str| python_int(text).and_then(|p| u16::try_from(p).ok());
    let (Some(client_port), Some(proxy_port)) = (port(bits[4]), port(bits[5])) else {
        return Err(ParseError::InvalidProxyLine(format!("invalid port {line}")));
    };
    let info = ProxyInfo {
        proxy_protocol: proto,
        client_addr: Some(bits[2].to_owned()),
        client_port: Some(client_port),
        proxy_addr: Some(bits[3].to_owned()),
        proxy_port: Some(proxy_port),
    };
    Ok(ProxyOutcome::Found(info, end + 2))
}

/// Python's `int(text)` for base 10: surrounding whitespace, a sign, and single `_` between
/// digits are allowed. Returns `None` for `ValueError` and for values outside `i64`.
fn python_int(text: &str) -> Option<i64> {
    let is_space = |c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c);
    let text = text.trim_matches(is_space);
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty() || bytes[0] == b'_' || bytes[bytes.len() - 1] == b'_' {
        return None;
    }
    let mut value: i64 = 0;
    let mut prev_underscore = false;
    for &b in bytes {
        match b {
            b'_' if !prev_underscore => prev_underscore = true,
            b'0'..=b'9' => {
                prev_underscore = false;
                value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
            }
            _ => return None,
        }
    }
    Some(if negative { -value } else { value })
}

/// The binary header: signature, version/command, family/protocol, length, addresses, TLVs.
fn parse_v2(buf: &[u8]) -> Result<ProxyOutcome, ParseError> {
    if buf.len() < 16 {
        return Ok(ProxyOutcome::Partial);
    }
    let (ver_cmd, fam_proto) = (buf[12], buf[13]);
    let length = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let version = ver_cmd >> 4;
    if version != 2 {
        return Err(ParseError::InvalidProxyHeader(format!(
            "unsupported version {version}"
        )));
    }
    let command = ver_cmd & 0x0f;
    if command > 1 {
        return Err(ParseError::InvalidProxyHeader(format!(
            "unsupported command {command}"
        )));
    }
    let total = 16 + length;
    if buf.len() < total {
        return Ok(ProxyOutcome::Partial);
    }
    if command == 0 {
        return Ok(ProxyOutcome::Found(
            ProxyInfo::without_addresses("LOCAL"),
            total,
        ));
    }
    let (family, protocol) = (fam_proto >> 4, fam_proto & 0x0f);
    if protocol != 1 {
        return Err(ParseError::InvalidProxyHeader(
            "only TCP protocol is supported".into(),
        ));
    }
    let addr = &buf[16..total];
    let port = |at: usize| u16::from_be_bytes([addr[at], addr[at + 1]]);
    let info = match family {
        1 => {
            if length < 12 {
                return Err(ParseError::InvalidProxyHeader(
                    "insufficient address data for IPv4".into(),
                ));
            }
            let v4 = |at: usize| {
                Ipv4Addr::new(addr[at], addr[at + 1], addr[at + 2], addr[at + 3]).to_string()
            };
            ProxyInfo {
                proxy_protocol: "TCP4",
                client_addr: Some(v4(0)),
                client_port: Some(port(8)),
                proxy_addr: Some(v4(4)),
                proxy_port: Some(port(10)),
            }
        }
        2 => {
            if length < 36 {
                return Err(ParseError::InvalidProxyHeader(
                    "insufficient address data for IPv6".into(),
                ));
            }
            let v6 = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&addr[at..at + 16]);
                format_ipv6(Ipv6Addr::from(octets))
            };
            ProxyInfo {
                proxy_protocol: "TCP6",
                client_addr: Some(v6(0)),
                client_port: Some(port(32)),
                proxy_addr: Some(v6(16)),
                proxy_port: Some(port(34)),
            }
        }
        0 => ProxyInfo::without_addresses("UNSPEC"),
        other => {
            return Err(ParseError::InvalidProxyHeader(format!(
                "unsupported address family {other}"
            )));
        }
    };
    Ok(ProxyOutcome::Found(info, total))
}

/// glibc's `inet_ntop(AF_INET6)`, which Python uses: like Rust's formatting, except that
/// IPv4-compatible addresses (`::a.b.c.d`) keep the dotted tail.
fn format_ipv6(addr: Ipv6Addr) -> String {
    let seg = addr.segments();
    if seg[..6] == [0; 6] && seg[6] != 0 {
        let o = addr.octets();
        return format!("::{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
    }
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(line: &str) -> Result<ProxyOutcome, ParseError> {
        parse_proxy(line.as_bytes(), ProxyMode::Auto, &Peer::unix())
    }

    #[test]
    fn v1_lines() {
        let Ok(ProxyOutcome::Found(info, len)) = v1("PROXY TCP4 1.2.3.4 5.6.7.8 1_0 +20\r\nGET")
        else {
            panic!("valid line");
        };
        assert_eq!(
            (info.client_port, info.proxy_port, len),
            (Some(10), Some(20), 36)
        );
        assert!(matches!(
            v1("PROXY TCP4 1.2.3.4 5.6.7.8 1"),
            Ok(ProxyOutcome::Partial)
        ));
        let err = v1("PROXY UNKNOWN a b c d\r\n").err().unwrap();
        assert_eq!(
            err.log_text(),
            "Invalid PROXY line: \"protocol 'UNKNOWN' not supported\""
        );
        let err = v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n").err().unwrap();
        assert_eq!(
            err.log_text(),
            "Invalid PROXY line: 'invalid port PROXY TCP4 1.2.3.4 5.6.7.8 1 65536'"
        );
        assert!(v1("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n").is_err());
        assert!(v1("PROXY TCP6 ::1 ::2 1 2\r\n").is_ok());
        assert!(v1("PROXY TCP6 1.2.3.4 ::2 1 2\r\n").is_err());
    }

    #[test]
    fn access_and_modes() {
        let peer = Peer {
            proxy_allowed: false,
            ip: Some("10.1.1.1".into()),
            ..Peer::default()
        };
        let err = parse_proxy(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyMode::V1, &peer)
            .err()
            .unwrap();
        assert_eq!(err.log_text(), "Proxy request from '10.1.1.1' not allowed");
        // v2-only listeners treat a v1 line as HTTP.
        assert!(matches!(
            parse_proxy(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyMode::V2, &peer),
            Ok(ProxyOutcome::Absent)
        ));
    }

    #[test]
    fn v2_headers() {
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        let Ok(ProxyOutcome::Found(info, 16)) = parse_proxy(&local, ProxyMode::V2, &Peer::unix())
        else {
            panic!("LOCAL");
        };
        assert_eq!(info.proxy_protocol, "LOCAL");
        let mut bad = V2_SIGNATURE.to_vec();
        bad.extend_from_slice(&[0x11, 0x11, 0x00, 0x00]);
        let err = parse_proxy(&bad, ProxyMode::V2, &Peer::unix())
            .err()
            .unwrap();
        assert_eq!(
            (err.log_text().as_str(), err.status()),
            ("Invalid PROXY header: unsupported version 1", Some(500))
        );
        let mut udp = V2_SIGNATURE.to_vec();
        udp.extend_from_slice(&[0x21, 0x12, 0x00, 0x0c]);
        udp.extend_from_slice(&[0; 12]);
        assert!(parse_proxy(&udp, ProxyMode::V2, &Peer::unix()).is_err());
        assert!(matches!(
            parse_proxy(&udp[..20], ProxyMode::V2, &Peer::unix()),
            Ok(ProxyOutcome::Partial)
        ));
    }

    #[test]
    fn ipv6_text_like_glibc() {
        assert_eq!(format_ipv6("::1.2.3.4".parse().unwrap()), "::1.2.3.4");
        assert_eq!(
            format_ipv6("::ffff:1.2.3.4".parse().unwrap()),
            "::ffff:1.2.3.4"
        );
        assert_eq!(format_ipv6("2001:db8::1".parse().unwrap()), "2001:db8::1");
        assert_eq!(format_ipv6("::1".parse().unwrap()), "::1");
    }
}
