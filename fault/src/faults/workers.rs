//! Faults that break a worker: killed, or hung while holding a job.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use baton_testkit::process::send_signal;

use super::FaultRecord;
use crate::{load::Kind, world::World};

/// Submits a long job, waits until a worker runs it, then kills (SIGKILL) or freezes (SIGSTOP,
/// then SIGCONT once the job was given to another worker) that worker.
pub(super) async fn worker_fault(
    world: &Arc<World>,
    record: &mut FaultRecord,
    phase: usize,
    hang: bool,
) -> anyhow::Result<()> {
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
