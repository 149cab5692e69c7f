//! `ciphers`: an OpenSSL cipher string (what Python's `SSLContext.set_ciphers` takes) mapped onto
//! the TLS 1.2 suites rustls has. Like OpenSSL, the string selects TLS 1.2 suites only (TLS 1.3
//! suites stay enabled), unknown words select nothing, and a string that selects nothing is an
//! error ("No cipher can be selected.").

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::cipher_suite as cs;

/// The TLS 1.2 suites rustls (with ring) offers, by OpenSSL name, with the keywords OpenSSL
/// classifies them under.
fn tls12() -> Vec<(&'static str, &'static [&'static str], SupportedCipherSuite)> {
    vec![
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            &["ECDSA", "aECDSA", "AES", "AES256", "AESGCM", "SHA384"],
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-RSA-AES256-GCM-SHA384",
            &["RSA", "aRSA", "AES", "AES256", "AESGCM", "SHA384"],
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            &["ECDSA", "aECDSA", "CHACHA20", "SHA256"],
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "ECDHE-RSA-CHACHA20-POLY1305",
            &["RSA", "aRSA", "CHACHA20", "SHA256"],
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            &["ECDSA", "aECDSA", "AES", "AES128", "AESGCM", "SHA256"],
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            &["RSA", "aRSA", "AES", "AES128", "AESGCM", "SHA256"],
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
    ]
}

const COMMON_KEYWORDS: [&str; 8] = [
    "ALL", "DEFAULT", "HIGH", "ECDHE", "EECDH", "kECDHE", "TLSv1.2", "AEAD",
];

fn matches(name: &str, keywords: &[&str], expr: &str) -> bool {
    expr.split('+')
        .all(|part| part == name || keywords.contains(&part) || COMMON_KEYWORDS.contains(&part))
}

/// The TLS 1.2 suites an OpenSSL cipher string selects, in its order.
pub fn select(spec: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = tls12();
    let mut chosen: Vec<usize> = Vec::new();
    let mut banned: Vec<usize> = Vec::new();
    for token in spec
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if token.starts_with('@') {
            continue; // @STRENGTH, @SECLEVEL=n: ordering and policy knobs, no suite changes
        }
        let (op, expr) = match token.as_bytes()[0] {
            b'!' | b'-' | b'+' => (token.as_bytes()[0], &token[1..]),
            _ => (0, token),
        };
        let hits: Vec<usize> = (0..all.len())
            .filter(|&i| matches(all[i].0, all[i].1, expr))
            .collect();
        match op {
            b'!' => {
                banned.extend(&hits);
                chosen.retain(|i| !hits.contains(i));
            }
            b'-' => chosen.retain(|i| !hits.contains(i)),
            b'+' => {
                let moved: Vec<usize> = chosen
                    .iter()
                    .copied()
                    .filter(|i| hits.contains(i))
                    .collect();
                chosen.retain(|i| !hits.contains(i));
                chosen.extend(moved);
            }
            _ => {
                for i in hits {
                    if !banned.contains(&i) && !chosen.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    if chosen.is_empty() {
        return Err("('No cipher can be selected.',)".to_string());
    }
    Ok(chosen.into_iter().map(|i| all[i].2).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        select(spec)
            .unwrap()
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    #[test]
    fn common_strings() {
        assert_eq!(names("ECDHE-RSA-AES128-GCM-SHA256").len(), 1);
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 6);
        assert_eq!(names("ECDHE+AESGCM").len(), 4);
        assert_eq!(names("ECDHE+AESGCM:!ECDSA").len(), 2);
        assert_eq!(names("EECDH+CHACHA20:EECDH+AES128:-ECDSA").len(), 2);
    }

    #[test]
    fn nothing_selected_is_an_error() {
        assert!(select("RC4-MD5").is_err());
        assert!(select("!ALL").is_err());
    }
}
