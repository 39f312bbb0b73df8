//! # provenant-redact
//!
//! The processor's "redact" step: removes PII and secrets from every string field of an
//! event before anything is stored, by a policy file (TOML) of field rules (`drop`, `mask`,
//! `hmac`, `keep`) and detectors (e-mail, phone, IP addresses, payment cards, IBAN, US SSN,
//! JWT, cloud and VCS access keys, private keys, credentials in URLs, high-entropy values
//! under secret-like keys). Each redaction is reported as a
//! [`provenant_schemas::ledger::Redaction`] (path, detector, action), never with the value.
//!
//! Use: load a [`Policy`] ([`Policy::load`], or [`Policy::default_policy`]), build a
//! [`Redactor`] ([`Redactor::from_policy`] reads the HMAC key the policy names), then call
//! [`Redactor::redact_event`] on each validated event, or [`Redactor::redact_json`] on a
//! payload bound for the DLQ.
//!
//! Modules: `policy` (the file format, errors, key loading), `redactor` (walking events and
//! JSON, what each field may become), `scan` (the detectors), `detector` (names, masks,
//! precedence), `glob` (path and key patterns), `secret` ([`Secret`]), and `corpus` (the PII and
//! negative corpus as event documents, for benchmarks against other redactors).
//!
//! Depends on the schema crate only (plus small, pure crates): no I/O except reading the
//! policy and key files, no tokio, no rdkafka. See `README.md` for the policy format and
//! every detector.

pub mod corpus;
mod detector;
mod glob;
mod policy;
mod redactor;
mod scan;
mod secret;

pub use detector::{DETECTORS, Detector, metric_label};
pub use policy::{
    DEFAULT_POLICY_TOML, DetectorAction, DetectorActions, FORMAT_LOCKED_PATHS, FieldRule,
    HmacConfig, KeySource, MIN_KEY_BYTES, MissingKey, Policy, PolicyError, RuleAction, SecretKeys,
    default_action, default_secret_exclude, default_secret_patterns,
};
pub use redactor::{Outcome, RULE_MASK, Redactor};
pub use secret::Secret;
