//! CDEvents → native build, artifact and deploy events.
//!
//! Accepts a bare CDEvent (`{"context": …, "subject": …}`, as in the CDEvents spec) and a
//! CDEvent carried in a CloudEvent (`type` `dev.cdevents.<subject>.<predicate>.<version>`,
//! `data` = the whole CDEvent, as the CDEvents CloudEvents binding says). The mapping table is
//! in `schemas/INTEROP.md`; in short:
//!
//! | CDEvents type | native kind |
//! |---|---|
//! | `build.finished` | build (with `customData.commit_sha`), else artifact (built by the build) |
//! | `artifact.packaged`, `artifact.published` | artifact |
//! | `service.deployed`, `.upgraded`, `.rolledback`, `.published` | deploy |
//!
//! Every other CDEvents type is refused with [`ErrorCode::UnknownType`] and a message that
//! says which types are accepted.
//!
//! Invariants: identity (`source`, `id`) comes from the CDEvent `context`; when a CloudEvent
//! carries it, the CloudEvent's `id`, `source` and `type` must equal the context's (else two
//! readers could disagree about which event this is). [`Event::mapped_from`] is the original
//! `context.type`. Members this mapping does not read are ignored (CDEvents grows by minor
//! versions), but the size and depth limits of [`crate::json`] apply to the whole document.

use serde_json::{Map, Value};

use super::{opt_obj, opt_str, req_obj, req_str};
use crate::error::{ErrorCode, EventError, EventRef};
use crate::event::{Artifact, Build, Deploy, Event, EventData, SPEC_VERSION};
use crate::json::{Limits, parse_strict};

/// The prefix of every CDEvents type.
pub const TYPE_PREFIX: &str = "dev.cdevents.";

/// CDEvents spec versions read (`context.specversion`, major.minor); drafts of these too.
pub const SPEC_VERSIONS: [&str; 3] = ["0.3", "0.4", "0.5"];

/// The CDEvents types (`<subject>.<predicate>`) mapped to native kinds.
pub const ACCEPTED: [&str; 7] = [
    "build.finished",
    "artifact.packaged",
    "artifact.published",
    "service.deployed",
    "service.upgraded",
    "service.rolledback",
    "service.published",
];

const ACCEPTED_LIST: &str = "build.finished, artifact.packaged, artifact.published, service.deployed, service.upgraded, service.rolledback, service.published";

/// Decodes a bare or CloudEvent-wrapped CDEvent from bytes (strict JSON, under the limits).
pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Event, EventError> {
    let value = parse_strict(bytes, limits)?;
    from_value(&value, limits)
}

/// Decodes a bare or CloudEvent-wrapped CDEvent from parsed JSON.
pub fn from_value(value: &Value, limits: &Limits) -> Result<Event, EventError> {
    let Value::Object(obj) = value else {
        return Err(EventError::input(
            ErrorCode::NotAnEvent,
            "a CDEvent must be a JSON object",
        ));
    };
    let event_ref = event_ref(obj);
    decode(obj, limits).map_err(|e| e.for_event(&event_ref))
}

/// (`source`, `id`) as far as they can be read: the CDEvent context's, else the CloudEvent's.
fn event_ref(obj: &Map<String, Value>) -> EventRef {
    let context = obj
        .get("data")
        .and_then(Value::as_object)
        .unwrap_or(obj)
        .get("context")
        .and_then(Value::as_object);
    let pick = |key: &str| {
        context
            .and_then(|c| c.get(key))
            .or_else(|| obj.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    EventRef {
        source: pick("source"),
        id: pick("id"),
    }
}

fn decode(obj: &Map<String, Value>, limits: &Limits) -> Result<Event, EventError> {
    let (cdevent, prefix) = if obj.contains_key("specversion") {
        (unwrap_cloudevent(obj)?, "data.")
    } else {
        (obj, "")
    };
    let p = |path: &str| format!("{prefix}{path}");
    let context = req_obj(cdevent, "context", &p("context"), "CDEvent")?;
    let subject = req_obj(cdevent, "subject", &p("subject"), "CDEvent")?;

    let specversion = req_str(context, "specversion", &p("context.specversion"), "context")?;
    let major_minor = specversion
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .rsplit_once('.')
        .map_or("", |(mm, _patch)| mm);
    if !SPEC_VERSIONS.contains(&major_minor) {
        return Err(EventError::field(
            ErrorCode::UnsupportedSpecVersion,
            p("context.specversion"),
            "CDEvents context.specversion must be 0.3.x, 0.4.x or 0.5.x",
        ));
    }
    let id = req_str(context, "id", &p("context.id"), "context")?;
    let source = req_str(context, "source", &p("context.source"), "context")?;
    let ce_type = req_str(context, "type", &p("context.type"), "context")?;
    let timestamp = req_str(context, "timestamp", &p("context.timestamp"), "context")?;
    crate::validate::timestamp(&p("context.timestamp"), timestamp)?;
    let (subject_name, predicate) = parse_type(ce_type).ok_or_else(|| {
        EventError::field(
            ErrorCode::InvalidValue,
            p("context.type"),
            "CDEvents context.type must be dev.cdevents.<subject>.<predicate>.<major>.<minor>.<patch>",
        )
    })?;
    if prefix == "data." {
        check_envelope(obj, id, source, ce_type)?;
    }

    let subject_id = req_str(subject, "id", &p("subject.id"), "subject")?;
    let subject_source = opt_str(subject, "source", &p("subject.source"))?.unwrap_or(source);
    let content = opt_obj(subject, "content", &p("subject.content"))?;
    let empty = Map::new();
    let content = content.unwrap_or(&empty);
    let custom = CustomData::read(cdevent, prefix)?;

    let m = Mapping {
        prefix,
        id,
        subject_id,
        subject_source,
        timestamp,
        content,
        custom: &custom,
    };
    let data = match (subject_name, predicate) {
        ("build", "finished") => m.build_finished()?,
        ("artifact", "packaged" | "published") => m.artifact()?,
        ("service", "deployed" | "upgraded" | "rolledback" | "published") => m.deploy()?,
        _ => return Err(unmapped(subject_name, predicate, &p("context.type"))),
    };
    let event = Event {
        id: id.to_owned(),
        source: source.to_owned(),
        time: Some(timestamp.to_owned()),
        subject: Some(subject_id.to_owned()),
        dataschema: None,
        extensions: std::collections::BTreeMap::new(),
        mapped_from: Some(ce_type.to_owned()),
        data,
    };
    event.validate(limits)?;
    Ok(event)
}

/// Checks the CloudEvent around a CDEvent and returns the CDEvent (its `data`).
fn unwrap_cloudevent(obj: &Map<String, Value>) -> Result<&Map<String, Value>, EventError> {
    let specversion = req_str(obj, "specversion", "specversion", "event")?;
    if specversion != SPEC_VERSION {
        return Err(EventError::field(
            ErrorCode::UnsupportedSpecVersion,
            "specversion",
            "specversion must be \"1.0\" (CloudEvents 1.0)",
        ));
    }
    if let Some(ct) = opt_str(obj, "datacontenttype", "datacontenttype")? {
        let base = ct.split(';').next().unwrap_or_default().trim();
        if base != "application/json" && base != super::cloudevents::CDEVENTS {
            return Err(EventError::field(
                ErrorCode::UnsupportedContentType,
                "datacontenttype",
                "datacontenttype of a CDEvent must be application/json or application/cdevents+json",
            ));
        }
    }
    if obj.contains_key("data_base64") {
        return Err(EventError::field(
            ErrorCode::UnsupportedContentType,
            "data_base64",
            "data_base64 is not accepted: a CDEvent is carried as JSON data",
        ));
    }
    match obj.get("data") {
        None | Some(Value::Null) => Err(EventError::field(
            ErrorCode::MissingField,
            "data",
            "a CloudEvent of a CDEvents type needs data (the CDEvent)",
        )),
        Some(Value::Object(data)) => Ok(data),
        Some(_) => Err(EventError::field(
            ErrorCode::WrongType,
            "data",
            "data of a CDEvents CloudEvent must be the CDEvent object (context and subject)",
        )),
    }
}

/// The CloudEvent's `id`, `source` and `type` must be the CDEvent context's.
fn check_envelope(
    obj: &Map<String, Value>,
    id: &str,
    source: &str,
    ce_type: &str,
) -> Result<(), EventError> {
    for (key, expected) in [("id", id), ("source", source), ("type", ce_type)] {
        let found = req_str(obj, key, key, "event")?;
        if found != expected {
            return Err(EventError::field(
                ErrorCode::InvalidValue,
                key,
                format!("CloudEvent {key} must equal the CDEvent's context.{key}"),
            ));
        }
    }
    Ok(())
}

/// `dev.cdevents.<subject>.<predicate>.<version>` → (subject, predicate), where version is
/// `<major>.<minor>.<patch>` with an optional `-<pre-release>`.
fn parse_type(t: &str) -> Option<(&str, &str)> {
    let rest = t.strip_prefix(TYPE_PREFIX)?;
    let mut parts = rest.splitn(3, '.');
    let subject = parts.next()?;
    let predicate = parts.next()?;
    let version = parts.next()?;
    let core = version.split_once('-').map_or(version, |(core, _pre)| core);
    let numbers: Vec<&str> = core.split('.').collect();
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let number = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (word(subject) && word(predicate) && numbers.len() == 3 && numbers.iter().all(number))
        .then_some((subject, predicate))
}

/// The error for a well-formed CDEvents type that Provenant does not map. Only names from
/// this module's own lists are echoed, never the input.
fn unmapped(subject: &str, predicate: &str, path: &str) -> EventError {
    let message = match (subject, predicate) {
        ("build", "queued" | "started") => format!(
            "CDEvents build.{predicate} is not mapped: only build.finished carries provenance (accepted: {ACCEPTED_LIST})"
        ),
        ("environment", "created" | "modified" | "deleted") => format!(
            "CDEvents environment.{predicate} is not mapped: Provenant has no environment kind, deploy events name the environment (accepted: {ACCEPTED_LIST})"
        ),
        ("service", "removed") => format!(
            "CDEvents service.removed is not mapped: Provenant records deployments, not removals (accepted: {ACCEPTED_LIST})"
        ),
        _ => format!("CDEvents type is not mapped (accepted: {ACCEPTED_LIST})"),
    };
    EventError::field(ErrorCode::UnknownType, path, message)
}

/// Provenant fields a producer may add in `customData` (a JSON object, when
/// `customDataContentType` is absent or `application/json`). CDEvents has no commit sha.
#[derive(Default)]
struct CustomData {
    commit_sha: Option<String>,
    branch: Option<String>,
    repo_url: Option<String>,
    pipeline_url: Option<String>,
    actor: Option<String>,
    build_id: Option<String>,
    artifact_digest: Option<String>,
    previous_deploy_id: Option<String>,
    config_hash: Option<String>,
}

impl CustomData {
    fn read(cdevent: &Map<String, Value>, prefix: &str) -> Result<Self, EventError> {
        let json = match cdevent.get("customDataContentType") {
            None | Some(Value::Null) => true,
            Some(Value::String(ct)) => {
                ct.split(';').next().unwrap_or_default().trim() == "application/json"
            }
            Some(_) => {
                return Err(EventError::field(
                    ErrorCode::WrongType,
                    format!("{prefix}customDataContentType"),
                    format!("{prefix}customDataContentType must be a string"),
                ));
            }
        };
        let Some(Value::Object(obj)) = cdevent.get("customData").filter(|_| json) else {
            return Ok(Self::default());
        };
        let get = |key: &str| -> Result<Option<String>, EventError> {
            Ok(opt_str(obj, key, &format!("{prefix}customData.{key}"))?.map(str::to_owned))
        };
        Ok(Self {
            commit_sha: get("commit_sha")?,
            branch: get("branch")?,
            repo_url: get("repo_url")?,
            pipeline_url: get("pipeline_url")?,
            actor: get("actor")?,
            build_id: get("build_id")?,
            artifact_digest: get("artifact_digest")?,
            previous_deploy_id: get("previous_deploy_id")?,
            config_hash: get("config_hash")?,
        })
    }
}

/// What every mapping reads.
struct Mapping<'a> {
    prefix: &'a str,
    id: &'a str,
    subject_id: &'a str,
    subject_source: &'a str,
    timestamp: &'a str,
    content: &'a Map<String, Value>,
    custom: &'a CustomData,
}

impl Mapping<'_> {
    fn path(&self, p: &str) -> String {
        format!("{}{p}", self.prefix)
    }

    /// A build id unique across CI systems: `customData.build_id`, else
    /// `cdevents:<subject source>#<subject id>`.
    fn build_id(&self) -> String {
        self.custom
            .build_id
            .clone()
            .unwrap_or_else(|| format!("cdevents:{}#{}", self.subject_source, self.subject_id))
    }

    /// The artifact purl in `subject.content.artifactId` (build and service events).
    fn artifact_id(&self) -> Result<Option<&str>, EventError> {
        opt_str(
            self.content,
            "artifactId",
            &self.path("subject.content.artifactId"),
        )
    }

    /// The digest of a purl, else `customData.artifact_digest`; `purl_path` names where the
    /// purl was read, for the error.
    fn digest(&self, purl: Option<&str>, purl_path: &str) -> Result<String, EventError> {
        if let Some(d) = purl.and_then(purl_digest) {
            return Ok(d);
        }
        if let Some(d) = &self.custom.artifact_digest {
            return Ok(d.clone());
        }
        Err(match purl {
            Some(_) => EventError::field(
                ErrorCode::InvalidValue,
                self.path(purl_path),
                format!(
                    "{} must be a purl with a sha256 digest (version sha256%3A<64 hex> or qualifier checksum=sha256:<64 hex>), or customData.artifact_digest must be set",
                    self.path(purl_path)
                ),
            ),
            None => EventError::field(
                ErrorCode::MissingField,
                self.path(purl_path),
                format!(
                    "CDEvent needs {} (a purl with a sha256 digest) or customData.artifact_digest",
                    self.path(purl_path)
                ),
            ),
        })
    }

    /// `build.finished`: a build when the commit is known (`customData.commit_sha`), else
    /// an artifact built by this build (when `artifactId` has a digest).
    fn build_finished(&self) -> Result<EventData, EventError> {
        let artifact_id = self.artifact_id()?;
        let c = self.custom;
        if let Some(commit_sha) = &c.commit_sha {
            let artifact_digest = artifact_id
                .and_then(purl_digest)
                .or_else(|| c.artifact_digest.clone());
            return Ok(EventData::Build(Build {
                commit_sha: commit_sha.clone(),
                branch: c.branch.clone(),
                build_id: self.build_id(),
                build_timestamp: self.timestamp.to_owned(),
                actor: c.actor.clone(),
                pipeline_url: c.pipeline_url.clone(),
                repo_url: c.repo_url.clone(),
                artifact_digest,
                signature: None,
                annotations: Default::default(),
            }));
        }
        let digest = artifact_id
            .and_then(purl_digest)
            .or_else(|| c.artifact_digest.clone());
        let Some(artifact_digest) = digest else {
            return Err(EventError::field(
                ErrorCode::MissingField,
                self.path("customData.commit_sha"),
                "CDEvents build.finished needs customData.commit_sha (a build event), or an artifactId purl with a sha256 digest (an artifact event)",
            ));
        };
        Ok(EventData::Artifact(Artifact {
            artifact_digest,
            build_id: Some(self.build_id()),
            commit_sha: None,
            name: artifact_id.map(purl_name),
            signature: None,
            annotations: Default::default(),
        }))
    }

    /// `artifact.packaged` / `artifact.published`: the subject id is the artifact's purl.
    fn artifact(&self) -> Result<EventData, EventError> {
        let c = self.custom;
        let artifact_digest = self.digest(Some(self.subject_id), "subject.id")?;
        let mut annotations = crate::event::Annotations::new();
        if let Some(change) = opt_obj(self.content, "change", &self.path("subject.content.change"))?
        {
            for key in ["id", "source"] {
                let path = self.path(&format!("subject.content.change.{key}"));
                if let Some(v) = opt_str(change, key, &path)? {
                    annotations.insert(format!("cdevents.change.{key}"), v.to_owned());
                }
            }
        }
        if let Some(sbom) = opt_obj(self.content, "sbom", &self.path("subject.content.sbom"))? {
            let path = self.path("subject.content.sbom.uri");
            if let Some(uri) = opt_str(sbom, "uri", &path)? {
                annotations.insert("cdevents.sbom.uri".into(), uri.to_owned());
            }
        }
        Ok(EventData::Artifact(Artifact {
            artifact_digest,
            build_id: c.build_id.clone(),
            commit_sha: c.commit_sha.clone(),
            name: Some(purl_name(self.subject_id)),
            signature: None,
            annotations,
        }))
    }

    /// `service.*`: a deployment of the artifact to the environment; the subject id is the
    /// service, the event id the deploy id.
    fn deploy(&self) -> Result<EventData, EventError> {
        let c = self.custom;
        let artifact_id = self.artifact_id()?;
        let artifact_digest = self.digest(artifact_id, "subject.content.artifactId")?;
        let env = req_obj(
            self.content,
            "environment",
            &self.path("subject.content.environment"),
            "CDEvents service event content",
        )?;
        let environment = req_str(
            env,
            "id",
            &self.path("subject.content.environment.id"),
            "environment",
        )?;
        Ok(EventData::Deploy(Deploy {
            deploy_id: self.id.to_owned(),
            artifact_digest,
            environment: environment.to_owned(),
            service: self.subject_id.to_owned(),
            deploy_timestamp: self.timestamp.to_owned(),
            actor: c.actor.clone(),
            config_hash: c.config_hash.clone(),
            previous_deploy_id: c.previous_deploy_id.clone(),
            pipeline_url: c.pipeline_url.clone(),
            annotations: Default::default(),
        }))
    }
}

/// The `sha256:<64 hex>` digest of a purl: its version (percent-decoded, e.g.
/// `pkg:oci/app@sha256%3A<hex>`) or the `sha256` entry of its `checksum` qualifier
/// (`?checksum=sha1:…,sha256:<hex>`). Hex is lowercased; anything else gives `None`.
pub fn purl_digest(purl: &str) -> Option<String> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split_once('#').map_or(rest, |(r, _subpath)| r);
    let (path, qualifiers) = rest.split_once('?').unwrap_or((rest, ""));
    let version = path.rsplit_once('@').map(|(_, v)| percent_decode(v));
    let from_version = version.as_deref().and_then(sha256_of);
    from_version.or_else(|| {
        qualifiers
            .split('&')
            .filter_map(|q| q.split_once('='))
            .filter(|(k, _)| k.eq_ignore_ascii_case("checksum"))
            .flat_map(|(_, v)| {
                percent_decode(v)
                    .split(',')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .find_map(|c| sha256_of(&c))
    })
}

fn sha256_of(s: &str) -> Option<String> {
    let (alg, hex) = s.split_once(':')?;
    (alg.eq_ignore_ascii_case("sha256")
        && hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// The purl without version, qualifiers and subpath (`pkg:oci/myapp`), as the artifact name.
fn purl_name(purl: &str) -> String {
    let end = purl.find(['?', '#']).unwrap_or(purl.len());
    let head = purl.get(..end).unwrap_or(purl);
    head.rsplit_once('@')
        .map_or(head, |(name, _)| name)
        .to_owned()
}

/// Percent-decoding of a purl component; invalid escapes are kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| hex_val(*c)),
                bytes.get(i + 2).and_then(|c| hex_val(*c)),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427";

    #[test]
    fn purl_digests() {
        let want = Some(format!("sha256:{HEX}"));
        assert_eq!(purl_digest(&format!("pkg:oci/myapp@sha256%3A{HEX}")), want);
        assert_eq!(purl_digest(&format!("pkg:oci/myapp@sha256%3a{HEX}")), want);
        assert_eq!(
            purl_digest(&format!("pkg:oci/myapp@sha256:{HEX}?arch=amd64")),
            want
        );
        assert_eq!(
            purl_digest(&format!("pkg:oci/myapp@sha256%3A{}", HEX.to_uppercase())),
            want
        );
        assert_eq!(
            purl_digest(&format!(
                "pkg:maven/org.acme/app@1.2?checksum=sha1:ad95,sha256:{HEX}"
            )),
            want
        );
        assert_eq!(
            purl_digest("pkg:golang/mygit.com/myorg/myapp@234fd47e07d1004f0aed9c"),
            None
        );
        assert_eq!(purl_digest(&format!("oci/myapp@sha256:{HEX}")), None);
        assert_eq!(purl_digest("pkg:oci/myapp@sha256%3A0b31"), None);
        assert_eq!(purl_digest("pkg:oci/x@%"), None);
        assert_eq!(purl_digest("pkg:oci/x@%E2%82"), None);
    }

    #[test]
    fn purl_names() {
        assert_eq!(
            purl_name(&format!("pkg:oci/myapp@sha256%3A{HEX}?a=b")),
            "pkg:oci/myapp"
        );
        assert_eq!(
            purl_name("pkg:npm/%40scope/pkg@1.0#sub"),
            "pkg:npm/%40scope/pkg"
        );
        assert_eq!(purl_name("pkg:npm/pkg"), "pkg:npm/pkg");
    }

    #[test]
    fn types() {
        assert_eq!(
            parse_type("dev.cdevents.service.deployed.0.3.0"),
            Some(("service", "deployed"))
        );
        assert_eq!(
            parse_type("dev.cdevents.build.finished.0.2.0-draft"),
            Some(("build", "finished"))
        );
        assert_eq!(parse_type("dev.cdevents.build.finished"), None);
        assert_eq!(parse_type("dev.cdevents.build.finished.1.x.0"), None);
        assert_eq!(parse_type("dev.cdevents..finished.0.1.0"), None);
        assert_eq!(parse_type("io.provenant.build.v1"), None);
    }
}
