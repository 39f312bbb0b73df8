//! Realistic events for the redaction tests.
#![allow(dead_code)]

use provenant_redact::{Policy, Redactor, Secret};
use provenant_schemas::event::{
    Approval, Artifact, Build, Data, Dataset, Decision, Deploy, Event, EventData, Job, RunState,
    Runtime,
};

pub(crate) const KEY: &str = "test-key-0123456789abcdef-0123456789abcdef";

/// The default policy with a fixed key (built once per test binary).
pub(crate) fn redactor() -> &'static Redactor {
    static R: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
    R.get_or_init(|| Redactor::new(&Policy::default_policy(), Secret::from(KEY)).unwrap())
}

pub(crate) fn event(kind: &str) -> Event {
    let data = match kind {
        "build" | "event" => EventData::Build(Build {
            commit_sha: "de9f2c7fd25e1b3afad3e85a0bd17d9b100db4b3".into(),
            branch: Some("main".into()),
            build_id: "github:acme/api/9876543210/1".into(),
            build_timestamp: "2026-11-23T10:00:00Z".into(),
            actor: Some("octocat".into()),
            pipeline_url: Some(
                "https://github.com/acme/api/actions/runs/9876543210/attempts/1".into(),
            ),
            repo_url: Some("https://github.com/acme/api".into()),
            artifact_digest: Some(
                "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into(),
            ),
            signature: None,
            annotations: [("ci.runner".to_owned(), "ubuntu-24.04".to_owned())].into(),
        }),
        "artifact" => EventData::Artifact(Artifact {
            artifact_digest:
                "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into(),
            build_id: Some("github:acme/api/9876543210/1".into()),
            commit_sha: Some("de9f2c7fd25e1b3afad3e85a0bd17d9b100db4b3".into()),
            name: Some("ghcr.io/acme/api:1.4.2".into()),
            signature: None,
            annotations: Default::default(),
        }),
        "deploy" => EventData::Deploy(Deploy {
            deploy_id: "deploy-prod-20261123-0042".into(),
            artifact_digest:
                "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into(),
            environment: "production".into(),
            service: "api".into(),
            deploy_timestamp: "2026-11-23T10:05:00Z".into(),
            actor: Some("argo-cd".into()),
            config_hash: Some("cfg-9e107d9d372b".into()),
            previous_deploy_id: Some("deploy-prod-20261122-0041".into()),
            pipeline_url: Some("https://argo.example.com/applications/api".into()),
            annotations: Default::default(),
        }),
        "runtime" => EventData::Runtime(Runtime {
            instance_id: "api-7d9f8b6c5d-x2kqp".into(),
            service: "api".into(),
            environment: "production".into(),
            deploy_id: Some("deploy-prod-20261123-0042".into()),
            artifact_digest: None,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            message: Some("started in 1500ms".into()),
            annotations: Default::default(),
        }),
        "data" => EventData::Data(Data {
            job: Job {
                namespace: "airflow".into(),
                name: "daily_orders".into(),
            },
            run_id: "123e4567-e89b-12d3-a456-426614174000".into(),
            event_type: RunState::Complete,
            inputs: vec![Dataset {
                namespace: "s3://acme-lake".into(),
                name: "events/2026/11/23".into(),
                snapshot_id: Some("8872345".into()),
                schema_version: Some("v3".into()),
            }],
            outputs: vec![Dataset {
                namespace: "postgres://warehouse:5432".into(),
                name: "analytics.orders_v2".into(),
                snapshot_id: None,
                schema_version: None,
            }],
            annotations: Default::default(),
        }),
        "approval" => EventData::Approval(Approval {
            approval_id: "appr-7781".into(),
            deploy_id: Some("deploy-prod-20261123-0042".into()),
            artifact_digest: None,
            environment: "production".into(),
            decision: Decision::Approved,
            approver: "release-manager".into(),
            reason: Some("change window CHG-2231".into()),
            policy: Some("two-person-rule".into()),
            annotations: Default::default(),
        }),
        other => panic!("no kind {other}"),
    };
    let mut e = Event::new("https://github.com/acme/api", "evt-0001", data);
    e.time = Some("2026-11-23T10:00:00Z".into());
    e.subject = Some("build:github:acme/api/9876543210/1".into());
    e.extensions.insert(
        "traceparent".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    );
    e
}

/// Sets one field of `e` (`actor`, `message`, `annotations.<k>`, `extensions.<name>`,
/// `subject`, …) to `text`.
pub(crate) fn set_field(e: &mut Event, field: &str, text: &str) {
    let t = Some(text.to_owned());
    if let Some(k) = field.strip_prefix("annotations.") {
        annotations_mut(&mut e.data).insert(k.to_owned(), text.to_owned());
        return;
    }
    if let Some(k) = field.strip_prefix("extensions.") {
        e.extensions.insert(k.to_owned(), text.to_owned());
        return;
    }
    match (field, &mut e.data) {
        ("subject", _) => e.subject = t,
        ("source", _) => e.source = text.to_owned(),
        ("id", _) => e.id = text.to_owned(),
        ("actor", EventData::Build(b)) => b.actor = t,
        ("actor", EventData::Deploy(d)) => d.actor = t,
        ("branch", EventData::Build(b)) => b.branch = t,
        ("build_id", EventData::Build(b)) => b.build_id = text.to_owned(),
        ("pipeline_url", EventData::Build(b)) => b.pipeline_url = t,
        ("pipeline_url", EventData::Deploy(d)) => d.pipeline_url = t,
        ("repo_url", EventData::Build(b)) => b.repo_url = t,
        ("signature", EventData::Build(b)) => b.signature = t,
        ("commit_sha", EventData::Build(b)) => b.commit_sha = text.to_owned(),
        ("artifact_digest", EventData::Build(b)) => b.artifact_digest = t,
        ("build_timestamp", EventData::Build(b)) => b.build_timestamp = text.to_owned(),
        ("name", EventData::Artifact(a)) => a.name = t,
        ("deploy_id", EventData::Deploy(d)) => d.deploy_id = text.to_owned(),
        ("service", EventData::Deploy(d)) => d.service = text.to_owned(),
        ("environment", EventData::Deploy(d)) => d.environment = text.to_owned(),
        ("message", EventData::Runtime(r)) => r.message = t,
        ("instance_id", EventData::Runtime(r)) => r.instance_id = text.to_owned(),
        ("trace_id", EventData::Runtime(r)) => r.trace_id = t,
        ("run_id", EventData::Data(d)) => d.run_id = text.to_owned(),
        ("input_name", EventData::Data(d)) => d.inputs[0].name = text.to_owned(),
        ("approver", EventData::Approval(a)) => a.approver = text.to_owned(),
        ("reason", EventData::Approval(a)) => a.reason = t,
        (f, d) => panic!("cannot set {f} on {:?}", d.kind()),
    }
}

pub(crate) fn annotations_mut(
    d: &mut EventData,
) -> &mut std::collections::BTreeMap<String, String> {
    match d {
        EventData::Build(x) => &mut x.annotations,
        EventData::Artifact(x) => &mut x.annotations,
        EventData::Deploy(x) => &mut x.annotations,
        EventData::Runtime(x) => &mut x.annotations,
        EventData::Data(x) => &mut x.annotations,
        EventData::Approval(x) => &mut x.annotations,
    }
}

pub(crate) fn json_string(e: &Event) -> String {
    String::from_utf8(e.to_json_bytes()).unwrap()
}
