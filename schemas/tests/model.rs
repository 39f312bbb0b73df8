//! Decoding, validation and references of native events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use provenant_schemas::{EntityKey, ErrorCode, Event, Kind, Limits, Relation};
use serde_json::{Value, json};

const SHA: &str = "4f1c2a9b8e7d6c5b4a3928171615141312111009";
const DIGEST: &str = "sha256:9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";

fn envelope(kind: Kind, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": format!("{kind}-1"),
        "source": "https://ci.example.com/acme/shop",
        "type": kind.ce_type(),
        "time": "2026-11-23T10:00:00Z",
        "datacontenttype": "application/json",
        "data": data,
    })
}

fn good(kind: Kind) -> Value {
    let data = match kind {
        Kind::Build => {
            json!({"commit_sha": SHA, "branch": "main", "build_id": "github:acme/shop/42/1",
            "build_timestamp": "2026-11-23T09:58:00Z", "actor": "ci-bot",
            "pipeline_url": "https://ci.example.com/acme/shop/42", "annotations": {"runner": "linux-x64"}})
        }
        Kind::Artifact => json!({"artifact_digest": DIGEST, "build_id": "github:acme/shop/42/1",
            "commit_sha": SHA, "name": "ghcr.io/acme/shop"}),
        Kind::Deploy => {
            json!({"deploy_id": "dep-7", "artifact_digest": DIGEST, "environment": "staging",
            "service": "shop", "deploy_timestamp": "2026-11-23T10:05:00Z", "previous_deploy_id": "dep-6"})
        }
        Kind::Runtime => {
            json!({"instance_id": "shop-7d9f-x2", "service": "shop", "environment": "staging",
            "deploy_id": "dep-7", "artifact_digest": DIGEST, "message": "started\nready"})
        }
        Kind::Data => json!({"job": {"namespace": "etl", "name": "daily_orders"},
            "run_id": "0190b6f2-3c4d-7e8f-9a0b-1c2d3e4f5a6b", "event_type": "COMPLETE",
            "inputs": [{"namespace": "postgres://db:5432", "name": "shop.orders"}],
            "outputs": [{"namespace": "s3://lake", "name": "orders_daily", "snapshot_id": "v12"}]}),
        Kind::Approval => {
            json!({"approval_id": "ap-1", "deploy_id": "dep-7", "environment": "production",
            "decision": "approved", "approver": "release-manager", "policy": "two-person"})
        }
    };
    envelope(kind, data)
}

fn decode(v: &Value) -> Result<Event, provenant_schemas::EventError> {
    Event::from_json(v.to_string().as_bytes(), &Limits::DEFAULT)
}

#[test]
fn every_kind_decodes_and_round_trips_through_json() {
    for kind in Kind::ALL {
        let event = decode(&good(kind)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(event.kind(), kind);
        let again = Event::from_value(&event.to_json_value(), &Limits::DEFAULT).unwrap();
        assert_eq!(again, event);
    }
}

#[test]
fn references_and_keys() {
    let deploy = decode(&good(Kind::Deploy)).unwrap();
    assert_eq!(deploy.partition_key(), "deploy:dep-7");
    let refs: Vec<(Relation, String)> = deploy
        .references()
        .into_iter()
        .map(|r| (r.relation, r.target.to_string()))
        .collect();
    assert_eq!(
        refs,
        vec![
            (Relation::Runs, format!("artifact:{DIGEST}")),
            (Relation::InEnvironment, "env:staging".into()),
            (Relation::Replaces, "deploy:dep-6".into()),
        ]
    );
    let data = decode(&good(Kind::Data)).unwrap();
    assert_eq!(data.subject_key(), EntityKey::job("etl", "daily_orders"));
    assert_eq!(
        data.produces(),
        vec![EntityKey::dataset("s3://lake", "orders_daily")]
    );
}

fn error_of(v: &Value) -> (ErrorCode, String) {
    let e = decode(v).unwrap_err();
    (e.code, e.to_string())
}

#[test]
fn precise_errors_name_event_and_field() {
    let mut v = good(Kind::Artifact);
    v["data"]["artifact_digest"] = json!("sha256:XYZ");
    assert_eq!(
        error_of(&v),
        (
            ErrorCode::InvalidValue,
            "event \"artifact-1\" from \"https://ci.example.com/acme/shop\": artifact_digest must be sha256:<64 hex>".into()
        )
    );
    let mut v = good(Kind::Deploy);
    v["data"].as_object_mut().unwrap().remove("environment");
    let (code, msg) = error_of(&v);
    assert_eq!(code, ErrorCode::MissingField);
    assert!(msg.ends_with(": deploy needs environment"), "{msg}");
    let mut v = good(Kind::Build);
    v["data"]["build_id"] = json!(5);
    assert_eq!(error_of(&v).0, ErrorCode::WrongType);
    let mut v = good(Kind::Build);
    v["data"]["comit_sha"] = json!("x");
    let (code, msg) = error_of(&v);
    assert_eq!(code, ErrorCode::UnknownField);
    assert!(msg.ends_with("build has no field \"comit_sha\""), "{msg}");
    let mut v = good(Kind::Build);
    v["type"] = json!("io.provenant.nope.v1");
    assert_eq!(error_of(&v).0, ErrorCode::UnknownType);
}

#[test]
fn errors_never_echo_values() {
    let secret = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
    for (field, kind) in [
        ("artifact_digest", Kind::Deploy),
        ("build_timestamp", Kind::Build),
        ("commit_sha", Kind::Build),
    ] {
        let mut v = good(kind);
        v["data"][field] = json!(secret);
        let e = decode(&v).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(!e.message.contains(secret));
    }
}

#[test]
fn partition_key_is_the_subject_key_for_every_kind() {
    for kind in Kind::ALL {
        let event = decode(&good(kind)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(
            event.partition_key(),
            event.subject_key().to_string(),
            "{kind}"
        );
    }
}
