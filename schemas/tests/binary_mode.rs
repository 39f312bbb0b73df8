//! Binary-mode CloudEvents on Kafka: precise errors for bad headers and values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use provenant_schemas::avro::{self, SchemaId};
use provenant_schemas::binary_mode::{self, Headers};
use provenant_schemas::{Artifact, ErrorCode, Event, EventData, EventError, Kind, Limits};

const DIGEST: &str = "sha256:9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";

fn artifact() -> Event {
    let mut e = Event::new(
        "https://ci.example.com/acme/shop",
        "artifact-1",
        EventData::Artifact(Artifact {
            artifact_digest: DIGEST.into(),
            name: Some("ghcr.io/acme/shop".into()),
            ..Artifact::default()
        }),
    );
    e.extensions
        .insert("traceparent".into(), "00-abc-01".into());
    e
}

fn decode(h: &Headers, v: &[u8]) -> Result<Event, EventError> {
    binary_mode::decode(h, v, &Limits::DEFAULT)
}

fn set(h: &mut Headers, name: &str, value: &[u8]) {
    h.retain(|(n, _)| n != name);
    h.push((name.into(), value.to_vec()));
}

#[test]
fn encodes_avro_by_default_with_ce_headers() {
    let (h, v) = binary_mode::encode(&artifact());
    let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_traceparent",
            "content-type"
        ]
    );
    assert_eq!(h[3].1, b"io.provenant.artifact.v1");
    assert_eq!(h[5].1, b"application/avro");
    assert_eq!(avro::schema_of(&v), Some(SchemaId::Data(Kind::Artifact)));
    assert_eq!(decode(&h, &v).unwrap(), artifact());
    // Media-type parameters and case are tolerated.
    let mut h2 = h.clone();
    h2.retain(|(n, _)| n != "content-type");
    h2.push(("Content-Type".into(), b"Application/Avro; v=1".to_vec()));
    assert_eq!(decode(&h2, &v).unwrap(), artifact());
}

#[test]
fn header_errors_name_the_header() {
    let (h, v) = binary_mode::encode(&artifact());
    let mut missing = h.clone();
    missing.retain(|(n, _)| n != "ce_source");
    let e = decode(&missing, &v).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidHeaders);
    assert_eq!(e.field.as_deref(), Some("ce_source"));
    assert!(e.message.starts_with("header ce_source is missing"), "{e}");
    // The id is known and named.
    assert!(e.to_string().starts_with("event \"artifact-1\": "), "{e}");

    let mut dup = h.clone();
    dup.push(("ce_id".into(), b"artifact-2".to_vec()));
    let e = decode(&dup, &v).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ErrorCode::InvalidHeaders,
            "header ce_id appears more than once"
        )
    );

    let mut bad = h.clone();
    set(&mut bad, "ce_subject", b"\xff\xfesecret");
    let e = decode(&bad, &v).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ErrorCode::InvalidHeaders,
            "header ce_subject is not valid UTF-8"
        )
    );

    let mut no_ct = h.clone();
    no_ct.retain(|(n, _)| n != "content-type");
    assert_eq!(
        decode(&no_ct, &v).unwrap_err().code,
        ErrorCode::InvalidHeaders
    );

    let mut two_ct = h.clone();
    two_ct.push(("content-type".into(), b"application/json".to_vec()));
    assert_eq!(
        decode(&two_ct, &v).unwrap_err().code,
        ErrorCode::InvalidHeaders
    );

    let mut dct = h.clone();
    set(&mut dct, "ce_datacontenttype", b"application/avro");
    assert_eq!(
        decode(&dct, &v).unwrap_err().field.as_deref(),
        Some("ce_datacontenttype")
    );

    let mut sv = h.clone();
    set(&mut sv, "ce_specversion", b"0.3");
    assert_eq!(
        decode(&sv, &v).unwrap_err().code,
        ErrorCode::UnsupportedSpecVersion
    );

    let mut ty = h.clone();
    set(&mut ty, "ce_type", b"com.example.other");
    assert_eq!(decode(&ty, &v).unwrap_err().code, ErrorCode::UnknownType);

    let mut reserved = h.clone();
    set(&mut reserved, "ce_data", b"x");
    assert_eq!(
        decode(&reserved, &v).unwrap_err().code,
        ErrorCode::InvalidValue
    );
}

#[test]
fn content_types() {
    let (mut h, v) = binary_mode::encode(&artifact());
    set(&mut h, "content-type", b"text/plain");
    let e = decode(&h, &v).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedContentType);

    // An Avro value of another kind than ce_type says.
    let (mut h, _) = binary_mode::encode(&artifact());
    set(&mut h, "ce_type", b"io.provenant.build.v1");
    let e = decode(&h, &v).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidAvro);
    assert!(
        e.message.contains("written with a value of io.provenant.v1.ArtifactData, expected io.provenant.v1.BuildData"),
        "{e}"
    );

    // JSON values go through the strict parser and the kind's field rules.
    let (h, v) = binary_mode::encode_json(&artifact());
    assert_eq!(decode(&h, &v).unwrap(), artifact());
    let e = decode(&h, br#"{"artifact_digest":"x","artifact_digest":"y"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::DuplicateKey);
    let e = decode(&h, br#"{"artifact_digest":"sha256:nope-secret"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidValue);
    assert!(!e.to_string().contains("nope-secret"));
    let e = decode(&h, br#"{"artifact_digest":"x","colour":"red"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownField);

    // Structured mode: the value is the whole event; ce_ headers are not read.
    let h = vec![(
        "content-type".to_owned(),
        b"application/cloudevents+json; charset=utf-8".to_vec(),
    )];
    assert_eq!(decode(&h, &artifact().to_json_bytes()).unwrap(), artifact());
}
