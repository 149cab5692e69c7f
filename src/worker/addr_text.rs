//! Peer addresses and ports as text, as `Display` writes them: every connection of a TCP
//! listener needs its peer's (`REMOTE_ADDR`, `REMOTE_PORT`, forwarder checks), and the
//! formatting machinery costs more than the connection's parsing.

/// An address as `Display` shows it, without the formatting machinery for IPv4.
pub fn ip(addr: std::net::IpAddr) -> String {
    match addr {
        std::net::IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(&mut out, octet.into());
            }
            out
        }
        v6 => v6.to_string(),
    }
}

/// `n` in decimal.
pub fn decimal(n: u32) -> String {
    let mut out = String::with_capacity(10);
    push_decimal(&mut out, n);
    out
}

fn push_decimal(out: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // ASCII digits: always valid UTF-8.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ports_read_as_display_shows_them() {
        for text in ["0.0.0.0", "127.0.0.1", "10.20.30.255", "::1", "fe80::1:2"] {
            let parsed: std::net::IpAddr = text.parse().unwrap();
            assert_eq!(ip(parsed), parsed.to_string());
        }
        for n in [0u32, 7, 10, 65535, u32::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }
}
