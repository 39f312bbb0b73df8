//! # provenant-kafka
//!
//! The only crate that talks to Kafka: the rdkafka implementation of `provenant_log::Log`
//! ([`KafkaLog`]), and librdkafka's mock cluster behind `provenant dev-kafka` ([`DevKafka`]).
//!
//! * [`config`]: [`KafkaConfig`], the settings with named defaults;
//! * [`errors`]: rdkafka errors sorted into retryable and fatal;
//! * `log` / `group`: the log, its partition readers and group members;
//! * [`mock`]: the development broker.
//!
//! librdkafka's log lines and global errors are forwarded to `tracing` under the target
//! `librdkafka` (at Info level and above by default).
//!
//! May depend on: `provenant-log`, rdkafka, tokio. Nothing else in the workspace may depend on
//! rdkafka.

pub mod config;
mod context;
pub mod errors;
mod group;
mod log;
pub mod mock;
pub mod raw;

pub use config::{ConfigError, KafkaConfig};
pub use context::TracingContext;
pub use group::KafkaMember;
pub use log::{KafkaLog, KafkaReader};
pub use mock::DevKafka;
