//! Provenant's own provenance: version, git commit and build time, stamped by `build.rs`.

/// `provenant --version`: the crate version.
pub(crate) const SHORT: &str = env!("CARGO_PKG_VERSION");

/// `provenant version` / `--version` long form: version, commit and build time.
pub(crate) const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PROVENANT_GIT_COMMIT"),
    ", built at unix time ",
    env!("PROVENANT_BUILD_EPOCH"),
    ")"
);

/// The build time as RFC 3339, for `/version` endpoints and logs.
#[allow(dead_code)]
pub(crate) fn build_time_rfc3339() -> String {
    env!("PROVENANT_BUILD_EPOCH")
        .parse::<i64>()
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| "unknown".to_owned(), |t| t.to_rfc3339())
}
