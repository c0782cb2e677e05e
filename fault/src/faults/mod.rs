//! The faults, each injected while load runs: what is broken, how, and what it left to prove.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{load::Kind, store::Storage, world::World};

mod baton;
mod store;
mod workers;

use baton::{baton_sigkill, baton_sigkill_unpublished};
use store::{store_restart_while_fetching, store_stop_mid_upload};
use workers::worker_fault;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// No fault: load only, so queues exist and the baseline is known before anything breaks.
    Warmup,
    RabbitmqSigkill,
    BatonSigkill,
    BatonSigkillUnpublished,
    WorkerSigkill,
    WorkerHang,
    PostgresRestart,
    PoisonJob,
    /// Object storage only: the store stopped while an upload streams into it.
    StoreStopMidUpload,
    /// Object storage only: the store restarted while workers fetch their inputs from it.
    StoreRestartWhileFetching,
}

pub const ALL: [Fault; 8] = [
    Fault::Warmup,
    Fault::RabbitmqSigkill,
    Fault::BatonSigkill,
    Fault::BatonSigkillUnpublished,
    Fault::WorkerSigkill,
    Fault::WorkerHang,
    Fault::PostgresRestart,
    Fault::PoisonJob,
];

/// The faults of a run on object storage (Azurite): the store's own, and those of the volume
/// run that touch stored files (an upload cut by a kill, a worker lost mid-job, the poison job's
/// failure path). RabbitMQ and Postgres faults do not involve the store and run on the volume.
pub const ON_OBJECT_STORAGE: [Fault; 6] = [
    Fault::Warmup,
    Fault::StoreStopMidUpload,
    Fault::StoreRestartWhileFetching,
    Fault::BatonSigkill,
    Fault::WorkerSigkill,
    Fault::PoisonJob,
];

/// The faults of a run, in order.
pub fn plan(storage: Storage) -> &'static [Fault] {
    match storage {
        Storage::Volume => &ALL,
        Storage::Azure => &ON_OBJECT_STORAGE,
    }
}

/// Jobs submitted while Baton cannot reach RabbitMQ, right before it is killed.
const UNPUBLISHED_JOBS: usize = 3;

/// Jobs whose inputs the workers are fetching when the store goes down.
const FETCH_JOBS: usize = 3;

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Self::Warmup => "none (warm-up)",
            Self::RabbitmqSigkill => "rabbitmq-sigkill",
            Self::BatonSigkill => "baton-sigkill",
            Self::BatonSigkillUnpublished => "baton-sigkill-unpublished",
            Self::WorkerSigkill => "worker-sigkill",
            Self::WorkerHang => "worker-hang",
            Self::PostgresRestart => "postgres-restart",
            Self::PoisonJob => "poison-job",
            Self::StoreStopMidUpload => "store-stop-mid-upload",
            Self::StoreRestartWhileFetching => "store-restart-while-fetching",
        }
    }

    /// Whether this fault breaks the object store (and says so in its refusals).
    pub fn breaks_store(self) -> bool {
        matches!(self, Self::StoreStopMidUpload | Self::StoreRestartWhileFetching)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Warmup => "load only, no fault",
            Self::RabbitmqSigkill => "RabbitMQ's Erlang VM SIGKILLed mid-load, restarted on the same data",
            Self::BatonSigkill => "Baton SIGKILLed mid-load, with an upload in progress; restarted",
            Self::BatonSigkillUnpublished => {
                "Baton SIGKILLed after answering 202 but before publishing (RabbitMQ cut off from Baton first)"
            }
            Self::WorkerSigkill => "a worker SIGKILLed mid-job",
            Self::WorkerHang => "a worker frozen (SIGSTOP) mid-job: no heartbeats; SIGCONT later",
            Self::PostgresRestart => {
                "Postgres stopped (fast shutdown) mid-load, started again 6 s later (past Baton's 5 s wait for a \
                 connection, so submissions get 503)"
            }
            Self::PoisonJob => "a job that crashes (abort) every worker that takes it",
            Self::StoreStopMidUpload => {
                "the object store (Azurite) stopped while a multipart upload streams into it, started again 4 s \
                 later; submissions meanwhile get 503 storage_unavailable"
            }
            Self::StoreRestartWhileFetching => {
                "the object store (Azurite) stopped as workers start fetching their inputs, started again 3 s later"
            }
        }
    }

    /// Jobs of the phase's budget the fault submits itself.
    pub fn own_jobs(self) -> usize {
        match self {
            Self::Warmup | Self::RabbitmqSigkill | Self::PostgresRestart => 0,
            Self::BatonSigkillUnpublished => UNPUBLISHED_JOBS,
            Self::StoreRestartWhileFetching => FETCH_JOBS,
            Self::BatonSigkill
            | Self::WorkerSigkill
            | Self::WorkerHang
            | Self::PoisonJob
            | Self::StoreStopMidUpload => 1,
        }
    }
}

/// What an injection did.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub fault: Fault,
    pub phase: usize,
    /// Seconds from the start of the run.
    pub injected_s: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub injected_at: Option<OffsetDateTime>,
    /// When the broken part was whole again (restarted, resumed), if the fault has such a moment.
    pub healed_s: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub healed_at: Option<OffsetDateTime>,
    /// Jobs the fault hit directly: the killed worker's job, the unpublished jobs, the poison.
    pub victims: Vec<Uuid>,
    pub notes: Vec<String>,
    /// The injection itself failed: the fault was not (fully) injected.
    pub error: Option<String>,
    /// For the unpublished case: jobs proven committed and unpublished when Baton died.
    pub unpublished_at_kill: Vec<Uuid>,
    /// For the unpublished case: the fault's own jobs that were not in that state (should be none).
    pub not_proven: Vec<String>,
}

impl FaultRecord {
    fn new(fault: Fault, phase: usize) -> Self {
        Self {
            fault,
            phase,
            injected_s: None,
            injected_at: None,
            healed_s: None,
            healed_at: None,
            victims: Vec::new(),
            notes: Vec::new(),
            error: None,
            unpublished_at_kill: Vec::new(),
            not_proven: Vec::new(),
        }
    }

    fn injected(&mut self, world: &World) {
        self.injected_s = Some(world.elapsed_s());
        self.injected_at = Some(world.now_wall());
    }

    fn healed(&mut self, world: &World) {
        self.healed_s = Some(world.elapsed_s());
        self.healed_at = Some(world.now_wall());
    }

    fn note(&mut self, world: &World, text: impl Into<String>) {
        self.notes.push(format!("+{:.1} s {}", world.elapsed_s(), text.into()));
    }
}

pub async fn inject(world: Arc<World>, fault: Fault, phase: usize) -> FaultRecord {
    let mut record = FaultRecord::new(fault, phase);
    let result = match fault {
        Fault::Warmup => Ok(()),
        Fault::RabbitmqSigkill => rabbitmq_sigkill(&world, &mut record).await,
        Fault::BatonSigkill => baton_sigkill(&world, &mut record).await,
        Fault::BatonSigkillUnpublished => baton_sigkill_unpublished(&world, &mut record, phase).await,
        Fault::WorkerSigkill => worker_fault(&world, &mut record, phase, false).await,
        Fault::WorkerHang => worker_fault(&world, &mut record, phase, true).await,
        Fault::PostgresRestart => postgres_restart(&world, &mut record).await,
        Fault::PoisonJob => poison(&world, &mut record, phase).await,
        Fault::StoreStopMidUpload => store_stop_mid_upload(&world, &mut record).await,
        Fault::StoreRestartWhileFetching => store_restart_while_fetching(&world, &mut record, phase).await,
    };
    if let Err(e) = result {
        let text = format!("{e:#}");
        world.incident(format!(
            "{}: the fault could not be injected as planned: {text}",
            fault.name()
        ));
        record.error = Some(text);
    }
    record
}

async fn rabbitmq_sigkill(world: &Arc<World>, record: &mut FaultRecord) -> anyhow::Result<()> {
    record.injected(world);
    let pid = world.with_rabbit(|rabbit| rabbit.kill()).await?;
    record.note(world, format!("SIGKILL to RabbitMQ (beam.smp pid {pid}); down for 2 s"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    world.with_rabbit(|rabbit| rabbit.start()).await?;
    record.healed(world);
    record.note(
        world,
        format!(
            "RabbitMQ restarted on its data, accepting connections after {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

async fn postgres_restart(world: &Arc<World>, record: &mut FaultRecord) -> anyhow::Result<()> {
    record.injected(world);
    world.with_postgres(|pg| pg.stop()).await?;
    record.note(world, "Postgres stopped (pg_ctl stop -m fast); down for 6 s");
    // Longer than Baton's pool acquire timeout (5 s): requests waiting for a connection give up
    // with 503, and clients retry them with the same key.
    tokio::time::sleep(Duration::from_secs(6)).await;
    world.with_postgres(|pg| pg.start()).await?;
    record.healed(world);
    record.note(world, "Postgres started again");
    Ok(())
}

async fn poison(world: &Arc<World>, record: &mut FaultRecord, phase: usize) -> anyhow::Result<()> {
    let spec = world.make_job(phase, Kind::Poison);
    record.injected(world);
    let id = world
        .client
        .submit(&spec)
        .await
        .context("the poison job was not accepted")?;
    record.victims.push(id);
    record.note(world, format!("poison job {id} accepted"));
    Ok(())
}
