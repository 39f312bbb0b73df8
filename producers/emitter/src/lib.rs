//! # provenant-producer — the emitter a service links
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use provenant_producer::{Emitter, EmitterConfig, HttpTransport};
//! let transport = HttpTransport::new("http://127.0.0.1:8080", None, std::time::Duration::from_secs(10))?;
//! let config = EmitterConfig { spool_dir: Some("/var/spool/provenant".into()), ..Default::default() };
//! let emitter = Emitter::start(config, transport)?;
//! # let event: provenant_schemas::Event = todo!();
//! emitter.emit(event)?;          // never waits on the network
//! emitter.shutdown().await?;     // delivers or spools everything
//! # Ok(()) }
//! ```
//!
//! See [`emitter`] for how events move (queue, overflow policy, spool, replay) and the
//! guarantees, [`transport`] for the destinations, [`spool`] for the on-disk format.
//!
//! ## Partition keys
//!
//! Every event is sent with the Kafka key [`provenant_schemas::Event::partition_key`]: the
//! event's **subject entity** (`build:<id>`, `artifact:sha256:<hex>`, `deploy:<id>`,
//! `instance:<id>`, `job:<namespace>/<name>`, `approval:<id>`). The murmur2 partitioner maps
//! the key to a partition, so all events about one entity are on one raw partition, in emit
//! order, and land in one ledger chain (raw partition *i* is chained into ledger partition
//! *i*). Events about different entities may be on different partitions: the processor links
//! across partitions by entity key, not by order.

pub mod ci;
pub mod emitter;
pub mod spool;
pub mod transport;

pub use emitter::{EmitError, Emitter, EmitterConfig, OverflowPolicy, Stats, StatsSnapshot};
pub use spool::{Spool, SpoolError};
pub use transport::{HttpTransport, LogTransport, Pending, Transport, TransportError, raw_record};
