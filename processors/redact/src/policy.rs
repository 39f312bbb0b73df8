//! The redaction policy: a TOML file of field rules, detector actions, secret-like key names
//! and where the HMAC key comes from. See `README.md` for the format.
//!
//! Invariants:
//! * A [`Policy`] returned by [`Policy::from_toml_str`] / [`Policy::load`] /
//!   [`Policy::default_policy`] compiles: every glob is valid, rule names are unique, no rule
//!   names a format-locked field, the key settings are consistent. [`crate::Redactor::new`]
//!   checks the same for a policy built in code.
//! * No error ever holds a secret: errors name fields, lines and environment variables,
//!   never values (serde messages that quote a value are rewritten without it).
//! * Loading the key ([`Policy::load_key`]) is the only place that reads the environment or
//!   a key file; without a configured key it either generates a per-process key and warns,
//!   or refuses, as `hmac.if_missing` says.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::detector::Detector;
use crate::glob::Glob;
use crate::scan::{KeyMatcher, Scanner};
use crate::secret::Secret;

/// The default policy, as shipped in `processors/redact/default-policy.toml`.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../default-policy.toml");

/// Shortest HMAC key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// Field paths whose values have a fixed format other records link by (a commit sha, a
/// digest, a timestamp, a UUID). Rules never rewrite them; see the README.
pub const FORMAT_LOCKED_PATHS: &[&str] = &[
    "time",
    "data.commit_sha",
    "data.artifact_digest",
    "data.build_timestamp",
    "data.deploy_timestamp",
    "data.run_id",
];

/// A redaction policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Where the HMAC key comes from.
    #[serde(default)]
    pub hmac: HmacConfig,
    /// What each detector does (every detector not named keeps its default action).
    #[serde(default)]
    pub detectors: DetectorActions,
    /// Which key names mark a value as secret-like.
    #[serde(default)]
    pub secret_keys: SecretKeys,
    /// Field rules, first match wins.
    #[serde(default)]
    pub rules: Vec<FieldRule>,
    /// Where the policy came from, for error messages.
    #[serde(skip)]
    pub origin: String,
}

/// The `[hmac]` table. At most one of `key`, `key_env`, `key_file`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// The key itself (prefer `key_env` or `key_file`: a policy file is often committed).
    pub key: Option<Secret>,
    /// The environment variable holding the key.
    pub key_env: Option<String>,
    /// A file holding the key (one trailing newline is ignored). Relative paths are resolved
    /// from the working directory.
    pub key_file: Option<PathBuf>,
    /// What to do when the key named is absent (or none is named). Default: `generate` when
    /// the policy names no key, `refuse` when it names one.
    pub if_missing: Option<MissingKey>,
}

/// What to do without a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingKey {
    /// Generate a random per-process key and warn: tokens are then not stable across
    /// restarts or between processor instances.
    Generate,
    /// Refuse to start.
    Refuse,
}

/// Where the key in use came from (safe to log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `hmac.key` in the policy.
    Inline,
    /// The environment variable named.
    Env(String),
    /// The file named.
    File(PathBuf),
    /// Given by the caller of [`crate::Redactor::new`].
    Caller,
    /// Generated at start: tokens are not stable across restarts.
    Generated,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Inline => f.write_str("hmac.key in the policy"),
            KeySource::Env(v) => write!(f, "environment variable {v}"),
            KeySource::File(p) => write!(f, "file {}", p.display()),
            KeySource::Caller => f.write_str("the caller"),
            KeySource::Generated => f.write_str("a random per-process key"),
        }
    }
}

/// What a detector does with a span it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorAction {
    /// Replace the span by `[REDACTED:<detector>]`.
    Mask,
    /// Replace the span by `hmac:<16 hex>` (equal values give equal tokens).
    Hmac,
    /// Remove the whole field (a required field is masked instead).
    Drop,
    /// Detector disabled.
    Off,
}

macro_rules! detector_actions {
    ($($field:ident => $det:ident),* $(,)?) => {
        /// The `[detectors]` table: one optional action per detector.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct DetectorActions {
            $(
                #[doc = concat!("Action of the `", stringify!($field), "` detector.")]
                pub $field: Option<DetectorAction>,
            )*
        }

        impl DetectorActions {
            /// The action configured for `d`, or its default.
            pub fn action(&self, d: Detector) -> DetectorAction {
                let configured = match d {
                    $(Detector::$det => self.$field,)*
                };
                configured.unwrap_or(default_action(d))
            }
        }
    };
}

detector_actions! {
    email => Email,
    phone => Phone,
    ipv4 => Ipv4,
    ipv6 => Ipv6,
    payment_card => PaymentCard,
    iban => Iban,
    us_ssn => UsSsn,
    jwt => Jwt,
    aws_access_key => AwsAccessKey,
    aws_secret_key => AwsSecretKey,
    gcp_api_key => GcpApiKey,
    azure_storage_key => AzureStorageKey,
    azure_sas_token => AzureSasToken,
    github_token => GithubToken,
    gitlab_token => GitlabToken,
    slack_token => SlackToken,
    private_key => PrivateKey,
    url_credentials => UrlCredentials,
    secret_key_entropy => SecretKeyEntropy,
}

/// The built-in action of a detector not named in `[detectors]`: `hmac` for e-mail (so that
/// an actor can still be joined across events), `mask` for every other.
pub fn default_action(d: Detector) -> DetectorAction {
    match d {
        Detector::Email => DetectorAction::Hmac,
        _ => DetectorAction::Mask,
    }
}

/// The `[secret_keys]` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeys {
    /// Key-name globs (ASCII case-insensitive) that mark a value as secret-like.
    #[serde(default = "default_secret_patterns")]
    pub patterns: Vec<String>,
    /// Key-name globs that are not secret-like even though a pattern matches.
    #[serde(default = "default_secret_exclude")]
    pub exclude: Vec<String>,
}

impl Default for SecretKeys {
    fn default() -> Self {
        Self {
            patterns: default_secret_patterns(),
            exclude: default_secret_exclude(),
        }
    }
}

/// The built-in secret-like key patterns.
pub fn default_secret_patterns() -> Vec<String> {
    [
        "*token*",
        "*password*",
        "*passwd*",
        "*passphrase*",
        "*secret*",
        "*_key",
        "*-key",
        "*apikey*",
        "*credential*",
        "*authorization*",
    ]
    .map(String::from)
    .to_vec()
}

/// The built-in exclusions: key names that contain a secret-like word but name something
/// that is not a secret.
pub fn default_secret_exclude() -> Vec<String> {
    [
        "*_name",
        "*_id",
        "*_type",
        "*_file",
        "*_path",
        "*_url",
        "*_uri",
        "*_ref",
        "*_arn",
        "*_ttl",
        "*_expiry",
        "*_expires*",
        "*_expiration",
        "*_count",
        "*_length",
        "*_version",
        "*_enabled",
        "*public_key*",
        "*publickey*",
        "*cache_key*",
        "*partition_key*",
        "*sort_key*",
        "*primary_key*",
        "*foreign_key*",
        "*idempotency_key*",
        "*routing_key*",
        "*dedup_key*",
    ]
    .map(String::from)
    .to_vec()
}

/// One `[[rules]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// `[a-z0-9_-]{1,64}`; reported as `policy:<name>`.
    pub name: String,
    /// Path globs (`data.annotations.*`, `*.actor`).
    pub paths: Vec<String>,
    /// What to do with a matching field.
    pub action: RuleAction,
}

/// What a field rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Leave the value alone: no detector runs on it.
    Keep,
    /// Remove the value (a required field is masked instead).
    Drop,
    /// Replace the value by `[REDACTED]`.
    Mask,
    /// Replace the value by `hmac:<16 hex>`.
    Hmac,
}

/// Why a policy (or its key) could not be loaded. Never holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the policy format.
    #[error("policy {origin}: line {line}, column {column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A setting is inconsistent or out of range.
    #[error("policy {origin}: {field}: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
    /// A path or key glob is malformed.
    #[error("policy {origin}: {field}: pattern {pattern:?} {reason}")]
    BadGlob {
        origin: String,
        field: String,
        pattern: String,
        reason: &'static str,
    },
    /// `hmac.key_env` names a variable that is not set.
    #[error(
        "hmac key: environment variable {var} is not set (policy {origin} names it in hmac.key_env); set it to a random value of at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`), or set hmac.if_missing = \"generate\" to run with a random per-process key"
    )]
    KeyEnvMissing { origin: String, var: String },
    /// `hmac.key_env` names a variable that is not UTF-8.
    #[error("hmac key: environment variable {var} is not valid UTF-8")]
    KeyEnvNotUnicode { var: String },
    /// `hmac.key_file` could not be read.
    #[error("hmac key: cannot read hmac.key_file {path} (policy {origin}): {source}")]
    KeyFile {
        origin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key is too short.
    #[error(
        "hmac key from {from} is {len} bytes; at least {MIN_KEY_BYTES} are needed (e.g. `openssl rand -hex 32`)"
    )]
    KeyTooShort { from: String, len: usize },
}

impl Policy {
    /// The shipped default policy (`default-policy.toml`, compiled in).
    pub fn default_policy() -> Policy {
        // The shipped file is parsed by a test; the built-in defaults it spells out are the
        // same, so falling back to them changes nothing.
        Policy::parse(DEFAULT_POLICY_TOML, "<built-in default policy>").unwrap_or_else(|_| Policy {
            origin: "<built-in default policy>".into(),
            ..Policy::default()
        })
    }

    /// Parses and checks a policy from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, "<string>")
    }

    /// Reads, parses and checks a policy file.
    pub fn load(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let mut policy: Policy = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            PolicyError::Syntax {
                origin: origin.to_owned(),
                line,
                column,
                message: sanitize_message(e.message()),
            }
        })?;
        policy.origin = origin.to_owned();
        policy.compile()?;
        Ok(policy)
    }

    fn origin(&self) -> String {
        if self.origin.is_empty() {
            "<in code>".to_owned()
        } else {
            self.origin.clone()
        }
    }

    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            origin: self.origin(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Checks the policy and builds what the redactor runs.
    pub(crate) fn compile(&self) -> Result<Compiled, PolicyError> {
        self.check_hmac()?;
        let mut rules: Vec<CompiledRule> = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let field = format!("rules[{i}]");
            let name_ok = !rule.name.is_empty()
                && rule.name.len() <= 64
                && rule.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !name_ok {
                return Err(self.invalid(
                    format!("{field}.name"),
                    "a rule name must be 1 to 64 lowercase letters, digits, `_` or `-`",
                ));
            }
            let label = format!("policy:{}", rule.name);
            if rules.iter().any(|r| r.label == label) {
                return Err(self.invalid(
                    format!("{field}.name"),
                    format!("rule name {:?} is used twice", rule.name),
                ));
            }
            if rule.paths.is_empty() {
                return Err(self.invalid(
                    format!("{field}.paths"),
                    "a rule needs at least one path pattern",
                ));
            }
            let mut globs = Vec::with_capacity(rule.paths.len());
            for pattern in &rule.paths {
                let glob = Glob::path(pattern).map_err(|e| PolicyError::BadGlob {
                    origin: self.origin(),
                    field: format!("{field}.paths (rule {:?})", rule.name),
                    pattern: pattern.clone(),
                    reason: e.reason(),
                })?;
                if rule.action != RuleAction::Keep
                    && !glob.has_wildcard()
                    && FORMAT_LOCKED_PATHS.contains(&pattern.as_str())
                {
                    return Err(self.invalid(
                        format!("{field}.paths (rule {:?})", rule.name),
                        format!(
                            "{pattern} is format-locked (records link by it, and it must keep its format to stay valid): rules never rewrite it; remove it from the rule"
                        ),
                    ));
                }
                globs.push(glob);
            }
            rules.push(CompiledRule {
                label,
                globs,
                action: rule.action,
            });
        }
        let key_globs = |field: &str, list: &[String], need_literal: bool| {
            list.iter()
                .map(|p| {
                    let g = Glob::key(p).map_err(|e| PolicyError::BadGlob {
                        origin: self.origin(),
                        field: field.to_owned(),
                        pattern: p.clone(),
                        reason: e.reason(),
                    })?;
                    if need_literal && g.longest_literal().len() < 3 {
                        return Err(PolicyError::BadGlob {
                            origin: self.origin(),
                            field: field.to_owned(),
                            pattern: p.clone(),
                            reason: "needs a literal part of at least 3 characters (like `token` in `*token*`)",
                        });
                    }
                    Ok(g)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let patterns = key_globs("secret_keys.patterns", &self.secret_keys.patterns, true)?;
        let exclude = key_globs("secret_keys.exclude", &self.secret_keys.exclude, false)?;
        let mut enabled = [false; Detector::ALL.len()];
        let mut actions = [DetectorAction::Mask; Detector::ALL.len()];
        for d in Detector::ALL {
            let a = self.detectors.action(d);
            if let Some(slot) = actions.get_mut(d.index()) {
                *slot = a;
            }
            if let Some(slot) = enabled.get_mut(d.index()) {
                *slot = a != DetectorAction::Off;
            }
        }
        let scanner = Scanner::new(enabled, KeyMatcher::new(patterns, exclude)).map_err(|e| {
            self.invalid(
                "secret_keys.patterns",
                format!("cannot build the key matcher: {e}"),
            )
        })?;
        Ok(Compiled {
            scanner,
            rules,
            actions,
        })
    }

    fn check_hmac(&self) -> Result<(), PolicyError> {
        let h = &self.hmac;
        let named = usize::from(h.key.is_some())
            + usize::from(h.key_env.is_some())
            + usize::from(h.key_file.is_some());
        if named > 1 {
            return Err(self.invalid(
                "hmac",
                "set only one of hmac.key, hmac.key_env and hmac.key_file",
            ));
        }
        if let Some(var) = &h.key_env {
            let ok = !var.is_empty()
                && var.len() <= 128
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !var.bytes().next().is_some_and(|b| b.is_ascii_digit());
            if !ok {
                // Do not echo it: a key pasted here by mistake must not reach a log.
                return Err(self.invalid(
                    "hmac.key_env",
                    "must name an environment variable (letters, digits and `_`, not starting with a digit); the value given does not look like one and is not shown (was the key itself put there?)",
                ));
            }
        }
        if let Some(key) = &h.key
            && key.len() < MIN_KEY_BYTES
        {
            return Err(PolicyError::KeyTooShort {
                from: format!("hmac.key in policy {}", self.origin()),
                len: key.len(),
            });
        }
        if named == 0 && h.if_missing == Some(MissingKey::Refuse) {
            return Err(self.invalid(
                "hmac",
                "if_missing = \"refuse\" but no key is named: set hmac.key_env, hmac.key_file or hmac.key",
            ));
        }
        Ok(())
    }

    /// Loads the HMAC key the policy names (environment, file or inline). Without one,
    /// generates a random per-process key and warns, or refuses, as `hmac.if_missing` says.
    pub fn load_key(&self) -> Result<(Secret, KeySource), PolicyError> {
        self.check_hmac()?;
        let h = &self.hmac;
        let named = h.key.is_some() || h.key_env.is_some() || h.key_file.is_some();
        let if_missing = h.if_missing.unwrap_or(if named {
            MissingKey::Refuse
        } else {
            MissingKey::Generate
        });
        let checked = |secret: Secret, source: KeySource| {
            if secret.len() < MIN_KEY_BYTES {
                return Err(PolicyError::KeyTooShort {
                    from: source.to_string(),
                    len: secret.len(),
                });
            }
            Ok((secret, source))
        };
        if let Some(key) = &h.key {
            return checked(key.clone(), KeySource::Inline);
        }
        if let Some(var) = &h.key_env {
            match std::env::var_os(var) {
                Some(v) => {
                    let v = v
                        .into_string()
                        .map_err(|_| PolicyError::KeyEnvNotUnicode { var: var.clone() })?;
                    return checked(Secret::from(v), KeySource::Env(var.clone()));
                }
                None if if_missing == MissingKey::Generate => {
                    return Ok((
                        self.generated(&format!("environment variable {var} is not set")),
                        KeySource::Generated,
                    ));
                }
                None => {
                    return Err(PolicyError::KeyEnvMissing {
                        origin: self.origin(),
                        var: var.clone(),
                    });
                }
            }
        }
        if let Some(path) = &h.key_file {
            match std::fs::read(path) {
                Ok(mut bytes) => {
                    if bytes.last() == Some(&b'\n') {
                        bytes.pop();
                        if bytes.last() == Some(&b'\r') {
                            bytes.pop();
                        }
                    }
                    return checked(Secret::new(bytes), KeySource::File(path.clone()));
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && if_missing == MissingKey::Generate =>
                {
                    return Ok((
                        self.generated(&format!("key file {} does not exist", path.display())),
                        KeySource::Generated,
                    ));
                }
                Err(source) => {
                    return Err(PolicyError::KeyFile {
                        origin: self.origin(),
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        Ok((
            self.generated("the policy names no hmac key"),
            KeySource::Generated,
        ))
    }

    fn generated(&self, why: &str) -> Secret {
        tracing::warn!(
            policy = %self.origin(),
            reason = why,
            "redaction uses a random per-process hmac key: tokens will differ after a restart and between processor instances; configure hmac.key_env or hmac.key_file"
        );
        Secret::generate()
    }
}

/// A policy ready to run.
#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    pub scanner: Scanner,
    pub rules: Vec<CompiledRule>,
    pub actions: [DetectorAction; Detector::ALL.len()],
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    /// `policy:<name>`.
    pub label: String,
    pub globs: Vec<Glob>,
    pub action: RuleAction,
}

/// 1-based line and column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Rewrites serde messages that quote the offending value (`invalid type: string "…"`,
/// `unknown variant `…``, `invalid value: …`) so that the value is not shown: it may be a
/// key put in the wrong place.
fn sanitize_message(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let kind = rest.split([' ', ',']).next().unwrap_or("value");
        let expected = rest
            .find(", expected")
            .map_or("", |i| rest.get(i..).unwrap_or(""));
        return format!("invalid type: {kind}{expected}");
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        let expected = rest
            .find(", expected")
            .map_or("", |i| rest.get(i..).unwrap_or(""));
        return format!("invalid value{expected}");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let expected = rest
            .find(", expected")
            .map_or("", |i| rest.get(i..).unwrap_or(""));
        return format!("unknown value{expected}");
    }
    msg.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_values_out_of_serde_messages() {
        assert_eq!(
            sanitize_message("invalid type: string \"s3cr3t\", expected a boolean"),
            "invalid type: string, expected a boolean"
        );
        assert_eq!(
            sanitize_message("unknown variant `s3cr3t`, expected `mask` or `hmac`"),
            "unknown value, expected `mask` or `hmac`"
        );
        assert_eq!(
            sanitize_message("invalid value: integer `7`, expected u8"),
            "invalid value, expected u8"
        );
        assert_eq!(sanitize_message("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
