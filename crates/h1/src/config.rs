//! Parser configuration (gunicorn's settings after its own normalisation) and the peer facts
//! the header policy needs.

/// What to do with header names containing `_` (gunicorn's `header_map` setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeaderMapPolicy {
    /// Discard silently (gunicorn's default).
    #[default]
    Drop,
    /// Reject the request with `InvalidHeaderName`.
    Refuse,
    /// Keep them (they then collide with their `-` spelling in the WSGI environ).
    Dangerous,
}

impl HeaderMapPolicy {
    /// Parses gunicorn's setting value (`drop`, `refuse`, `dangerous`).
    pub fn from_setting(value: &str) -> Option<Self> {
        match value {
            "drop" => Some(Self::Drop),
            "refuse" => Some(Self::Refuse),
            "dangerous" => Some(Self::Dangerous),
            _ => None,
        }
    }
}

/// Which PROXY protocol versions a listener accepts before the first request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProxyMode {
    #[default]
    Off,
    V1,
    V2,
    Auto,
}

impl ProxyMode {
    /// Parses the validated gunicorn value (`off`, `v1`, `v2`, `auto`).
    pub fn from_setting(value: &str) -> Option<Self> {
        match value {
            "off" => Some(Self::Off),
            "v1" => Some(Self::V1),
            "v2" => Some(Self::V2),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }

    pub(crate) fn accepts_v1(self) -> bool {
        matches!(self, Self::V1 | Self::Auto)
    }

    pub(crate) fn accepts_v2(self) -> bool {
        matches!(self, Self::V2 | Self::Auto)
    }
}

/// gunicorn's hard ceiling for `limit_request_line`.
pub(crate) const MAX_REQUEST_LINE: usize = 8190;
/// gunicorn's ceiling (and fallback) for `limit_request_fields`.
pub(crate) const MAX_HEADERS: usize = 32768;
/// gunicorn's fallback for a non-positive `limit_request_field_size`.
pub(crate) const DEFAULT_MAX_HEADERFIELD_SIZE: usize = 8190;

/// Effective parser settings. The limits are stored already normalised, the way gunicorn's
/// `Request`/`Message` constructors normalise them, so the parser never re-derives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParserConfig {
    /// 0 = unlimited, else at most 8190.
    pub limit_request_line: usize,
    /// 1..=32768.
    pub limit_request_fields: usize,
    /// Never 0 (gunicorn maps a non-positive setting to 8190).
    pub limit_request_field_size: usize,
    pub permit_unconventional_http_method: bool,
    pub permit_unconventional_http_version: bool,
    pub casefold_http_method: bool,
    pub permit_obsolete_folding: bool,
    pub strip_header_spaces: bool,
    pub header_map: HeaderMapPolicy,
    /// Underscore header names a trusted peer may send; `"*"` allows all.
    pub forwarder_headers: Vec<String>,
    /// Upper-cased header name and the value that marks the request as https.
    pub secure_scheme_headers: Vec<(String, String)>,
    pub proxy_protocol: ProxyMode,
}

impl Default for ParserConfig {
    /// gunicorn's defaults: 4094-byte request line, 100 fields of 8190 bytes.
    fn default() -> Self {
        Self::from_settings(4094, 100, 8190)
    }
}

impl ParserConfig {
    /// Builds a config from gunicorn's raw limit settings, applying gunicorn's normalisation;
    /// every other field gets its gunicorn default and can be set directly afterwards.
    pub fn from_settings(
        limit_request_line: i64,
        limit_request_fields: i64,
        limit_request_field_size: i64,
    ) -> Self {
        let limit_request_line = if limit_request_line < 0 {
            MAX_REQUEST_LINE
        } else {
            // 0 stays 0 (unlimited); anything at or above the ceiling is clamped to it.
            usize::try_from(limit_request_line)
                .unwrap_or(MAX_REQUEST_LINE)
                .min(MAX_REQUEST_LINE)
        };
        let limit_request_fields =
            if limit_request_fields <= 0 || limit_request_fields > MAX_HEADERS as i64 {
                MAX_HEADERS
            } else {
                limit_request_fields as usize
            };
        let limit_request_field_size = if limit_request_field_size <= 0 {
            DEFAULT_MAX_HEADERFIELD_SIZE
        } else {
            usize::try_from(limit_request_field_size).unwrap_or(usize::MAX)
        };
        Self {
            limit_request_line,
            limit_request_fields,
            limit_request_field_size,
            permit_unconventional_http_method: false,
            permit_unconventional_http_version: false,
            casefold_http_method: false,
            permit_obsolete_folding: false,
            strip_header_spaces: false,
            header_map: HeaderMapPolicy::Drop,
            forwarder_headers: vec!["SCRIPT_NAME".into(), "PATH_INFO".into()],
            secure_scheme_headers: vec![
                ("X-FORWARDED-PROTOCOL".into(), "ssl".into()),
                ("X-FORWARDED-PROTO".into(), "https".into()),
                ("X-FORWARDED-SSL".into(), "on".into()),
            ],
            proxy_protocol: ProxyMode::Off,
        }
    }

    /// gunicorn's `max_buffer_headers`: the cap on a buffered header (or trailer) section.
    pub fn max_buffer_headers(&self) -> usize {
        self.limit_request_fields
            .saturating_mul(self.limit_request_field_size.saturating_add(2))
            .saturating_add(4)
    }
}

/// Facts about the connection's peer that the parser needs but cannot work out itself.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Peer {
    /// The peer is a trusted front end: its IP matches `forwarded_allow_ips`, or it has no IP
    /// (unix socket). Enables `secure_scheme_headers` and `forwarder_headers`.
    pub trusted: bool,
    /// The peer may send a PROXY header (`proxy_allow_ips` match, or unix socket).
    pub proxy_allowed: bool,
    /// The listener is TLS, so the scheme starts as `https`.
    pub is_tls: bool,
    /// The peer's IP as text, only used in the `ForbiddenProxyRequest` log message.
    pub ip: Option<String>,
}

impl Peer {
    /// A peer without an IP (unix socket, or gunicorn's test harness): trusted for everything.
    pub fn unix() -> Self {
        Self {
            trusted: true,
            proxy_allowed: true,
            is_tls: false,
            ip: None,
        }
    }
}
