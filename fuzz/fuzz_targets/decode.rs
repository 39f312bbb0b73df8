//! `decode`: one event, a JSON array or NDJSON, of any format, with each content type. Never
//! panics; every accepted event is valid and survives its own JSON form; an input gives at
//! least one result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_schemas::interop::cloudevents;
use provenant_schemas::{Event, Limits, decode};

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some(cloudevents::STRUCTURED),
    Some(cloudevents::BATCH),
    Some(cloudevents::JSON),
    Some(cloudevents::NDJSON),
    Some(cloudevents::CDEVENTS),
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the content type; the rest is the body.
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES
        .get(usize::from(pick) % CONTENT_TYPES.len())
        .copied()
        .flatten();
    let items = decode(body, content_type, &Limits::DEFAULT);
    let trimmed_empty = body.iter().all(u8::is_ascii_whitespace);
    assert!(!items.is_empty() || !trimmed_empty);
    for event in items.into_iter().flatten() {
        assert!(event.validate(&Limits::DEFAULT).is_ok());
        let again = Event::from_json(&event.to_json_bytes(), &Limits::DEFAULT);
        assert_eq!(again.as_ref(), Ok(&event));
    }
});
