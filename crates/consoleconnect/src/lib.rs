//! Client of the Console Connect API, limited to what ordering Oracle FastConnect Layer 2
//! connections needs.
//!
//! The client never retries: a repeated create would order a second connection, because the
//! API has no idempotency key. Callers decide about retries from the [`Error`] variant (the
//! operator's `Diagnosis` gives each a reason and a retry policy) and [`Error::retry_after`].

mod endpoint;
mod error;
mod key;
mod types;

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Jitter, Quota};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use url::Url;

pub use endpoint::{Endpoint, endpoint_label};
pub use error::Error;
pub use key::ApiKey;
pub use types::{
    AssignedVlans, Capacity, ClassOfService, Connection, ConnectionStatus, ConnectionUpdate,
    DurationUnit, Layer2Request, Metro, MetroCapabilities, PaymentType, PendingRequest, Port,
    PortStatus, Resolution, SEARCHED_STATUSES, Speed, Traffic, TrafficSample, Utilization,
};

use error::{describe_transport, from_response, redact, truncate, without_values};
use types::Results;

pub const DEFAULT_BASE_URL: &str = "https://api.consoleconnect.com";
pub const USER_AGENT: &str = concat!("fastconnect-operator/", env!("CARGO_PKG_VERSION"));

/// Default of [`ClientConfig::max_body_bytes`]. The largest legitimate answer is a search page
/// at the operator's largest `--search-page-size` (1000): 0.75 to 0.9 MB in the sandbox (about
/// 0.9 KB per connection), so 4 MiB leaves room for connections four times richer, and 45 times
/// the default page of 100. It bounds memory per request: with 32 reconciles at once (the
/// operator's default) a hostile or broken service can make it hold about 128 MiB at worst,
/// where 32 MiB per answer allowed 1 GiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Of a non-success answer only this much is read: its status decides the error, and the
/// error keeps at most a few hundred characters of the body. A huge error page (a proxy's) is
/// cut here rather than turning a 503 or a 429 into a different error.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The rate-limit bucket of calls that name no company (Oracle's metros).
const ORACLE_SCOPE: &str = "oracle";

/// Spreads requests released by the rate limiter at the same instant.
const RATE_JITTER: Duration = Duration::from_millis(20);

/// Called after every request with the endpoint, the HTTP status (`None` when no response
/// arrived) and the time taken.
pub type Observer = Arc<dyn Fn(Endpoint, Option<u16>, Duration) + Send + Sync>;

/// reqwest is built without a bundled crypto provider, so rustls needs one installed per
/// process. Safe to call any number of times, also after another provider was installed.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub base_url: Url,
    pub connect_timeout: Duration,
    /// Limit for a whole request, from sending to the last byte of the body: the deadline
    /// that also cuts an answer trickling in (reqwest applies it to reading the body).
    pub request_timeout: Duration,
    /// Largest success answer read, in bytes; a larger one is [`Error::BodyTooLarge`], refused
    /// from its `Content-Length` before reading, or else as soon as the limit is passed.
    pub max_body_bytes: usize,
    /// Results asked for per page of a connection search.
    pub page_size: u32,
    /// Pages one search may take before it fails rather than return a partial list.
    pub max_pages: u32,
    /// Requests per second to one company, with bursts of up to `burst`; `None` sends at will.
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket: `per_second` requests a second on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: default_base_url(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            page_size: 100,
            max_pages: 200,
            rate_limit: Some(RateLimit {
                per_second: NonZeroU32::MIN.saturating_add(9),
                burst: NonZeroU32::MIN.saturating_add(19),
            }),
        }
    }
}

fn default_base_url() -> Url {
    match Url::parse(DEFAULT_BASE_URL) {
        Ok(url) => url,
        // The constant is a valid URL; `default_config_points_at_the_real_api` proves it.
        Err(err) => unreachable!("DEFAULT_BASE_URL does not parse: {err}"),
    }
}

/// Console Connect API client. Cloning is cheap and shares the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Url,
    observer: Option<Observer>,
    paging: Arc<Paging>,
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    max_body_bytes: usize,
}

/// How the service pages searches, as learnt from its answers.
#[derive(Debug)]
struct Paging {
    page_size: u32,
    max_pages: u32,
    /// The service has filled a page of `page_size`, so it honours our `count`, and a shorter
    /// page is the last. Until then a short page may only mean a smaller maximum page size of
    /// the service's (none is documented), so the search reads on until an empty page.
    honours_count: AtomicBool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url.as_str())
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// A response that arrived, before its status is judged.
struct RawResponse {
    status: u16,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        install_crypto_provider();
        let base_url = check_base_url(config.base_url)?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // The API does not redirect; following one could replay a create elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| Error::Transport {
                endpoint: None,
                message: describe_transport(err),
            })?;
        let limiter = config.rate_limit.map(|limit| {
            let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
            Arc::new(DefaultKeyedRateLimiter::keyed(quota))
        });
        Ok(Client {
            http,
            base_url,
            observer: None,
            paging: Arc::new(Paging {
                page_size: config.page_size.max(1),
                max_pages: config.max_pages.max(1),
                honours_count: AtomicBool::new(false),
            }),
            limiter,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// Registers a callback run after every request, e.g. to count requests for metrics.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Ports of `company` that are not deleted. The reference adds `?deleted=false`, but the
    /// spec documents no query parameter and its mock server refuses unknown ones, so deleted
    /// ports are left out here instead.
    pub async fn list_ports(&self, key: &ApiKey, company: &str) -> Result<Vec<Port>, Error> {
        let endpoint = Endpoint::ListPorts;
        let url = self.url(&["api", "company", segment(company, "company")?, "ports"]);
        let body = self
            .call(endpoint, company, key, self.http.get(url))
            .await?;
        let ports = decode::<Results<Port>>(endpoint, &body, key)?.results;
        Ok(ports.into_iter().filter(|p| !p.is_deleted()).collect())
    }

    /// Metros where Oracle can be reached, with their readiness and layer 2 capability.
    pub async fn oracle_metros(&self, key: &ApiKey) -> Result<Vec<Metro>, Error> {
        let endpoint = Endpoint::OracleMetros;
        let url = self.url(&["api", "company", "oracle", "metro", "capabilities"]);
        let body = self
            .call(endpoint, ORACLE_SCOPE, key, self.http.get(url))
            .await?;
        Ok(decode::<Results<Metro>>(endpoint, &body, key)?.results)
    }

    /// Orders a Layer 2 connection. Never retried here: each successful call orders one more
    /// connection, and a timeout or server error does not prove that none was ordered.
    pub async fn create_layer2(
        &self,
        key: &ApiKey,
        company: &str,
        request: &Layer2Request,
    ) -> Result<Connection, Error> {
        let endpoint = Endpoint::CreateLayer2;
        let url = self.url(&[
            "api",
            "v2",
            "company",
            segment(company, "company")?,
            "connections",
            "layer2",
        ]);
        let body = self
            .call(endpoint, company, key, self.http.put(url).json(request))
            .await?;
        decode(endpoint, &body, key)
    }

    /// One connection, by id (`GET /api/v2/company/{company}/connections/{id}`).
    pub async fn get_connection(
        &self,
        key: &ApiKey,
        company: &str,
        id: &str,
    ) -> Result<Connection, Error> {
        let endpoint = Endpoint::GetConnection;
        let url = self.connection_url(company, id)?;
        let body = self
            .call(endpoint, company, key, self.http.get(url))
            .await?;
        decode(endpoint, &body, key)
    }

    /// Every connection of `company` with `status`, read page by page (the search is paged and
    /// its `status` filter is required). Fails rather than return a partial list: a page that
    /// brings nothing new (the service ignored `page`), or more than `max_pages` pages.
    pub async fn search_connections(
        &self,
        key: &ApiKey,
        company: &str,
        status: &str,
    ) -> Result<Vec<Connection>, Error> {
        let paging = &self.paging;
        let mut found: Vec<Connection> = Vec::new();
        let mut seen = HashSet::new();
        for page in 1..=paging.max_pages {
            let batch = self.search_page(key, company, status, page).await?;
            let len = batch.len();
            let before = found.len();
            // A connection listed again (the list moved while we paged) is kept once.
            found.extend(batch.into_iter().filter(|c| seen.insert(c.id.clone())));
            if len == 0 {
                return Ok(found);
            }
            if found.len() == before {
                return Err(paging_error(format!(
                    "page {page} of the {status} search repeats earlier pages; the service \
                     seems to ignore `page`"
                )));
            }
            if len >= paging.page_size as usize {
                paging.honours_count.store(true, Ordering::Relaxed);
            } else if paging.honours_count.load(Ordering::Relaxed) {
                return Ok(found);
            }
        }
        Err(paging_error(format!(
            "the {status} search has more than {} pages of {}; raise --search-max-pages",
            paging.max_pages, paging.page_size
        )))
    }

    async fn search_page(
        &self,
        key: &ApiKey,
        company: &str,
        status: &str,
        page: u32,
    ) -> Result<Vec<Connection>, Error> {
        let endpoint = Endpoint::SearchConnections;
        let url = self.url(&[
            "api",
            "v2",
            "company",
            segment(company, "company")?,
            "connections",
        ]);
        let query = [
            ("page", page.to_string()),
            ("count", self.paging.page_size.to_string()),
            ("status", status.to_owned()),
        ];
        let request = self.http.get(url).query(&query);
        let body = self.call(endpoint, company, key, request).await?;
        Ok(decode::<Results<Connection>>(endpoint, &body, key)?.results)
    }

    /// Asks for the connection to be disconnected. `NotFound` means it is already gone.
    pub async fn delete_connection(
        &self,
        key: &ApiKey,
        company: &str,
        id: &str,
    ) -> Result<(), Error> {
        let endpoint = Endpoint::DeleteConnection;
        let url = self.connection_url(company, id)?;
        self.call(endpoint, company, key, self.http.delete(url))
            .await?;
        Ok(())
    }

    /// Lowers the speed or renames a connection (`POST /api/v2/company/{company}/connections/{id}`).
    /// Towards another company the service only lowers speed this way; a raise is a change
    /// request. Safe to repeat: it sets values, it adds nothing. The answer, when readable, is
    /// the connection as changed.
    pub async fn update_connection(
        &self,
        key: &ApiKey,
        company: &str,
        id: &str,
        update: &ConnectionUpdate,
    ) -> Result<Option<Connection>, Error> {
        let endpoint = Endpoint::UpdateConnection;
        let url = self.connection_url(company, id)?;
        let body = self
            .call(endpoint, company, key, self.http.post(url).json(update))
            .await?;
        Ok(answered_connection(endpoint, &body))
    }

    /// Opens the connection's change request for `speed_mbps`, or changes the speed of the one
    /// open (`PUT /api/company/{company}/connections/{id}/change`). A connection has one change
    /// request at a time, so repeating the call cannot open a second one.
    pub async fn request_change(
        &self,
        key: &ApiKey,
        company: &str,
        id: &str,
        speed_mbps: u32,
    ) -> Result<Option<Connection>, Error> {
        let endpoint = Endpoint::RequestChange;
        let url = self.connection_v1_url(company, id, "change")?;
        let request = self
            .http
            .put(url)
            .json(&serde_json::json!({ "speed": speed_mbps }));
        let body = self.call(endpoint, company, key, request).await?;
        Ok(answered_connection(endpoint, &body))
    }

    /// Withdraws the change request this company opened (`DELETE …/change`).
    pub async fn withdraw_change(
        &self,
        key: &ApiKey,
        company: &str,
        id: &str,
    ) -> Result<Option<Connection>, Error> {
        let endpoint = Endpoint::WithdrawChange;
        let url = self.connection_v1_url(company, id, "change")?;
        let body = self
            .call(endpoint, company, key, self.http.delete(url))
            .await?;
        Ok(answered_connection(endpoint, &body))
    }

    /// The connection's average traffic from `start` to `end` (unix seconds on the wire), from
    /// buckets of `resolution`. `None`: nothing measured in the window. A unit the client
    /// cannot convert is a decode error, never a wrong number.
    pub async fn connection_traffic(
        &self,
        key: &ApiKey,
        company: &str,
        id: &str,
        window: (jiff::Timestamp, jiff::Timestamp),
        resolution: Resolution,
    ) -> Result<Option<Traffic>, Error> {
        let endpoint = Endpoint::ConnectionUtilization;
        let url = self.connection_v1_url(company, id, "utilization")?;
        let (start, end) = window;
        let query = [
            ("start", start.as_second().to_string()),
            ("end", end.as_second().to_string()),
            ("resolution", resolution.as_str().to_owned()),
        ];
        let request = self.http.get(url).query(&query);
        let body = self.call(endpoint, company, key, request).await?;
        decode::<Utilization>(endpoint, &body, key)?
            .average()
            .map_err(|message| Error::Decode { endpoint, message })
    }

    /// `/api/v2/company/{company}/connections/{id}`: read, update and delete.
    fn connection_url(&self, company: &str, id: &str) -> Result<Url, Error> {
        Ok(self.url(&[
            "api",
            "v2",
            "company",
            segment(company, "company")?,
            "connections",
            segment(id, "connection id")?,
        ]))
    }

    /// `/api/company/{company}/connections/{id}/{action}`: `change`, `utilization`.
    fn connection_v1_url(&self, company: &str, id: &str, action: &str) -> Result<Url, Error> {
        Ok(self.url(&[
            "api",
            "company",
            segment(company, "company")?,
            "connections",
            segment(id, "connection id")?,
            action,
        ]))
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        // Cannot fail: `check_base_url` refused URLs that cannot have a path.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends one request, within the company's rate limit; any non-2xx answer becomes an
    /// error. Never retries.
    async fn call(
        &self,
        endpoint: Endpoint,
        company: &str,
        key: &ApiKey,
        request: reqwest::RequestBuilder,
    ) -> Result<RawResponse, Error> {
        let request = request
            .header(AUTHORIZATION, bearer(key)?)
            .header(ACCEPT, "application/json");
        if let Some(limiter) = &self.limiter {
            limiter
                .until_key_ready_with_jitter(&company.to_owned(), Jitter::up_to(RATE_JITTER))
                .await;
        }
        let started = Instant::now();
        let (status, result) = exchange(endpoint, request, self.max_body_bytes).await;
        if let Some(observer) = &self.observer {
            observer(endpoint, status, started.elapsed());
        }
        let response = result?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        Err(from_response(
            response.status,
            response.retry_after.as_deref(),
            &response.body,
            key,
        ))
    }
}

async fn exchange(
    endpoint: Endpoint,
    request: reqwest::RequestBuilder,
    max_body_bytes: usize,
) -> (Option<u16>, Result<RawResponse, Error>) {
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return (None, Err(transport_error(endpoint, err))),
    };
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header(RETRY_AFTER);
    let content_type = header(reqwest::header::CONTENT_TYPE);
    let too_large = Error::BodyTooLarge {
        endpoint,
        limit: max_body_bytes,
    };
    let success = (200..300).contains(&status);
    let declared = response.content_length();
    if success && declared.is_some_and(|length| exceeds(length, max_body_bytes)) {
        // Dropping the response closes the connection: none of the body is read.
        return (Some(status), Err(too_large));
    }
    let limit = if success {
        max_body_bytes
    } else {
        MAX_ERROR_BODY_BYTES.min(max_body_bytes)
    };
    let body = match read_body(response, limit).await {
        Ok(Read::Whole(body)) => body,
        Ok(Read::Cut(_)) if success => return (Some(status), Err(too_large)),
        // The status decides a failure's error: the start of its body is enough.
        Ok(Read::Cut(start)) => start,
        Err(err) => return (Some(status), Err(transport_error(endpoint, err))),
    };
    let raw = RawResponse {
        status,
        retry_after,
        content_type,
        body,
    };
    (Some(status), Ok(raw))
}

/// A length beyond `usize` exceeds any limit.
fn exceeds(length: u64, limit: usize) -> bool {
    usize::try_from(length).map_or(true, |length| length > limit)
}

/// What was read of a body: all of it, or its first `limit` bytes.
enum Read {
    Whole(Vec<u8>),
    Cut(Vec<u8>),
}

/// Reads at most `limit` bytes of the body, and stops as soon as more arrive: the buffer, its
/// capacity included, never exceeds the limit. A plain chunk loop rather than
/// `http_body_util::Limited`: no new dependency, and reqwest's own errors stay as they are, so
/// the request timeout, which reqwest applies while the body is read too, is still a timeout.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Read, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        let take = chunk.len().min(room);
        let needed = body.len() + take;
        if needed > body.capacity() {
            // Grows like Vec would, but never past the limit.
            let target = needed.max(body.capacity().saturating_mul(2)).min(limit);
            body.reserve_exact(target - body.len());
        }
        body.extend_from_slice(&chunk[..take]);
        if chunk.len() > room {
            return Ok(Read::Cut(body));
        }
    }
    Ok(Read::Whole(body))
}

fn paging_error(message: String) -> Error {
    Error::Decode {
        endpoint: Endpoint::SearchConnections,
        message,
    }
}

fn transport_error(endpoint: Endpoint, err: reqwest::Error) -> Error {
    if err.is_timeout() {
        Error::Timeout { endpoint }
    } else {
        Error::Transport {
            endpoint: Some(endpoint),
            message: describe_transport(err),
        }
    }
}

fn decode<T: DeserializeOwned>(
    endpoint: Endpoint,
    response: &RawResponse,
    key: &ApiKey,
) -> Result<T, Error> {
    let body = &response.body;
    serde_json::from_slice(body).map_err(|err| {
        let reason = if body.iter().all(u8::is_ascii_whitespace) {
            "empty body".to_owned()
        } else if err.is_syntax() || err.is_eof() {
            let content_type = response.content_type.as_deref().unwrap_or("none");
            format!("not valid JSON (content type {content_type}): {err}")
        } else {
            err.to_string()
        };
        Error::Decode {
            endpoint,
            message: truncate(&redact(&without_values(&reason), key)),
        }
    })
}

/// The connection a change call answers with, when the answer is one: a 2xx means the change
/// was taken, and the spec's schema for these answers lists no `id` (its own mock server answers
/// without one), so an unreadable answer is `None`, never an error. Callers read the
/// connection again rather than rely on it.
fn answered_connection(endpoint: Endpoint, response: &RawResponse) -> Option<Connection> {
    match serde_json::from_slice::<Connection>(&response.body) {
        Ok(connection) => Some(connection),
        Err(err) => {
            let err = without_values(&err.to_string());
            tracing::debug!(%endpoint, %err, "the answer is not a readable connection");
            None
        }
    }
}

fn bearer(key: &ApiKey) -> Result<HeaderValue, Error> {
    let refuse = |reason: &str| Error::Unauthorized {
        status: 401,
        message: format!("{reason}; request not sent"),
    };
    if key.is_empty() {
        return Err(refuse("the API key is empty"));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
        .map_err(|_| refuse("the API key contains characters not allowed in an HTTP header"))?;
    // Keeps the value out of reqwest's and hyper's Debug output.
    value.set_sensitive(true);
    Ok(value)
}

/// Refuses path parts that would silently address a different resource, such as an empty id
/// turning "delete this connection" into a request on the collection.
fn segment<'a>(value: &'a str, what: &str) -> Result<&'a str, Error> {
    if value.trim().is_empty() || value == "." || value == ".." {
        return Err(Error::InvalidRequest {
            status: 400,
            message: format!("{what} {value:?} is not valid; request not sent"),
        });
    }
    Ok(value)
}

fn check_base_url(url: Url) -> Result<Url, Error> {
    let usable = matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base();
    if usable {
        return Ok(url);
    }
    Err(Error::Transport {
        endpoint: None,
        message: format!("base URL {url} is not an http(s) URL"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(ClientConfig {
            base_url: Url::parse(base).unwrap(),
            ..ClientConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn default_config_points_at_the_real_api() {
        let config = ClientConfig::default();
        assert_eq!(config.base_url.as_str(), "https://api.consoleconnect.com/");
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn urls_keep_a_base_path_and_escape_segments() {
        let client = client("http://localhost:8088/prefix/");
        let url = client.url(&["api", "company", "a/b c", "ports"]);
        assert_eq!(
            url.as_str(),
            "http://localhost:8088/prefix/api/company/a%2Fb%20c/ports"
        );
        let client = self::client("http://localhost:8088");
        assert_eq!(
            client.url(&["api", "x"]).as_str(),
            "http://localhost:8088/api/x"
        );
    }

    #[test]
    fn refuses_unusable_base_urls() {
        let config = ClientConfig {
            base_url: Url::parse("mailto:someone@example.com").unwrap(),
            ..ClientConfig::default()
        };
        assert!(matches!(
            Client::new(config),
            Err(Error::Transport { endpoint: None, .. })
        ));
    }

    #[test]
    fn refuses_path_parts_that_change_the_resource() {
        for bad in ["", " ", ".", ".."] {
            assert!(segment(bad, "connection id").is_err(), "{bad:?}");
        }
        assert_eq!(segment("abc", "id").unwrap(), "abc");
    }

    #[test]
    fn bearer_header_is_sensitive_and_checked() {
        let value = bearer(&ApiKey::new("k-123")).unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer k-123");
        assert!(bearer(&ApiKey::new("")).is_err());
        assert!(bearer(&ApiKey::new("bad\u{7f}key")).is_err());
    }

    #[test]
    fn decode_errors_name_the_endpoint_and_reason() {
        let key = ApiKey::new("key-1234");
        let raw = |body: &[u8]| RawResponse {
            status: 200,
            retry_after: None,
            content_type: Some("text/html".into()),
            body: body.to_vec(),
        };
        let err = decode::<Connection>(Endpoint::GetConnection, &raw(b"<html>"), &key).unwrap_err();
        assert!(matches!(
            err,
            Error::Decode {
                endpoint: Endpoint::GetConnection,
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("not valid JSON (content type text/html)"),
            "{err}"
        );
        let err = decode::<Connection>(Endpoint::GetConnection, &raw(b"  "), &key).unwrap_err();
        assert!(err.to_string().contains("empty body"), "{err}");
        let err = decode::<Results<Port>>(Endpoint::ListPorts, &raw(br#"{"results":{}}"#), &key)
            .unwrap_err();
        assert!(err.to_string().contains("list_ports"), "{err}");
    }

    #[test]
    fn debug_of_client_shows_no_secrets() {
        let text = format!("{:?}", client("http://localhost:1"));
        assert!(text.contains("localhost"));
    }
}
