//! `redact_vs_vrl`: our redaction (the default policy, every detector) over a fixed corpus
//! against Vector's VRL `redact()` over the same corpus with the filters VRL supports. VRL
//! takes about 25 minutes to build here, so it is compiled only with the cargo feature
//! `vrl-bench`; without it this measurement is `null` with [`NOTE`].

use anyhow::Result;

use super::{Comparison, Plan};

/// Why the key is null and how to get it.
pub(crate) const NOTE: &str = "built without the cargo feature `vrl-bench`; run `cargo run --release --features vrl-bench -- bench --only redact_vs_vrl` (VRL takes ~25 min to compile)";

pub(crate) fn measure(_plan: &Plan) -> Result<Option<Comparison>> {
    Ok(None)
}
