//! The faults, each injected while load runs: what is broken, how, and what it left to prove.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use baton_testkit::process::send_signal;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{load::Kind, world::World};

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

/// Jobs submitted while Baton cannot reach RabbitMQ, right before it is killed.
const UNPUBLISHED_JOBS: usize = 3;

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
        }
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
        }
    }

    /// Jobs of the phase's budget the fault submits itself.
    pub fn own_jobs(self) -> usize {
        match self {
            Self::Warmup | Self::RabbitmqSigkill | Self::PostgresRestart => 0,
            Self::BatonSigkillUnpublished => UNPUBLISHED_JOBS,
            Self::BatonSigkill | Self::WorkerSigkill | Self::WorkerHang | Self::PoisonJob => 1,
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

async fn baton_sigkill(world: &Arc<World>, record: &mut FaultRecord) -> anyhow::Result<()> {
    // A slow upload, so that one is certainly in progress when Baton dies.
    let spec = world.make_job(record.phase, Kind::Slow);
    let client = world.client.clone();
    let slow = tokio::spawn(async move { client.submit(&spec).await });
    let tmp = world.volume.join("tmp");
    let in_progress = || -> Vec<String> {
        std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(15);
    while in_progress().is_empty() {
        if Instant::now() >= end {
            bail!("no upload was in progress within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the slow upload get well into its body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parts = in_progress();
    record.injected(world);
    let pid = world.kill_baton().await?;
    record.note(
        world,
        format!(
            "SIGKILL to Baton (pid {pid}) with {} upload(s) in progress in tmp/ ({})",
            parts.len(),
            parts.join(", ")
        ),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    world.start_baton().await?;
    record.healed(world);
    record.note(world, "Baton started again and answering");
    match slow.await {
        Ok(Some(id)) => {
            record.note(
                world,
                format!("the interrupted upload, retried with its key, is job {id}"),
            );
            record.victims.push(id);
        }
        _ => record.note(world, "the interrupted upload was never accepted"),
    }
    Ok(())
}

async fn baton_sigkill_unpublished(world: &Arc<World>, record: &mut FaultRecord, phase: usize) -> anyhow::Result<()> {
    // RabbitMQ stays up for the workers; only Baton's way to it is cut.
    world.set_gate(false);
    record.note(world, "RabbitMQ cut off from Baton (its TCP gate closed)");
    let result = unpublished_then_kill(world, record, phase).await;
    world.set_gate(true);
    record.note(world, "gate open again");
    result?;
    world.start_baton().await?;
    record.healed(world);
    record.note(world, "Baton started again and answering");
    Ok(())
}

async fn unpublished_then_kill(world: &Arc<World>, record: &mut FaultRecord, phase: usize) -> anyhow::Result<()> {
    // Wait for Baton to notice, so nothing is mid-publish.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = world.baton_url().await?;
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let body: serde_json::Value = match http.get(format!("{base}/readyz")).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if body["rabbitmq"] == "disconnected" {
            break;
        }
        if Instant::now() >= end {
            bail!("Baton still reported RabbitMQ connected 15 s after the gate closed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    record.note(world, "Baton reports RabbitMQ disconnected");
    let mut own = Vec::new();
    for _ in 0..UNPUBLISHED_JOBS {
        let spec = world.make_job(phase, Kind::Unpublished);
        let id = world
            .client
            .submit(&spec)
            .await
            .with_context(|| format!("{} was not accepted", spec.key))?;
        own.push(id);
    }
    record.victims.extend(&own);
    // Every job committed and not yet published, as Postgres has it right now (the fault's own
    // jobs and any of the ordinary load accepted since the gate closed).
    let unpublished: Vec<Uuid> = sqlx::query_scalar(
        "SELECT j.id FROM jobs j JOIN outbox o ON o.job_id = j.id
         WHERE j.status = 'queued' AND j.dispatched_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.kind = 'dispatched')",
    )
    .fetch_all(&world.db)
    .await
    .context("reading the outbox")?;
    for id in &own {
        if !unpublished.contains(id) {
            record.not_proven.push(format!(
                "{id} was not in the outbox, undispatched, when Baton was killed"
            ));
        }
    }
    record.injected(world);
    let pid = world.kill_baton().await?;
    record.note(
        world,
        format!(
            "SIGKILL to Baton (pid {pid}) with {} job(s) answered 202, committed, in the outbox and never \
             published ({} of them this fault's own)",
            unpublished.len(),
            own.len()
        ),
    );
    record.unpublished_at_kill = unpublished.clone();
    record.victims.extend(unpublished.iter().filter(|id| !own.contains(id)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// Submits a long job, waits until a worker runs it, then kills (SIGKILL) or freezes (SIGSTOP,
/// then SIGCONT once the job was given to another worker) that worker.
async fn worker_fault(world: &Arc<World>, record: &mut FaultRecord, phase: usize, hang: bool) -> anyhow::Result<()> {
    let spec = world.make_job(phase, Kind::Victim);
    let id = world
        .client
        .submit(&spec)
        .await
        .context("the victim job was not accepted")?;
    record.victims.push(id);
    let end = Instant::now() + Duration::from_secs(30);
    let worker: String = loop {
        let running: Option<(String, Option<String>)> = sqlx::query_as("SELECT status, worker FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&world.db)
            .await
            .ok()
            .flatten();
        if let Some((status, Some(worker))) = running
            && status == "running"
        {
            break worker;
        }
        if Instant::now() >= end {
            bail!("job {id} was not running on any worker within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pid = world
        .workers
        .pid_of(&worker)
        .with_context(|| format!("worker {worker} is not one of the suite's processes"))?;
    record.injected(world);
    if !hang {
        send_signal(pid, libc::SIGKILL).context("SIGKILL to the worker")?;
        record.note(
            world,
            format!("SIGKILL to worker {worker} (pid {pid}) while it ran job {id}"),
        );
        record.healed(world);
        return Ok(());
    }
    send_signal(pid, libc::SIGSTOP).context("SIGSTOP to the worker")?;
    record.note(
        world,
        format!("SIGSTOP to worker {worker} (pid {pid}) while it ran job {id}"),
    );
    // Frozen until Baton has given the job to another worker (its lease ran out), and a little
    // longer, so that the frozen worker's late report meets a newer attempt.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt: Option<i32> = sqlx::query_scalar("SELECT attempt FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&world.db)
            .await
            .ok()
            .flatten();
        if attempt.is_some_and(|a| a > 1) {
            record.note(
                world,
                format!("Baton moved job {id} to attempt {}", attempt.unwrap_or_default()),
            );
            break;
        }
        if Instant::now() >= end {
            record.note(world, format!("job {id} was not retried within 30 s of the freeze"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    send_signal(pid, libc::SIGCONT).context("SIGCONT to the worker")?;
    record.healed(world);
    record.note(
        world,
        format!("SIGCONT to worker {worker}: it wakes up holding attempt 1"),
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
