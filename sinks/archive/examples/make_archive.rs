//! Writes a small sample archive with the archive sink, to try `provenant verify`, `archive
//! dump`, `prove` and `verify-proof` on (the README's examples were made with it):
//!
//! `cargo run -p provenant-archive --example make_archive -- DIR [RECORDS_PER_PARTITION]`
//!
//! Two partitions, segments of 100 records, signed with a key created in `DIR/keys`
//! (`archive.key`, `archive.pub`); the archive itself is in `DIR/archive`.
#![allow(clippy::print_stdout)]

use provenant_archive::testkit::LedgerGen;
use provenant_archive::{ArchiveConfig, ArchiveSink, load_or_create_key};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: make_archive DIR [RECORDS]")?);
    let per: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(250);
    let (key, public) = load_or_create_key(&dir.join("keys"), "provenant-example")?;
    let cfg = ArchiveConfig {
        url: format!("file://{}", dir.join("archive").display()),
        archive_id: "example".into(),
        rotate_records: 100,
        ..ArchiveConfig::default()
    };
    let mut sink = ArchiveSink::open(&cfg, key).await?;
    for p in 0..2u32 {
        let from = sink.resume(p).await?;
        let mut g = LedgerGen::new(p);
        let mut batch = vec![g.fence()];
        batch.extend(g.records(per)?);
        if from.is_some() {
            println!("partition {p} already archived; records below its position are skipped");
        }
        sink.write(p, &batch, &g.state()).await?;
    }
    for s in sink.close().await? {
        println!("closed {} ({} records)", s.key, s.records);
    }
    println!(
        "archive: {}\npublic key: {}",
        dir.join("archive").display(),
        public.display()
    );
    Ok(())
}
