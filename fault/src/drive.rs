//! The run itself: the load, each fault injected in turn, and the wait for its jobs to settle.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::{
    Args,
    faults::{self, FaultRecord},
    load::{self, JobSpec, Kind},
    progress,
    world::{World, lock},
};

/// How long one fault's jobs may take to settle before the suite moves on.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the load and injects each fault in turn, waiting after each for its jobs to settle.
pub async fn drive(world: Arc<World>, args: &Args, fault_records: Arc<Mutex<Vec<FaultRecord>>>) -> anyhow::Result<()> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<JobSpec>(4096);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (client, receiver) = (world.client.clone(), Arc::clone(&receiver));
        clients.push(tokio::spawn(async move {
            loop {
                let next = receiver.lock().await.recv().await;
                match next {
                    Some(spec) => {
                        client.submit(&spec).await;
                    }
                    None => break,
                }
            }
        }));
    }
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.1));
    let faults = faults::plan(args.storage);
    let count = faults.len();
    for (phase, &fault) in faults.iter().enumerate() {
        world.check_baton().await;
        let budget = args.jobs / count + usize::from(phase < args.jobs % count);
        let regular = budget - fault.own_jobs();
        let specs: Vec<JobSpec> = (0..regular).map(|_| world.make_job(phase, Kind::Normal)).collect();
        progress(
            world.started,
            &format!("{}: {} ({budget} jobs)", fault.name(), fault.describe()),
        );
        let inject_at = (regular * 2 / 5).clamp(1, regular);
        let mut injection = None;
        for (i, spec) in specs.into_iter().enumerate() {
            if i == inject_at {
                injection = Some(tokio::spawn(faults::inject(Arc::clone(&world), fault, phase)));
            }
            sender.send(spec).await?;
            tokio::time::sleep(interval).await;
        }
        let injection = injection.unwrap_or_else(|| tokio::spawn(faults::inject(Arc::clone(&world), fault, phase)));
        // (The warm-up's "injection" does nothing.)
        let record = injection.await?;
        for note in &record.notes {
            progress(world.started, &format!("  {note}"));
        }
        let victims = record.victims.clone();
        lock(&fault_records).push(record);
        settle(&world, phase, &victims).await;
        progress(world.started, &format!("  {} settled", fault.name()));
    }
    drop(sender);
    for client in clients {
        client.await?;
    }
    // Every accepted job, whatever its phase, finishes before the checker looks.
    let all = accepted_ids(&world, None);
    if !world.wait_terminal(&all, Instant::now() + PHASE_TIMEOUT).await {
        progress(world.started, "some accepted jobs are still unfinished");
    }
    Ok(())
}

fn accepted_ids(world: &World, phase: Option<usize>) -> Vec<Uuid> {
    lock(&world.records)
        .values()
        .filter(|r| phase.is_none_or(|p| r.phase == p))
        .flat_map(load::KeyRecord::ids)
        .collect()
}

/// Waits until every submission of the phase has its answer and every accepted job of it (and
/// every job the fault hit) is finished.
async fn settle(world: &Arc<World>, phase: usize, victims: &[Uuid]) {
    let end = Instant::now() + PHASE_TIMEOUT;
    loop {
        let unsettled = lock(&world.records)
            .values()
            .filter(|r| r.phase == phase && !r.settled)
            .count();
        if unsettled == 0 || Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ids = accepted_ids(world, Some(phase));
    ids.extend_from_slice(victims);
    if !world.wait_terminal(&ids, end).await {
        progress(
            world.started,
            &format!("  jobs of this fault still unfinished after {PHASE_TIMEOUT:?}; moving on"),
        );
    }
}
