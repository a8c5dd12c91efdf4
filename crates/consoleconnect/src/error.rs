//! Errors of the Console Connect client and how HTTP responses map onto them.

use std::time::Duration;

use super::endpoint::Endpoint;
use super::key::ApiKey;

/// Longest service message kept in an error, in characters; enough for any validation message,
/// short enough for a Kubernetes status condition.
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 401 or 403: the key is wrong, revoked, or does not belong to the company.
    #[error("Console Connect refused the API key (HTTP {status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// 401 "Access denied": the key is valid but lacks a permission. `needs` lists the
    /// actions the service named (`accessRequests`).
    #[error(
        "the API key may not do this in Console Connect (HTTP {status}: access denied{}); \
         grant the key's user these permissions or use another key",
        needs_suffix(needs)
    )]
    AccessDenied { status: u16, needs: Vec<String> },
    #[error("not found on Console Connect: {message}")]
    NotFound { message: String },
    /// 400 or 422; `message` is the service's own explanation.
    #[error("Console Connect rejected the request (HTTP {status}): {message}")]
    InvalidRequest { status: u16, message: String },
    #[error("Console Connect is throttling requests{}", retry_after_suffix(*.retry_after))]
    Throttled { retry_after: Option<Duration> },
    #[error("Console Connect server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    /// No HTTP response. `endpoint` is `None` only when the HTTP client itself could not be built.
    #[error("{}", transport_message(*.endpoint, message))]
    Transport {
        endpoint: Option<Endpoint>,
        message: String,
    },
    /// No complete response within the timeout. A create that timed out may still have been
    /// carried out by the service.
    #[error("Console Connect did not answer {endpoint} in time")]
    Timeout { endpoint: Endpoint },
    /// A successful response whose body is not what the endpoint returns.
    #[error("unexpected response body from {endpoint}: {message}")]
    Decode { endpoint: Endpoint, message: String },
    /// A successful response whose body is longer than `limit` bytes
    /// (`ClientConfig::max_body_bytes`): refused unread when its `Content-Length` says so, else
    /// dropped as soon as the limit was passed. Like a timeout, a create answered this way may
    /// have been carried out.
    #[error(
        "the answer to {endpoint} is larger than the client's limit of {}; it was not read{}",
        size(*.limit),
        too_large_hint(*.endpoint)
    )]
    BodyTooLarge { endpoint: Endpoint, limit: usize },
    #[error("unexpected HTTP status {status} from Console Connect: {message}")]
    UnexpectedStatus { status: u16, message: String },
}

impl Error {
    /// The wait the service asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status of the response, when there was one that was not a success.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { status, .. }
            | Error::AccessDenied { status, .. }
            | Error::InvalidRequest { status, .. }
            | Error::Server { status, .. }
            | Error::UnexpectedStatus { status, .. } => Some(*status),
            Error::NotFound { .. } => Some(404),
            Error::Throttled { .. } => Some(429),
            Error::Transport { .. }
            | Error::Timeout { .. }
            | Error::Decode { .. }
            | Error::BodyTooLarge { .. } => None,
        }
    }

    /// A stable snake_case name of the variant, for metrics labels and condition reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unauthorized { .. } => "unauthorized",
            Error::AccessDenied { .. } => "access_denied",
            Error::NotFound { .. } => "not_found",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::Throttled { .. } => "throttled",
            Error::Server { .. } => "server",
            Error::Transport { .. } => "transport",
            Error::Timeout { .. } => "timeout",
            Error::Decode { .. } => "decode",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::UnexpectedStatus { .. } => "unexpected_status",
        }
    }
}

impl Error {
    /// A refusal saying the connection name is already used in the company. The service's
    /// wording is not documented: this is our reading, kept in this one place.
    pub fn is_name_in_use(&self) -> bool {
        let Error::InvalidRequest { message, .. } = self else {
            return false;
        };
        let message = message.to_ascii_lowercase();
        message.contains("name")
            && [
                "in use",
                "already",
                "exists",
                "taken",
                "duplicate",
                "unique",
            ]
            .iter()
            .any(|hint| message.contains(hint))
    }
}

fn needs_suffix(needs: &[String]) -> String {
    if needs.is_empty() {
        String::new()
    } else {
        format!("; needs {}", needs.join(", "))
    }
}

fn retry_after_suffix(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(" (retry after {}s)", wait.as_secs_f64()),
        None => String::new(),
    }
}

/// `4 MiB`, `64 KiB`, or `1000 bytes`.
fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match bytes {
        0 => "0 bytes".to_owned(),
        b if b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

/// Only a search page grows with a setting; no other answer comes near the limit.
fn too_large_hint(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::SearchConnections => " (a smaller --search-page-size makes pages smaller)",
        _ => "",
    }
}

fn transport_message(endpoint: Option<Endpoint>, message: &str) -> String {
    match endpoint {
        Some(endpoint) => format!("could not reach Console Connect for {endpoint}: {message}"),
        None => format!("could not set up the Console Connect client: {message}"),
    }
}

/// Maps a non-success response to an error.
pub(crate) fn from_response(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    key: &ApiKey,
) -> Error {
    let message = || redact(&service_message(status, body), key);
    if let Some(needs) = access_denied(status, body) {
        return Error::AccessDenied { status, needs };
    }
    match status {
        401 | 403 => Error::Unauthorized {
            status,
            message: message(),
        },
        404 => Error::NotFound { message: message() },
        400 | 422 => Error::InvalidRequest {
            status,
            message: message(),
        },
        429 => Error::Throttled {
            retry_after: retry_after
                .and_then(|value| parse_retry_after(value, jiff::Timestamp::now())),
        },
        500..=599 => Error::Server {
            status,
            message: message(),
        },
        _ => Error::UnexpectedStatus {
            status,
            message: message(),
        },
    }
}

/// A 401/403 whose body says "Access denied" or lists `accessRequests` is a missing permission,
/// not a bad key (the spec's example of a permission denial). The actions are kept: they say
/// which permission to grant, and carry no secret.
fn access_denied(status: u16, body: &[u8]) -> Option<Vec<String>> {
    if !matches!(status, 401 | 403) {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = json.get("error").filter(|e| e.is_object()).unwrap_or(&json);
    let requests = error.get("accessRequests").and_then(|r| r.as_array());
    let denied = error
        .get("message")
        .and_then(|m| m.as_str())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("access denied"));
    if requests.is_none() && !denied {
        return None;
    }
    let needs = requests
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("action").and_then(|a| a.as_str()))
        .map(|action| truncate(action).chars().take(80).collect())
        .take(5)
        .collect();
    Some(needs)
}

/// `Retry-After` is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(now);
    // A date in the past means "now"; the signed duration is negative then.
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The service's explanation: the `message` of a JSON error body, else a short snippet of the
/// body, else the status's reason phrase.
pub(crate) fn service_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(message) = json_message(&json)
    {
        return truncate(message);
    }
    if text.is_empty() {
        return reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|code| code.canonical_reason())
            .unwrap_or("no response body")
            .to_owned();
    }
    truncate(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn json_message(json: &serde_json::Value) -> Option<&str> {
    let candidates = [
        json.pointer("/error/message"),
        json.get("error"),
        json.get("message"),
        json.pointer("/errors/0/message"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|value| value.as_str())
        .filter(|message| !message.trim().is_empty())
}

pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// serde quotes the offending value in its messages (`invalid type: string "…", expected
/// u32`, ``unknown variant `…` ``), and an answer's values may hold a secret (an OCID echoed
/// back, a key echoed by a proxy). This keeps what serde expected and the kind of value found,
/// and drops the value itself.
pub(crate) fn without_values(message: &str) -> String {
    const KIND_THEN_VALUE: [&str; 2] = ["invalid type: ", "invalid value: "];
    const NAME: [&str; 2] = ["unknown variant `", "unknown field `"];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let next = KIND_THEN_VALUE
            .iter()
            .chain(NAME.iter())
            .filter_map(|marker| rest.find(marker).map(|at| (at, *marker)))
            .min_by_key(|(at, _)| *at);
        let Some((at, marker)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        if marker.ends_with('`') {
            out.push_str("…`");
            rest = rest.find('`').map_or("", |end| &rest[end + 1..]);
        } else {
            // `string "…"`, `integer `5``, `map`: the kind stays, a quoted value goes.
            let kind_end = rest.find(['"', '`', ',']).unwrap_or(rest.len());
            out.push_str(rest[..kind_end].trim_end());
            rest = skip_quoted(&rest[kind_end..]);
        }
    }
}

/// `rest` after a leading `"…"` (Debug-escaped, as serde writes strings) or `` `…` ``.
fn skip_quoted(rest: &str) -> &str {
    let mut chars = rest.char_indices();
    let quote = match chars.next() {
        Some((_, quote @ ('"' | '`'))) => quote,
        _ => return rest,
    };
    let mut escaped = false;
    for (at, c) in chars {
        match c {
            _ if escaped => escaped = false,
            '\\' if quote == '"' => escaped = true,
            c if c == quote => return &rest[at + c.len_utf8()..],
            _ => {}
        }
    }
    ""
}

/// Defence in depth: a misbehaving proxy might echo the request headers back.
pub(crate) fn redact(text: &str, key: &ApiKey) -> String {
    let secret = key.expose();
    if secret.len() < 4 || !text.contains(secret) {
        return text.to_owned();
    }
    text.replace(secret, "<redacted>")
}

/// A one-line description of a transport failure, with its causes but without the URL.
pub(crate) fn describe_transport(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    truncate(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey::new("very-secret-key")
    }

    #[test]
    fn classifies_statuses() {
        let k = key();
        assert!(matches!(
            from_response(401, None, b"", &k),
            Error::Unauthorized { status: 401, .. }
        ));
        assert!(matches!(
            from_response(403, None, b"", &k),
            Error::Unauthorized { status: 403, .. }
        ));
        assert!(matches!(
            from_response(404, None, b"", &k),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            from_response(422, None, b"", &k),
            Error::InvalidRequest { status: 422, .. }
        ));
        assert!(matches!(
            from_response(503, None, b"", &k),
            Error::Server { status: 503, .. }
        ));
        assert!(matches!(
            from_response(418, None, b"", &k),
            Error::UnexpectedStatus { status: 418, .. }
        ));
        assert_eq!(
            from_response(429, Some("7"), b"", &k),
            Error::Throttled {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            from_response(429, Some("soon"), b"", &k),
            Error::Throttled { retry_after: None }
        );
    }

    #[test]
    fn access_denied_is_not_a_refused_key() {
        let k = key();
        let spec = br#"{"error":{"accessRequests":[{"action":"network:CreateConnection","resource":"cc-api:network::1:Connection/*"}],"message":"Access denied","status":401,"statusCode":401}}"#;
        let err = from_response(401, None, spec, &k);
        assert_eq!(
            err,
            Error::AccessDenied {
                status: 401,
                needs: vec!["network:CreateConnection".into()]
            }
        );
        assert!(
            err.to_string().contains("needs network:CreateConnection"),
            "{err}"
        );
        let flat = br#"{"message":"Access denied","status":401,"statusCode":401}"#;
        assert!(matches!(
            from_response(401, None, flat, &k),
            Error::AccessDenied { .. }
        ));
        let bad_key = br#"{"error":{"statusCode":401,"name":"UnauthorizedError","message":"Invalid API key"}}"#;
        assert!(matches!(
            from_response(401, None, bad_key, &k),
            Error::Unauthorized { .. }
        ));
        assert!(matches!(
            from_response(401, None, b"denied", &k),
            Error::Unauthorized { .. }
        ));
    }

    #[test]
    fn every_documented_error_shape_gives_its_message() {
        let shapes: [&[u8]; 3] = [
            br#"{"error":{"statusCode":400,"name":"BadRequestError","message":"speed too high"}}"#,
            br#"{"statusCode":400,"name":"BadRequestError","message":"speed too high"}"#,
            br#"{"message":"speed too high","status":400,"statusCode":400}"#,
        ];
        for body in shapes {
            assert_eq!(service_message(400, body), "speed too high");
        }
    }

    #[test]
    fn name_in_use_is_recognised_only_on_refusals_naming_the_name() {
        let refused = |message: &str| Error::InvalidRequest {
            status: 400,
            message: message.into(),
        };
        assert!(refused("Connection name 'net.a' is already in use").is_name_in_use());
        assert!(refused("A connection with this name already exists").is_name_in_use());
        assert!(!refused("'speed' exceeds the port's capacity").is_name_in_use());
        assert!(
            !Error::Server {
                status: 500,
                message: "name already in use".into()
            }
            .is_name_in_use()
        );
    }

    #[test]
    fn statuses_map_to_their_classes() {
        let k = key();
        let class = |status| from_response(status, None, b"", &k);
        assert!(matches!(class(429), Error::Throttled { .. }));
        for status in [500, 502, 503, 504] {
            assert!(matches!(class(status), Error::Server { .. }), "{status}");
        }
        for status in [400, 422] {
            assert!(
                matches!(class(status), Error::InvalidRequest { .. }),
                "{status}"
            );
        }
        for status in [401, 403] {
            assert!(
                matches!(class(status), Error::Unauthorized { .. }),
                "{status}"
            );
        }
        assert!(matches!(class(404), Error::NotFound { .. }));
        for status in [408, 409, 418] {
            assert!(
                matches!(class(status), Error::UnexpectedStatus { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn status_and_retry_after_accessors() {
        let throttled = Error::Throttled {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(throttled.status(), Some(429));
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            Error::NotFound {
                message: "x".into()
            }
            .status(),
            Some(404)
        );
        assert_eq!(
            Error::Timeout {
                endpoint: Endpoint::ListPorts
            }
            .status(),
            None
        );
        assert_eq!(
            Error::NotFound {
                message: "x".into()
            }
            .retry_after(),
            None
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2024-08-19T01:09:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Mon, 19 Aug 2024 01:09:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Mon, 19 Aug 2024 01:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("later", now), None);
    }

    #[test]
    fn extracts_service_messages() {
        let nested = br#"{"error":{"statusCode":400,"name":"BadRequestError","message":"'speed' is too high"}}"#;
        assert_eq!(service_message(400, nested), "'speed' is too high");
        assert_eq!(service_message(400, br#"{"message":"flat"}"#), "flat");
        assert_eq!(service_message(400, br#"{"error":"plain"}"#), "plain");
        assert_eq!(
            service_message(400, br#"{"errors":[{"message":"first"}]}"#),
            "first"
        );
        assert_eq!(service_message(404, b""), "Not Found");
        assert_eq!(
            service_message(502, b"<html>\n  <h1>Bad   Gateway</h1>\n</html>"),
            "<html> <h1>Bad Gateway</h1> </html>"
        );
        assert_eq!(service_message(400, br#"{"other":1}"#), r#"{"other":1}"#);
    }

    #[test]
    fn long_messages_are_truncated_on_char_boundaries() {
        let long = "é".repeat(1000);
        let message = service_message(400, long.as_bytes());
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn echoed_keys_are_redacted() {
        let body = br#"{"message":"bad header Authorization: Bearer very-secret-key"}"#;
        let err = from_response(400, None, body, &key());
        assert!(!err.to_string().contains("very-secret-key"));
        assert!(err.to_string().contains("<redacted>"));
    }

    #[test]
    fn values_from_the_body_are_dropped_from_serde_messages() {
        let cases = [
            (
                r#"item 0: invalid type: string "ocid1.secret \"x\", expected", expected struct Port"#,
                "item 0: invalid type: string, expected struct Port",
            ),
            (
                "invalid type: integer `12345`, expected a string at line 1 column 9",
                "invalid type: integer, expected a string at line 1 column 9",
            ),
            (
                "invalid type: map, expected a string",
                "invalid type: map, expected a string",
            ),
            (
                r#"invalid value: string "ocid1.abc", expected one of `a`, `b`"#,
                "invalid value: string, expected one of `a`, `b`",
            ),
            (
                "unknown variant `ocid1.abc`, expected `LAYER2`",
                "unknown variant `…`, expected `LAYER2`",
            ),
            ("missing field `id`", "missing field `id`"),
            (
                r#"expected {"results": [...]} or a JSON array"#,
                r#"expected {"results": [...]} or a JSON array"#,
            ),
            (
                r#"invalid type: string "never closed"#,
                "invalid type: string",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(without_values(message), expected, "{message}");
        }
    }

    #[test]
    fn body_too_large_names_the_limit_and_its_kind() {
        let err = Error::BodyTooLarge {
            endpoint: Endpoint::SearchConnections,
            limit: 4 * 1024 * 1024,
        };
        assert_eq!(
            err.to_string(),
            "the answer to search_connections is larger than the client's limit of 4 MiB; it \
             was not read (a smaller --search-page-size makes pages smaller)"
        );
        assert_eq!(err.kind(), "body_too_large");
        assert_eq!(err.status(), None);
        let err = Error::BodyTooLarge {
            endpoint: Endpoint::ListPorts,
            limit: 1000,
        };
        assert_eq!(
            err.to_string(),
            "the answer to list_ports is larger than the client's limit of 1000 bytes; it was \
             not read"
        );
        assert_eq!(size(64 * 1024), "64 KiB");
    }

    #[test]
    fn display_is_short_and_specific() {
        let err = Error::InvalidRequest {
            status: 400,
            message: "'destDcf' is required".into(),
        };
        assert_eq!(
            err.to_string(),
            "Console Connect rejected the request (HTTP 400): 'destDcf' is required"
        );
        assert_eq!(
            Error::Throttled {
                retry_after: Some(Duration::from_secs(2))
            }
            .to_string(),
            "Console Connect is throttling requests (retry after 2s)"
        );
        assert_eq!(
            Error::Timeout {
                endpoint: Endpoint::CreateLayer2
            }
            .to_string(),
            "Console Connect did not answer create_layer2 in time"
        );
    }
}
