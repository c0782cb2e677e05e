//! Everything one run owns: the private services, Baton, the workers, the clients and the
//! suite's own connection to the private Postgres. `shutdown` stops all of it and is safe to
//! call more than once; the run's guard calls it on every way out.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::Context;
use baton_testkit::{
    BatonProcess, TcpGate, poll::eventually_every, private_postgres::PrivatePostgres, private_rabbitmq::PrivateRabbit,
};
use sqlx::{PgPool, postgres::PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    factory::JobFactory,
    load::{Client, JobSpec, Kind, Records},
    store::ObjectStorage,
    workers::Workers,
};

pub struct World {
    pub started: Instant,
    pub volume: PathBuf,
    /// The object store blobs go to, on a run on object storage (else they go to the volume).
    pub store: Option<ObjectStorage>,
    pub logs: PathBuf,
    /// No wait of the run's outlasts it.
    pub deadline: Instant,
    pub postgres: Mutex<Option<PrivatePostgres>>,
    pub rabbit: Mutex<Option<PrivateRabbit>>,
    pub gate: Mutex<Option<TcpGate>>,
    pub baton: tokio::sync::Mutex<Option<BatonProcess>>,
    pub workers: Workers,
    pub db: PgPool,
    pub client: Client,
    pub records: Records,
    pub factory: Mutex<JobFactory>,
    /// Things that went wrong outside the checker's view (Baton exiting by itself, ...).
    pub incidents: Mutex<Vec<String>>,
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl World {
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn now_wall(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    pub fn incident(&self, text: String) {
        eprintln!("baton-fault: {text}");
        lock(&self.incidents).push(text);
    }

    pub fn make_job(&self, phase: usize, kind: Kind) -> JobSpec {
        let spec = lock(&self.factory).make(phase, kind);
        self.client.register(&spec);
        spec
    }

    /// Runs a blocking operation on RabbitMQ off the async threads.
    pub async fn with_rabbit<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut PrivateRabbit) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let world = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut rabbit = lock(&world.rabbit);
            f(rabbit.as_mut().context("RabbitMQ is gone")?)
        })
        .await?
    }

    pub async fn with_postgres<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&PrivatePostgres) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let world = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let postgres = lock(&world.postgres);
            f(postgres.as_ref().context("Postgres is gone")?)
        })
        .await?
    }

    pub fn set_gate(&self, open: bool) {
        if let Some(gate) = lock(&self.gate).as_ref() {
            gate.set_open(open);
        }
    }

    /// Stops every process and service of the run. Idempotent.
    pub fn shutdown(&self) {
        self.workers.stop_all();
        // Dropping Baton's process kills it. Nothing holds the lock by now: the run's futures
        // are gone before the guard that calls this.
        match self.baton.try_lock() {
            Ok(mut baton) => drop(baton.take()),
            Err(_) => eprintln!("baton-fault: Baton is busy at shutdown; it is killed when the suite exits"),
        }
        if let Some(store) = &self.store {
            store.shutdown();
        }
        drop(lock(&self.gate).take());
        drop(lock(&self.rabbit).take());
        drop(lock(&self.postgres).take());
    }

    /// Rows of `ids` not yet in a terminal state (`None` while Postgres cannot be asked).
    pub async fn unfinished(&self, ids: &[Uuid]) -> Option<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(ids)
        .fetch_one(&self.db)
        .await
        .ok()
    }

    /// Waits until every job in `ids` is terminal, or `until`. Returns whether they all are.
    pub async fn wait_terminal(&self, ids: &[Uuid], until: Instant) -> bool {
        let within = until.saturating_duration_since(Instant::now());
        eventually_every(within, Duration::from_millis(200), || async {
            self.unfinished(ids).await == Some(0)
        })
        .await
    }
}

/// The suite's own pool on the private Postgres: small, lazy, and quick to give up while
/// Postgres restarts.
pub fn suite_pool(url: &str) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(true)
        .connect_lazy(url)?)
}
