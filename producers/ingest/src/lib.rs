//! # provenant-ingest — the HTTP endpoint producers send events to
//!
//! `POST /v1/events` takes `application/cloudevents+json` (one event),
//! `application/cloudevents-batch+json` (an array), `application/json` (one or an array) or
//! NDJSON (`application/x-ndjson`); each event may be a CloudEvent, a CDEvent or an
//! OpenLineage RunEvent. `POST /api/v1/lineage` takes OpenLineage
//! RunEvents exactly as Marquez does, so OpenLineage's HTTP transport works unchanged.
//! [`router`] builds an axum router that any role can mount (`provenant up`, `serve`).
//!
//! Invariants:
//! * **Acknowledged means durable.** A 2xx is returned only after the log acknowledged every
//!   event of the request durably ([`provenant_log::Log::append`]). A request is accepted or
//!   refused whole: a batch with one bad event is refused, naming every bad one by position.
//! * **Bad input gets a 4xx that says what is wrong**, and nothing reaches the log for it:
//!   400 with a reason per rejected event (its 1-based `position` in the batch), 401 (token configured and missing or wrong), 413
//!   (body over the limit), 415 (wrong content type). 429 with `Retry-After` when too many
//!   requests are in flight; 503 with `Retry-After` when the log is down.
//! * Responses and log lines never carry event values (see `provenant_schemas::error`).
//! * Every event is written to `prov.raw` keyed by [`provenant_schemas::Event::partition_key`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use provenant_log::Log;
use provenant_schemas::{Event, EventError, Limits};
use serde_json::json;
use tokio::sync::Semaphore;

pub mod metrics;

pub use metrics::IngestMetrics;

/// Ingest settings, with named defaults.
#[derive(Clone)]
pub struct IngestConfig {
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest request body: 4 MiB.
    pub max_body_bytes: usize,
    /// Requests appending to the log at once before new ones get 429.
    pub max_in_flight: usize,
    /// Per-event limits.
    pub limits: Limits,
    /// Where events go (`prov.raw`).
    pub topic: String,
}

impl std::fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl IngestConfig {
    /// 4 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
    /// 64 requests.
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            token: None,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            limits: Limits::DEFAULT,
            topic: provenant_log::RAW_TOPIC.to_owned(),
        }
    }
}

/// The ingest role: a log to write to, its settings and its metrics.
pub struct Ingest<L: Log> {
    log: L,
    config: IngestConfig,
    metrics: IngestMetrics,
    in_flight: Semaphore,
}

impl<L: Log> std::fmt::Debug for Ingest<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<L: Log> Ingest<L> {
    /// An ingest role writing to `log`, registering its metrics in `registry`.
    pub fn new(
        log: L,
        config: IngestConfig,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, prometheus::Error> {
        Ok(Arc::new(Self {
            log,
            metrics: IngestMetrics::new(registry)?,
            in_flight: Semaphore::new(config.max_in_flight.max(1)),
            config,
        }))
    }
}

/// The routes: `POST /v1/events` and `POST /api/v1/lineage`.
pub fn router<L: Log>(ingest: Arc<Ingest<L>>) -> Router {
    Router::new()
        .route("/v1/events", post(post_events::<L>))
        .route("/api/v1/lineage", post(post_lineage::<L>))
        // The body limit is enforced by us (a JSON 413), not by axum's default of 2 MiB.
        .layer(axum::extract::DefaultBodyLimit::max(
            ingest.config.max_body_bytes,
        ))
        .with_state(ingest)
}

/// Refuses to serve a non-loopback address without a token, unless told `insecure`.
pub fn check_listen(addr: SocketAddr, has_token: bool, insecure: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || has_token || insecure {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} without a token: anyone who can reach it could write to the ledger. \
         Set a token (--token or PROVENANT_TOKEN), listen on 127.0.0.1, or pass --insecure if the network is trusted"
    ))
}

/// What a request's body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    One,
    Batch,
    Lineage,
}

async fn post_events<L: Log>(
    State(ingest): State<Arc<Ingest<L>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let kind = match provenant_schemas::interop::cloudevents::framing(&content_type) {
        Some(provenant_schemas::interop::cloudevents::Framing::Single) => Body::One,
        Some(_) => Body::Batch,
        None => {
            ingest.metrics.request("events", 415);
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type must be application/cloudevents+json (one event), application/cloudevents-batch+json (an array), application/json or application/x-ndjson",
            );
        }
    };
    handle(&ingest, &headers, body, kind, &content_type, "events").await
}

async fn post_lineage<L: Log>(
    State(ingest): State<Arc<Ingest<L>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match media_type(&headers).as_deref() {
        Some("application/json") | None => {}
        Some(_) => {
            ingest.metrics.request("lineage", 415);
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type must be application/json (an OpenLineage RunEvent)",
            );
        }
    }
    handle(
        &ingest,
        &headers,
        body,
        Body::Lineage,
        "application/json",
        "lineage",
    )
    .await
}

async fn handle<L: Log>(
    ingest: &Ingest<L>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: Body,
    content_type: &str,
    route: &'static str,
) -> Response {
    let response = handle_inner(ingest, headers, body, kind, content_type).await;
    ingest.metrics.request(route, response.status().as_u16());
    response
}

async fn handle_inner<L: Log>(
    ingest: &Ingest<L>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: Body,
    content_type: &str,
) -> Response {
    if let Some(expected) = &ingest.config.token
        && !token_matches(headers, expected)
    {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"provenant\""),
        );
        return r;
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                return error(
                    status,
                    &format!(
                        "request body is over the limit of {} bytes; send smaller batches",
                        ingest.config.max_body_bytes
                    ),
                );
            }
            return error(status, "could not read the request body");
        }
    };
    let decoded: Vec<Result<Event, (usize, EventError)>> = match kind {
        Body::One | Body::Batch => provenant_schemas::decode::Decoder {
            limits: ingest.config.limits,
            max_input_bytes: ingest.config.max_body_bytes,
            ..provenant_schemas::decode::Decoder::default()
        }
        .decode(&body, Some(content_type))
        .into_iter()
        .map(|item| item.map_err(|e| (e.index, *e.error)))
        .collect(),
        Body::Lineage => vec![
            provenant_schemas::interop::openlineage::from_json(&body, &ingest.config.limits)
                .map_err(|e| (1, e)),
        ],
    };
    let events = match collect(decoded) {
        Ok(events) => events,
        Err(rejected) => {
            for (_, e) in &rejected {
                ingest.metrics.rejected(e.code.as_str());
            }
            return rejection(kind, &rejected);
        }
    };
    if events.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the batch holds no events");
    }
    let Ok(_permit) = ingest.in_flight.try_acquire() else {
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests in flight; retry shortly",
            1,
        );
    };
    let records = events.iter().map(provenant_producer::raw_record).collect();
    match provenant_log::append_by_key(&ingest.log, &ingest.config.topic, records).await {
        Ok(positions) => {
            for e in &events {
                ingest.metrics.accepted(e.kind().as_str());
            }
            let accepted: Vec<_> = events
                .iter()
                .zip(positions)
                .map(|(e, (partition, offset))| {
                    json!({"source": e.source, "id": e.id, "partition": partition, "offset": offset})
                })
                .collect();
            let status = if kind == Body::Lineage {
                // Marquez answers 201 Created to POST /api/v1/lineage.
                StatusCode::CREATED
            } else {
                StatusCode::ACCEPTED
            };
            (status, axum::Json(json!({ "accepted": accepted }))).into_response()
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, events = events.len(), "log unavailable, ingest refused with 503");
            retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "the log is unavailable; nothing was stored, retry later",
                2,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, events = events.len(), "log append failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the log refused the append; nothing was acknowledged",
            )
        }
    }
}

/// All events, or every error with its 1-based position.
#[allow(clippy::type_complexity)]
fn collect(
    items: Vec<Result<Event, (usize, EventError)>>,
) -> Result<Vec<Event>, Vec<(usize, EventError)>> {
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for item in items {
        match item {
            Ok(e) => events.push(e),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

fn rejection(kind: Body, rejected: &[(usize, EventError)]) -> Response {
    let summary = match (kind, rejected) {
        (Body::Batch, _) => format!(
            "{} event(s) of the batch are invalid; the batch was not accepted",
            rejected.len()
        ),
        (_, [(_, e)]) => e.to_string(),
        _ => "the event is invalid".to_owned(),
    };
    let list: Vec<_> = rejected
        .iter()
        .map(|(index, e)| {
            json!({
                "position": index,
                "source": e.event.source,
                "id": e.event.id,
                "code": e.code.as_str(),
                "field": e.field,
                "message": e.to_string(),
            })
        })
        .collect();
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": summary, "rejected": list})),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn retry_later(status: StatusCode, message: &str, seconds: u32) -> Response {
    let mut r = error(status, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    r
}

/// The media type without parameters, lowercased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Constant-time comparison of the bearer token.
fn token_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}
