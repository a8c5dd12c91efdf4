//! Answer faults: the next answers of an endpoint replaced by a huge body, or by one that
//! trickles in and never ends. Test faults, not behaviour of Console Connect: they let tests
//! check that a client bounds what it reads and how long it waits. The sandbox counts the body
//! bytes it hands to the connection, so a test can tell how much a client took before it hung up.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

/// The body starts as a valid answer with an empty list, then pads one string: complete, it is
/// valid JSON (a client without a limit would decode it); cut anywhere, it is not.
const PREFIX: &[u8] = br#"{"results":[],"padding":""#;
const SUFFIX: &[u8] = br#""}"#;
const PADDING: u8 = b'a';

const DEFAULT_CHUNK_BYTES: usize = 64 * 1024;
/// Keeps one chunk (allocated per write) small; larger ones would not test anything more.
const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Served answers kept for `GET /_sandbox/faults/answers`, newest last.
const KEPT_SERVED: usize = 100;

/// `POST /_sandbox/faults/answers`: one fault, for the next `times` answers of `endpoint`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerFault {
    /// A stats label (`search_connections`, `list_ports`, ...).
    pub endpoint: String,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default = "ok")]
    pub status: u16,
    /// Length of the whole body; absent, the body never ends.
    pub bytes: Option<u64>,
    /// Declares `bytes` in `Content-Length`; otherwise the body is chunked.
    #[serde(default)]
    pub content_length: bool,
    #[serde(default = "default_chunk")]
    pub chunk_bytes: usize,
    /// Pause before every write after the first.
    #[serde(default)]
    pub interval_ms: u64,
}

fn one() -> u32 {
    1
}

fn ok() -> u16 {
    200
}

fn default_chunk() -> usize {
    DEFAULT_CHUNK_BYTES
}

impl AnswerFault {
    /// Refuses settings that could not be served as asked.
    pub fn check(&self, known_endpoint: bool) -> Result<(), String> {
        let least = (PREFIX.len() + SUFFIX.len()) as u64;
        if !known_endpoint {
            return Err(format!("unknown endpoint '{}'", self.endpoint));
        }
        if self.times == 0 {
            return Err("'times' must be 1 or more".to_owned());
        }
        if StatusCode::from_u16(self.status).is_err() {
            return Err(format!("'status' {} is not an HTTP status", self.status));
        }
        if self.bytes.is_some_and(|bytes| bytes < least) {
            return Err(format!("'bytes' must be at least {least}"));
        }
        if self.content_length && self.bytes.is_none() {
            return Err("'contentLength' needs 'bytes'".to_owned());
        }
        if !(1..=MAX_CHUNK_BYTES).contains(&self.chunk_bytes) {
            return Err(format!("'chunkBytes' must be 1 to {MAX_CHUNK_BYTES}"));
        }
        Ok(())
    }
}

/// One answer served under a fault, as it goes.
#[derive(Debug)]
struct Served {
    endpoint: String,
    planned: Option<u64>,
    /// Body bytes handed to the connection so far.
    sent: AtomicU64,
    /// The body was dropped: written out, or the client hung up.
    ended: AtomicBool,
    /// All of the body was handed over.
    complete: AtomicBool,
}

/// Armed faults and the answers served under them.
#[derive(Default)]
pub struct AnswerFaults {
    armed: Mutex<VecDeque<(AnswerFault, u32)>>,
    served: Mutex<VecDeque<Arc<Served>>>,
}

impl AnswerFaults {
    pub fn arm(&self, fault: AnswerFault) {
        let times = fault.times;
        lock(&self.armed).push_back((fault, times));
    }

    /// Disarms every fault and forgets the served answers.
    pub fn clear(&self) {
        lock(&self.armed).clear();
        lock(&self.served).clear();
    }

    /// The faulty answer for this request to `endpoint`, if a fault is armed for it; counts
    /// the fault down.
    pub fn answer(&self, endpoint: &str) -> Option<Response> {
        let fault = {
            let mut armed = lock(&self.armed);
            let index = armed.iter().position(|(f, _)| f.endpoint == endpoint)?;
            let (fault, left) = &mut armed[index];
            let fault = fault.clone();
            *left -= 1;
            if *left == 0 {
                armed.remove(index);
            }
            fault
        };
        let served = Arc::new(Served {
            endpoint: fault.endpoint.clone(),
            planned: fault.bytes,
            sent: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            complete: AtomicBool::new(false),
        });
        {
            let mut kept = lock(&self.served);
            if kept.len() == KEPT_SERVED {
                kept.pop_front();
            }
            kept.push_back(served.clone());
        }
        tracing::info!(endpoint, ?fault, "answer spoiled by a fault");
        Some(respond(&fault, served))
    }

    pub fn to_json(&self) -> Value {
        let armed: Vec<Value> = lock(&self.armed)
            .iter()
            .map(|(fault, left)| {
                json!({
                    "endpoint": fault.endpoint,
                    "timesLeft": left,
                    "status": fault.status,
                    "bytes": fault.bytes,
                    "contentLength": fault.content_length,
                    "chunkBytes": fault.chunk_bytes,
                    "intervalMs": fault.interval_ms,
                })
            })
            .collect();
        let served: Vec<Value> = lock(&self.served)
            .iter()
            .map(|served| {
                json!({
                    "endpoint": served.endpoint,
                    "bytes": served.planned,
                    "sentBytes": served.sent.load(Ordering::SeqCst),
                    "ended": served.ended.load(Ordering::SeqCst),
                    "complete": served.complete.load(Ordering::SeqCst),
                })
            })
            .collect();
        json!({ "armed": armed, "served": served })
    }
}

fn respond(fault: &AnswerFault, served: Arc<Served>) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::OK);
    let writer = Writer {
        position: 0,
        total: fault.bytes,
        chunk: fault.chunk_bytes,
        interval: Duration::from_millis(fault.interval_ms),
        served,
    };
    let stream = futures::stream::unfold(writer, |mut writer| async move {
        if writer.position > 0 && !writer.interval.is_zero() {
            tokio::time::sleep(writer.interval).await;
        }
        let chunk = writer.next_chunk()?;
        Some((Ok::<_, Infallible>(chunk), writer))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let (true, Some(bytes)) = (fault.content_length, fault.bytes) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes));
    }
    response
}

/// Produces the body chunk by chunk and counts what it hands over.
struct Writer {
    position: u64,
    /// `None`: never ends.
    total: Option<u64>,
    chunk: usize,
    interval: Duration,
    served: Arc<Served>,
}

impl Writer {
    fn next_chunk(&mut self) -> Option<Bytes> {
        let left = self.total.map_or(u64::MAX, |total| total - self.position);
        let len = usize::try_from(left).map_or(self.chunk, |left| left.min(self.chunk));
        if len == 0 {
            self.served.complete.store(true, Ordering::SeqCst);
            return None;
        }
        let chunk: Vec<u8> = (self.position..self.position + len as u64)
            .map(|at| self.byte_at(at))
            .collect();
        self.position += len as u64;
        self.served.sent.fetch_add(len as u64, Ordering::SeqCst);
        if Some(self.position) == self.total {
            // Set here: with a Content-Length, hyper stops asking once it has that many bytes.
            self.served.complete.store(true, Ordering::SeqCst);
        }
        Some(Bytes::from(chunk))
    }

    fn byte_at(&self, at: u64) -> u8 {
        let prefix = PREFIX.len() as u64;
        if at < prefix {
            return PREFIX[at as usize];
        }
        match self.total {
            Some(total) if at >= total - SUFFIX.len() as u64 => {
                SUFFIX[(at - (total - SUFFIX.len() as u64)) as usize]
            }
            _ => PADDING,
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.served.ended.store(true, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(bytes: Option<u64>, chunk_bytes: usize) -> AnswerFault {
        AnswerFault {
            endpoint: "list_ports".into(),
            times: 1,
            status: 200,
            bytes,
            content_length: false,
            chunk_bytes,
            interval_ms: 0,
        }
    }

    fn writer(fault: &AnswerFault) -> Writer {
        Writer {
            position: 0,
            total: fault.bytes,
            chunk: fault.chunk_bytes,
            interval: Duration::ZERO,
            served: Arc::new(Served {
                endpoint: fault.endpoint.clone(),
                planned: fault.bytes,
                sent: AtomicU64::new(0),
                ended: AtomicBool::new(false),
                complete: AtomicBool::new(false),
            }),
        }
    }

    #[test]
    fn a_finite_body_has_its_length_and_is_valid_json() {
        let least = (PREFIX.len() + SUFFIX.len()) as u64;
        for (bytes, chunk) in [(least, 1), (1000, 7), (5000, 4096)] {
            let fault = fault(Some(bytes), chunk);
            let mut writer = writer(&fault);
            let mut body = Vec::new();
            while let Some(chunk) = writer.next_chunk() {
                assert!(chunk.len() <= fault.chunk_bytes);
                body.extend_from_slice(&chunk);
            }
            assert_eq!(body.len() as u64, bytes);
            let value: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value["results"], json!([]));
            assert!(writer.served.complete.load(Ordering::SeqCst));
            assert_eq!(writer.served.sent.load(Ordering::SeqCst), bytes);
        }
    }

    #[test]
    fn an_endless_body_starts_as_json_and_keeps_going() {
        let fault = fault(None, 1);
        let mut writer = writer(&fault);
        let start: Vec<u8> = (0..PREFIX.len() + 10)
            .map(|_| writer.next_chunk().unwrap()[0])
            .collect();
        assert!(start.starts_with(PREFIX));
        assert!(start[PREFIX.len()..].iter().all(|b| *b == PADDING));
        assert!(!writer.served.complete.load(Ordering::SeqCst));
        let served = writer.served.clone();
        drop(writer);
        assert!(served.ended.load(Ordering::SeqCst));
    }

    #[test]
    fn faults_are_checked_and_counted_down() {
        assert!(
            fault(Some(10), 1).check(true).is_err(),
            "shorter than the JSON"
        );
        assert!(fault(None, 0).check(true).is_err());
        assert!(fault(None, 1).check(false).is_err());
        let mut declared = fault(None, 1);
        declared.content_length = true;
        assert!(declared.check(true).is_err());

        let faults = AnswerFaults::default();
        faults.arm(AnswerFault {
            times: 2,
            ..fault(Some(100), 10)
        });
        assert!(faults.answer("oracle_metros").is_none());
        assert!(faults.answer("list_ports").is_some());
        assert!(faults.answer("list_ports").is_some());
        assert!(faults.answer("list_ports").is_none());
        assert_eq!(faults.to_json()["served"].as_array().unwrap().len(), 2);
        faults.clear();
        assert_eq!(faults.to_json(), json!({"armed": [], "served": []}));
    }
}
