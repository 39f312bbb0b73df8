//! Redaction throughput on realistic ~500-byte events, with a baseline measured in the same
//! run.
//!
//! `cargo bench -p provenant-redact --bench redact`
//!
//! * baseline: `event.clone()` + serde_json serialization of the event (`to_json_bytes`),
//!   i.e. the least any step that touches every field of an event costs;
//! * clean: `redact_event` (default policy) on a deploy event in which nothing is found;
//! * dirty: `redact_event` on a runtime event carrying an e-mail, an IP address, a card
//!   number, a URL with a password and a JWT (the clone that restores it for the next
//!   iteration is timed in a separate line and subtracted);
//! * dlq: `redact_json` on the dirty event's JSON;
//! * corpus: `redact_json` on every document of the redaction corpus
//!   (`provenant_redact::corpus`, the input `provenant bench`'s `redact_vs_vrl` times), with
//!   the clone of each document timed alone and subtracted.
//!
//! After criterion's report, a short self-timed pass prints ns/event and the ratio to the
//! baseline, so the numbers can be compared across machines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use provenant_redact::{Policy, Redactor, Secret};
use provenant_schemas::{Event, Limits};

fn clean_event() -> Event {
    let v = serde_json::json!({
        "specversion": "1.0",
        "id": "0190b6f2-3c4d-7e8f-9a0b-1c2d3e4f5a6b",
        "source": "https://ci.example.com/acme/shop",
        "type": "io.provenant.deploy.v1",
        "time": "2026-11-23T10:05:00Z",
        "subject": "deploy:deploy-2026-11-23-0007",
        "datacontenttype": "application/json",
        "data": {
            "deploy_id": "deploy-2026-11-23-0007",
            "artifact_digest": "sha256:9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c",
            "environment": "production",
            "service": "shop-checkout",
            "deploy_timestamp": "2026-11-23T10:05:00Z",
            "actor": "release-bot",
            "previous_deploy_id": "deploy-2026-11-22-0003",
            "pipeline_url": "https://github.com/acme/shop/actions/runs/9876543210/attempts/1",
            "annotations": {"region": "eu-west-1", "change": "CHG-4711", "build": "github:acme/shop/9876543210/1", "version": "v2.14.0-rc.1"}
        }
    });
    Event::from_value(&v, &Limits::DEFAULT).unwrap()
}

fn dirty_event() -> Event {
    let v = serde_json::json!({
        "specversion": "1.0",
        "id": "0190b6f2-3c4d-7e8f-9a0b-1c2d3e4f5a6c",
        "source": "https://k8s.example.com/prod",
        "type": "io.provenant.runtime.v1",
        "time": "2026-11-23T10:06:00Z",
        "datacontenttype": "application/json",
        "data": {
            "instance_id": "shop-checkout-7d9f8b6c5d-x2kqp",
            "service": "shop-checkout",
            "environment": "production",
            "deploy_id": "deploy-2026-11-23-0007",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "message": "payment for alice.smith@example.com from 203.0.113.7 failed: card 4111 1111 1111 1111 declined",
            "annotations": {
                "db": "postgres://shop:S3cretPw@db.internal:5432/shop",
                "auth": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "pod": "shop-checkout-7d9f8b6c5d-x2kqp"
            }
        }
    });
    Event::from_value(&v, &Limits::DEFAULT).unwrap()
}

fn baseline(e: &Event) {
    let c = black_box(e).clone();
    black_box(c.to_json_bytes());
}

fn clean(r: &Redactor, e: &mut Event) {
    black_box(r.redact_event(black_box(e)));
}

fn dirty(r: &Redactor, e: &Event) {
    let mut c = black_box(e).clone();
    black_box(r.redact_event(&mut c));
}

fn clone_only(e: &Event) {
    black_box(black_box(e).clone());
}

fn dlq(r: &Redactor, v: &serde_json::Value) {
    let mut c = black_box(v).clone();
    black_box(r.redact_json(&mut c));
}

fn clone_value(v: &serde_json::Value) {
    black_box(black_box(v).clone());
}

/// Mean time per call over about `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..1000 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    start.elapsed() / n
}

fn main() {
    let r = Redactor::new(
        &Policy::default_policy(),
        Secret::from("bench-key-0123456789abcdef-0123456789abcdef"),
    )
    .unwrap();
    let mut clean_e = clean_event();
    let dirty_e = dirty_event();
    let dirty_v = dirty_e.to_json_value();
    assert!(r.redact_event(&mut clean_e).is_empty());
    assert_eq!(r.redact_event(&mut dirty_e.clone()).len(), 5);

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("redact");
    g.bench_function("baseline_clone_serialize_clean", |b| {
        b.iter(|| baseline(&clean_e));
    });
    g.bench_function("baseline_clone_serialize_dirty", |b| {
        b.iter(|| baseline(&dirty_e));
    });
    g.bench_function("redact_event_clean", |b| b.iter(|| clean(&r, &mut clean_e)));
    g.bench_function("redact_event_dirty", |b| {
        b.iter_batched(
            || dirty_e.clone(),
            |mut e| black_box(r.redact_event(&mut e)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("redact_json_dirty", |b| {
        b.iter_batched(
            || dirty_v.clone(),
            |mut v| black_box(r.redact_json(&mut v)),
            BatchSize::SmallInput,
        );
    });
    g.finish();
    c.final_summary();

    let budget = Duration::from_millis(400);
    let base_clean = time(budget, || baseline(&clean_e));
    let base_dirty = time(budget, || baseline(&dirty_e));
    let t_clean = time(budget, || clean(&r, &mut clean_e));
    let t_dirty_clone = time(budget, || dirty(&r, &dirty_e));
    let t_clone = time(budget, || clone_only(&dirty_e));
    let t_dirty = t_dirty_clone.saturating_sub(t_clone);
    let t_dlq =
        time(budget, || dlq(&r, &dirty_v)).saturating_sub(time(budget, || clone_value(&dirty_v)));
    println!(
        "\nclean event {} bytes JSON, dirty event {} bytes JSON (5 findings)",
        clean_e.to_json_bytes().len(),
        dirty_e.to_json_bytes().len()
    );
    println!("{:<44} {:>10} {:>18}", "", "ns/event", "ratio to baseline");
    let ns = |d: Duration| d.as_nanos();
    let ratio = |d: Duration, b: Duration| d.as_secs_f64() / b.as_secs_f64();
    println!(
        "{:<44} {:>10} {:>18}",
        "baseline clone+serialize (clean event)",
        ns(base_clean),
        "1.00"
    );
    println!(
        "{:<44} {:>10} {:>18.2}",
        "redact_event, clean",
        ns(t_clean),
        ratio(t_clean, base_clean)
    );
    println!(
        "{:<44} {:>10} {:>18}",
        "baseline clone+serialize (dirty event)",
        ns(base_dirty),
        "1.00"
    );
    println!(
        "{:<44} {:>10} {:>18.2}",
        "redact_event, dirty (clone subtracted)",
        ns(t_dirty),
        ratio(t_dirty, base_dirty)
    );
    println!(
        "{:<44} {:>10} {:>18.2}",
        "redact_json, dirty (clone subtracted)",
        ns(t_dlq),
        ratio(t_dlq, base_dirty)
    );
    println!(
        "events/s per core: clean {:.0}, dirty {:.0}",
        1e9 / ns(t_clean).max(1) as f64,
        1e9 / ns(t_dirty).max(1) as f64
    );

    let docs: Vec<serde_json::Value> = provenant_redact::corpus::documents()
        .unwrap()
        .into_iter()
        .map(|d| d.json)
        .collect();
    let all = |redact: bool| {
        for d in &docs {
            let mut c = black_box(d).clone();
            if redact {
                black_box(r.redact_json(&mut c));
            }
            black_box(c);
        }
    };
    let t_corpus = time(budget, || all(true));
    let t_corpus_clone = time(budget, || all(false));
    let per_doc = t_corpus.as_secs_f64() / docs.len() as f64;
    let clone_per_doc = t_corpus_clone.as_secs_f64() / docs.len() as f64;
    println!(
        "corpus ({} documents): redact_json {:.0} ns/document with its clone ({:.0} documents/s), clone alone {:.0} ns",
        docs.len(),
        per_doc * 1e9,
        1.0 / per_doc,
        clone_per_doc * 1e9
    );
}
