//! Typed entity keys: `commit:<sha>`, `build:<id>`, `artifact:sha256:<hex>`, `deploy:<id>`,
//! `env:<name>`, `instance:<id>`, `dataset:<namespace>/<name>`, `job:<namespace>/<name>`,
//! `approval:<id>`.
//!
//! Invariants: a key's string form is `<type>:<value>`. Keys are opaque identifiers: a
//! dataset or job key keeps its namespace and name apart, and [`EntityKey::parse`] splits the
//! string form at the *last* `/`, so a name that itself contains `/` must be built with
//! [`EntityKey::dataset`] / [`EntityKey::job`] from its parts (events always do), never parsed.
//! For every key built from parts without `/` in the name, parse ∘ to_string is the identity.

use std::fmt;

/// An entity that events describe or refer to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKey {
    /// A source commit (lowercase hex sha).
    Commit(String),
    /// A CI build, by its globally unique build id.
    Build(String),
    /// An artifact by its content digest; holds the lowercase hex without `sha256:`.
    Artifact(String),
    /// A deployment, by its deploy id.
    Deploy(String),
    /// An environment, by name.
    Env(String),
    /// A running instance (pod, VM, task), by its instance id.
    Instance(String),
    /// A dataset, by namespace and name (OpenLineage naming).
    Dataset { namespace: String, name: String },
    /// A data job, by namespace and name (OpenLineage naming).
    Job { namespace: String, name: String },
    /// An approval decision, by approval id.
    Approval(String),
}

/// Why a string is not an entity key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "entity key must look like TYPE:VALUE with TYPE one of commit, build, artifact, deploy, env, instance, dataset, job, approval ({reason})"
)]
pub struct KeyParseError {
    reason: &'static str,
}

impl EntityKey {
    /// A dataset key.
    pub fn dataset(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::Dataset {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// A job key.
    pub fn job(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::Job {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// An artifact key from a digest written `sha256:<hex>` (as events carry it).
    pub fn artifact_from_digest(digest: &str) -> Self {
        Self::Artifact(digest.strip_prefix("sha256:").unwrap_or(digest).to_owned())
    }

    /// The key's type name (`commit`, `build`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Commit(_) => "commit",
            Self::Build(_) => "build",
            Self::Artifact(_) => "artifact",
            Self::Deploy(_) => "deploy",
            Self::Env(_) => "env",
            Self::Instance(_) => "instance",
            Self::Dataset { .. } => "dataset",
            Self::Job { .. } => "job",
            Self::Approval(_) => "approval",
        }
    }

    /// Parses the string form. Datasets and jobs split namespace and name at the last `/`
    /// (OpenLineage names may contain `/`, namespaces like `s3://bucket` too; callers that know
    /// both parts should build keys with [`EntityKey::dataset`] and [`EntityKey::job`]).
    pub fn parse(s: &str) -> Result<Self, KeyParseError> {
        let (kind, value) = s
            .split_once(':')
            .ok_or(KeyParseError { reason: "no ':'" })?;
        if value.is_empty() {
            return Err(KeyParseError {
                reason: "empty value",
            });
        }
        let owned = value.to_owned();
        Ok(match kind {
            "commit" => Self::Commit(owned),
            "build" => Self::Build(owned),
            "artifact" => Self::Artifact(
                value
                    .strip_prefix("sha256:")
                    .ok_or(KeyParseError {
                        reason: "artifact keys are artifact:sha256:<hex>",
                    })?
                    .to_owned(),
            ),
            "deploy" => Self::Deploy(owned),
            "env" => Self::Env(owned),
            "instance" => Self::Instance(owned),
            "approval" => Self::Approval(owned),
            "dataset" | "job" => {
                let (namespace, name) = value.rsplit_once('/').ok_or(KeyParseError {
                    reason: "dataset and job keys are TYPE:<namespace>/<name>",
                })?;
                if namespace.is_empty() || name.is_empty() {
                    return Err(KeyParseError {
                        reason: "empty namespace or name",
                    });
                }
                if kind == "dataset" {
                    Self::dataset(namespace, name)
                } else {
                    Self::job(namespace, name)
                }
            }
            _ => {
                return Err(KeyParseError {
                    reason: "unknown type",
                });
            }
        })
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Plain `write_str`s: keys are formatted for every reference of every event the
        // processor handles, and `write!` with arguments costs several times more.
        let (prefix, parts): (&str, [&str; 3]) = match self {
            Self::Commit(v) => ("commit:", [v, "", ""]),
            Self::Build(v) => ("build:", [v, "", ""]),
            Self::Artifact(v) => ("artifact:sha256:", [v, "", ""]),
            Self::Deploy(v) => ("deploy:", [v, "", ""]),
            Self::Env(v) => ("env:", [v, "", ""]),
            Self::Instance(v) => ("instance:", [v, "", ""]),
            Self::Dataset { namespace, name } => ("dataset:", [namespace, "/", name]),
            Self::Job { namespace, name } => ("job:", [namespace, "/", name]),
            Self::Approval(v) => ("approval:", [v, "", ""]),
        };
        f.write_str(prefix)?;
        parts.iter().try_for_each(|p| f.write_str(p))
    }
}

impl std::str::FromStr for EntityKey {
    type Err = KeyParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for key in [
            EntityKey::Commit("abc123".into()),
            EntityKey::Build("github:acme/shop/1/1".into()),
            EntityKey::Artifact("00ff".into()),
            EntityKey::Deploy("d-1".into()),
            EntityKey::Env("production".into()),
            EntityKey::Instance("pod-7".into()),
            EntityKey::dataset("s3://bucket", "raw/orders"),
            EntityKey::job("etl", "daily"),
            EntityKey::Approval("ap-1".into()),
        ] {
            let text = key.to_string();
            let back = EntityKey::parse(&text).unwrap();
            // datasets whose name contains '/' split at the last '/': compare strings then
            assert_eq!(back.to_string(), text);
        }
        assert_eq!(
            EntityKey::parse("artifact:sha256:ab").unwrap(),
            EntityKey::Artifact("ab".into())
        );
        assert!(EntityKey::parse("artifact:ab").is_err());
        assert!(EntityKey::parse("nope:1").is_err());
        assert!(EntityKey::parse("commit:").is_err());
        assert!(EntityKey::parse("dataset:noslash").is_err());
    }
}
