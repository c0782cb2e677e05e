//! Baton: a job broker for ML inference whose inputs are large files.
//!
//! Clients submit jobs over HTTP ([`http`]); uploads stream onto a shared volume ([`storage`]);
//! jobs, files and the intent to publish are committed to Postgres in one transaction ([`db`],
//! [`jobs`]); a dispatcher publishes references to RabbitMQ and a consumer applies worker events
//! ([`queue`]); a scheduled pass deletes finished jobs after their retention and reconciles the
//! volume with the database ([`cleanup`]). Every background task has the shape of
//! [`service::Service`]; [`app::Application`] wires it together.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod migration;
pub mod queue;
pub mod quota;
pub mod replication;
pub mod service;
pub mod storage;
pub mod telemetry;
