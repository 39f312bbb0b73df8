//! `redact_vs_vrl`: our redaction (the default policy, every detector) over a fixed corpus
//! against Vector's VRL `redact()` over the same corpus with the filters VRL supports. VRL
//! takes about 25 minutes to build here, so it is compiled only with the cargo feature
//! `vrl-bench`; without it this measurement is `null` with [`NOTE`].
//!
//! The corpus is the redaction crate's own: `processors/redact/corpus/pii.json` (113 planted
//! PII items and secrets, each naming the detector that must catch it) and `negative.json`
//! (98 values that must never be redacted). Each item becomes one CloudEvents-shaped JSON
//! document ([`provenant_redact::corpus`]) (the envelope of a real event, the value in the field the item names; each
//! negative in `data.message` and `data.annotations.note`). Both sides get a fresh copy of
//! every document per pass (ours a `serde_json::Value`, VRL a `vrl::value::Value`, both
//! converted before timing) and redact every string in it:
//!
//! * ours: [`provenant_redact::Redactor::redact_json`] with [`Policy::default_policy`];
//! * VRL: one compiled program `. = redact(., filters: [...])` with [`VRL_FILTERS`] — the
//!   named filter `us_social_security_number` (the only named filter VRL has) and the
//!   `pattern` regexes a Vector user would write for the same kinds.
//!
//! A planted value counts as caught when no string (member name or value) of the output
//! still contains it; a negative document is a false positive when the output differs from
//! the input.
//!
//! [`Policy::default_policy`]: provenant_redact::Policy::default_policy

use anyhow::Result;

use super::{Comparison, Plan};

/// Why the key is null and how to get it.
pub(crate) const NOTE: &str = "built without the cargo feature `vrl-bench`; run `cargo run --release -p provenant --features vrl-bench -- bench --only redact_vs_vrl` (VRL takes ~25 min to compile)";

#[cfg(not(feature = "vrl-bench"))]
pub(crate) fn measure(_plan: &Plan) -> Result<Option<Comparison>> {
    Ok(None)
}

#[cfg(feature = "vrl-bench")]
pub(crate) fn measure(plan: &Plan) -> Result<Option<Comparison>> {
    vrl_bench::measure(plan).map(Some)
}

/// VRL's filters, as `(kind, VRL filter literal)`: the kind is the detector of ours the
/// filter stands in for. Kinds without a line here have no VRL counterpart in the filters
/// (phone, IBAN, IPv6, AWS secret keys, GCP, Azure, GitLab and Slack keys, high-entropy
/// values under secret-like keys).
#[cfg_attr(not(feature = "vrl-bench"), allow(dead_code))]
pub(crate) const VRL_FILTERS: [(&str, &str); 9] = [
    ("us_ssn", r#""us_social_security_number""#),
    (
        "email",
        r"r'[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}'",
    ),
    ("ipv4", r"r'\b(?:\d{1,3}\.){3}\d{1,3}\b'"),
    ("payment_card", r"r'\b(?:\d[ -]?){12,18}\d\b'"),
    ("aws_access_key", r"r'\b(?:AKIA|ASIA)[0-9A-Z]{16}\b'"),
    ("github_token", r"r'\bgh[pousr]_[A-Za-z0-9]{36}\b'"),
    (
        "jwt",
        r"r'\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+'",
    ),
    (
        "private_key",
        r"r'-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----'",
    ),
    (
        "url_credentials",
        r"r'[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:[^\s@/]+@'",
    ),
];

#[cfg(feature = "vrl-bench")]
mod vrl_bench {
    use std::collections::BTreeMap;
    use std::hint::black_box;
    use std::time::Instant;

    use anyhow::{Context as _, Result, anyhow, bail};
    use provenant_redact::corpus::documents;
    use provenant_redact::{Policy, Redactor, Secret};
    use serde_json::{Value, json};
    use vrl::compiler::state::RuntimeState;
    use vrl::compiler::{Context, Program, TargetValue, TimeZone};
    use vrl::value::{Secrets, Value as VrlValue};

    use super::super::{Comparison, Plan, median, progress};
    use super::VRL_FILTERS;

    /// One document of the corpus, as JSON for ours and as a VRL value for VRL.
    struct Doc {
        json: Value,
        vrl: VrlValue,
        planted: Option<(String, String)>,
    }

    fn corpus() -> Result<Vec<Doc>> {
        Ok(documents()
            .context("the redaction corpus")?
            .into_iter()
            .map(|d| Doc {
                vrl: VrlValue::from(d.json.clone()),
                json: d.json,
                planted: d.planted,
            })
            .collect())
    }

    /// Whether any member name or string of `v` contains `needle`.
    fn contains(v: &Value, needle: &str) -> bool {
        match v {
            Value::String(s) => s.contains(needle),
            Value::Array(a) => a.iter().any(|x| contains(x, needle)),
            Value::Object(o) => o
                .iter()
                .any(|(k, x)| k.contains(needle) || contains(x, needle)),
            _ => false,
        }
    }

    /// The VRL program source for [`VRL_FILTERS`].
    pub(crate) fn vrl_source() -> String {
        let filters: Vec<&str> = VRL_FILTERS.iter().map(|(_, f)| *f).collect();
        format!(". = redact(., filters: [{}])", filters.join(", "))
    }

    struct Vrl {
        program: Program,
        state: RuntimeState,
        tz: TimeZone,
    }

    impl Vrl {
        fn new() -> Result<Self> {
            let source = vrl_source();
            let compiled = vrl::compiler::compile(&source, &vrl::stdlib::all())
                .map_err(|d| anyhow!("VRL program does not compile: {d:?}\n{source}"))?;
            Ok(Self {
                program: compiled.program,
                state: RuntimeState::default(),
                tz: TimeZone::default(),
            })
        }

        fn run(&mut self, value: VrlValue) -> Result<VrlValue> {
            let mut target = TargetValue {
                value,
                metadata: VrlValue::Object(BTreeMap::new()),
                secrets: Secrets::new(),
            };
            let mut ctx = Context::new(&mut target, &mut self.state, &self.tz);
            self.program
                .resolve(&mut ctx)
                .map_err(|e| anyhow!("VRL program failed: {e}"))?;
            self.state.clear();
            Ok(target.value)
        }
    }

    /// Counts per kind: `[planted, ours, vrl]`.
    type Caught = BTreeMap<String, [u64; 3]>;

    pub(crate) fn measure(plan: &Plan) -> Result<Comparison> {
        let docs = corpus()?;
        let redactor = Redactor::new(&Policy::default_policy(), Secret::generate())
            .map_err(|e| anyhow!("default policy: {e}"))?;
        let mut vrl = Vrl::new()?;

        // Check pass (untimed): what each side caught, and false positives.
        let mut caught: Caught = BTreeMap::new();
        let (mut fp_ours, mut fp_vrl) = (0u64, 0u64);
        for d in &docs {
            let mut ours = d.json.clone();
            redactor.redact_json(&mut ours);
            let theirs: Value = vrl
                .run(d.vrl.clone())?
                .try_into()
                .map_err(|e| anyhow!("VRL output is not JSON: {e:?}"))?;
            match &d.planted {
                Some((kind, value)) => {
                    let c = caught.entry(kind.clone()).or_default();
                    c[0] += 1;
                    c[1] += u64::from(!contains(&ours, value));
                    c[2] += u64::from(!contains(&theirs, value));
                }
                None => {
                    fp_ours += u64::from(ours != d.json);
                    fp_vrl += u64::from(theirs != d.json);
                }
            }
        }
        let planted: u64 = caught.values().map(|c| c[0]).sum();
        let caught_ours: u64 = caught.values().map(|c| c[1]).sum();
        let caught_vrl: u64 = caught.values().map(|c| c[2]).sum();
        if planted == 0 || caught_ours == 0 {
            bail!("the corpus planted {planted} values and ours caught {caught_ours}");
        }

        // Timed: each round runs ours then VRL over `passes` copies of the corpus; one
        // untimed warm-up round first.
        let passes = if plan.quick { 20 } else { 200 };
        let n = (docs.len() * passes) as f64;
        let mut ours_rates = Vec::new();
        let mut vrl_rates = Vec::new();
        for round in 0..=plan.rounds {
            let t = Instant::now();
            for _ in 0..passes {
                for d in &docs {
                    let mut v = d.json.clone();
                    black_box(redactor.redact_json(black_box(&mut v)));
                    black_box(v);
                }
            }
            let ours = n / t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..passes {
                for d in &docs {
                    black_box(vrl.run(black_box(d.vrl.clone()))?);
                }
            }
            let theirs = n / t.elapsed().as_secs_f64();
            if round > 0 {
                progress(&format!(
                    "redact_vs_vrl round {round}: ours {ours:.0} docs/s, VRL {theirs:.0} docs/s"
                ));
                ours_rates.push(ours);
                vrl_rates.push(theirs);
            }
        }

        let by_kind: serde_json::Map<String, Value> = caught
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    json!({"planted": c[0], "ours": c[1], "vrl": c[2]}),
                )
            })
            .collect();
        let filters: Vec<Value> = VRL_FILTERS
            .iter()
            .map(|(kind, f)| json!({"kind": kind, "filter": f}))
            .collect();
        Ok(
            Comparison::new(median(ours_rates), median(vrl_rates), "documents/s")
                .with("documents", docs.len())
                .with("passes_per_round", passes)
                .with("planted", planted)
                .with("negatives", docs.len() as u64 - planted)
                .with("caught_ours", caught_ours)
                .with("caught_vrl", caught_vrl)
                .with("caught_by_kind", by_kind)
                .with("false_positives_ours", fp_ours)
                .with("false_positives_vrl", fp_vrl)
                .with("vrl_version", "0.38.0")
                .with("vrl_filters", filters),
        )
    }
}
