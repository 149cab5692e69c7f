//! Which peers are trusted front ends: `forwarded_allow_ips` (and `proxy_allow_ips`) as lists of
//! IPs and CIDR networks, or `*`. Plain IPs count as /32 or /128; no IPv4-mapped normalisation,
//! as in gunicorn.

use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct AllowList {
    any: bool,
    nets: Vec<(IpAddr, u8)>,
}

impl AllowList {
    /// Builds from validated entries (`"*"`, `"10.0.0.0/8"`, `"::1"`). Unparsable entries never match.
    pub fn new(entries: &[String]) -> AllowList {
        let mut list = AllowList::default();
        for e in entries {
            let e = e.trim();
            if e == "*" {
                list.any = true;
                continue;
            }
            let (ip, prefix) = match e.split_once('/') {
                Some((ip, p)) => (ip, p.parse::<u8>().ok()),
                None => (e, None),
            };
            if let Ok(ip) = ip.parse::<IpAddr>() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                list.nets.push((ip, prefix.unwrap_or(max).min(max)));
            }
        }
        list
    }

    /// Whether `ip` is allowed; `None` (a unix socket peer) always is.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        self.any
            || self
                .nets
                .iter()
                .any(|(net, prefix)| contains(*net, *prefix, ip))
    }
}

fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &[&str]) -> AllowList {
        AllowList::new(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn ips_and_networks() {
        let a = l(&["127.0.0.1", "::1", "10.0.0.0/8"]);
        assert!(a.allows(Some("127.0.0.1".parse().unwrap())));
        assert!(a.allows(Some("10.2.3.4".parse().unwrap())));
        assert!(!a.allows(Some("11.0.0.1".parse().unwrap())));
        assert!(a.allows(Some("::1".parse().unwrap())));
        assert!(!a.allows(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(a.allows(None));
        assert!(l(&["*"]).allows(Some("8.8.8.8".parse().unwrap())));
    }
}
