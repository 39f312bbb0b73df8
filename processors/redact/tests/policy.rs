#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Policy files: the shipped ones parse, errors are clear and never echo a secret, keys load
//! from the policy, the environment or a file.

mod common;

use std::path::{Path, PathBuf};

use provenant_redact::{
    DETECTORS, Detector, DetectorAction, KeySource, Policy, PolicyError, Redactor, Secret,
    default_action,
};

const SECRET: &str = "Zq8-super-secret-value-that-must-never-print-7Hn2";

fn err(toml: &str) -> String {
    match Policy::from_toml_str(toml) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn default_policy_file_parses_and_turns_every_detector_on() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("default-policy.toml");
    let from_file = Policy::load(&path).unwrap();
    let built_in = Policy::default_policy();
    assert_eq!(from_file.detectors, built_in.detectors);
    assert_eq!(from_file.secret_keys, built_in.secret_keys);
    assert_eq!(from_file.hmac, built_in.hmac);
    assert!(built_in.rules.is_empty());
    for d in Detector::ALL {
        let action = built_in.detectors.action(d);
        assert_ne!(action, DetectorAction::Off, "{d} is off by default");
        assert_eq!(
            action,
            default_action(d),
            "{d}: file and built-in default differ"
        );
    }
    assert_eq!(
        built_in.detectors.action(Detector::Email),
        DetectorAction::Hmac
    );
    // The file spells out every detector.
    let text = std::fs::read_to_string(&path).unwrap();
    for d in DETECTORS {
        assert!(
            text.contains(&format!("\n{d} = ")),
            "default-policy.toml does not name {d}"
        );
    }
    // An empty policy means the same defaults.
    let empty = Policy::from_toml_str("").unwrap();
    assert_eq!(
        empty.detectors.action(Detector::Phone),
        DetectorAction::Mask
    );
    assert_eq!(empty.secret_keys, built_in.secret_keys);
}

/// Every `*.toml` policy in the repository: the crate's examples and any file named
/// `*policy*.toml`.
fn repo_policies() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                if !name.starts_with('.') && name != "target" && name != "node_modules" {
                    stack.push(path);
                }
            } else if name.ends_with(".toml")
                && (name.contains("policy")
                    || path
                        .parent()
                        .is_some_and(|p| p.ends_with("processors/redact/examples")))
            {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn every_example_policy_in_the_repo_parses() {
    let files = repo_policies();
    assert!(files.len() >= 3, "found only {files:?}");
    for f in files {
        let p = Policy::load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        Redactor::new(&p, Secret::from(common::KEY)).unwrap();
    }
}

#[test]
fn unknown_fields_are_named() {
    let e = err("hmac_key = \"x\"\n");
    assert!(
        e.contains("line 1") && e.contains("unknown field `hmac_key`"),
        "{e}"
    );
    let e = err("[hmac]\nkey_enviroment = \"X\"\n");
    assert!(
        e.contains("unknown field `key_enviroment`") && e.contains("key_env"),
        "{e}"
    );
    let e = err("[[rules]]\nname = \"a\"\npaths = [\"*.actor\"]\naction = \"hmac\"\nwhen = 1\n");
    assert!(e.contains("unknown field `when`"), "{e}");
}

#[test]
fn unknown_detector_names_list_the_known_ones() {
    let e = err("[detectors]\nemial = \"mask\"\n");
    assert!(
        e.contains("line 2") && e.contains("`emial`") && e.contains("`email`"),
        "{e}"
    );
    let e = err("[detectors]\nemail = \"redact\"\n");
    assert!(
        e.contains("unknown value") && e.contains("`hmac`") && !e.contains("redact\""),
        "{e}"
    );
}

#[test]
fn bad_globs_say_what_is_wrong() {
    let rule = |p: &str| format!("[[rules]]\nname = \"r\"\npaths = [{p:?}]\naction = \"mask\"\n");
    let e = err(&rule("data..actor"));
    assert!(
        e.contains("\"data..actor\"") && e.contains("empty segment") && e.contains("rules[0]"),
        "{e}"
    );
    let e = err(&rule("data.**"));
    assert!(e.contains("`**`"), "{e}");
    let e = err(&rule("data.inputs[x].name"));
    assert!(e.contains("array index"), "{e}");
    let e = err(&rule("data. actor"));
    assert!(e.contains("whitespace"), "{e}");
    let e = err("[secret_keys]\npatterns = [\"*\"]\n");
    assert!(
        e.contains("secret_keys.patterns") && e.contains("literal part"),
        "{e}"
    );
}

#[test]
fn rules_are_checked() {
    let e = err("[[rules]]\nname = \"Bad Name\"\npaths = [\"*.actor\"]\naction = \"mask\"\n");
    assert!(e.contains("rules[0].name"), "{e}");
    let e = err(
        "[[rules]]\nname = \"a\"\npaths = [\"*.actor\"]\naction = \"mask\"\n[[rules]]\nname = \"a\"\npaths = [\"x\"]\naction = \"drop\"\n",
    );
    assert!(e.contains("used twice"), "{e}");
    let e = err("[[rules]]\nname = \"a\"\npaths = []\naction = \"mask\"\n");
    assert!(e.contains("at least one path"), "{e}");
    let e = err("[[rules]]\nname = \"sha\"\npaths = [\"data.commit_sha\"]\naction = \"hmac\"\n");
    assert!(e.contains("format-locked"), "{e}");
    // keep on a locked field, and globs that happen to cover one, are fine.
    Policy::from_toml_str(
        "[[rules]]\nname = \"sha\"\npaths = [\"data.commit_sha\"]\naction = \"keep\"\n",
    )
    .unwrap();
    Policy::from_toml_str("[[rules]]\nname = \"all\"\npaths = [\"data.*\"]\naction = \"mask\"\n")
        .unwrap();
}

#[test]
fn missing_key_env_var_is_clear() {
    let p = Policy::from_toml_str("[hmac]\nkey_env = \"PROVENANT_TEST_NEVER_SET_4242\"\n").unwrap();
    let e = p.load_key().unwrap_err();
    assert!(matches!(e, PolicyError::KeyEnvMissing { .. }));
    let e = e.to_string();
    assert!(
        e.contains("PROVENANT_TEST_NEVER_SET_4242")
            && e.contains("not set")
            && e.contains("if_missing"),
        "{e}"
    );
    assert!(Redactor::from_policy(&p).is_err());
    // With if_missing = "generate": a random key, and the source says so.
    let p = Policy::from_toml_str(
        "[hmac]\nkey_env = \"PROVENANT_TEST_NEVER_SET_4242\"\nif_missing = \"generate\"\n",
    )
    .unwrap();
    let r = Redactor::from_policy(&p).unwrap();
    assert_eq!(r.key_source(), &KeySource::Generated);
    // The default policy runs without any configuration.
    let r = Redactor::from_policy(&Policy::default_policy()).unwrap();
    assert!(matches!(
        r.key_source(),
        KeySource::Generated | KeySource::Env(_)
    ));
    let e = err("[hmac]\nif_missing = \"refuse\"\n");
    assert!(e.contains("no key is named"), "{e}");
}

#[test]
fn key_from_file_and_inline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hmac.key");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let toml = format!("[hmac]\nkey_file = {:?}\n", path.display().to_string());
    let p = Policy::from_toml_str(&toml).unwrap();
    let r = Redactor::from_policy(&p).unwrap();
    assert_eq!(r.key_source(), &KeySource::File(path.clone()));
    let direct = Redactor::new(&p, Secret::from(SECRET)).unwrap();
    assert_eq!(
        r.token("x"),
        direct.token("x"),
        "the trailing newline is not part of the key"
    );

    let p = Policy::from_toml_str(&format!("[hmac]\nkey = {SECRET:?}\n")).unwrap();
    let r = Redactor::from_policy(&p).unwrap();
    assert_eq!(r.key_source(), &KeySource::Inline);
    assert_eq!(r.token("x"), direct.token("x"));

    let missing = dir.path().join("absent.key");
    let p = Policy::from_toml_str(&format!(
        "[hmac]\nkey_file = {:?}\n",
        missing.display().to_string()
    ))
    .unwrap();
    let e = p.load_key().unwrap_err().to_string();
    assert!(e.contains("absent.key") && e.contains("cannot read"), "{e}");

    let e = err("[hmac]\nkey = \"x\"\nkey_env = \"Y\"\n");
    assert!(e.contains("only one"), "{e}");
}

#[test]
fn key_from_env_in_a_child_process() {
    // Setting a variable in this multi-threaded test process is unsound; run the check in
    // a child process of this test binary instead.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_reads_key_from_env",
            "--nocapture",
            "--include-ignored",
        ])
        .env("PROVENANT_TEST_HMAC_KEY", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET));
}

#[test]
#[ignore = "run by key_from_env_in_a_child_process with the variable set"]
fn child_reads_key_from_env() {
    let p = Policy::from_toml_str("[hmac]\nkey_env = \"PROVENANT_TEST_HMAC_KEY\"\n").unwrap();
    let r = Redactor::from_policy(&p).unwrap();
    assert_eq!(
        r.key_source(),
        &KeySource::Env("PROVENANT_TEST_HMAC_KEY".into())
    );
    let direct = Redactor::new(&p, Secret::from(SECRET)).unwrap();
    assert_eq!(r.token("x"), direct.token("x"));
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    // An inline key: not in the policy's Debug, nor the redactor's.
    let p = Policy::from_toml_str(&format!("[hmac]\nkey = {SECRET:?}\n")).unwrap();
    assert!(!format!("{p:?}").contains(SECRET));
    assert!(format!("{p:?}").contains("Secret(***)"));
    let r = Redactor::from_policy(&p).unwrap();
    assert!(!format!("{r:?}").contains(SECRET));
    // A policy with an inline key and another mistake.
    let cases = [
        format!("[hmac]\nkey = {SECRET:?}\n[detectors]\nemial = \"mask\"\n"),
        format!("[hmac]\nkey = {SECRET:?}\nif_missing = \"sometimes\"\n"),
        format!("[hmac]\nkey = {SECRET:?}\nkey_env = \"X\"\n"),
        format!(
            "[hmac]\nkey = {SECRET:?}\n[[rules]]\nname = \"r\"\npaths = [\"a..b\"]\naction = \"mask\"\n"
        ),
        // The key pasted into the wrong place.
        format!("[hmac]\nkey_env = {SECRET:?}\n"),
        format!("[hmac]\nif_missing = {SECRET:?}\n"),
        format!("[detectors]\nemail = {SECRET:?}\n"),
        format!("[hmac]\nkey_file = 7\nkey = {SECRET:?}\n"),
        format!("[hmac]\nkey = [{SECRET:?}]\n"),
        format!("[hmac]\nkey = \"{SECRET}\n"),
        format!("{SECRET:?}\n"),
        "[hmac]\nkey = 123456789012345678901234567890123\n".to_owned(),
    ];
    for toml in &cases {
        let e = Policy::from_toml_str(toml).unwrap_err();
        let shown = format!("{e} / {e:?}");
        assert!(
            !shown.contains(SECRET),
            "secret echoed by {toml:?}: {shown}"
        );
        assert!(
            !shown.contains("123456789012345678901234567890123"),
            "{shown}"
        );
    }
    // Too short a key: its length is told, not its value.
    let e = err("[hmac]\nkey = \"short-key-9\"\n");
    assert!(e.contains("11 bytes") && !e.contains("short-key-9"), "{e}");
    let e = Redactor::new(&Policy::default_policy(), Secret::from("tiny-secret")).unwrap_err();
    assert!(!e.to_string().contains("tiny-secret"), "{e}");
}
