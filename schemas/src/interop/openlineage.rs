//! OpenLineage RunEvents → native data events.
//!
//! | OpenLineage | native |
//! |---|---|
//! | `producer` | `source` |
//! | `eventTime` | `time` |
//! | UUIDv5, see [`event_id`] | `id` |
//! | `eventType` (absent → `OTHER`) | `data.event_type` |
//! | `run.runId` | `data.run_id` |
//! | `job.namespace`, `job.name` | `data.job` |
//! | `inputs[]`, `outputs[]` `.namespace`, `.name` | `data.inputs`, `data.outputs` |
//! | dataset facet `version.datasetVersion` | `snapshot_id` |
//! | dataset custom facet `provenant.schema_version` | `schema_version` |
//! | — | `mapped_from` = `openlineage.RunEvent` |
//!
//! Invariants: the event id is a pure function of the RunEvent ([`event_id`]), so a
//! producer's retry maps to the same (`source`, `id`) and is recognised as a duplicate.
//! Facets and members not listed above are ignored (OpenLineage is extensible), but the size
//! and depth limits of [`crate::json`] apply to the whole document. DatasetEvents and
//! JobEvents (static lineage) are refused: they describe no run.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{opt_obj, opt_str, req_obj, req_str};
use crate::error::{ErrorCode, EventError, EventRef};
use crate::event::{Data, Dataset, Event, EventData, Job, RunState};
use crate::json::{Limits, parse_strict};

/// [`Event::mapped_from`] of every mapped RunEvent.
pub const MAPPED_FROM: &str = "openlineage.RunEvent";

/// The UUIDv5 namespace of RunEvent ids: `8066bfb7-3c23-5c2e-a50e-9423343d3dd1`, itself
/// UUIDv5(NAMESPACE_URL, `urn:provenant:openlineage-run-event-id:v1`).
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x8066bfb7_3c23_5c2e_a50e_9423343d3dd1);

/// Decodes one OpenLineage RunEvent from bytes (strict JSON, under the limits).
pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Event, EventError> {
    let value = parse_strict(bytes, limits)?;
    from_value(&value, limits)
}

/// Decodes one OpenLineage RunEvent from parsed JSON.
pub fn from_value(value: &Value, limits: &Limits) -> Result<Event, EventError> {
    let Value::Object(obj) = value else {
        return Err(EventError::input(
            ErrorCode::NotAnEvent,
            "an OpenLineage event must be a JSON object",
        ));
    };
    // The id is computed from fields that may be malformed, so errors name the producer only.
    let event_ref = EventRef {
        source: obj
            .get("producer")
            .and_then(Value::as_str)
            .map(str::to_owned),
        id: None,
    };
    decode(obj, limits).map_err(|e| e.for_event(&event_ref))
}

/// The event id of a RunEvent: UUIDv5 in [`ID_NAMESPACE`] over the UTF-8 bytes of
///
/// ```text
/// <run id>\n<event type>\n<event time>\n<job namespace>\n<job name>
/// ```
///
/// where `<run id>` is the run's UUID in lowercase hyphenated form, `<event type>` the
/// upper-case state (`OTHER` when `eventType` is absent), and `<event time>` the `eventTime`
/// converted to UTC and written `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z` (the fraction
/// with 3, 6 or 9 digits, the fewest that keep every non-zero digit; none when it is zero).
/// Returns `None` when the time is not RFC 3339.
pub fn event_id(
    run_id: Uuid,
    event_type: RunState,
    event_time: &str,
    job_namespace: &str,
    job_name: &str,
) -> Option<Uuid> {
    let time = normalized_time(event_time)?;
    let name = format!(
        "{}\n{}\n{time}\n{job_namespace}\n{job_name}",
        run_id.hyphenated(),
        event_type.as_str()
    );
    Some(Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()))
}

fn normalized_time(t: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    Some(
        parsed
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

fn decode(obj: &Map<String, Value>, limits: &Limits) -> Result<Event, EventError> {
    if !obj.contains_key("run") {
        let which = if obj.contains_key("dataset") {
            "DatasetEvent"
        } else {
            "JobEvent"
        };
        return Err(EventError::field(
            ErrorCode::UnknownType,
            "run",
            format!(
                "OpenLineage {which}s are not accepted: only RunEvents (with run, job and eventTime) are mapped"
            ),
        ));
    }
    let producer = req_str(obj, "producer", "producer", "OpenLineage RunEvent")?;
    let event_time = req_str(obj, "eventTime", "eventTime", "OpenLineage RunEvent")?;
    let event_type = match opt_str(obj, "eventType", "eventType")? {
        None => RunState::Other,
        Some(t) => RunState::ALL
            .into_iter()
            .find(|s| s.as_str() == t)
            .ok_or_else(|| {
                EventError::field(
                    ErrorCode::InvalidValue,
                    "eventType",
                    "eventType must be one of START, RUNNING, COMPLETE, FAIL, ABORT, OTHER",
                )
            })?,
    };
    let run = req_obj(obj, "run", "run", "OpenLineage RunEvent")?;
    let run_id = req_str(run, "runId", "run.runId", "run")?;
    let run_id = Uuid::parse_str(run_id).map_err(|_| {
        EventError::field(
            ErrorCode::InvalidValue,
            "run.runId",
            "run.runId must be a UUID",
        )
    })?;
    let job = req_obj(obj, "job", "job", "OpenLineage RunEvent")?;
    let job = Job {
        namespace: req_str(job, "namespace", "job.namespace", "job")?.to_owned(),
        name: req_str(job, "name", "job.name", "job")?.to_owned(),
    };
    let inputs = datasets(obj, "inputs", limits)?;
    let outputs = datasets(obj, "outputs", limits)?;
    // Validate the id's parts before hashing them, so the name layout stays unambiguous.
    crate::validate::identifier("job.namespace", &job.namespace)?;
    crate::validate::identifier("job.name", &job.name)?;
    let id =
        event_id(run_id, event_type, event_time, &job.namespace, &job.name).ok_or_else(|| {
            EventError::field(
                ErrorCode::InvalidValue,
                "eventTime",
                "eventTime must be an RFC 3339 timestamp like 2026-11-23T10:00:00Z",
            )
        })?;
    let event = Event {
        id: id.hyphenated().to_string(),
        source: producer.to_owned(),
        time: Some(event_time.to_owned()),
        subject: None,
        dataschema: None,
        extensions: std::collections::BTreeMap::new(),
        mapped_from: Some(MAPPED_FROM.to_owned()),
        data: EventData::Data(Data {
            job,
            run_id: run_id.hyphenated().to_string(),
            event_type,
            inputs,
            outputs,
            annotations: Default::default(),
        }),
    };
    event.validate(limits)?;
    Ok(event)
}

fn datasets(
    obj: &Map<String, Value>,
    which: &str,
    limits: &Limits,
) -> Result<Vec<Dataset>, EventError> {
    let items = match obj.get(which) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(EventError::field(
                ErrorCode::WrongType,
                which,
                format!("{which} must be an array of datasets"),
            ));
        }
    };
    if items.len() > limits.max_datasets {
        return Err(EventError::field(
            ErrorCode::FieldTooLarge,
            which,
            format!("{which} must have at most {} datasets", limits.max_datasets),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{which}[{i}]");
            let Value::Object(ds) = item else {
                return Err(EventError::field(
                    ErrorCode::WrongType,
                    path.clone(),
                    format!("{path} must be an object with namespace and name"),
                ));
            };
            let namespace = req_str(ds, "namespace", &format!("{path}.namespace"), "dataset")?;
            let name = req_str(ds, "name", &format!("{path}.name"), "dataset")?;
            let facets = opt_obj(ds, "facets", &format!("{path}.facets"))?;
            let facet_str = |facet: &str, key: &str| -> Result<Option<String>, EventError> {
                let Some(facets) = facets else {
                    return Ok(None);
                };
                let fpath = format!("{path}.facets.{facet}");
                let Some(f) = opt_obj(facets, facet, &fpath)? else {
                    return Ok(None);
                };
                Ok(opt_str(f, key, &format!("{fpath}.{key}"))?.map(str::to_owned))
            };
            Ok(Dataset {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                snapshot_id: facet_str("version", "datasetVersion")?,
                schema_version: facet_str("provenant", "schema_version")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_derived_as_documented() {
        assert_eq!(
            ID_NAMESPACE,
            Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                b"urn:provenant:openlineage-run-event-id:v1"
            )
        );
    }

    #[test]
    fn event_id_follows_the_documented_layout() {
        let run = Uuid::parse_str("01973A9C-2F40-7B1E-9C55-3D2E8F6A1B70").unwrap();
        let id = event_id(
            run,
            RunState::Complete,
            "2025-06-01T04:12:00.120+02:00",
            "airflow://acme-prod",
            "shop_orders.daily_revenue",
        )
        .unwrap();
        let name = "01973a9c-2f40-7b1e-9c55-3d2e8f6a1b70\nCOMPLETE\n2025-06-01T02:12:00.120Z\nairflow://acme-prod\nshop_orders.daily_revenue";
        assert_eq!(id, Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()));
        // The same instant written another way gives the same id.
        let again = event_id(
            run,
            RunState::Complete,
            "2025-06-01T02:12:00.12Z",
            "airflow://acme-prod",
            "shop_orders.daily_revenue",
        );
        assert_eq!(again, Some(id));
        // Test vector for other implementations (also in schemas/INTEROP.md).
        assert_eq!(id.to_string(), VECTOR_ID);
        assert_eq!(
            normalized_time("2025-06-01T02:12:00Z").unwrap(),
            "2025-06-01T02:12:00Z"
        );
        assert_eq!(
            normalized_time("2025-06-01T02:12:00.123456789Z").unwrap(),
            "2025-06-01T02:12:00.123456789Z"
        );
        assert_eq!(
            normalized_time("2025-06-01T02:12:00.1234+00:00").unwrap(),
            "2025-06-01T02:12:00.123400Z"
        );
        assert!(event_id(run, RunState::Start, "yesterday", "a", "b").is_none());
    }

    /// Computed independently with Python's `uuid.uuid5`.
    const VECTOR_ID: &str = "31605e48-ac5a-5673-9ec0-29db75989219";
}
