//! The interop mappings against documents written by other tools: the CloudEvents and
//! OpenLineage Python SDKs and the CDEvents spec's conformance examples (`schemas/fixtures/`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use provenant_schemas::interop::{cdevents, cloudevents, openlineage};
use provenant_schemas::{ErrorCode, Event, EventData, Kind, Limits, RunState, decode};
use serde_json::{Value, json};

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{}", dir.display());
    out
}

fn one(bytes: &[u8], content_type: Option<&str>) -> Result<Event, provenant_schemas::ItemError> {
    let mut items = decode(bytes, content_type, &Limits::DEFAULT);
    assert_eq!(items.len(), 1);
    items.remove(0)
}

#[test]
fn sdk_structured_events_decode_with_and_without_content_type() {
    for path in files("fixtures/cloudevents/structured") {
        let bytes = std::fs::read(&path).unwrap();
        for ct in [None, Some(cloudevents::STRUCTURED), Some(cloudevents::JSON)] {
            let e = one(&bytes, ct).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(e.mapped_from, None);
            assert_eq!(Event::from_json(&bytes, &Limits::DEFAULT).unwrap(), e);
        }
    }
    let compat = one(&fixture("cloudevents/structured/build_v1compat.json"), None).unwrap();
    let current = one(&fixture("cloudevents/structured/build.json"), None).unwrap();
    assert_eq!(compat, current, "both SDK layers write the same event");
}

#[test]
fn sdk_batch_decodes_every_element_in_order() {
    let bytes = fixture("cloudevents/batch/batch.json");
    for ct in [None, Some(cloudevents::BATCH), Some(cloudevents::JSON)] {
        let kinds: Vec<Kind> = decode(&bytes, ct, &Limits::DEFAULT)
            .into_iter()
            .map(|r| r.unwrap().kind())
            .collect();
        assert_eq!(
            kinds,
            [
                Kind::Build,
                Kind::Artifact,
                Kind::Approval,
                Kind::Deploy,
                Kind::Runtime
            ]
        );
    }
    // As NDJSON (one compact event per line) the same five events come out.
    let v: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    let nd: String = v.iter().map(|e| format!("{e}\n")).collect();
    let from_nd: Vec<Event> = decode(nd.as_bytes(), None, &Limits::DEFAULT)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let from_batch: Vec<Event> = decode(&bytes, None, &Limits::DEFAULT)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(from_nd, from_batch);
}

#[test]
fn kafka_structured_value_decodes_like_http_structured() {
    // The Kafka structured-mode fixture wraps the value in an envelope (see fixtures README).
    let env: Value =
        serde_json::from_slice(&fixture("cloudevents/binary/kafka_structured_deploy.json"))
            .unwrap();
    assert_eq!(env["headers"]["content-type"], cloudevents::STRUCTURED);
    let b64 = env["value_base64"].as_str().unwrap();
    let value = base64_decode(b64);
    let e = one(&value, Some(cloudevents::STRUCTURED)).unwrap();
    assert_eq!(e.kind(), Kind::Deploy);
}

/// A small standard base64 decoder, so the test needs no extra crate.
fn base64_decode(s: &str) -> Vec<u8> {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = table.iter().position(|t| *t == c).unwrap() as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn openlineage_run_events_map_to_data_events() {
    for path in files("fixtures/openlineage") {
        let bytes = std::fs::read(&path).unwrap();
        let e = one(&bytes, Some(cloudevents::JSON))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(e.mapped_from.as_deref(), Some(openlineage::MAPPED_FROM));
        assert_eq!(
            e.source,
            "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python"
        );
        assert_eq!(openlineage::from_json(&bytes, &Limits::DEFAULT).unwrap(), e);
    }
    let ol = one(&fixture("openlineage/run_complete.json"), None).unwrap();
    let native = one(&fixture("cloudevents/structured/data.json"), None).unwrap();
    let (EventData::Data(got), EventData::Data(want)) = (&ol.data, &native.data) else {
        panic!("not data events");
    };
    assert_eq!(got.job, want.job);
    assert_eq!(got.run_id, want.run_id);
    assert_eq!(got.event_type, RunState::Complete);
    // Same datasets and snapshot ids; schema_version is not in standard OpenLineage facets.
    let strip = |v: &[provenant_schemas::Dataset]| {
        v.iter()
            .map(|d| (d.namespace.clone(), d.name.clone(), d.snapshot_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&got.inputs), strip(&want.inputs));
    assert_eq!(strip(&got.outputs), strip(&want.outputs));
    assert!(got.inputs.iter().all(|d| d.schema_version.is_none()));
    assert_eq!(ol.time.as_deref(), Some("2025-06-03T02:07:41.093Z"));
    // The id is the documented UUIDv5.
    let want_id = openlineage::event_id(
        uuid::Uuid::parse_str(&got.run_id).unwrap(),
        RunState::Complete,
        "2025-06-03T02:07:41.093Z",
        &got.job.namespace,
        &got.job.name,
    )
    .unwrap();
    assert_eq!(ol.id, want_id.to_string());
    // Mapped events survive the native JSON form (mapped_from travels as an extension).
    assert_eq!(
        Event::from_value(&ol.to_json_value(), &Limits::DEFAULT).unwrap(),
        ol
    );
}

#[test]
fn openlineage_id_is_stable_under_reserialization_and_changes_with_its_inputs() {
    let bytes = fixture("openlineage/run_start.json");
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    let base = openlineage::from_value(&v, &Limits::DEFAULT).unwrap();
    // Pretty-printed, other time zone, same instant: same id.
    let t = v["eventTime"].as_str().unwrap().to_owned();
    let instant = chrono::DateTime::parse_from_rfc3339(&t).unwrap();
    let shifted = instant
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    v["eventTime"] = json!(shifted);
    let again = decode(
        serde_json::to_string_pretty(&v).unwrap().as_bytes(),
        None,
        &Limits::DEFAULT,
    );
    assert_eq!(again[0].as_ref().unwrap().id, base.id);
    // Unknown facets and members are ignored.
    v["run"]["facets"]["acme_custom"] = json!({"anything": [1, 2, {"deep": true}]});
    v["somethingNew"] = json!(1);
    assert_eq!(
        openlineage::from_value(&v, &Limits::DEFAULT).unwrap().id,
        base.id
    );
    // Each part of the name changes the id.
    for (ptr, new) in [
        ("/eventType", json!("COMPLETE")),
        ("/run/runId", json!("01973a9c-2f40-7b1e-9c55-3d2e8f6a1b71")),
        ("/job/name", json!("other")),
        ("/job/namespace", json!("other")),
        ("/eventTime", json!("2030-01-01T00:00:00Z")),
    ] {
        let mut w: Value = serde_json::from_slice(&bytes).unwrap();
        *w.pointer_mut(ptr).unwrap() = new;
        assert_ne!(
            openlineage::from_value(&w, &Limits::DEFAULT).unwrap().id,
            base.id,
            "{ptr}"
        );
    }
    // Absent eventType is OTHER.
    let mut w: Value = serde_json::from_slice(&bytes).unwrap();
    w.as_object_mut().unwrap().remove("eventType");
    let EventData::Data(d) = openlineage::from_value(&w, &Limits::DEFAULT).unwrap().data else {
        panic!()
    };
    assert_eq!(d.event_type, RunState::Other);
}

const DIGEST: &str = "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427";

/// The spec's conformance examples: which are mapped, to what, and which are refused why.
#[test]
fn cdevents_conformance_examples() {
    let ok = |file: &str| {
        cdevents::from_json(&fixture(&format!("cdevents/{file}")), &Limits::DEFAULT)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let err = |file: &str| {
        let e = cdevents::from_json(&fixture(&format!("cdevents/{file}")), &Limits::DEFAULT)
            .unwrap_err();
        (e.code, e.field.clone().unwrap_or_default(), e.to_string())
    };
    // build.finished without a commit sha: an artifact built by the build.
    let e = ok("build_finished.json");
    assert_eq!(e.id, "271069a8-fc18-44f1-b38f-9d70a1695819");
    assert_eq!(e.source, "/event/source/123");
    assert_eq!(
        e.mapped_from.as_deref(),
        Some("dev.cdevents.build.finished.0.3.0")
    );
    let EventData::Artifact(a) = &e.data else {
        panic!("{e:?}")
    };
    assert_eq!(a.artifact_digest, DIGEST);
    assert_eq!(
        a.build_id.as_deref(),
        Some("cdevents:/event/source/123#mySubject123")
    );
    assert_eq!(a.name.as_deref(), Some("pkg:oci/myapp"));
    for (file, predicate) in [
        ("service_deployed.json", "deployed"),
        ("service_upgraded.json", "upgraded"),
        ("service_rolledback.json", "rolledback"),
    ] {
        let e = ok(file);
        assert_eq!(
            e.mapped_from,
            Some(format!("dev.cdevents.service.{predicate}.0.3.0"))
        );
        let EventData::Deploy(d) = &e.data else {
            panic!("{e:?}")
        };
        assert_eq!(d.deploy_id, "271069a8-fc18-44f1-b38f-9d70a1695819");
        assert_eq!(d.artifact_digest, DIGEST);
        assert_eq!(d.environment, "test123");
        assert_eq!(d.service, "mySubject123");
        assert_eq!(d.deploy_timestamp, "2023-03-20T14:27:05.315384Z");
    }
    let prefix = "event \"271069a8-fc18-44f1-b38f-9d70a1695819\" from \"/event/source/123\": ";
    let accepted = "(accepted: build.finished, artifact.packaged, artifact.published, service.deployed, service.upgraded, service.rolledback, service.published)";
    assert_eq!(
        err("build_started.json"),
        (
            ErrorCode::UnknownType,
            "context.type".into(),
            format!(
                "{prefix}CDEvents build.started is not mapped: only build.finished carries provenance {accepted}"
            )
        )
    );
    assert_eq!(
        err("environment_created.json"),
        (
            ErrorCode::UnknownType,
            "context.type".into(),
            format!(
                "{prefix}CDEvents environment.created is not mapped: Provenant has no environment kind, deploy events name the environment {accepted}"
            )
        )
    );
    // The spec's artifact examples name a Go module version, not a content digest.
    for file in ["artifact_packaged.json", "artifact_published.json"] {
        assert_eq!(
            err(file),
            (
                ErrorCode::InvalidValue,
                "subject.id".into(),
                format!(
                    "{prefix}subject.id must be a purl with a sha256 digest (version sha256%3A<64 hex> or qualifier checksum=sha256:<64 hex>), or customData.artifact_digest must be set"
                )
            ),
            "{file}"
        );
    }
}

fn wrap(cdevent: &Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": cdevent["context"]["id"],
        "source": cdevent["context"]["source"],
        "type": cdevent["context"]["type"],
        "subject": cdevent["subject"]["id"],
        "time": cdevent["context"]["timestamp"],
        "datacontenttype": "application/json",
        "data": cdevent,
    })
}

#[test]
fn cdevents_in_a_cloudevent_map_like_bare_cdevents() {
    for file in [
        "build_finished.json",
        "service_deployed.json",
        "service_rolledback.json",
    ] {
        let bytes = fixture(&format!("cdevents/{file}"));
        let bare: Value = serde_json::from_slice(&bytes).unwrap();
        let wrapped = wrap(&bare);
        let a = one(&bytes, Some(cloudevents::CDEVENTS)).unwrap();
        let b = one(
            wrapped.to_string().as_bytes(),
            Some(cloudevents::STRUCTURED),
        )
        .unwrap();
        assert_eq!(a, b, "{file}");
        assert_eq!(
            Event::from_value(&a.to_json_value(), &Limits::DEFAULT).unwrap(),
            a
        );
        // The envelope must agree with the context.
        for key in ["id", "source", "type"] {
            let mut w = wrapped.clone();
            w[key] = json!("dev.cdevents.service.deployed.0.2.0");
            let e = cdevents::from_value(&w, &Limits::DEFAULT).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidValue, "{key}");
            assert_eq!(
                e.message,
                format!("CloudEvent {key} must equal the CDEvent's context.{key}")
            );
        }
    }
}

#[test]
fn cdevents_custom_data_supplies_what_cdevents_lack() {
    let mut v: Value = serde_json::from_slice(&fixture("cdevents/build_finished.json")).unwrap();
    v["customData"] = json!({
        "commit_sha": "4711a73b71d459a8aebe20e7d71ba22af478ed67",
        "branch": "main",
        "build_id": "github:acme/shop/9123456780/1",
        "repo_url": "https://github.com/acme/shop",
        "unrelated": {"x": 1}
    });
    let e = cdevents::from_value(&v, &Limits::DEFAULT).unwrap();
    let EventData::Build(b) = &e.data else {
        panic!("{e:?}")
    };
    assert_eq!(b.commit_sha, "4711a73b71d459a8aebe20e7d71ba22af478ed67");
    assert_eq!(b.build_id, "github:acme/shop/9123456780/1");
    assert_eq!(b.build_timestamp, "2023-03-20T14:27:05.315384Z");
    assert_eq!(b.artifact_digest.as_deref(), Some(DIGEST));
    assert_eq!(b.branch.as_deref(), Some("main"));
    // customData in another content type is not read.
    v["customDataContentType"] = json!("application/xml");
    let e = cdevents::from_value(&v, &Limits::DEFAULT).unwrap();
    assert_eq!(e.kind(), Kind::Artifact);
    // An artifact whose purl has no digest can take it from customData.
    let mut a: Value =
        serde_json::from_slice(&fixture("cdevents/artifact_published.json")).unwrap();
    a["customData"] = json!({"artifact_digest": DIGEST});
    let e = cdevents::from_value(&a, &Limits::DEFAULT).unwrap();
    let EventData::Artifact(art) = &e.data else {
        panic!("{e:?}")
    };
    assert_eq!(art.artifact_digest, DIGEST);
    assert_eq!(
        art.name.as_deref(),
        Some("pkg:golang/mygit.com/myorg/myapp")
    );
    assert_eq!(
        art.annotations.get("cdevents.sbom.uri").map(String::as_str),
        Some("https://sbom.repo/myorg/234fd47e07d1004f0aed9c.sbom")
    );
}
