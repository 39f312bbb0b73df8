#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Property tests: no panic on any input, idempotence, validity kept, and no detector ever
//! matching a value of a format-locked field's format.

mod common;

use common::{event, redactor, set_field};
use proptest::prelude::*;
use provenant_redact::Outcome;
use provenant_schemas::Limits;
use serde_json::Value;

/// Pieces that trigger detectors, their guards and the redactor's own outputs, so that
/// random concatenations exercise the interactions arbitrary strings rarely reach.
const FRAGMENTS: &[&str] = &[
    "@",
    ".",
    ":",
    "::",
    "-",
    " ",
    "+",
    "(",
    ")",
    "/",
    "//",
    "=",
    "\"",
    "'",
    "\n",
    "\t",
    ",",
    "é",
    "漢",
    "4111",
    "1111",
    "4111 1111 1111 1111",
    "5555555555554444",
    "378282246310005",
    "123-45-6789",
    "415-555-0132",
    "+44 20 7946 0958",
    "(212) 555-0187",
    "10.0.0.1",
    "203.0.113.7",
    "255",
    "2001:db8::1",
    "fe80::1ff:fe23:4567:890a",
    "abcd",
    "AKIA",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "glpat-",
    "xoxb-",
    "eyJ",
    "eyJhbGciOiJIUzI1NiJ9",
    "-----BEGIN ",
    "RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "https://",
    "user:pw@",
    "alice",
    "alice@example.com",
    "example.com",
    "hmac:",
    "hmac:0123456789abcdef",
    "[REDACTED",
    "[REDACTED:email]",
    "]",
    "[",
    "password=",
    "token: ",
    "Authorization: Bearer ",
    "aws_secret_access_key = ",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AccountKey=",
    "?sv=1&sig=",
    "GB82",
    "WEST12345698765432",
    "GB82WEST12345698765432",
    "DE89370400440532013000",
    "AIza",
    "hooks.slack.com/services/",
    "0123456789abcdef",
    "Xy9q8Zr2LwX9vTn4Kp7",
    "x",
    "X",
    "7",
    "0",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|v| v.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), fragments(), "[ -~]{0,80}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any_text(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const KINDS: &[&str] = &["build", "artifact", "deploy", "runtime", "data", "approval"];

/// Fields each kind can take text in.
fn fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "build" => &[
            "actor",
            "branch",
            "build_id",
            "pipeline_url",
            "repo_url",
            "signature",
            "subject",
            "annotations.log",
            "annotations.api_token",
            "extensions.note",
        ],
        "artifact" => &["name", "annotations.x", "id", "source"],
        "deploy" => &[
            "actor",
            "deploy_id",
            "service",
            "environment",
            "pipeline_url",
            "annotations.env",
        ],
        "runtime" => &[
            "message",
            "instance_id",
            "trace_id",
            "annotations.DB_PASSWORD",
        ],
        "data" => &["input_name", "annotations.sample_row"],
        _ => &["approver", "reason", "annotations.ticket"],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn redact_str_never_panics_and_is_idempotent(path in "[a-z_.]{0,30}", s in any_text()) {
        let r = redactor();
        let (outcome, _) = r.redact_str(&path, &s);
        if let Outcome::Replace(once) = outcome {
            let (again, more) = r.redact_str(&path, &once);
            prop_assert_eq!(again, Outcome::Unchanged, "second pass changed {:?} (from {:?}): {:?}", once, s, more);
            prop_assert!(more.is_empty());
        }
    }

    #[test]
    fn redacted_events_stay_valid_and_redaction_is_idempotent(
        kind in prop::sample::select(KINDS),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any_text()), 1..5),
    ) {
        let r = redactor();
        let mut e = event(kind);
        for (idx, text) in &picks {
            let fs = fields(kind);
            set_field(&mut e, fs[idx.index(fs.len())], text);
        }
        let valid = e.validate(&Limits::DEFAULT).is_ok();
        let first = r.redact_event(&mut e);
        if valid {
            prop_assert!(e.validate(&Limits::DEFAULT).is_ok(), "redaction broke validity: {:?} {:?}", first, e);
        }
        let second = r.redact_event(&mut e);
        prop_assert!(second.is_empty(), "second pass redacted {:?} in {:?}", second, e);
    }

    #[test]
    fn redact_json_never_panics_and_is_idempotent(mut v in json_value()) {
        let r = redactor();
        r.redact_json(&mut v);
        let again = r.redact_json(&mut v);
        prop_assert!(again.is_empty(), "second pass redacted {:?} in {}", again, v);
    }

    #[test]
    fn no_detector_matches_format_locked_values(
        sha in "[0-9a-f]{40}",
        sha256 in "[0-9a-f]{64}",
        uuid in any::<u128>(),
        ts in (1970u32..2100, 1u32..13, 1u32..29, 0u32..24, 0u32..60, 0u32..60, 0u32..1000),
        num in "[0-9]{1,40}",
    ) {
        let r = redactor();
        let uuid = format!("{:032x}", uuid);
        let hyphenated = format!("{}-{}-{}-{}-{}", &uuid[..8], &uuid[8..12], &uuid[12..16], &uuid[16..20], &uuid[20..]);
        let (y, mo, d, h, mi, s, ms) = ts;
        let stamp = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z");
        let stamp_off = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+05:30");
        let digest = format!("sha256:{sha256}");
        for v in [&sha, &sha256, &digest, &uuid, &hyphenated, &stamp, &stamp_off] {
            let (outcome, red) = r.redact_str("data.annotations.ref", v);
            prop_assert_eq!(outcome, Outcome::Unchanged, "{} matched {:?}", v, red);
        }
        // Long digit runs are not cards (only 13-19 digit runs that pass Luhn are).
        if num.len() > 19 || num.len() < 7 {
            let (outcome, red) = r.redact_str("data.annotations.ref", &num);
            prop_assert_eq!(outcome, Outcome::Unchanged, "{} matched {:?}", num, red);
        }
    }
}
