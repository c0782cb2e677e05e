//! Faults that break the object store (Azurite, which keeps its data across a restart): stopped
//! while an upload streams into it, and stopped as workers start fetching their inputs.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use uuid::Uuid;

use super::{FETCH_JOBS, FaultRecord};
use crate::{load::Kind, world::World};

/// How long the store stays down while uploads come in: several of Baton's quick retries
/// (under a second in all) and the clients' backoff, so submissions are answered 503.
const DOWN_MID_UPLOAD: Duration = Duration::from_secs(4);
/// How long the store stays down while workers fetch: within the workers' own fetch retries
/// (five tries over about 7.5 s) once Azurite's start is added.
const DOWN_WHILE_FETCHING: Duration = Duration::from_secs(3);

pub(super) async fn store_stop_mid_upload(world: &Arc<World>, record: &mut FaultRecord) -> anyhow::Result<()> {
    // A large upload trickled in: its first 8 MiB part is in the store, the rest is on its way,
    // when the store stops.
    let spec = world.make_job(record.phase, Kind::SlowLarge);
    let client = world.client.clone();
    let upload = tokio::spawn(async move { client.submit(&spec).await });
    tokio::time::sleep(Kind::SlowLarge.first_part_sent_after() + Duration::from_millis(500)).await;
    record.injected(world);
    world.stop_store().await?;
    record.note(
        world,
        format!(
            "Azurite stopped (SIGTERM) with a multipart upload under way; down for {} s",
            DOWN_MID_UPLOAD.as_secs()
        ),
    );
    tokio::time::sleep(DOWN_MID_UPLOAD).await;
    world.start_store().await?;
    record.healed(world);
    record.note(world, "Azurite started again on its data");
    match upload.await {
        Ok(Some(id)) => {
            record.note(world, format!("the cut upload, retried with its key, is job {id}"));
            record.victims.push(id);
        }
        _ => record.note(world, "the cut upload was never accepted"),
    }
    Ok(())
}

pub(super) async fn store_restart_while_fetching(
    world: &Arc<World>,
    record: &mut FaultRecord,
    phase: usize,
) -> anyhow::Result<()> {
    let specs: Vec<_> = (0..FETCH_JOBS).map(|_| world.make_job(phase, Kind::Fetch)).collect();
    let submissions = specs.into_iter().map(|spec| {
        let client = world.client.clone();
        async move { client.submit(&spec).await }
    });
    let ids: Vec<Uuid> = futures::future::join_all(submissions)
        .await
        .into_iter()
        .collect::<Option<_>>()
        .context("a job whose inputs the workers were to fetch was not accepted")?;
    record.victims.extend(&ids);
    // The moment the first is handed to a worker, its inputs are being fetched.
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let dispatched: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id = ANY($1) AND dispatched_at IS NOT NULL")
                .bind(&ids)
                .fetch_one(&world.db)
                .await
                .unwrap_or(0);
        if dispatched > 0 {
            break;
        }
        if Instant::now() >= end {
            bail!("none of the jobs {ids:?} was dispatched within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    record.injected(world);
    world.stop_store().await?;
    record.note(
        world,
        format!(
            "Azurite stopped (SIGTERM) as {} job(s) with {} MiB inputs went to workers; down for {} s",
            ids.len(),
            Kind::Fetch.input_bytes().unwrap_or_default() >> 20,
            DOWN_WHILE_FETCHING.as_secs()
        ),
    );
    tokio::time::sleep(DOWN_WHILE_FETCHING).await;
    world.start_store().await?;
    record.healed(world);
    record.note(world, "Azurite started again on its data");
    Ok(())
}
