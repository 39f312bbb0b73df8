//! Structured-mode CloudEvents JSON (`Event::from_json`): never panics; an accepted event is
//! valid and survives its own JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_schemas::{Event, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::from_json(data, &Limits::DEFAULT) {
        assert!(event.validate(&Limits::DEFAULT).is_ok());
        let again = Event::from_json(&event.to_json_bytes(), &Limits::DEFAULT);
        assert_eq!(again.as_ref(), Ok(&event));
    }
});
