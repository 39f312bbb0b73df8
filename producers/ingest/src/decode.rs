//! Request bodies to events. Per-event limits apply to each event of a batch; the batch as a
//! whole is bounded by the body limit.

use provenant_schemas::json::parse_strict;
use provenant_schemas::{ErrorCode, Event, EventError, Limits};
use serde_json::Value;

use crate::IngestConfig;

/// One structured-mode event.
pub(crate) fn one(body: &[u8], limits: &Limits) -> Vec<Result<Event, EventError>> {
    vec![Event::from_json(body, limits)]
}

/// A JSON array of structured-mode events.
pub(crate) fn batch(body: &[u8], config: &IngestConfig) -> Vec<Result<Event, EventError>> {
    let whole = Limits {
        max_event_bytes: config.max_body_bytes,
        // The array adds one level.
        max_depth: config.limits.max_depth + 1,
        ..config.limits
    };
    let items = match parse_strict(body, &whole) {
        Ok(Value::Array(items)) => items,
        Ok(_) => {
            return vec![Err(EventError::input(
                ErrorCode::NotAnEvent,
                "a batch must be a JSON array of events",
            ))];
        }
        Err(e) => return vec![Err(e)],
    };
    items
        .iter()
        .map(|item| {
            let size = serde_json::to_vec(item).map_or(usize::MAX, |v| v.len());
            if size > config.limits.max_event_bytes {
                return Err(EventError::input(
                    ErrorCode::TooLarge,
                    format!(
                        "event is {size} bytes, over the limit of {} bytes",
                        config.limits.max_event_bytes
                    ),
                ));
            }
            Event::from_value(item, &config.limits)
        })
        .collect()
}
