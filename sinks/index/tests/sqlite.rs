//! The index on SQLite: the conformance suite, migrations at open, URL forms.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use provenant_index::{AnyIndex, Index, IndexError, SqliteIndex, story};

async fn fresh() -> (SqliteIndex, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let index = SqliteIndex::open(&dir.path().join("index.db"))
        .await
        .unwrap();
    (index, dir)
}

conformance_tests!(fresh());

fn migrations_of(path: &std::path::Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn
        .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn migrations_are_applied_at_open_and_reopen_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/index.db");
    let index = SqliteIndex::open(&path).await.unwrap();
    assert_eq!(index.schema_version().await.unwrap(), 1);
    let first = migrations_of(&path);
    assert_eq!(first.len(), 1);
    let ledger = story::small_story(2).unwrap();
    ledger.apply_all(&index, 10).await.unwrap();
    let stats = index.stats().await.unwrap();
    drop(index);

    let index = SqliteIndex::open(&path).await.unwrap();
    assert_eq!(index.schema_version().await.unwrap(), 1);
    assert_eq!(migrations_of(&path), first, "re-open must not re-apply");
    assert_eq!(index.stats().await.unwrap(), stats);
    assert_eq!(index.reader_state(0).await.unwrap(), Some(ledger.state(0)));
}

#[tokio::test]
async fn an_index_from_a_newer_provenant_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    drop(SqliteIndex::open(&path).await.unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
            [],
        )
        .unwrap();
    match SqliteIndex::open(&path).await {
        Err(IndexError::SchemaTooNew {
            found: 99,
            known: 1,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn open_takes_a_path_or_a_sqlite_url() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    for url in [
        a.display().to_string(),
        format!("sqlite://{}", b.display()),
        format!("sqlite:{}", b.display()),
    ] {
        let index = provenant_index::open(&url).await.unwrap();
        assert!(matches!(index, AnyIndex::Sqlite(_)), "{url}");
        assert_eq!(index.schema_version().await.unwrap(), 1);
    }
    assert!(a.exists() && b.exists());
    for bad in ["", "sqlite://", "sqlite::memory:", "mysql://x/y"] {
        assert!(
            matches!(
                provenant_index::open(bad).await,
                Err(IndexError::Url { .. })
            ),
            "{bad:?} should be refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_run_while_batches_are_written() {
    let (index, _dir) = fresh().await;
    let index = std::sync::Arc::new(index);
    let ledger = story::small_story(1).unwrap();
    let records = ledger.records(0).to_vec();
    let writer = {
        let index = index.clone();
        let ledger = ledger.clone();
        tokio::spawn(async move {
            for n in 1..=records.len() {
                index
                    .apply(0, &records[n - 1..n], &ledger.state_after(0, n))
                    .await
                    .unwrap();
            }
        })
    };
    for _ in 0..50 {
        index.stats().await.unwrap();
        let _ = index.deployments(None).await.unwrap();
    }
    writer.await.unwrap();
    assert_eq!(index.reader_state(0).await.unwrap(), Some(ledger.state(0)));
}
