//! Avro: round trips, conformance with apache-avro, schema evolution, hostile input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod strategies;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value as AvroValue;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use provenant_schemas::avro::{self, HEADER_LEN, SchemaId};
use provenant_schemas::binary_mode;
use provenant_schemas::ledger::LedgerEntry;
use provenant_schemas::{ErrorCode, Event, Kind, Limits};
use serde_json::{Value, json};

/// Our codec and apache-avro agree both ways: apache-avro reads our bytes completely, and we
/// read what apache-avro writes from that value back to the same model. (apache-avro holds a
/// map in a `HashMap`, so its bytes may order map entries differently from ours.)
fn apache_agrees<T: PartialEq + std::fmt::Debug>(
    id: SchemaId,
    single_object: &[u8],
    ours: impl Fn(&[u8]) -> T,
) {
    assert_eq!(&single_object[..HEADER_LEN], &id.header());
    let schema = id.schema().unwrap();
    let body = &single_object[HEADER_LEN..];
    let mut reader = body;
    let value = apache_avro::from_avro_datum(schema, &mut reader, None).unwrap();
    assert!(reader.is_empty(), "apache-avro left {} bytes", reader.len());
    let mut theirs = id.header().to_vec();
    theirs.extend(apache_avro::to_avro_datum(schema, value).unwrap());
    assert_eq!(ours(&theirs), ours(single_object), "{id:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_kind_round_trips_json_model_avro_model(event in strategies::event()) {
        // JSON -> model
        let from_json = Event::from_json(&event.to_json_bytes(), &Limits::DEFAULT).unwrap();
        prop_assert_eq!(&from_json, &event);
        // model -> Avro -> model
        let bytes = avro::encode_event(&from_json);
        prop_assert_eq!(avro::decode_event(&bytes, &Limits::DEFAULT).unwrap(), event.clone());
        apache_agrees(SchemaId::Event, &bytes, |b| avro::decode_event(b, &Limits::DEFAULT).unwrap());
        // the data record alone
        let data = avro::encode_data(&event.data);
        apache_agrees(SchemaId::Data(event.kind()), &data, |b| {
            avro::decode_data(event.kind(), b, &Limits::DEFAULT).unwrap()
        });
        prop_assert_eq!(avro::decode_data(event.kind(), &data, &Limits::DEFAULT).unwrap(), event.data.clone());
    }

    #[test]
    fn every_kind_round_trips_binary_mode(event in strategies::event()) {
        for (headers, value) in [binary_mode::encode(&event), binary_mode::encode_json(&event)] {
            prop_assert_eq!(binary_mode::decode(&headers, &value, &Limits::DEFAULT).unwrap(), event.clone());
        }
        let structured = vec![("content-type".to_owned(), b"application/cloudevents+json".to_vec())];
        prop_assert_eq!(
            binary_mode::decode(&structured, &event.to_json_bytes(), &Limits::DEFAULT).unwrap(),
            event
        );
    }

    #[test]
    fn ledger_entries_round_trip_through_avro(entry in strategies::entry()) {
        let bytes = entry.to_avro();
        apache_agrees(SchemaId::LedgerEntry, &bytes, |b| LedgerEntry::from_avro(b).unwrap());
        prop_assert_eq!(LedgerEntry::from_avro(&bytes).unwrap(), entry.clone());
        if let LedgerEntry::Record(r) = &entry {
            let datum = r.to_avro_datum();
            let mut reader = &datum[..];
            apache_avro::from_avro_datum(SchemaId::LedgerRecord.schema().unwrap(), &mut reader, None).unwrap();
            prop_assert!(reader.is_empty());
            prop_assert_eq!(&provenant_schemas::LedgerRecord::from_avro_datum(&datum).unwrap(), r);
            // The prefix decoder finds the datum's end in a block of datums.
            let mut block = datum.clone();
            block.extend_from_slice(&datum);
            let (first, len) = provenant_schemas::LedgerRecord::from_avro_datum_prefix(&block).unwrap();
            prop_assert_eq!(&first, r);
            prop_assert_eq!(len, datum.len());
            let (second, len2) = provenant_schemas::LedgerRecord::from_avro_datum_prefix(&block[len..]).unwrap();
            prop_assert_eq!(&second, r);
            prop_assert_eq!(len2, datum.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_decoder_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200), headered in any::<bool>()) {
        let mut input = if headered { SchemaId::Event.header().to_vec() } else { Vec::new() };
        input.extend_from_slice(&bytes);
        let _ = avro::decode_event(&input, &Limits::DEFAULT);
        let mut ledger = SchemaId::LedgerEntry.header().to_vec();
        ledger.extend_from_slice(&bytes);
        let _ = LedgerEntry::from_avro(&ledger);
        let _ = LedgerEntry::from_avro(&bytes);
        let _ = provenant_schemas::LedgerRecord::from_avro_datum(&bytes);
        // Whatever the prefix decoder accepts, it accepts as a whole datum too.
        if let Ok((r, len)) = provenant_schemas::LedgerRecord::from_avro_datum_prefix(&bytes) {
            prop_assert_eq!(provenant_schemas::LedgerRecord::from_avro_datum(&bytes[..len]), Ok(r));
        }
        let headers = vec![
            ("ce_specversion".to_owned(), b"1.0".to_vec()),
            ("ce_id".to_owned(), bytes.iter().take(8).copied().collect()),
            ("ce_source".to_owned(), b"s".to_vec()),
            ("ce_type".to_owned(), b"io.provenant.build.v1".to_vec()),
            ("content-type".to_owned(), if headered { b"application/avro".to_vec() } else { b"application/json".to_vec() }),
        ];
        let mut value = SchemaId::Data(Kind::Build).header().to_vec();
        value.extend_from_slice(&bytes);
        let _ = binary_mode::decode(&headers, &value, &Limits::DEFAULT);
        let _ = binary_mode::decode(&headers, &bytes, &Limits::DEFAULT);
    }

    #[test]
    fn no_decoder_panics_on_corrupted_valid_values(
        entry in strategies::entry(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = entry.to_avro();
        for (i, b) in &flips {
            let at = HEADER_LEN + i.index(bytes.len() - HEADER_LEN);
            bytes[at] = *b;
        }
        if let Ok(decoded) = LedgerEntry::from_avro(&bytes) {
            // Whatever decodes re-encodes to bytes that decode to the same entry. (Not always to
            // the same bytes: Avro lets one value be written several ways — map entries in any
            // order, blocks split differently — and the ledger's hashes are taken over the
            // canonical JSON form, not the Avro bytes, so that freedom cannot change a hash.)
            let again = decoded.to_avro();
            prop_assert_eq!(LedgerEntry::from_avro(&again).ok(), Some(decoded));
        }
        let _ = LedgerEntry::from_avro(&bytes[..cut.index(bytes.len())]);
    }
}

#[test]
fn bad_avro_is_invalid_avro_naming_schema_and_field() {
    let event = Event::from_json(
        json!({"specversion": "1.0", "id": "b-1", "source": "ci", "type": "io.provenant.build.v1",
               "data": {"commit_sha": "4f1c2a9b8e7d6c5b4a3928171615141312111009", "build_id": "b",
                        "build_timestamp": "2026-11-23T09:58:00Z"}})
        .to_string()
        .as_bytes(),
        &Limits::DEFAULT,
    )
    .unwrap();
    let bytes = avro::encode_event(&event);
    // Truncated inside the data record.
    let e = avro::decode_event(&bytes[..bytes.len() - 3], &Limits::DEFAULT).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidAvro);
    assert!(
        e.message
            .starts_with("Avro value of io.provenant.v1.Event does not decode: data."),
        "{e}"
    );
    // Trailing garbage.
    let mut longer = bytes.clone();
    longer.push(0);
    let e = avro::decode_event(&longer, &Limits::DEFAULT).unwrap_err();
    assert!(e.message.contains("trailing bytes"), "{e}");
    // A huge block count must not allocate: it is refused against the bytes left.
    let mut huge = SchemaId::Data(Kind::Data).header().to_vec();
    huge.extend_from_slice(&[2, b'n', 2, b'j', 2, b'r', 0]); // job, run_id, START
    huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]); // inputs: 2^31-1 items
    let e = avro::decode_data(Kind::Data, &huge, &Limits::DEFAULT).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidAvro);
    assert!(
        e.message
            .contains("data.inputs: block count goes past the end"),
        "{e}"
    );
    // A map with a key twice is refused, like duplicate JSON keys.
    let mut dup = SchemaId::Data(Kind::Artifact).header().to_vec();
    dup.push(2);
    dup.push(b'x'); // artifact_digest "x"
    dup.extend_from_slice(&[0, 0, 0, 0]); // four nulls
    dup.extend_from_slice(&[4, 2, b'k', 2, b'a', 2, b'k', 2, b'b', 0]);
    let e = avro::decode_data(Kind::Artifact, &dup, &Limits::DEFAULT).unwrap_err();
    assert!(e.message.contains("map has a key twice"), "{e}");
    // Decoded events are validated like JSON ones.
    let mut invalid = event.clone();
    if let provenant_schemas::EventData::Build(b) = &mut invalid.data {
        b.commit_sha = "not-a-sha".into();
    }
    let e = avro::decode_event(&avro::encode_event(&invalid), &Limits::DEFAULT).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidValue);
    assert!(!e.to_string().contains("not-a-sha"));
    // Over the size limit.
    let small = Limits {
        max_event_bytes: 16,
        ..Limits::DEFAULT
    };
    assert_eq!(
        avro::decode_event(&bytes, &small).unwrap_err().code,
        ErrorCode::TooLarge
    );
}

// --- Schema evolution (schemas/README.md) ---------------------------------------------------

/// A hand-written "next version" of BuildData: a new optional field and a new field with a
/// default, both appended; `actor` widened to also accept a long (union branch added at the end).
const BUILD_DATA_V2: &str = r#"{
  "type": "record", "name": "BuildData", "namespace": "io.provenant.v1",
  "fields": [
    {"name": "commit_sha", "type": "string"},
    {"name": "branch", "type": ["null", "string"], "default": null},
    {"name": "build_id", "type": "string"},
    {"name": "build_timestamp", "type": "string"},
    {"name": "actor", "type": ["null", "string", "long"], "default": null},
    {"name": "pipeline_url", "type": ["null", "string"], "default": null},
    {"name": "repo_url", "type": ["null", "string"], "default": null},
    {"name": "artifact_digest", "type": ["null", "string"], "default": null},
    {"name": "signature", "type": ["null", "string"], "default": null},
    {"name": "annotations", "type": {"type": "map", "values": "string"}, "default": {}},
    {"name": "builder", "type": ["null", "string"], "default": null},
    {"name": "attempt", "type": "long", "default": 1}
  ]
}"#;

/// The v2 Event: BuildData v2, a new data branch at the end of the union, a new envelope
/// field with a default.
fn event_v2() -> Schema {
    let mut v1 = SchemaId::Event.schema_json().unwrap();
    let fields = v1["fields"].as_array_mut().unwrap();
    let data = fields.iter_mut().find(|f| f["name"] == "data").unwrap();
    let branches = data["type"].as_array_mut().unwrap();
    assert_eq!(branches[0]["name"], "BuildData");
    branches[0] = serde_json::from_str(BUILD_DATA_V2).unwrap();
    branches.push(json!({"type": "record", "name": "ReleaseData", "fields": [
        {"name": "release_id", "type": "string"}]}));
    fields.push(json!({"name": "tenant", "type": "string", "default": "default"}));
    Schema::parse(&v1).unwrap()
}

fn field<'a>(record: &'a AvroValue, name: &str) -> &'a AvroValue {
    let AvroValue::Record(fields) = record else {
        panic!("not a record: {record:?}")
    };
    &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1
}

#[test]
fn a_next_version_reader_reads_records_written_today() {
    let writer = SchemaId::Event.schema().unwrap();
    let reader = event_v2();
    SchemaCompatibility::can_read(writer, &reader).unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..32 {
        let event = strategies::event_with(strategies::data_of(Kind::Build))
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let bytes = avro::encode_event(&event);
        let mut body = &bytes[HEADER_LEN..];
        let read = apache_avro::from_avro_datum(writer, &mut body, Some(&reader)).unwrap();
        assert_eq!(field(&read, "id"), &AvroValue::String(event.id.clone()));
        assert_eq!(field(&read, "tenant"), &AvroValue::String("default".into()));
        let AvroValue::Union(0, data) = field(&read, "data") else {
            panic!("not BuildData")
        };
        assert_eq!(field(data, "attempt"), &AvroValue::Long(1));
        assert_eq!(
            field(data, "builder"),
            &AvroValue::Union(0, Box::new(AvroValue::Null))
        );
        let provenant_schemas::EventData::Build(b) = &event.data else {
            unreachable!()
        };
        assert_eq!(
            field(data, "build_id"),
            &AvroValue::String(b.build_id.clone())
        );
        let actor = match &b.actor {
            None => AvroValue::Union(0, Box::new(AvroValue::Null)),
            Some(a) => AvroValue::Union(1, Box::new(AvroValue::String(a.clone()))),
        };
        assert_eq!(field(data, "actor"), &actor);
    }
    // Every kind's data record, and the ledger entry, is readable by a next version that
    // appends a field with a default. (Readers resolve the data *union* by the writer's
    // fingerprint and branch index, not with apache-avro's union resolution: apache-avro 0.21
    // picks the first reader branch a record resolves against, not the one of the same name;
    // see schemas/README.md.)
    let with_new_field = |id: SchemaId, bytes: Vec<u8>| {
        let mut v2 = id.schema_json().unwrap();
        let record = if v2.is_array() { &mut v2[0] } else { &mut v2 };
        record["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "added_in_v2", "type": ["null", "string"], "default": null}));
        let v2 = Schema::parse(&v2).unwrap();
        let writer = id.schema().unwrap();
        SchemaCompatibility::can_read(writer, &v2).unwrap();
        let mut body = &bytes[HEADER_LEN..];
        let read = apache_avro::from_avro_datum(writer, &mut body, Some(&v2)).unwrap();
        assert!(body.is_empty());
        let record = match &read {
            AvroValue::Union(0, r) => r.as_ref(),
            other => other,
        };
        assert_eq!(
            field(record, "added_in_v2"),
            &AvroValue::Union(0, Box::new(AvroValue::Null)),
            "{id:?}"
        );
    };
    for kind in Kind::ALL {
        let data = strategies::data_of(kind)
            .new_tree(&mut proptest::test_runner::TestRunner::deterministic())
            .unwrap()
            .current();
        with_new_field(SchemaId::Data(kind), avro::encode_data(&data));
    }
    let record = strategies::record()
        .new_tree(&mut runner)
        .unwrap()
        .current();
    with_new_field(SchemaId::LedgerEntry, LedgerEntry::Record(record).to_avro());
}

#[test]
fn changes_the_rules_forbid_break_old_records() {
    let writer = SchemaId::Data(Kind::Build).schema().unwrap();
    let v1: Value = SchemaId::Data(Kind::Build).schema_json().unwrap();
    let edit = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut s = v1.clone();
        f(s["fields"].as_array_mut().unwrap());
        Schema::parse(&s).unwrap()
    };
    let forbidden = [
        (
            "new field without a default",
            edit(&|fs| fs.push(json!({"name": "attempt", "type": "long"}))),
        ),
        (
            "field renamed without an alias",
            edit(&|fs| fs[2]["name"] = json!("build_ident")),
        ),
        (
            "field type changed",
            edit(&|fs| fs[0]["type"] = json!("long")),
        ),
        (
            "optional made required",
            edit(&|fs| fs[1] = json!({"name": "branch", "type": "string"})),
        ),
    ];
    for (what, reader) in forbidden {
        assert!(
            SchemaCompatibility::can_read(writer, &reader).is_err(),
            "{what} should be incompatible"
        );
    }
    // A new enum symbol breaks old readers of new data (a forward-compatibility rule).
    let v1_data = SchemaId::Data(Kind::Data).schema().unwrap();
    let mut v2_json = SchemaId::Data(Kind::Data).schema_json().unwrap();
    let et = v2_json["fields"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == "event_type")
        .unwrap();
    et["type"]["symbols"]
        .as_array_mut()
        .unwrap()
        .push(json!("PAUSED"));
    let v2 = Schema::parse(&v2_json).unwrap();
    assert!(SchemaCompatibility::can_read(&v2, v1_data).is_err());
}
