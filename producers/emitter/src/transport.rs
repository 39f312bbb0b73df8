//! Where an emitter delivers events. Two implementations: [`HttpTransport`] (a Provenant
//! HTTP endpoint, `POST /v1/events` with a CloudEvents JSON batch) and [`LogTransport`]
//! (any [`provenant_log::Log`]: Kafka or the embedded log; binary-mode CloudEvents).
//!
//! Contract: [`Transport::send`] returns `Ok` only once the destination acknowledged every
//! event of the batch durably. [`TransportError::Unavailable`] means nothing can be said
//! about delivery and the emitter will try again later (so delivery is at-least-once; the
//! processor removes duplicates by event identity). [`TransportError::Rejected`] means the
//! destination refused the batch for what it contains and will refuse it again.

use std::future::Future;
use std::time::Duration;

use provenant_log::{Header, Log, Record};
use provenant_schemas::Event;

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The destination is unreachable, saturated or refused our credentials: try again later.
    #[error("destination unavailable: {0}")]
    Unavailable(String),
    /// The destination refused the events themselves; sending them again will not help.
    #[error("destination rejected the events: {0}")]
    Rejected(String),
}

/// A destination for events.
pub trait Transport: Send + Sync + 'static {
    /// Delivers a batch, in order; see the module contract.
    fn send(&self, events: &[Event]) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// A short name for logs and metrics (`http`, `log`).
    fn name(&self) -> &'static str;
}

/// Sends CloudEvents JSON batches to a Provenant HTTP endpoint.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl HttpTransport {
    /// `endpoint` is the base URL (`http://127.0.0.1:8080`); events go to `/v1/events`.
    /// `token` is sent as a bearer token.
    pub fn new(
        endpoint: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| TransportError::Rejected(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: format!("{}/v1/events", endpoint.trim_end_matches('/')),
            token,
        })
    }
}

impl Transport for HttpTransport {
    async fn send(&self, events: &[Event]) -> Result<(), TransportError> {
        let body = serde_json::Value::Array(events.iter().map(Event::to_json_value).collect());
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/cloudevents-batch+json")
            .body(body.to_string());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            // reqwest errors name the URL, never the body.
            TransportError::Unavailable(format!("POST {}: {e}", self.url))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let reason = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect::<String>();
        match status.as_u16() {
            // Wrong or missing token: keep the events (spooled) until the operator fixes it.
            401 | 403 => Err(TransportError::Unavailable(format!(
                "POST {} refused the token ({status}); events stay spooled until it is fixed",
                self.url
            ))),
            408 | 429 | 500..=599 => Err(TransportError::Unavailable(format!(
                "POST {}: {status} {reason}",
                self.url
            ))),
            _ => Err(TransportError::Rejected(format!(
                "POST {}: {status} {reason}",
                self.url
            ))),
        }
    }

    fn name(&self) -> &'static str {
        "http"
    }
}

/// Writes events to `prov.raw` (or another topic) of a [`Log`], keyed by
/// [`Event::partition_key`] so that the murmur2 partitioner keeps each entity on one
/// partition.
#[derive(Debug)]
pub struct LogTransport<L: Log> {
    log: L,
    topic: String,
}

impl<L: Log> LogTransport<L> {
    /// A transport to `topic` (normally `prov.raw`), records made by [`raw_record`].
    pub fn new(log: L, topic: impl Into<String>) -> Self {
        Self {
            log,
            topic: topic.into(),
        }
    }
}

impl<L: Log> Transport for LogTransport<L> {
    async fn send(&self, events: &[Event]) -> Result<(), TransportError> {
        let records = events.iter().map(raw_record).collect();
        provenant_log::append_by_key(&self.log, &self.topic, records)
            .await
            .map(|_| ())
            .map_err(|e| {
                if e.is_retryable() {
                    TransportError::Unavailable(e.to_string())
                } else {
                    TransportError::Rejected(e.to_string())
                }
            })
    }

    fn name(&self) -> &'static str {
        "log"
    }
}

/// The one place an event becomes a `prov.raw` record: binary-mode CloudEvents
/// (`provenant_schemas::binary_mode::encode`: attributes in `ce_*` headers, the kind's data
/// as a single-object Avro value), keyed by [`Event::partition_key`].
pub fn raw_record(event: &Event) -> Record {
    let (headers, value) = provenant_schemas::binary_mode::encode(event);
    Record {
        key: Some(event.partition_key().into()),
        headers: headers
            .into_iter()
            .map(|(name, value)| Header::new(name, value))
            .collect(),
        value: value.into(),
    }
}

/// A shared transport is a transport: several emitters may share one connection.
impl<T: Transport> Transport for std::sync::Arc<T> {
    fn send(&self, events: &[Event]) -> impl Future<Output = Result<(), TransportError>> + Send {
        (**self).send(events)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}
