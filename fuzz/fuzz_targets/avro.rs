//! Single-object Avro: a whole event (`avro::decode_event`) and, when the fingerprint is one of
//! the data records', that kind's data (`avro::decode_data`, the value of a binary-mode Kafka
//! record). Never panics; an accepted event is valid; what is accepted survives its own
//! encoding (and an event its JSON form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_schemas::avro::{self, SchemaId};
use provenant_schemas::{Event, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = avro::decode_event(data, &Limits::DEFAULT) {
        assert!(event.validate(&Limits::DEFAULT).is_ok());
        let again = avro::decode_event(&avro::encode_event(&event), &Limits::DEFAULT);
        assert_eq!(again.as_ref(), Ok(&event));
        let again = Event::from_json(&event.to_json_bytes(), &Limits::DEFAULT);
        assert_eq!(again.as_ref(), Ok(&event));
    }
    if let Some(SchemaId::Data(kind)) = avro::schema_of(data)
        && let Ok(d) = avro::decode_data(kind, data, &Limits::DEFAULT)
    {
        assert_eq!(d.kind(), kind);
        let again = avro::decode_data(kind, &avro::encode_data(&d), &Limits::DEFAULT);
        assert_eq!(again.as_ref(), Ok(&d));
    }
});
