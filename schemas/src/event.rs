//! The event: what a producer emits. A CloudEvents 1.0 envelope around one of the native
//! kinds (`build`, `artifact`, `deploy`, `runtime`, `data`, `approval`), with the field names
//! of DESIGN.md.
//!
//! Invariants:
//! * An event's identity is (`source`, `id`), as CloudEvents defines it.
//! * [`Event::from_json`] / [`Event::from_value`] accept exactly what [`Event::to_json_value`]
//!   writes (structured-mode CloudEvents JSON), and validate it: an event they return passes
//!   [`Event::validate`]. Decoding never panics on any input.
//! * Field values never appear in errors (see [`crate::error`]).
//! * [`Event::partition_key`] is the one place that says which Kafka key (and so which
//!   partition, by murmur2) each kind gets: the event's subject entity, so all events about
//!   one build, artifact, deployment, instance, job or approval stay in order on one partition.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ErrorCode, EventError, EventRef};
use crate::json::{Limits, parse_strict};
use crate::keys::EntityKey;
use crate::validate;

/// CloudEvents `specversion` Provenant reads and writes.
pub const SPEC_VERSION: &str = "1.0";

/// The native kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Build,
    Artifact,
    Deploy,
    Runtime,
    Data,
    Approval,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 6] = [
        Kind::Build,
        Kind::Artifact,
        Kind::Deploy,
        Kind::Runtime,
        Kind::Data,
        Kind::Approval,
    ];

    /// `build`, `artifact`, … (also a safe metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Artifact => "artifact",
            Kind::Deploy => "deploy",
            Kind::Runtime => "runtime",
            Kind::Data => "data",
            Kind::Approval => "approval",
        }
    }

    /// The native CloudEvents type, `io.provenant.<kind>.v1`.
    pub fn ce_type(self) -> &'static str {
        match self {
            Kind::Build => "io.provenant.build.v1",
            Kind::Artifact => "io.provenant.artifact.v1",
            Kind::Deploy => "io.provenant.deploy.v1",
            Kind::Runtime => "io.provenant.runtime.v1",
            Kind::Data => "io.provenant.data.v1",
            Kind::Approval => "io.provenant.approval.v1",
        }
    }

    /// The kind of a native CloudEvents type.
    pub fn from_ce_type(t: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.ce_type() == t)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Free-text key/value pairs any kind may carry (like Kubernetes annotations or OCI labels).
/// Values are redacted by the processor like every other string.
pub type Annotations = BTreeMap<String, String>;

/// A CI build of a commit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Build {
    pub commit_sha: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub build_id: String,
    pub build_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

/// An artifact (image, package, binary) published with a content digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub artifact_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

/// An artifact deployed as a service to an environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Deploy {
    pub deploy_id: String,
    pub artifact_digest: String,
    pub environment: String,
    pub service: String,
    pub deploy_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_deploy_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_url: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

/// A running instance reporting what it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Runtime {
    pub instance_id: String,
    pub service: String,
    pub environment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Free text (e.g. a startup or error message); redacted like any string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

/// A dataset read or written by a data job run (OpenLineage naming).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Dataset {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
}

/// A data job (OpenLineage naming).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Job {
    pub namespace: String,
    pub name: String,
}

/// The state a data run reports (OpenLineage `eventType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    Start,
    Running,
    #[default]
    Complete,
    Fail,
    Abort,
    Other,
}

impl RunState {
    /// Every state, in a fixed order.
    pub const ALL: [RunState; 6] = [
        RunState::Start,
        RunState::Running,
        RunState::Complete,
        RunState::Fail,
        RunState::Abort,
        RunState::Other,
    ];

    /// `START`, `COMPLETE`, … as OpenLineage spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Start => "START",
            RunState::Running => "RUNNING",
            RunState::Complete => "COMPLETE",
            RunState::Fail => "FAIL",
            RunState::Abort => "ABORT",
            RunState::Other => "OTHER",
        }
    }

    /// The state spelled as [`RunState::as_str`] spells it.
    pub fn parse(s: &str) -> Option<Self> {
        RunState::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A data job run reading and writing datasets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Data {
    pub job: Job,
    pub run_id: String,
    pub event_type: RunState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Dataset>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Dataset>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

/// An approval decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    #[default]
    Approved,
    Rejected,
}

impl Decision {
    /// `approved` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
        }
    }
}

/// A human or policy approving (or rejecting) a deployment or an artifact for an environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub approval_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_digest: Option<String>,
    pub environment: String,
    pub decision: Decision,
    pub approver: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

/// The kind-specific part of an event (CloudEvents `data`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    Build(Build),
    Artifact(Artifact),
    Deploy(Deploy),
    Runtime(Runtime),
    Data(Data),
    Approval(Approval),
}

impl EventData {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            EventData::Build(_) => Kind::Build,
            EventData::Artifact(_) => Kind::Artifact,
            EventData::Deploy(_) => Kind::Deploy,
            EventData::Runtime(_) => Kind::Runtime,
            EventData::Data(_) => Kind::Data,
            EventData::Approval(_) => Kind::Approval,
        }
    }

    /// The annotations of any kind.
    pub fn annotations(&self) -> &Annotations {
        match self {
            EventData::Build(d) => &d.annotations,
            EventData::Artifact(d) => &d.annotations,
            EventData::Deploy(d) => &d.annotations,
            EventData::Runtime(d) => &d.annotations,
            EventData::Data(d) => &d.annotations,
            EventData::Approval(d) => &d.annotations,
        }
    }
}

/// How one event relates to an entity it refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// build → commit it built.
    BuiltFrom,
    /// artifact → build that produced it.
    BuiltBy,
    /// artifact → commit it was built from (when the artifact event says so).
    SourceCommit,
    /// deploy → artifact it deployed; runtime → artifact it runs.
    Runs,
    /// deploy / runtime / approval → environment.
    InEnvironment,
    /// deploy → the deployment it replaced.
    Replaces,
    /// runtime → deployment that started it.
    StartedBy,
    /// data run → dataset it read.
    Reads,
    /// data run → dataset it wrote.
    Writes,
    /// approval → deployment or artifact it decides on.
    Approves,
    /// data run → its job.
    RunOf,
}

impl Relation {
    /// Every relation, in declaration order (also the order of the Avro enum `Relation`).
    pub const ALL: [Relation; 11] = [
        Relation::BuiltFrom,
        Relation::BuiltBy,
        Relation::SourceCommit,
        Relation::Runs,
        Relation::InEnvironment,
        Relation::Replaces,
        Relation::StartedBy,
        Relation::Reads,
        Relation::Writes,
        Relation::Approves,
        Relation::RunOf,
    ];

    /// The relation named by [`Relation::as_str`].
    pub fn parse(s: &str) -> Option<Relation> {
        Relation::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The snake_case name (index edge label).
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::BuiltFrom => "built_from",
            Relation::BuiltBy => "built_by",
            Relation::SourceCommit => "source_commit",
            Relation::Runs => "runs",
            Relation::InEnvironment => "in_environment",
            Relation::Replaces => "replaces",
            Relation::StartedBy => "started_by",
            Relation::Reads => "reads",
            Relation::Writes => "writes",
            Relation::Approves => "approves",
            Relation::RunOf => "run_of",
        }
    }
}

/// A reference from an event to an entity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub relation: Relation,
    pub target: EntityKey,
}

/// A provenance event: CloudEvents envelope and native data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// CloudEvents `id`: unique within `source`.
    pub id: String,
    /// CloudEvents `source`: a URI-reference naming the producer (e.g. the CI pipeline).
    pub source: String,
    /// CloudEvents `time` (RFC 3339), when the occurrence happened.
    pub time: Option<String>,
    /// CloudEvents `subject`.
    pub subject: Option<String>,
    /// CloudEvents `dataschema`.
    pub dataschema: Option<String>,
    /// Other CloudEvents attributes (extensions), in their string form.
    pub extensions: BTreeMap<String, String>,
    /// The original type when the event was mapped from CDEvents or OpenLineage
    /// (e.g. `dev.cdevents.build.finished.0.2.0`, `openlineage.RunEvent`).
    pub mapped_from: Option<String>,
    /// The kind-specific fields.
    pub data: EventData,
}

/// CloudEvents context attributes a structured event may carry besides the extensions.
const CE_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "dataschema",
    "datacontenttype",
];

/// The extension attribute that carries [`Event::mapped_from`] on the wire.
pub const MAPPED_FROM_EXTENSION: &str = "provenantmappedfrom";

impl Event {
    /// A native event with a fresh envelope.
    pub fn new(source: impl Into<String>, id: impl Into<String>, data: EventData) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            time: None,
            subject: None,
            dataschema: None,
            extensions: BTreeMap::new(),
            mapped_from: None,
            data,
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.data.kind()
    }

    /// (`source`, `id`) for error messages.
    pub fn event_ref(&self) -> EventRef {
        EventRef {
            source: Some(self.source.clone()),
            id: Some(self.id.clone()),
        }
    }

    /// The entity this event is about (and which its ledger record stands for).
    pub fn subject_key(&self) -> EntityKey {
        match &self.data {
            EventData::Build(b) => EntityKey::Build(b.build_id.clone()),
            EventData::Artifact(a) => EntityKey::artifact_from_digest(&a.artifact_digest),
            EventData::Deploy(d) => EntityKey::Deploy(d.deploy_id.clone()),
            EventData::Runtime(r) => EntityKey::Instance(r.instance_id.clone()),
            EventData::Data(d) => EntityKey::job(&d.job.namespace, &d.job.name),
            EventData::Approval(a) => EntityKey::Approval(a.approval_id.clone()),
        }
    }

    /// The Kafka record key: the subject entity key (see the module invariants).
    pub fn partition_key(&self) -> String {
        // Producers call this for every event they send: the keys that are a prefix and an
        // id are written in one allocation (the same text as `EntityKey`'s `Display`).
        let (prefix, id) = match &self.data {
            EventData::Build(b) => ("build:", &b.build_id),
            EventData::Deploy(d) => ("deploy:", &d.deploy_id),
            EventData::Runtime(r) => ("instance:", &r.instance_id),
            EventData::Approval(a) => ("approval:", &a.approval_id),
            EventData::Artifact(_) | EventData::Data(_) => return self.subject_key().to_string(),
        };
        let mut key = String::with_capacity(prefix.len() + id.len());
        key.push_str(prefix);
        key.push_str(id);
        key
    }

    /// Entities this event brings into being besides its subject (a data run's outputs).
    pub fn produces(&self) -> Vec<EntityKey> {
        match &self.data {
            EventData::Data(d) => d
                .outputs
                .iter()
                .map(|o| EntityKey::dataset(&o.namespace, &o.name))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The references this event makes, in a fixed order.
    pub fn references(&self) -> Vec<Reference> {
        let r = |relation, target| Reference { relation, target };
        let mut out = Vec::new();
        match &self.data {
            EventData::Build(b) => {
                out.push(r(
                    Relation::BuiltFrom,
                    EntityKey::Commit(b.commit_sha.clone()),
                ));
            }
            EventData::Artifact(a) => {
                if let Some(build) = &a.build_id {
                    out.push(r(Relation::BuiltBy, EntityKey::Build(build.clone())));
                }
                if let Some(sha) = &a.commit_sha {
                    out.push(r(Relation::SourceCommit, EntityKey::Commit(sha.clone())));
                }
            }
            EventData::Deploy(d) => {
                out.push(r(
                    Relation::Runs,
                    EntityKey::artifact_from_digest(&d.artifact_digest),
                ));
                out.push(r(
                    Relation::InEnvironment,
                    EntityKey::Env(d.environment.clone()),
                ));
                if let Some(prev) = &d.previous_deploy_id {
                    out.push(r(Relation::Replaces, EntityKey::Deploy(prev.clone())));
                }
            }
            EventData::Runtime(rt) => {
                if let Some(deploy) = &rt.deploy_id {
                    out.push(r(Relation::StartedBy, EntityKey::Deploy(deploy.clone())));
                }
                if let Some(digest) = &rt.artifact_digest {
                    out.push(r(Relation::Runs, EntityKey::artifact_from_digest(digest)));
                }
                out.push(r(
                    Relation::InEnvironment,
                    EntityKey::Env(rt.environment.clone()),
                ));
            }
            EventData::Data(d) => {
                for input in &d.inputs {
                    out.push(r(
                        Relation::Reads,
                        EntityKey::dataset(&input.namespace, &input.name),
                    ));
                }
                for output in &d.outputs {
                    out.push(r(
                        Relation::Writes,
                        EntityKey::dataset(&output.namespace, &output.name),
                    ));
                }
            }
            EventData::Approval(a) => {
                if let Some(deploy) = &a.deploy_id {
                    out.push(r(Relation::Approves, EntityKey::Deploy(deploy.clone())));
                }
                if let Some(digest) = &a.artifact_digest {
                    out.push(r(
                        Relation::Approves,
                        EntityKey::artifact_from_digest(digest),
                    ));
                }
                out.push(r(
                    Relation::InEnvironment,
                    EntityKey::Env(a.environment.clone()),
                ));
            }
        }
        out
    }

    /// Checks every field against its rules and the limits.
    pub fn validate(&self, limits: &Limits) -> Result<(), EventError> {
        validate::event(self, limits).map_err(|e| e.for_event(&self.event_ref()))
    }

    /// Decodes and validates one structured-mode CloudEvents JSON event.
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Event, EventError> {
        let value = parse_strict(bytes, limits)?;
        Event::from_value(&value, limits)
    }

    /// Decodes and validates one structured-mode event from parsed JSON.
    pub fn from_value(value: &Value, limits: &Limits) -> Result<Event, EventError> {
        let Value::Object(obj) = value else {
            return Err(EventError::input(
                ErrorCode::NotAnEvent,
                "an event must be a JSON object",
            ));
        };
        let event_ref = EventRef {
            source: obj.get("source").and_then(Value::as_str).map(str::to_owned),
            id: obj.get("id").and_then(Value::as_str).map(str::to_owned),
        };
        decode_structured(obj, limits).map_err(|e| e.for_event(&event_ref))
    }

    /// The structured-mode CloudEvents JSON form.
    pub fn to_json_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("specversion".into(), SPEC_VERSION.into());
        obj.insert("id".into(), self.id.clone().into());
        obj.insert("source".into(), self.source.clone().into());
        obj.insert("type".into(), self.kind().ce_type().into());
        if let Some(t) = &self.time {
            obj.insert("time".into(), t.clone().into());
        }
        if let Some(s) = &self.subject {
            obj.insert("subject".into(), s.clone().into());
        }
        if let Some(s) = &self.dataschema {
            obj.insert("dataschema".into(), s.clone().into());
        }
        obj.insert("datacontenttype".into(), "application/json".into());
        for (k, v) in &self.extensions {
            obj.insert(k.clone(), v.clone().into());
        }
        if let Some(m) = &self.mapped_from {
            obj.insert(MAPPED_FROM_EXTENSION.into(), m.clone().into());
        }
        obj.insert("data".into(), self.data_json());
        Value::Object(obj)
    }

    /// The `data` member alone, as JSON.
    pub fn data_json(&self) -> Value {
        // Serializing these plain structs of strings cannot fail.
        serde_json::to_value(&self.data).unwrap_or(Value::Null)
    }

    /// The structured-mode JSON bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        self.to_json_value().to_string().into_bytes()
    }
}

/// Reads the envelope of a structured event and decodes its native `data`.
fn decode_structured(obj: &Map<String, Value>, limits: &Limits) -> Result<Event, EventError> {
    let specversion = req_str(obj, "specversion", "event")?;
    if specversion != SPEC_VERSION {
        return Err(EventError::field(
            ErrorCode::UnsupportedSpecVersion,
            "specversion",
            "specversion must be \"1.0\" (CloudEvents 1.0)",
        ));
    }
    let id = req_str(obj, "id", "event")?.to_owned();
    let source = req_str(obj, "source", "event")?.to_owned();
    let ce_type = req_str(obj, "type", "event")?;
    let Some(kind) = Kind::from_ce_type(ce_type) else {
        return Err(EventError::field(
            ErrorCode::UnknownType,
            "type",
            "type is not a Provenant event type (io.provenant.{build,artifact,deploy,runtime,data,approval}.v1), a CDEvents type or an OpenLineage RunEvent",
        ));
    };
    if let Some(ct) = opt_str(obj, "datacontenttype")? {
        let base = ct.split(';').next().unwrap_or("").trim();
        if base != "application/json" && !base.ends_with("+json") {
            return Err(EventError::field(
                ErrorCode::UnsupportedContentType,
                "datacontenttype",
                "datacontenttype must be application/json",
            ));
        }
    }
    if obj.contains_key("data_base64") {
        return Err(EventError::field(
            ErrorCode::UnsupportedContentType,
            "data_base64",
            "data_base64 is not accepted: Provenant events carry JSON data",
        ));
    }
    let mut extensions = BTreeMap::new();
    let mut mapped_from = None;
    for (k, v) in obj {
        if CE_ATTRIBUTES.contains(&k.as_str()) || k == "data" {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) if n.is_i64() => n.to_string(),
            _ => {
                return Err(EventError::field(
                    ErrorCode::WrongType,
                    k.clone(),
                    "extension attributes must be strings, booleans or integers",
                ));
            }
        };
        if k == MAPPED_FROM_EXTENSION {
            mapped_from = Some(text);
        } else {
            extensions.insert(k.clone(), text);
        }
    }
    let data_value = obj.get("data").ok_or_else(|| {
        EventError::field(
            ErrorCode::MissingField,
            "data",
            format!("{kind} event needs data"),
        )
    })?;
    let data = decode_data(kind, data_value)?;
    let event = Event {
        id,
        source,
        time: opt_str(obj, "time")?.map(str::to_owned),
        subject: opt_str(obj, "subject")?.map(str::to_owned),
        dataschema: opt_str(obj, "dataschema")?.map(str::to_owned),
        extensions,
        mapped_from,
        data,
    };
    validate::event(&event, limits)?;
    Ok(event)
}

/// Decodes the `data` of a native kind, checking required fields, types and unknown fields.
pub fn decode_data(kind: Kind, value: &Value) -> Result<EventData, EventError> {
    let Value::Object(obj) = value else {
        return Err(EventError::field(
            ErrorCode::WrongType,
            "data",
            format!("{kind} data must be a JSON object"),
        ));
    };
    let mut d = Fields::new(obj, kind);
    let data = match kind {
        Kind::Build => EventData::Build(Build {
            commit_sha: d.req("commit_sha")?,
            branch: d.opt("branch")?,
            build_id: d.req("build_id")?,
            build_timestamp: d.req("build_timestamp")?,
            actor: d.opt("actor")?,
            pipeline_url: d.opt("pipeline_url")?,
            repo_url: d.opt("repo_url")?,
            artifact_digest: d.opt("artifact_digest")?,
            signature: d.opt("signature")?,
            annotations: d.annotations()?,
        }),
        Kind::Artifact => EventData::Artifact(Artifact {
            artifact_digest: d.req("artifact_digest")?,
            build_id: d.opt("build_id")?,
            commit_sha: d.opt("commit_sha")?,
            name: d.opt("name")?,
            signature: d.opt("signature")?,
            annotations: d.annotations()?,
        }),
        Kind::Deploy => EventData::Deploy(Deploy {
            deploy_id: d.req("deploy_id")?,
            artifact_digest: d.req("artifact_digest")?,
            environment: d.req("environment")?,
            service: d.req("service")?,
            deploy_timestamp: d.req("deploy_timestamp")?,
            actor: d.opt("actor")?,
            config_hash: d.opt("config_hash")?,
            previous_deploy_id: d.opt("previous_deploy_id")?,
            pipeline_url: d.opt("pipeline_url")?,
            annotations: d.annotations()?,
        }),
        Kind::Runtime => EventData::Runtime(Runtime {
            instance_id: d.req("instance_id")?,
            service: d.req("service")?,
            environment: d.req("environment")?,
            deploy_id: d.opt("deploy_id")?,
            artifact_digest: d.opt("artifact_digest")?,
            trace_id: d.opt("trace_id")?,
            message: d.opt("message")?,
            annotations: d.annotations()?,
        }),
        Kind::Data => {
            let job = d.take("job").ok_or_else(|| missing(kind, "job"))?;
            let job = decode_job(job)?;
            let run_id = d.req("run_id")?;
            let event_type: String = d.req("event_type")?;
            let event_type = RunState::parse(&event_type).ok_or_else(|| {
                EventError::field(
                    ErrorCode::InvalidValue,
                    "data.event_type",
                    "event_type must be one of START, RUNNING, COMPLETE, FAIL, ABORT, OTHER",
                )
            })?;
            let inputs = decode_datasets(d.take("inputs"), "inputs")?;
            let outputs = decode_datasets(d.take("outputs"), "outputs")?;
            EventData::Data(Data {
                job,
                run_id,
                event_type,
                inputs,
                outputs,
                annotations: d.annotations()?,
            })
        }
        Kind::Approval => {
            let approval_id = d.req("approval_id")?;
            let deploy_id = d.opt("deploy_id")?;
            let artifact_digest = d.opt("artifact_digest")?;
            let environment = d.req("environment")?;
            let decision: String = d.req("decision")?;
            let decision = match decision.as_str() {
                "approved" => Decision::Approved,
                "rejected" => Decision::Rejected,
                _ => {
                    return Err(EventError::field(
                        ErrorCode::InvalidValue,
                        "data.decision",
                        "decision must be approved or rejected",
                    ));
                }
            };
            EventData::Approval(Approval {
                approval_id,
                deploy_id,
                artifact_digest,
                environment,
                decision,
                approver: d.req("approver")?,
                reason: d.opt("reason")?,
                policy: d.opt("policy")?,
                annotations: d.annotations()?,
            })
        }
    };
    d.finish()?;
    Ok(data)
}

fn missing(kind: Kind, field: &str) -> EventError {
    EventError::field(
        ErrorCode::MissingField,
        format!("data.{field}"),
        format!("{kind} needs {field}"),
    )
}

fn decode_job(value: &Value) -> Result<Job, EventError> {
    let Value::Object(obj) = value else {
        return Err(EventError::field(
            ErrorCode::WrongType,
            "data.job",
            "job must be an object with namespace and name",
        ));
    };
    let mut f = Fields::nested(obj, "data.job", "job");
    let job = Job {
        namespace: f.req("namespace")?,
        name: f.req("name")?,
    };
    f.finish()?;
    Ok(job)
}

fn decode_datasets(value: Option<&Value>, which: &str) -> Result<Vec<Dataset>, EventError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(EventError::field(
            ErrorCode::WrongType,
            format!("data.{which}"),
            format!("{which} must be an array of datasets"),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("data.{which}[{i}]");
            let Value::Object(obj) = item else {
                return Err(EventError::field(
                    ErrorCode::WrongType,
                    path.clone(),
                    format!("{path} must be an object with namespace and name"),
                ));
            };
            let mut f = Fields::nested(obj, &path, "dataset");
            let ds = Dataset {
                namespace: f.req("namespace")?,
                name: f.req("name")?,
                snapshot_id: f.opt("snapshot_id")?,
                schema_version: f.opt("schema_version")?,
            };
            f.finish()?;
            Ok(ds)
        })
        .collect()
}

/// Reads the fields of one JSON object, remembering which were read so that the rest can be
/// reported as unknown.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    seen: Vec<&'static str>,
    /// Path prefix for errors (`data`, `data.job`, …).
    prefix: String,
    /// What the object is, for "X needs Y" messages.
    what: String,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Map<String, Value>, kind: Kind) -> Self {
        Self {
            obj,
            seen: Vec::new(),
            prefix: "data".into(),
            what: kind.as_str().into(),
        }
    }

    fn nested(obj: &'a Map<String, Value>, prefix: &str, what: &str) -> Self {
        Self {
            obj,
            seen: Vec::new(),
            prefix: prefix.into(),
            what: what.into(),
        }
    }

    fn path(&self, field: &str) -> String {
        format!("{}.{field}", self.prefix)
    }

    fn take(&mut self, field: &'static str) -> Option<&'a Value> {
        self.seen.push(field);
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn req(&mut self, field: &'static str) -> Result<String, EventError> {
        match self.take(field) {
            None => Err(EventError::field(
                ErrorCode::MissingField,
                self.path(field),
                format!("{} needs {field}", self.what),
            )),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.wrong_type(field)),
        }
    }

    fn opt(&mut self, field: &'static str) -> Result<Option<String>, EventError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong_type(field)),
        }
    }

    fn wrong_type(&self, field: &str) -> EventError {
        EventError::field(
            ErrorCode::WrongType,
            self.path(field),
            format!("{field} must be a string"),
        )
    }

    fn annotations(&mut self) -> Result<Annotations, EventError> {
        let Some(value) = self.take("annotations") else {
            return Ok(Annotations::new());
        };
        let Value::Object(map) = value else {
            return Err(EventError::field(
                ErrorCode::WrongType,
                self.path("annotations"),
                "annotations must be an object of string values",
            ));
        };
        map.iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(EventError::field(
                    ErrorCode::WrongType,
                    self.path("annotations"),
                    "annotation values must be strings",
                )),
            })
            .collect()
    }

    fn finish(self) -> Result<(), EventError> {
        // Report the first unknown field in key order, without its value.
        match self.obj.keys().find(|k| !self.seen.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => {
                let shown: String = k.chars().take(64).filter(|c| !c.is_control()).collect();
                Err(EventError::field(
                    ErrorCode::UnknownField,
                    self.path(&shown),
                    format!("{} has no field {shown:?}", self.what),
                ))
            }
        }
    }
}

fn req_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    what: &str,
) -> Result<&'a str, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(EventError::field(
            ErrorCode::MissingField,
            field,
            format!("{what} needs {field}"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(EventError::field(
            ErrorCode::WrongType,
            field,
            format!("{field} must be a string"),
        )),
    }
}

fn opt_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EventError::field(
            ErrorCode::WrongType,
            field,
            format!("{field} must be a string"),
        )),
    }
}
