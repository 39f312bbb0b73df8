//! CDEvents (bare or in a CloudEvent): never panics; an accepted event is valid, keeps its
//! CDEvents type in `mapped_from` and survives its own JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_schemas::interop::cdevents;
use provenant_schemas::{Event, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = cdevents::from_json(data, &Limits::DEFAULT) {
        assert!(event.validate(&Limits::DEFAULT).is_ok());
        assert!(
            event
                .mapped_from
                .as_deref()
                .is_some_and(|t| t.starts_with(cdevents::TYPE_PREFIX))
        );
        let again = Event::from_json(&event.to_json_bytes(), &Limits::DEFAULT);
        assert_eq!(again.as_ref(), Ok(&event));
    }
});
