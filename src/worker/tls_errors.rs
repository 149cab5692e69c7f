//! How gunicorn names a TLS session that failed: the text of Python's `ssl.SSLError`, which is
//! OpenSSL's reason (`[SSL: CODE] text`), for the errors rustls reports. gunicorn logs it in
//! "Invalid request from ip=...: ..." (CPython's `(_ssl.c:N)` source location is left out).

use rustls::{AlertDescription, Error, PeerIncompatible};

use crate::observe;

/// gunicorn's first lines for a TLS session that failed (its `handle_error` for an `SSLError`),
/// whichever engine failed; `reason` is the `SSLError`'s text.
pub fn log_failed(ip: &str, reason: &str) {
    observe::debug("Error processing SSL request.");
    observe::warning(&format!("Invalid request from ip={ip}: {reason}"));
}

/// What a failed session tells the log, and what the client is sent.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub text: String,
    pub alert: Alert,
}

/// The alert a failed session sends.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Alert {
    /// The one rustls queued.
    Rustls,
    /// Nothing: OpenSSL answers a client that did not speak TLS at all with nothing.
    Nothing,
    /// A fatal `protocol_version` alert (OpenSSL's answer to a TLS version it does not
    /// accept; rustls says `handshake_failure`), as a plaintext record.
    ProtocolVersion,
}

impl Alert {
    /// The record to send instead of rustls' output, if any.
    pub const PROTOCOL_VERSION_RECORD: [u8; 7] = [21, 3, 3, 0, 2, 2, 70];
}

/// The first bytes a client sent, as many as [`describe`] looks at.
pub const FIRST: usize = 5;

/// OpenSSL's reason for `err`; `first` holds the connection's first bytes (up to [`FIRST`]).
pub fn describe(err: &Error, first: &[u8]) -> Failure {
    if !looks_like_tls(first) {
        // OpenSSL's record layer tells plain HTTP and proxy requests from other garbage.
        let text = if [&b"GET "[..], b"POST ", b"HEAD ", b"PUT "]
            .iter()
            .any(|m| first.starts_with(&m[..m.len().min(FIRST)]))
        {
            "http request"
        } else if first.starts_with(b"CONNE") {
            "https proxy request"
        } else {
            "wrong version number"
        };
        return Failure {
            text: reason(text),
            alert: Alert::Nothing,
        };
    }
    let text = match err {
        Error::AlertReceived(alert) => alert_text(*alert),
        Error::PeerIncompatible(
            PeerIncompatible::NoCipherSuitesInCommon | PeerIncompatible::NoKxGroupsInCommon,
        ) => "no shared cipher".to_string(),
        // TLS 1.0 and 1.1 clients: their hello lacks what TLS 1.2 requires.
        Error::PeerIncompatible(
            PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::SignatureAlgorithmsExtensionRequired
            | PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled,
        ) => {
            return Failure {
                text: reason("unsupported protocol"),
                alert: Alert::ProtocolVersion,
            };
        }
        Error::NoCertificatesPresented => "peer did not return a certificate".to_string(),
        Error::InvalidCertificate(_) => "certificate verify failed".to_string(),
        Error::DecryptError => "decryption failed or bad record mac".to_string(),
        other => {
            return Failure {
                text: format!("[SSL] {other}"),
                alert: Alert::Rustls,
            };
        }
    };
    Failure {
        text: reason(&text),
        alert: Alert::Rustls,
    }
}

/// `[SSL: CODE] text`, CODE being the text in capitals with underscores (OpenSSL's naming).
fn reason(text: &str) -> String {
    format!(
        "[SSL: {}] {text}",
        text.to_ascii_uppercase().replace(' ', "_")
    )
}

/// A TLS record starts with a content type (20-24) and major version 3.
fn looks_like_tls(first: &[u8]) -> bool {
    match first {
        [] => true,
        [t] => (20..=24).contains(t),
        [t, major, ..] => (20..=24).contains(t) && *major == 3,
    }
}

/// OpenSSL's text for an alert the client sent (SSLv3's alerts keep their SSLv3 names).
fn alert_text(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let (prefix, name) = match alert {
        A::UnexpectedMessage => ("sslv3 alert", "unexpected message"),
        A::BadRecordMac => ("sslv3 alert", "bad record mac"),
        A::DecompressionFailure => ("sslv3 alert", "decompression failure"),
        A::HandshakeFailure => ("sslv3 alert", "handshake failure"),
        A::NoCertificate => ("sslv3 alert", "no certificate"),
        A::BadCertificate => ("sslv3 alert", "bad certificate"),
        A::UnsupportedCertificate => ("sslv3 alert", "unsupported certificate"),
        A::CertificateRevoked => ("sslv3 alert", "certificate revoked"),
        A::CertificateExpired => ("sslv3 alert", "certificate expired"),
        A::CertificateUnknown => ("sslv3 alert", "certificate unknown"),
        A::IllegalParameter => ("sslv3 alert", "illegal parameter"),
        A::DecryptionFailed => ("tlsv1 alert", "decryption failed"),
        A::RecordOverflow => ("tlsv1 alert", "record overflow"),
        A::UnknownCA => ("tlsv1 alert", "unknown ca"),
        A::AccessDenied => ("tlsv1 alert", "access denied"),
        A::DecodeError => ("tlsv1 alert", "decode error"),
        A::DecryptError => ("tlsv1 alert", "decrypt error"),
        A::ExportRestriction => ("tlsv1 alert", "export restriction"),
        A::ProtocolVersion => ("tlsv1 alert", "protocol version"),
        A::InsufficientSecurity => ("tlsv1 alert", "insufficient security"),
        A::InternalError => ("tlsv1 alert", "internal error"),
        A::InappropriateFallback => ("tlsv1 alert", "inappropriate fallback"),
        A::UserCanceled => ("tlsv1 alert", "user cancelled"),
        A::NoRenegotiation => ("tlsv1 alert", "no renegotiation"),
        A::UnsupportedExtension => ("tlsv1", "unsupported extension"),
        A::CertificateUnobtainable => ("tlsv1", "certificate unobtainable"),
        A::UnrecognisedName => ("tlsv1", "unrecognized name"),
        A::BadCertificateStatusResponse => ("tlsv1", "bad certificate status response"),
        A::BadCertificateHashValue => ("tlsv1", "bad certificate hash value"),
        A::UnknownPSKIdentity => ("tlsv1 alert", "unknown psk identity"),
        A::CertificateRequired => ("tlsv13 alert", "certificate required"),
        A::MissingExtension => ("tlsv13 alert", "missing extension"),
        A::NoApplicationProtocol => ("tlsv1 alert", "no application protocol"),
        other => return format!("sslv3 alert {other:?}").to_ascii_lowercase(),
    };
    format!("{prefix} {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_clients_get_openssl_reasons_and_no_alert() {
        let err = Error::General("x".into());
        let http = describe(&err, b"GET /");
        assert_eq!(http.text, "[SSL: HTTP_REQUEST] http request");
        assert_eq!(http.alert, Alert::Nothing);
        assert_eq!(
            describe(&err, b"CONNE").text,
            "[SSL: HTTPS_PROXY_REQUEST] https proxy request"
        );
        assert_eq!(
            describe(&err, b"hello").text,
            "[SSL: WRONG_VERSION_NUMBER] wrong version number"
        );
        assert_eq!(describe(&err, b"POST ").text, http.text);
    }

    #[test]
    fn tls_clients_errors_and_alerts() {
        let hello = [22, 3, 1, 0, 200];
        let f = describe(&Error::AlertReceived(AlertDescription::UnknownCA), &hello);
        assert_eq!(
            f.text,
            "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca"
        );
        assert_eq!(f.alert, Alert::Rustls);
        let old = describe(
            &Error::PeerIncompatible(PeerIncompatible::SignatureAlgorithmsExtensionRequired),
            &hello,
        );
        assert_eq!(old.text, "[SSL: UNSUPPORTED_PROTOCOL] unsupported protocol");
        assert_eq!(old.alert, Alert::ProtocolVersion);
        assert_eq!(
            describe(
                &Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
                &hello
            )
            .text,
            "[SSL: NO_SHARED_CIPHER] no shared cipher"
        );
        assert_eq!(
            describe(&Error::NoCertificatesPresented, &hello).text,
            "[SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE] peer did not return a certificate"
        );
    }
}
