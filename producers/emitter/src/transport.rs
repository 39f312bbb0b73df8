//! Where an emitter delivers events. Two implementations: [`HttpTransport`] (a Provenant
//! HTTP endpoint, `POST /v1/events` with a CloudEvents JSON batch) and [`LogTransport`]
//! (any [`provenant_log::Log`]: Kafka or the embedded log; binary-mode CloudEvents).
//!
//! Contract: [`Transport::send`] returns `Ok` only once the destination acknowledged every
//! event of the batch durably. [`TransportError::Unavailable`] means nothing can be said
//! about delivery and the emitter will try again later (so delivery is at-least-once; the
//! processor removes duplicates by event identity). [`TransportError::Rejected`] means the
//! destination refused the batch for what it contains and will refuse it again.
//!
//! Pipelining: [`Transport::start`] hands a batch over and returns a [`Pending`] that resolves
//! like `send`. A batch started after `start` returned must land after it for every key (that
//! is what "handed over" means), so the emitter keeps several batches in flight without
//! reordering. A transport that cannot promise that keeps the default, which sends the whole
//! batch before returning ([`HttpTransport`]: two requests in flight could be stored in
//! either order). [`LogTransport`] hands over through [`Log::start_append`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
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

/// A batch handed over to a destination whose acknowledgement is still to come; see
/// [`Transport::start`].
pub type Pending = Pin<Box<dyn Future<Output = Result<(), TransportError>> + Send + 'static>>;

/// A destination for events.
pub trait Transport: Send + Sync + 'static {
    /// Delivers a batch, in order; see the module contract.
    fn send(&self, events: &[Event]) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Hands a batch over and returns once every batch started later will land after it (for
    /// every key); the [`Pending`] resolves as [`Transport::send`] would. An error here means
    /// the batch was not handed over, or only part of it. The default sends the whole batch
    /// before returning, which keeps one batch in flight.
    fn start(
        &self,
        events: &[Event],
    ) -> impl Future<Output = Result<Pending, TransportError>> + Send {
        async move {
            self.send(events).await?;
            Ok(Box::pin(std::future::ready(Ok(()))) as Pending)
        }
    }

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
///
/// The topic's partition count is asked once and kept for [`LogTransport::PARTITION_COUNT_TTL`]
/// (and asked again after any failure), not asked per batch: on Kafka that is a metadata
/// round trip on the blocking pool. A topic that grows partitions is routed over the new
/// count within that time, as Kafka's own clients do after their metadata refresh.
#[derive(Debug)]
pub struct LogTransport<L: Log> {
    log: L,
    topic: String,
    partitions: Arc<Mutex<Option<(u32, Instant)>>>,
}

impl<L: Log> LogTransport<L> {
    /// How long a partition count is used before it is asked again.
    pub const PARTITION_COUNT_TTL: Duration = Duration::from_secs(10);

    /// A transport to `topic` (normally `prov.raw`), records made by [`raw_record`].
    pub fn new(log: L, topic: impl Into<String>) -> Self {
        Self {
            log,
            topic: topic.into(),
            partitions: Arc::new(Mutex::new(None)),
        }
    }

    fn cached_count(&self) -> MutexGuard<'_, Option<(u32, Instant)>> {
        lock_count(&self.partitions)
    }

    async fn partition_count(&self) -> Result<u32, TransportError> {
        if let Some((count, at)) = *self.cached_count()
            && at.elapsed() < Self::PARTITION_COUNT_TTL
        {
            return Ok(count);
        }
        let count = self
            .log
            .partition_count(&self.topic)
            .await
            .map_err(to_transport_error)?;
        *self.cached_count() = Some((count, Instant::now()));
        Ok(count)
    }
}

fn lock_count(count: &Mutex<Option<(u32, Instant)>>) -> MutexGuard<'_, Option<(u32, Instant)>> {
    count
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn to_transport_error(e: provenant_log::LogError) -> TransportError {
    if e.is_retryable() {
        TransportError::Unavailable(e.to_string())
    } else {
        TransportError::Rejected(e.to_string())
    }
}

impl<L: Log> Transport for LogTransport<L> {
    async fn send(&self, events: &[Event]) -> Result<(), TransportError> {
        self.start(events).await?.await
    }

    async fn start(&self, events: &[Event]) -> Result<Pending, TransportError> {
        let partitions = self.partition_count().await?;
        let records = events.iter().map(raw_record).collect();
        match provenant_log::start_append_by_key(&self.log, &self.topic, partitions, records).await
        {
            Ok(pending) => {
                let cache = Arc::clone(&self.partitions);
                Ok(Box::pin(async move {
                    pending.await.map_err(|e| {
                        *lock_count(&cache) = None;
                        to_transport_error(e)
                    })
                }))
            }
            Err(e) => {
                *self.cached_count() = None;
                Err(to_transport_error(e))
            }
        }
    }

    fn name(&self) -> &'static str {
        "log"
    }
}

/// The one place an event becomes a `prov.raw` record: binary-mode CloudEvents
/// (`provenant_schemas::binary_mode::encode`: attributes in `ce_*` headers, the kind's data
/// as a single-object Avro value), keyed by [`Event::partition_key`].
pub fn raw_record(event: &Event) -> Record {
    use provenant_schemas::binary_mode::{self, HeaderValue};
    // Built directly rather than from `binary_mode::encode`'s pairs: constant values are not
    // copied and no intermediate list is made (this runs for every event sent).
    let mut headers = Vec::with_capacity(8 + event.extensions.len());
    binary_mode::for_each_header(event, binary_mode::AVRO, |prefix, name, value| {
        let mut header = String::with_capacity(prefix.len() + name.len());
        header.push_str(prefix);
        header.push_str(name);
        let value = match value {
            HeaderValue::Static(s) => Bytes::from_static(s.as_bytes()),
            HeaderValue::Borrowed(s) => Bytes::copy_from_slice(s.as_bytes()),
        };
        headers.push(Header {
            name: header,
            value,
        });
    });
    Record {
        key: Some(event.partition_key().into()),
        headers,
        value: provenant_schemas::avro::encode_data(&event.data).into(),
    }
}

/// A shared transport is a transport: several emitters may share one connection.
impl<T: Transport> Transport for std::sync::Arc<T> {
    fn send(&self, events: &[Event]) -> impl Future<Output = Result<(), TransportError>> + Send {
        (**self).send(events)
    }

    fn start(
        &self,
        events: &[Event],
    ) -> impl Future<Output = Result<Pending, TransportError>> + Send {
        (**self).start(events)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use provenant_schemas::{EventData, Runtime};

    use super::*;

    #[test]
    fn raw_record_is_what_binary_mode_encodes() {
        let mut event = Event::new(
            "test://transport",
            "e-1",
            EventData::Runtime(Runtime {
                instance_id: "pod-1".into(),
                service: "shop".into(),
                environment: "staging".into(),
                ..Runtime::default()
            }),
        );
        event.time = Some("2026-11-23T10:00:00Z".into());
        event.subject = Some("pod-1".into());
        event
            .extensions
            .insert("traceparent".into(), "00-abc-def-01".into());
        event.mapped_from = Some("cdevents".into());
        let record = raw_record(&event);
        let (headers, value) = provenant_schemas::binary_mode::encode(&event);
        let got: Vec<(String, Vec<u8>)> = record
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.to_vec()))
            .collect();
        assert_eq!(got, headers);
        assert_eq!(record.value.as_ref(), value.as_slice());
        assert_eq!(record.key.unwrap().as_ref(), b"instance:pod-1");
    }
}
