//! Shared by the backend test files: the conformance macro and fresh indexes.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// One `#[tokio::test]` per conformance check, each on a fresh index from `$fresh` (an
/// expression giving a future of `(index, guard)`; the guard cleans up when dropped).
macro_rules! conformance_tests {
    ($fresh:expr) => {
        conformance_tests!(@each $fresh;
            apply_then_replay_writes_nothing_twice,
            reader_state_round_trips,
            failed_batch_leaves_nothing_visible,
            discontinuous_batch_is_refused,
            link_resolution_updates_edges,
            lineage_up_from_instance_reaches_commit,
            lineage_down_from_commit_reaches_every_environment,
            depth_limit_is_honoured,
            cycles_are_safe,
            deployments_rollback_and_coverage,
            events_markers_and_redactions,
            datasets_keep_namespace_and_name
        );
    };
    (@each $fresh:expr; $($name:ident),*) => {
        mod conformance {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (index, _guard) = $fresh.await;
                    provenant_index::conformance::$name(&index).await.unwrap();
                }
            )*

            #[test]
            fn every_check_of_the_suite_runs_here() {
                assert_eq!(
                    [$(stringify!($name)),*],
                    provenant_index::conformance::CHECKS,
                    "add the new check to tests/common/mod.rs"
                );
            }
        }
    };
}

/// A name no other test of this run uses.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The PostgreSQL server the tests use: `PROVENANT_TEST_POSTGRES`, else the local one.
pub(crate) fn postgres_base_url() -> String {
    std::env::var("PROVENANT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `base` with `search_path` set to `schema`.
pub(crate) fn postgres_url(schema: &str) -> String {
    let base = postgres_base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A PostgreSQL schema of its own, dropped (with everything in it) on drop.
pub(crate) struct PgSchema {
    pub(crate) name: String,
}

impl PgSchema {
    pub(crate) async fn create() -> PgSchema {
        let name = unique("idx_test");
        let client = admin().await;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        PgSchema { name }
    }

    pub(crate) fn url(&self) -> String {
        postgres_url(&self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: clean up on a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                admin()
                    .await
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .unwrap();
            });
        })
        .join();
    }
}

/// A plain connection to the test database.
pub(crate) async fn admin() -> tokio_postgres::Client {
    let url = postgres_base_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {url} is needed by these tests ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or point PROVENANT_TEST_POSTGRES at another server"
            )
        });
    tokio::spawn(conn);
    client
}
