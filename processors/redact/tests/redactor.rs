#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! What the redactor does to events, JSON and strings: tokens, field rules, the validity
//! guarantees, paths.

mod common;

use common::{KEY, annotations_mut, event, json_string, redactor, set_field};
use provenant_redact::{Outcome, Policy, Redactor, Secret, metric_label};
use provenant_schemas::EventData;
use provenant_schemas::Limits;
use provenant_schemas::ledger::{Redaction, RedactionAction};
use serde_json::json;

fn with_policy(toml: &str) -> Redactor {
    Redactor::new(&Policy::from_toml_str(toml).unwrap(), Secret::from(KEY)).unwrap()
}

fn red(path: &str, detector: &str, action: RedactionAction) -> Redaction {
    Redaction {
        path: path.into(),
        detector: detector.into(),
        action,
    }
}

fn is_token(s: &str) -> bool {
    s.len() == 21
        && s.starts_with("hmac:")
        && s[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn tokens_are_stable_per_key_and_differ_across_keys() {
    let a = redactor();
    let b = Redactor::new(&Policy::default_policy(), Secret::from(KEY)).unwrap();
    let other = Redactor::new(
        &Policy::default_policy(),
        Secret::from("another-key-0123456789abcdef-0123456789"),
    )
    .unwrap();
    let t = a.token("alice@example.com");
    assert!(is_token(&t), "{t}");
    assert_eq!(t, b.token("alice@example.com"));
    assert_ne!(t, other.token("alice@example.com"));
    assert_ne!(t, a.token("bob@example.com"));
    // The same e-mail in two fields of two events gives the same token (joinable), whatever
    // its case.
    let (o1, _) = a.redact_str("data.actor", "alice@example.com");
    let (o2, _) = b.redact_str("data.annotations.owner", "owner: Alice@Example.COM");
    let (Outcome::Replace(s1), Outcome::Replace(s2)) = (o1, o2) else {
        panic!("not redacted")
    };
    assert!(is_token(&s1));
    assert_eq!(s2, format!("owner: {s1}"));
}

#[test]
fn generated_keys_differ_between_instances() {
    let p = Policy::default_policy();
    let (a, b) = (
        Redactor::new(&p, Secret::generate()).unwrap(),
        Redactor::new(&p, Secret::generate()).unwrap(),
    );
    assert_ne!(a.token("x"), b.token("x"));
}

#[test]
fn clean_events_are_untouched() {
    for kind in ["build", "artifact", "deploy", "runtime", "data", "approval"] {
        let mut e = event(kind);
        let before = e.clone();
        assert_eq!(redactor().redact_event(&mut e), vec![], "{kind}");
        assert_eq!(e, before);
    }
}

#[test]
fn field_rules() {
    let r = with_policy(
        r#"
[[rules]]
name = "people"
paths = ["*.actor"]
action = "hmac"

[[rules]]
name = "no-approver"
paths = ["data.approver"]
action = "drop"

[[rules]]
name = "logs"
paths = ["data.annotations.*_log"]
action = "drop"

[[rules]]
name = "team"
paths = ["data.annotations.team"]
action = "keep"

[[rules]]
name = "ids"
paths = ["data.build_id", "data.pipeline_url", "data.message"]
action = "mask"

[[rules]]
name = "everything-else-in-data"
paths = ["data.*"]
action = "mask"
"#,
    );
    let mut e = event("build");
    set_field(&mut e, "actor", "octocat");
    set_field(&mut e, "annotations.build_log", "all green");
    set_field(&mut e, "annotations.team", "payments alice@example.com");
    let out = r.redact_event(&mut e);
    let EventData::Build(b) = &e.data else {
        panic!()
    };
    assert!(is_token(b.actor.as_deref().unwrap()));
    assert!(!b.annotations.contains_key("build_log"));
    assert_eq!(
        b.annotations["team"], "payments alice@example.com",
        "keep: no detector runs"
    );
    assert!(
        is_token(&b.build_id),
        "mask on an identifier becomes a token: {}",
        b.build_id
    );
    assert_eq!(
        b.pipeline_url, None,
        "a URL field is dropped rather than left without a scheme"
    );
    // Format-locked fields are not touched by `data.*`.
    assert_eq!(b.commit_sha, "de9f2c7fd25e1b3afad3e85a0bd17d9b100db4b3");
    assert_eq!(b.build_timestamp, "2026-11-23T10:00:00Z");
    assert!(b.artifact_digest.as_deref().unwrap().starts_with("sha256:"));
    assert_eq!(b.branch.as_deref().map(is_token), Some(true));
    assert_eq!(b.annotations["ci.runner"], "[REDACTED]");
    assert!(out.contains(&red("data.actor", "policy:people", RedactionAction::Token)));
    assert!(out.contains(&red(
        "data.annotations.build_log",
        "policy:logs",
        RedactionAction::Drop
    )));
    assert!(out.contains(&red(
        "data.pipeline_url",
        "policy:ids",
        RedactionAction::Drop
    )));
    assert!(out.contains(&red("data.build_id", "policy:ids", RedactionAction::Token)));
    e.validate(&Limits::DEFAULT).unwrap();
    assert_eq!(r.redact_event(&mut e), vec![], "rules are idempotent");

    // drop on a required field masks it instead, and says so.
    let mut e = event("approval");
    let out = r.redact_event(&mut e);
    let EventData::Approval(a) = &e.data else {
        panic!()
    };
    assert_eq!(a.approver, "[REDACTED]");
    assert!(out.contains(&red(
        "data.approver",
        "policy:no-approver",
        RedactionAction::Mask
    )));
    e.validate(&Limits::DEFAULT).unwrap();
}

#[test]
fn drop_never_removes_the_last_reference_of_a_runtime_event() {
    let r =
        with_policy("[[rules]]\nname = \"d\"\npaths = [\"data.deploy_id\"]\naction = \"drop\"\n");
    let mut e = event("runtime");
    let out = r.redact_event(&mut e);
    let EventData::Runtime(rt) = &e.data else {
        panic!()
    };
    assert!(is_token(rt.deploy_id.as_deref().unwrap()));
    assert_eq!(
        out,
        vec![red("data.deploy_id", "policy:d", RedactionAction::Token)]
    );
    e.validate(&Limits::DEFAULT).unwrap();
}

#[test]
fn detector_actions() {
    let r = with_policy("[detectors]\nprivate_key = \"drop\"\nemail = \"off\"\nphone = \"hmac\"\n");
    let mut e = event("runtime");
    set_field(
        &mut e,
        "annotations.tls",
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
    );
    set_field(
        &mut e,
        "message",
        "paged alice@example.com at +1 415-555-0132",
    );
    let out = r.redact_event(&mut e);
    let EventData::Runtime(rt) = &e.data else {
        panic!()
    };
    assert!(rt.annotations.is_empty());
    let msg = rt.message.as_deref().unwrap();
    assert!(msg.starts_with("paged alice@example.com at hmac:"), "{msg}");
    assert_eq!(
        out,
        vec![
            red("data.message", "phone", RedactionAction::Token),
            red("data.annotations.tls", "private_key", RedactionAction::Drop),
        ]
    );
    // A required field cannot be dropped: it is masked.
    let mut e = event("approval");
    set_field(
        &mut e,
        "approver",
        "-----BEGIN EC PRIVATE KEY-----\nabc\n-----END EC PRIVATE KEY-----",
    );
    let out = r.redact_event(&mut e);
    let EventData::Approval(a) = &e.data else {
        panic!()
    };
    assert_eq!(a.approver, "[REDACTED:private_key]");
    assert_eq!(
        out,
        vec![red("data.approver", "private_key", RedactionAction::Mask)]
    );
}

#[test]
fn identifiers_get_tokens_so_distinct_ids_stay_distinct() {
    let r = redactor();
    let mut a = event("build");
    let mut b = event("build");
    set_field(&mut a, "build_id", "jenkins:10.0.0.1/42");
    set_field(&mut b, "build_id", "jenkins:10.0.0.2/42");
    r.redact_event(&mut a);
    r.redact_event(&mut b);
    let id = |e: &provenant_schemas::Event| match &e.data {
        EventData::Build(x) => x.build_id.clone(),
        _ => unreachable!(),
    };
    assert_ne!(id(&a), id(&b));
    assert!(
        id(&a).starts_with("jenkins:hmac:") && id(&a).ends_with("/42"),
        "{}",
        id(&a)
    );
    // An artifact event naming the same build gets the same token: the link still joins.
    let mut art = event("artifact");
    if let EventData::Artifact(x) = &mut art.data {
        x.build_id = Some("jenkins:10.0.0.1/42".into());
    }
    r.redact_event(&mut art);
    let EventData::Artifact(x) = &art.data else {
        panic!()
    };
    assert_eq!(x.build_id.as_deref(), Some(id(&a).as_str()));
}

#[test]
fn long_identifiers_stay_within_their_limit() {
    let r = redactor();
    let mut e = event("build");
    // 50 addresses of ~9 bytes each: masks would make it far longer than 512 bytes.
    let long: String = (0..50).map(|i| format!("1.2.3.{i}/")).collect::<String>();
    let long = long.trim_end_matches('/').to_owned();
    assert!(long.len() <= 512);
    set_field(&mut e, "build_id", &long);
    e.validate(&Limits::DEFAULT).unwrap();
    let out = r.redact_event(&mut e);
    assert!(!out.is_empty());
    e.validate(&Limits::DEFAULT).unwrap();
    let EventData::Build(b) = &e.data else {
        panic!()
    };
    assert!(b.build_id.len() <= 512 && !b.build_id.contains("1.2.3."));
}

#[test]
fn annotation_keys_are_redacted_and_paths_never_hold_originals() {
    let r = redactor();
    let mut e = event("deploy");
    set_field(&mut e, "annotations.approved-by-alice@example.com", "yes");
    set_field(&mut e, "annotations.owner", "bob@example.com");
    let out = r.redact_event(&mut e);
    let json = json_string(&e);
    assert!(
        !json.contains("alice@example.com") && !json.contains("bob@example.com"),
        "{json}"
    );
    assert!(!format!("{out:?}").contains("example.com"), "{out:?}");
    let anns = annotations_mut(&mut e.data);
    // The whole key is the address's local part and domain: it becomes one token.
    let key = anns.keys().find(|k| is_token(k)).unwrap().clone();
    assert!(out.contains(&red(
        &format!("data.annotations.{key}"),
        "email",
        RedactionAction::Token
    )));
    assert!(out.contains(&red(
        "data.annotations.owner",
        "email",
        RedactionAction::Token
    )));
    e.validate(&Limits::DEFAULT).unwrap();
}

#[test]
fn extension_names_that_hold_pii_are_removed() {
    let r = redactor();
    let mut e = event("build");
    e.extensions.insert("4111111111111111".into(), "x".into());
    e.extensions
        .insert("ticket".into(), "call 415-555-0132".into());
    let out = r.redact_event(&mut e);
    assert!(!e.extensions.contains_key("4111111111111111"));
    assert_eq!(e.extensions["ticket"], "call [REDACTED:phone]");
    assert_eq!(
        out,
        vec![
            red("extensions", "payment_card", RedactionAction::Drop),
            red("extensions.ticket", "phone", RedactionAction::Mask),
        ]
    );
}

#[test]
fn redact_json_for_the_dlq() {
    let r = redactor();
    let mut v = json!({
        "specversion": "1.0",
        "id": "evt-9",
        "data": {
            "annotations": {"owner": "alice@example.com", "DB_PASSWORD": "hunter22"},
            "inputs": [{"name": "ok"}, {"name": "card 4111 1111 1111 1111"}],
            "card": 4111111111111111u64,
            "count": 12,
            "unexpected": {"alice@example.com": true}
        }
    });
    let out = r.redact_json(&mut v);
    let text = v.to_string();
    for s in ["alice@example.com", "hunter22", "4111"] {
        assert!(!text.contains(s), "{s} in {text}");
    }
    assert_eq!(v["data"]["card"], "[REDACTED:payment_card]");
    assert_eq!(v["data"]["count"], 12);
    assert_eq!(
        v["data"]["annotations"]["DB_PASSWORD"],
        "[REDACTED:secret_key_entropy]"
    );
    let paths: Vec<&str> = out.iter().map(|r| r.path.as_str()).collect();
    assert!(paths.contains(&"data.annotations.owner"), "{paths:?}");
    assert!(paths.contains(&"data.annotations.DB_PASSWORD"), "{paths:?}");
    assert!(paths.contains(&"data.inputs[1].name"), "{paths:?}");
    assert!(paths.contains(&"data.card"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("data.unexpected.hmac:")),
        "{paths:?}"
    );
    assert_eq!(r.redact_json(&mut v), vec![]);

    let mut arr = json!([{"actor": "x"}, {"actor": "bob@example.com"}]);
    let out = r.redact_json(&mut arr);
    assert_eq!(out, vec![red("[1].actor", "email", RedactionAction::Token)]);

    // Rules apply to JSON paths too; a dropped member is removed.
    let r = with_policy("[[rules]]\nname = \"a\"\npaths = [\"*.actor\"]\naction = \"drop\"\n");
    let mut v = json!({"data": {"actor": "octocat", "service": "api"}});
    let out = r.redact_json(&mut v);
    assert_eq!(v, json!({"data": {"service": "api"}}));
    assert_eq!(
        out,
        vec![red("data.actor", "policy:a", RedactionAction::Drop)]
    );
}

#[test]
fn redact_str_reports_outcomes() {
    let r = redactor();
    assert_eq!(
        r.redact_str("data.message", "all good").0,
        Outcome::Unchanged
    );
    let (o, out) = r.redact_str("data.message", "ssn 123-45-6789");
    assert_eq!(o, Outcome::Replace("ssn [REDACTED:us_ssn]".into()));
    assert_eq!(
        out,
        vec![red("data.message", "us_ssn", RedactionAction::Mask)]
    );
    // The last path segment is the key the value sits under.
    let (o, out) = r.redact_str("data.annotations.api_token", "q8Zr2LwX9vTn4Kp7");
    assert_eq!(o, Outcome::Replace("[REDACTED:secret_key_entropy]".into()));
    assert_eq!(out[0].detector, "secret_key_entropy");
    // Several findings of one detector in one field: reported once.
    let (_, out) = r.redact_str("m", "10.0.0.1 10.0.0.2 10.0.0.3 and 123-45-6789");
    assert_eq!(
        out,
        vec![
            red("m", "ipv4", RedactionAction::Mask),
            red("m", "us_ssn", RedactionAction::Mask)
        ]
    );
}

#[test]
fn metric_labels_come_from_a_fixed_set() {
    let (_, out) = redactor().redact_str("m", "alice@example.com 4111111111111111");
    for r in &out {
        assert!(provenant_redact::DETECTORS.contains(&metric_label(&r.detector)));
    }
    assert_eq!(metric_label("policy:people"), "policy");
    assert_eq!(metric_label("alice@example.com"), "other");
}

#[test]
fn debug_of_the_redactor_hides_the_key() {
    let s = format!("{:?}", redactor());
    assert!(!s.contains(KEY) && s.contains("Secret(***)"), "{s}");
}
