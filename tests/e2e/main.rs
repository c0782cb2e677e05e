//! End-to-end tests: the real broker, the real example worker, real Postgres and RabbitMQ, real
//! files in a temporary directory. Each test has its own database, queue prefix and volume, so
//! tests run in parallel.

mod access;
mod cleanup;
mod dedup;
mod dispatch;
mod download;
mod events;
mod lifecycle;
mod oidc;
mod queues;
mod read;
mod reliability;
mod startup;
mod storage;
mod submit;
mod validation;
mod worker_permissions;
