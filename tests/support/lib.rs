//! What Baton's end-to-end and hostile tests share: each test's environment (its own database,
//! queue prefix and volume), the app started in this process, workers, forms and files. The
//! infrastructure under it (the `baton` binary, gates, polling, databases, queue removal) is
//! `baton-testkit`'s, shared with the bench and the fault suite.

mod access;
mod amqp;
mod app;
mod env;
mod forms;
mod rabbitmq_user;
mod store_cleanup;
mod store_pair;
mod stores;
mod volume;
mod worker_process;

pub use access::{ADMIN_SECRET, Key, Secured, snapshot};
pub use amqp::{ManualWorker, declare_queue};
pub use app::{CancellableHandler, TestApp, TestWorker};
pub use baton_testkit::{
    TcpGate, eventually,
    object_stores::Backend,
    poll::{holds_for, until_some},
};
pub use env::TestEnv;
pub use forms::{bytes_of, file_part, job_form, png, sha256_hex};
pub use rabbitmq_user::WorkerUser;
pub use store_pair::{StorePair, blob_key as owner_blob_key, store_name};
pub use stores::{BackendEnv, blob_key};
pub use volume::age_file;

use sqlx::{PgPool, postgres::PgPoolOptions};

pub fn database_server() -> String {
    std::env::var("BATON_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub fn amqp_url() -> String {
    std::env::var("BATON_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A connection to the test server's maintenance database, for creating and inspecting
/// databases.
pub async fn admin_pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", database_server()))
        .await
        .expect("Postgres must be running for the end-to-end tests")
}

/// A gate to the shared RabbitMQ (127.0.0.1:5672), initially `open` or closed.
pub async fn amqp_gate(open: bool) -> TcpGate {
    TcpGate::new(([127, 0, 0, 1], 5672).into(), open)
        .await
        .expect("a gate to RabbitMQ")
}

/// A gate to the shared Postgres (127.0.0.1:5432).
pub async fn postgres_gate(open: bool) -> TcpGate {
    TcpGate::new(([127, 0, 0, 1], 5432).into(), open)
        .await
        .expect("a gate to Postgres")
}

/// A `baton` command (the debug binary, built on first use; `BATON_BIN` names another) with no
/// `BATON_*` or `RUST_LOG` setting inherited from the caller's environment, so each test states
/// exactly what it configures.
pub fn baton_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(baton_testkit::cargo::baton_binary());
    baton_testkit::process::clean_env_async(&mut command);
    command.stdin(std::process::Stdio::null()).kill_on_drop(true);
    command
}
