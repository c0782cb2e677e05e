//! Every background service driven one round at a time through its `run_once`, on rows prepared
//! (and backdated) in a database of the test's own (`#[sqlx::test]`), and queues under a prefix
//! of the test's own.

mod cleaner;
mod consumers;
mod control;
mod dispatcher;
mod reconciler;
mod sweeper;

use std::sync::{Arc, Mutex};

use baton::jobs::ToWorkers;
use baton_protocol::ControlMessage;
use lapin::{Channel, Connection, ConnectionProperties, options::QueueDeleteOptions};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub const MODEL: &str = "resnet";

/// A queued job, as a submission leaves it (without files), committed.
pub async fn queued_job(db: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, owner, model, params, max_attempts, queue_timeout_ms, run_timeout_ms)
         VALUES ($1, 'tests', $2, '{}', 3, 3600000, 3600000)",
    )
    .bind(id)
    .bind(MODEL)
    .execute(db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO outbox (job_id, attempt) VALUES ($1, 1)")
        .bind(id)
        .execute(db)
        .await
        .unwrap();
    id
}

/// A job that `worker` started (attempt 1), with a lease that ends `lease_left` from now
/// (negative: expired) after running for `ran`.
pub async fn running_job(db: &PgPool, worker: &str, ran: &str, lease_left: &str) -> Uuid {
    let id = queued_job(db).await;
    sqlx::query("DELETE FROM outbox WHERE job_id = $1")
        .bind(id)
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'running', worker = $2, dispatched_at = now() - $3::interval,
           started_at = now() - $3::interval, lease_expires_at = now() + $4::interval
         WHERE id = $1",
    )
    .bind(id)
    .bind(worker)
    .bind(ran)
    .bind(lease_left)
    .execute(db)
    .await
    .unwrap();
    id
}

/// Runs one statement with the job id as `$1`: how tests backdate rows.
pub async fn exec(db: &PgPool, sql: &'static str, id: Uuid) {
    sqlx::query(sql).bind(id).execute(db).await.unwrap();
}

pub async fn status(db: &PgPool, id: Uuid) -> (String, i32) {
    sqlx::query_as("SELECT status, attempt FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

/// The job's timeline kinds, oldest first.
pub async fn timeline(db: &PgPool, id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM job_events WHERE job_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(db)
        .await
        .unwrap()
}

pub async fn in_outbox(db: &PgPool, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox WHERE job_id = $1)")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

pub async fn error_code(db: &PgPool, id: Uuid) -> Option<String> {
    let error: Option<Value> = sqlx::query_scalar("SELECT error FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap();
    error.and_then(|e| e["code"].as_str().map(str::to_owned))
}

/// Collects what a service would tell workers.
#[derive(Default, Clone)]
pub struct Told(Arc<Mutex<Vec<ControlMessage>>>);

impl ToWorkers for Told {
    fn send(&self, message: ControlMessage) {
        self.0.lock().unwrap().push(message);
    }
}

pub fn amqp_url() -> String {
    std::env::var("BATON_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Queue names of one test: a prefix of its own, and the queues it used deleted at the end.
pub struct Rabbit {
    pub prefix: String,
    pub connection: Connection,
    pub channel: Channel,
}

impl Rabbit {
    pub async fn new() -> Self {
        let prefix = format!("svc{}.", &Uuid::now_v7().simple().to_string()[20..]);
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ is reachable (BATON_TEST_AMQP_URL)");
        let channel = connection.create_channel().await.unwrap();
        Self {
            prefix,
            connection,
            channel,
        }
    }

    pub fn job_queue(&self) -> String {
        baton_protocol::queue::job_queue(&self.prefix, MODEL)
    }

    /// Ready messages in `queue` (0 if it does not exist).
    pub async fn ready(&self, queue: &str) -> u32 {
        baton::queue::amqp::ready_messages(&self.connection, queue)
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub async fn delete(self, queues: &[String]) {
        for queue in queues {
            self.channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .unwrap();
        }
        self.connection.close(200, "done".into()).await.unwrap();
    }
}

/// Removes exchanges a test declared.
pub async fn delete_exchanges(names: &[String]) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for name in names {
        channel
            .exchange_delete(name.as_str().into(), lapin::options::ExchangeDeleteOptions::default())
            .await
            .unwrap();
    }
    connection.close(200, "done".into()).await.unwrap();
}
