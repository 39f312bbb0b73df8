//! The generic `Log` conformance suite (`provenant_log::conformance`) run against the
//! embedded log on a temporary directory.

use std::time::Duration;

use provenant_log::conformance;
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{Log, Record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_log_passes_the_conformance_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(tmp.path(), EmbeddedConfig::default()).unwrap();
    log.create_topic("conformance", 3).unwrap();
    conformance::run_all(&log, "conformance", "conformance-group")
        .await
        .unwrap();
    // The suite also passes on the three topics every deployment has.
    conformance::run_all(&log, provenant_log::RAW_TOPIC, "raw-group")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_log_passes_the_suite_after_reopen_with_small_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 512,
        ..EmbeddedConfig::default()
    };
    let log = EmbeddedLog::open(tmp.path(), config.clone()).unwrap();
    log.create_topic("conformance", 2).unwrap();
    conformance::run_all(&log, "conformance", "g")
        .await
        .unwrap();
    drop(log);
    let log = EmbeddedLog::open(tmp.path(), config).unwrap();
    // The individual checks run on a topic earlier checks wrote to.
    conformance::offsets_contiguous(&log, "conformance", 1)
        .await
        .unwrap();
    conformance::read_from_any_offset(&log, "conformance", 0)
        .await
        .unwrap();
    conformance::commit_then_committed(&log, "g2", "conformance")
        .await
        .unwrap();
}

/// The suite cannot delete data generically; here retention does, then the check proves a
/// read before the start is `OffsetOutOfRange`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_before_the_start_after_retention_is_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 512,
        retention: Duration::ZERO,
        ..EmbeddedConfig::default()
    };
    let log = EmbeddedLog::open(tmp.path(), config).unwrap();
    log.create_topic("retained", 1).unwrap();
    for n in 0..50 {
        log.append(
            "retained",
            0,
            vec![Record::new("k", format!("record {n} {}", "x".repeat(40)))],
        )
        .await
        .unwrap();
    }
    let marks = log.mark_archived("retained", 0, 30).await.unwrap();
    assert!(marks.start > 0, "retention deleted nothing: {marks:?}");
    assert_eq!(log.watermarks("retained", 0).await.unwrap(), marks);
    conformance::offset_before_start_is_out_of_range(&log, "retained", 0)
        .await
        .unwrap();
}
