//! `baton-fault`: Baton's fault suite.
//!
//! Starts a private Postgres cluster and a private RabbitMQ node (own ports, data and node name;
//! the machine's own services are never touched), Baton (`baton serve`) and supervised
//! `baton-fault-worker` processes. Concurrent clients submit `--jobs` jobs with idempotency keys,
//! retrying with the same key whenever an answer is lost or temporary, while the faults are
//! injected one after another. A checker then compares what the clients were told with what
//! Postgres and the volume hold, prints a summary table and ends with PASS or FAIL (exit 1).
//!
//! Everything it started is stopped and removed on the way out (also on ctrl-c or a panic);
//! after a FAIL the logs are kept and their directory printed.

mod baton;
mod check;
mod drive;
mod factory;
mod faults;
mod load;
mod report;
mod setup;
mod store;
mod workers;
mod world;

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;

use crate::{
    faults::FaultRecord,
    report::{JsonReport, keep_logs},
    store::Storage,
    world::{World, lock},
};

#[derive(Debug, Parser)]
#[command(
    name = "baton-fault",
    about = "Baton's fault suite: faults injected under load, then a checker"
)]
pub struct Args {
    /// Jobs submitted in all, spread over the warm-up and the faults (at least 5 per phase: 40
    /// on the volume, 30 on object storage).
    #[arg(long, default_value_t = 400)]
    pub jobs: usize,
    /// Where Baton keeps blobs: `volume` (a directory), or `azure` (object storage on a private
    /// Azurite, with the store's own faults: stopped mid-upload, restarted while workers fetch).
    #[arg(long, value_enum, default_value = "volume")]
    pub storage: Storage,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Worker processes (each runs one job at a time).
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Submissions per second while a fault's load runs.
    #[arg(long, default_value_t = 8.0)]
    pub rate: f64,
    /// Stop and report FAIL after this long, e.g. `10m` (default 10m; 4m for 100 jobs or fewer).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub deadline: Option<Duration>,
    /// Also write the whole report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the logs (Baton, workers, Postgres, RabbitMQ) even when the run passes; after a FAIL
    /// they are always kept. Data directories are always removed.
    #[arg(long)]
    pub keep: bool,
    /// Where the `baton` and `baton-fault-worker` binaries are (default: beside this program).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let phases = faults::plan(args.storage).len();
    if args.jobs < 5 * phases {
        eprintln!(
            "baton-fault: --jobs must be at least {} on this storage (5 per phase)",
            5 * phases
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("baton-fault: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(run(args));
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// Stops everything the run started, however the run ends.
struct Guard(Arc<World>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

async fn run(args: Args) -> ExitCode {
    let wall = Instant::now();
    let deadline_after = args.deadline.unwrap_or(if args.jobs <= 100 {
        Duration::from_secs(240)
    } else {
        Duration::from_secs(600)
    });
    let deadline = wall + deadline_after;
    let dir = match tempfile::Builder::new().prefix("baton-fault-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("baton-fault: cannot make a run directory: {e}");
            return ExitCode::from(2);
        }
    };
    progress(wall, &format!("run directory {}", dir.path().display()));

    let world = tokio::select! {
        world = setup::setup(&args, dir.path(), wall, deadline) => world,
        () = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    let world = match world {
        Ok(world) => world,
        Err(e) => {
            eprintln!("baton-fault: setting up failed: {e:#}");
            println!("FAIL (the suite could not set up its services)");
            return ExitCode::FAILURE;
        }
    };
    let guard = Guard(Arc::clone(&world));
    let fault_records: Arc<Mutex<Vec<FaultRecord>>> = Arc::default();

    let driving = drive::drive(Arc::clone(&world), &args, Arc::clone(&fault_records));
    let driven = tokio::select! {
        result = tokio::time::timeout_at(deadline.into(), driving) => result,
        () = interrupted() => {
            eprintln!("baton-fault: interrupted; stopping everything");
            drop(guard);
            keep_logs(dir, &world.logs, args.keep);
            return ExitCode::from(130);
        }
    };
    let deadline_hit = match driven {
        Ok(Ok(())) => false,
        Ok(Err(e)) => {
            world.incident(format!("the run stopped early: {e:#}"));
            false
        }
        Err(_) => true,
    };
    if deadline_hit {
        progress(wall, "deadline reached: stopping and checking what there is");
    }
    world.check_baton().await;
    let worker_exits = world.workers.exits();
    match world.stop_and_clean_baton().await {
        Some(Ok(summary)) => progress(
            wall,
            &format!("baton stopped; one cleanup pass: {}", summary.replace('\n', "; ")),
        ),
        Some(Err(e)) => world.incident(format!("the cleanup pass after the run failed: {e:#}")),
        None => world.incident("Baton was not running at the end".to_owned()),
    }
    let executions = world.logs.join("executions.log");
    let facts = tokio::time::timeout(
        Duration::from_secs(60),
        check::gather(&world.db, &world.stored_files(), &executions),
    )
    .await;
    let facts = match facts {
        Ok(Ok(facts)) => facts,
        Ok(Err(e)) => {
            eprintln!("baton-fault: the checker could not read the results: {e:#}");
            println!("FAIL (the checker could not read the results)");
            drop(guard);
            keep_logs(dir, &world.logs, true);
            return ExitCode::FAILURE;
        }
        Err(_) => {
            println!("FAIL (the checker could not read the results within 60 s)");
            drop(guard);
            keep_logs(dir, &world.logs, true);
            return ExitCode::FAILURE;
        }
    };
    drop(guard);
    let records = lock(&world.records).clone();
    let faults = lock(&fault_records).clone();
    let incidents = lock(&world.incidents).clone();
    let expected_store = world.store.as_ref().map(|s| s.location.url.clone());
    let verdict = check::judge(&check::Inputs {
        expected_store: expected_store.as_deref(),
        records: &records,
        faults: &faults,
        facts: &facts,
        worker_exits: &worker_exits,
        incidents: &incidents,
        deadline_hit,
    });
    let wall_s = wall.elapsed().as_secs_f64();
    let passed = verdict.checks.iter().all(|c| c.passed);
    let text = report::report(&args, &verdict, &faults, wall_s, deadline_after, passed)
        .expect("writing the report into a string");
    print!("{text}");
    if let Some(path) = &args.json {
        let document = JsonReport {
            jobs: args.jobs,
            storage: args.storage,
            clients: args.clients,
            workers: args.workers,
            wall_time_s: wall_s,
            deadline_s: deadline_after.as_secs_f64(),
            passed,
            verdict: &verdict,
            faults: &faults,
            worker_exits: &worker_exits,
            incidents: &incidents,
            keys: &records,
        };
        match serde_json::to_vec_pretty(&document) {
            Ok(bytes) => {
                if let Err(e) = std::fs::write(path, bytes) {
                    eprintln!("baton-fault: cannot write {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("baton-fault: cannot encode the report: {e}"),
        }
    }
    keep_logs(dir, &world.logs, !passed || args.keep);
    if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn interrupted() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

pub fn progress(wall: Instant, text: &str) {
    eprintln!("[{:>6.1} s] {text}", wall.elapsed().as_secs_f64());
}
