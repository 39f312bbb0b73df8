//! # provenant-kafka
//!
//! The only crate that talks to Kafka: the rdkafka implementation of `provenant_log::Log`,
//! and librdkafka's mock cluster behind `provenant dev-kafka`.
