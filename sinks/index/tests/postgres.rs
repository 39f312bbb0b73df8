//! The index on the real PostgreSQL server (127.0.0.1:5432, or `PROVENANT_TEST_POSTGRES`):
//! the conformance suite, each check in a schema of its own, dropped afterwards; migrations
//! at open; two writers of one partition.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use common::PgSchema;
use provenant_index::{AnyIndex, Index, IndexError, PostgresIndex, story};

async fn fresh() -> (PostgresIndex, PgSchema) {
    let schema = PgSchema::create().await;
    let index = PostgresIndex::open(&schema.url()).await.unwrap();
    (index, schema)
}

conformance_tests!(fresh());

async fn migrations_of(schema: &str) -> Vec<(i64, String)> {
    common::admin()
        .await
        .query(
            &format!("SELECT version, applied_at FROM {schema}.schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_applied_at_open_and_reopen_is_a_no_op() {
    let schema = PgSchema::create().await;
    let index = provenant_index::open(&schema.url()).await.unwrap();
    assert!(matches!(index, AnyIndex::Postgres(_)));
    assert_eq!(index.schema_version().await.unwrap(), 1);
    let first = migrations_of(&schema.name).await;
    assert_eq!(first.len(), 1);
    let ledger = story::small_story(2).unwrap();
    ledger.apply_all(&index, 10).await.unwrap();
    let stats = index.stats().await.unwrap();
    drop(index);

    let index = provenant_index::open(&schema.url()).await.unwrap();
    assert_eq!(index.schema_version().await.unwrap(), 1);
    assert_eq!(
        migrations_of(&schema.name).await,
        first,
        "re-open must not re-apply"
    );
    assert_eq!(index.stats().await.unwrap(), stats);
    assert_eq!(index.reader_state(1).await.unwrap(), Some(ledger.state(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_from_a_newer_provenant_is_refused() {
    let schema = PgSchema::create().await;
    drop(PostgresIndex::open(&schema.url()).await.unwrap());
    common::admin()
        .await
        .execute(
            &format!(
                "INSERT INTO {}.schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap();
    match PostgresIndex::open(&schema.url()).await {
        Err(IndexError::SchemaTooNew {
            found: 99,
            known: 1,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_opening_and_writing_one_partition_take_turns() {
    let schema = PgSchema::create().await;
    // Two indexes on one database, as two processes would be: they migrate at once, then
    // both apply the whole ledger, batch by batch, at the same time.
    let url = schema.url();
    let (a, b) = tokio::join!(PostgresIndex::open(&url), PostgresIndex::open(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(migrations_of(&schema.name).await.len(), 1);
    let ledger = story::small_story(2).unwrap();
    let (ra, rb) = tokio::join!(ledger.apply_all(&a, 2), ledger.apply_all(&b, 3));
    ra.unwrap();
    rb.unwrap();
    let one = story::small_story(2).unwrap();
    let schema2 = PgSchema::create().await;
    let reference = PostgresIndex::open(&schema2.url()).await.unwrap();
    one.apply_all(&reference, 100).await.unwrap();
    assert_eq!(a.stats().await.unwrap(), reference.stats().await.unwrap());
    for p in 0..2 {
        assert_eq!(a.reader_state(p).await.unwrap(), Some(ledger.state(p)));
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error_naming_the_url_without_password() {
    let err = PostgresIndex::open("postgres://me:s3cret@127.0.0.1:1/test?connect_timeout=2")
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("s3cret"),
        "{text}"
    );
}
