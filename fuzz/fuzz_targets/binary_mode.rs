//! Binary-mode CloudEvents on Kafka (`binary_mode::decode`): `ce_*` headers and an Avro or JSON
//! value, or a structured event by content type. The input is framed into headers and a value
//! by `provenant_fuzz::split_record` (`name:value` lines, an empty line, the value). Never
//! panics; an accepted event is valid and survives binary mode with an Avro value, with a JSON
//! value, and its own structured JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_fuzz::split_record;
use provenant_schemas::binary_mode;
use provenant_schemas::{Event, Limits};

fuzz_target!(|data: &[u8]| {
    let (headers, value) = split_record(data);
    if let Ok(event) = binary_mode::decode(&headers, value, &Limits::DEFAULT) {
        assert!(event.validate(&Limits::DEFAULT).is_ok());
        let (h, v) = binary_mode::encode(&event);
        assert_eq!(
            binary_mode::decode(&h, &v, &Limits::DEFAULT).as_ref(),
            Ok(&event)
        );
        let (h, v) = binary_mode::encode_json(&event);
        assert_eq!(
            binary_mode::decode(&h, &v, &Limits::DEFAULT).as_ref(),
            Ok(&event)
        );
        let again = Event::from_json(&event.to_json_bytes(), &Limits::DEFAULT);
        assert_eq!(again.as_ref(), Ok(&event));
    }
});
