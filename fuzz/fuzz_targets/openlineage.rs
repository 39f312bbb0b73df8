//! OpenLineage RunEvents: never panics; an accepted event is valid, its id is a UUID and it
//! survives its own JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_schemas::interop::openlineage;
use provenant_schemas::{Event, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = openlineage::from_json(data, &Limits::DEFAULT) {
        assert!(event.validate(&Limits::DEFAULT).is_ok());
        assert_eq!(event.mapped_from.as_deref(), Some(openlineage::MAPPED_FROM));
        assert_eq!(event.id.len(), 36);
        let again = Event::from_json(&event.to_json_bytes(), &Limits::DEFAULT);
        assert_eq!(again.as_ref(), Ok(&event));
    }
});
