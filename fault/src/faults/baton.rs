//! Faults that kill Baton: with jobs in flight, and with jobs committed but never published.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use uuid::Uuid;

use super::{FaultRecord, UNPUBLISHED_JOBS};
use crate::{load::Kind, world::World};

pub(super) async fn baton_sigkill(world: &Arc<World>, record: &mut FaultRecord) -> anyhow::Result<()> {
    // A slow upload, so that one is certainly in progress when Baton dies: on object storage,
    // one larger than a part, killed once its first part is in the store.
    let kind = if world.store.is_some() {
        Kind::SlowLarge
    } else {
        Kind::Slow
    };
    let spec = world.make_job(record.phase, kind);
    let client = world.client.clone();
    let slow = tokio::spawn(async move { client.submit(&spec).await });
    let in_progress = if world.store.is_some() {
        tokio::time::sleep(kind.first_part_sent_after() + Duration::from_millis(500)).await;
        "a multipart upload under way in the object store".to_owned()
    } else {
        let parts = uploads_in_tmp(world).await?;
        format!("{} upload(s) in progress in tmp/ ({})", parts.len(), parts.join(", "))
    };
    record.injected(world);
    let pid = world.kill_baton().await?;
    record.note(world, format!("SIGKILL to Baton (pid {pid}) with {in_progress}"));
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

/// Waits until an upload is under way in the volume's `tmp/`, then a little longer, so the
/// upload is well into its body; returns the files there.
async fn uploads_in_tmp(world: &World) -> anyhow::Result<Vec<String>> {
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(in_progress())
}

pub(super) async fn baton_sigkill_unpublished(
    world: &Arc<World>,
    record: &mut FaultRecord,
    phase: usize,
) -> anyhow::Result<()> {
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
