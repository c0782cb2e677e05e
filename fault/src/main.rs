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

mod check;
mod faults;
mod load;
mod services;
mod world;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    check::{Row, Verdict},
    faults::{Fault, FaultRecord},
    load::{Client, JobFactory, JobSpec, Kind, Records},
    services::{Baton, Gate, Postgres, Rabbit, WorkerExit, Workers, free_port},
    world::{World, lock},
};

#[derive(Debug, Parser)]
#[command(
    name = "baton-fault",
    about = "Baton's fault suite: faults injected under load, then a checker"
)]
struct Args {
    /// Jobs submitted in all, spread over the warm-up and the faults (at least 40).
    #[arg(long, default_value_t = 400)]
    jobs: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Worker processes (each runs one job at a time).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Submissions per second while a fault's load runs.
    #[arg(long, default_value_t = 8.0)]
    rate: f64,
    /// Stop and report FAIL after this long, e.g. `10m` (default 10m; 4m for 100 jobs or fewer).
    #[arg(long, value_parser = humantime::parse_duration)]
    deadline: Option<Duration>,
    /// Also write the whole report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the logs (Baton, workers, Postgres, RabbitMQ) even when the run passes; after a FAIL
    /// they are always kept. Data directories are always removed.
    #[arg(long)]
    keep: bool,
    /// Where the `baton` and `baton-fault-worker` binaries are (default: beside this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// How long one fault's jobs may take to settle before the suite moves on.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let args = Args::parse();
    if args.jobs < 40 {
        eprintln!("baton-fault: --jobs must be at least 40 (5 per phase)");
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
    services::set_deadline(deadline);
    let dir = match tempfile::Builder::new().prefix("baton-fault-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("baton-fault: cannot make a run directory: {e}");
            return ExitCode::from(2);
        }
    };
    progress(wall, &format!("run directory {}", dir.path().display()));

    let world = tokio::select! {
        world = setup(&args, dir.path(), wall, deadline) => world,
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

    let driven = tokio::select! {
        result = tokio::time::timeout_at(deadline.into(), drive(Arc::clone(&world), &args, Arc::clone(&fault_records))) => result,
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
    let cleaned = lock(&world.baton).as_mut().map(Baton::stop_and_clean);
    match cleaned {
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
        check::gather(&world.db, &world.volume, &executions),
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
    let verdict = check::judge(&check::Inputs {
        records: &records,
        faults: &faults,
        facts: &facts,
        worker_exits: &worker_exits,
        incidents: &incidents,
        deadline_hit,
    });
    let wall_s = wall.elapsed().as_secs_f64();
    let passed = verdict.checks.iter().all(|c| c.passed);
    let text = report(&args, &verdict, &faults, wall_s, deadline_after, passed);
    print!("{text}");
    if let Some(path) = &args.json {
        let document = JsonReport {
            jobs: args.jobs,
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

#[derive(Serialize)]
struct JsonReport<'a> {
    jobs: usize,
    clients: usize,
    workers: usize,
    wall_time_s: f64,
    deadline_s: f64,
    passed: bool,
    verdict: &'a Verdict,
    faults: &'a [FaultRecord],
    worker_exits: &'a [WorkerExit],
    incidents: &'a [String],
    keys: &'a BTreeMap<String, load::KeyRecord>,
}

/// Removes the run directory; with `keep`, its logs are moved out first and their place printed.
fn keep_logs(dir: tempfile::TempDir, logs: &Path, keep: bool) {
    if keep {
        let kept = std::env::temp_dir().join(format!(
            "baton-fault-logs-{}",
            OffsetDateTime::now_utc().unix_timestamp()
        ));
        let _ = std::fs::create_dir_all(&kept);
        let _ = copy_dir(logs, &kept);
        let root = dir.path();
        let _ = std::fs::copy(root.join("postgres/postgres.log"), kept.join("postgres.log"));
        let rabbit_logs = root.join("rabbitmq/log");
        let _ = copy_dir(&rabbit_logs, &kept.join("rabbitmq"));
        eprintln!("baton-fault: logs kept in {}", kept.display());
    }
    drop(dir);
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
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

fn progress(wall: Instant, text: &str) {
    eprintln!("[{:>6.1} s] {text}", wall.elapsed().as_secs_f64());
}

async fn setup(args: &Args, dir: &Path, started: Instant, deadline: Instant) -> anyhow::Result<Arc<World>> {
    use std::os::unix::fs::PermissionsExt;
    // The postgres user must be able to reach its directory inside.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .to_owned(),
    };
    let baton_exe = bin_dir.join("baton");
    let worker_exe = bin_dir.join("baton-fault-worker");
    for exe in [&baton_exe, &worker_exe] {
        if !exe.exists() {
            bail!(
                "{} is missing: build it first (cargo build -p baton-broker -p baton-fault)",
                exe.display()
            );
        }
    }
    let (pg_port, rabbit_port, dist_port, baton_port) = (free_port()?, free_port()?, free_port()?, free_port()?);

    let pg_dir = dir.join("postgres");
    let postgres = tokio::task::spawn_blocking(move || -> anyhow::Result<Postgres> {
        let postgres = Postgres::init(&pg_dir, pg_port)?;
        postgres.start()?;
        Ok(postgres)
    })
    .await??;
    progress(started, &format!("private Postgres up on 127.0.0.1:{pg_port}"));
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", postgres.server_url()))
        .await
        .context("connecting to the private Postgres")?;
    sqlx::query("CREATE DATABASE baton").execute(&admin).await?;
    admin.close().await;
    let database_url = format!("{}/baton", postgres.server_url());

    let rabbit_dir = dir.join("rabbitmq");
    let rabbit = tokio::task::spawn_blocking(move || -> anyhow::Result<Rabbit> {
        let mut rabbit = Rabbit::new(&rabbit_dir, rabbit_port, dist_port)?;
        rabbit.start()?;
        Ok(rabbit)
    })
    .await??;
    progress(
        started,
        &format!("private RabbitMQ node {} up on 127.0.0.1:{rabbit_port}", rabbit.node),
    );
    let gate = Gate::new(rabbit.port).await?;

    let volume = dir.join("volume");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&volume)?;
    std::fs::create_dir_all(&logs)?;
    let prefix = "fault.";
    let env = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    };
    let baton_env = env(&[
        ("BATON_DATABASE_URL", database_url.clone()),
        ("BATON_DATABASE_POOL_SIZE", "16".into()),
        (
            "BATON_AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", gate.port),
        ),
        ("BATON_QUEUE_PREFIX", prefix.into()),
        ("BATON_STORAGE_DIR", volume.display().to_string()),
        ("BATON_LISTEN", format!("127.0.0.1:{baton_port}")),
        ("BATON_LEASE", "3s".into()),
        ("BATON_RECONCILE_INTERVAL", "500ms".into()),
        ("BATON_REDISPATCH_AFTER", "10s".into()),
        ("BATON_DISPATCH_POLL", "200ms".into()),
        ("BATON_MAX_ATTEMPTS", "3".into()),
        ("BATON_SHUTDOWN_TIMEOUT", "5s".into()),
        ("BATON_LOG", "info".into()),
    ]);
    let mut baton = Baton::new(baton_exe, baton_env, logs.join("baton.log"), baton_port);
    let baton = tokio::task::spawn_blocking(move || -> anyhow::Result<Baton> {
        baton.start()?;
        Ok(baton)
    })
    .await??;
    progress(started, &format!("Baton up on {}", baton.base_url()));
    let worker_env = env(&[
        ("BATON_AMQP_URL", rabbit.url()),
        ("BATON_STORAGE_DIR", volume.display().to_string()),
        ("BATON_WORKER_MODEL", "fault".into()),
        ("BATON_QUEUE_PREFIX", prefix.into()),
        ("BATON_WORKER_PREFETCH", "1".into()),
        ("BATON_WORKER_SHUTDOWN_TIMEOUT", "5s".into()),
        ("BATON_LOG", "info".into()),
        (
            "BATON_FAULT_EXECUTIONS",
            logs.join("executions.log").display().to_string(),
        ),
    ]);
    let workers = Workers::start(worker_exe, worker_env, logs.clone(), args.workers, started)?;
    progress(started, &format!("{} workers started", args.workers));

    let records: Records = Arc::default();
    let client = Client::new(baton.base_url(), Arc::clone(&records), started, deadline)?;
    let db = world::suite_pool(&database_url)?;
    Ok(Arc::new(World {
        started,
        volume,
        logs,
        postgres: Mutex::new(Some(postgres)),
        rabbit: Mutex::new(Some(rabbit)),
        gate: Mutex::new(Some(gate)),
        baton: Mutex::new(Some(baton)),
        workers,
        db,
        client,
        records,
        factory: Mutex::new(JobFactory::new()),
        incidents: Mutex::default(),
    }))
}

/// Runs the load and injects each fault in turn, waiting after each for its jobs to settle.
async fn drive(world: Arc<World>, args: &Args, fault_records: Arc<Mutex<Vec<FaultRecord>>>) -> anyhow::Result<()> {
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
    let faults = faults::ALL;
    let count = faults.len();
    for (phase, fault) in faults.into_iter().enumerate() {
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

fn seconds(value: Option<f64>, prefix: &str) -> String {
    value.map_or_else(|| "-".to_owned(), |s| format!("{prefix}{s:.1} s"))
}

fn report(
    args: &Args,
    verdict: &Verdict,
    faults: &[FaultRecord],
    wall_s: f64,
    deadline: Duration,
    passed: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nbaton-fault: {} jobs, {} faults, {} clients, {} workers; wall time {:.1} s (deadline {} s)\n",
        args.jobs,
        faults.iter().filter(|f| f.fault != Fault::Warmup).count(),
        args.clients,
        args.workers,
        wall_s,
        deadline.as_secs()
    );
    let header = [
        "fault",
        "injected at",
        "recovered after",
        "jobs submitted",
        "2xx",
        "terminal",
        "lost",
        "duplicates",
        "poison",
    ];
    let line = |row: &Row, total: bool| -> Vec<String> {
        vec![
            row.fault.clone(),
            if total {
                String::new()
            } else {
                seconds(row.injected_s, "+")
            },
            match (total, row.injected_s, row.recovered_after_s) {
                (true, _, _) | (false, None, _) => String::new(),
                (false, Some(_), None) => "not recovered".to_owned(),
                (false, Some(_), Some(s)) => format!("{s:.1} s"),
            },
            row.submitted.to_string(),
            row.accepted.to_string(),
            row.terminal.to_string(),
            row.lost.to_string(),
            row.duplicates.to_string(),
            row.poison.clone(),
        ]
    };
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    table.extend(verdict.rows.iter().map(|r| line(r, false)));
    table.push(line(&verdict.total, true));
    let widths: Vec<usize> = (0..header.len())
        .map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 || c == 8 {
                    format!("{cell:<width$}", width = widths[c])
                } else {
                    format!("{cell:>width$}", width = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if i == 0 {
            let rules: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    if c == 0 || c == 8 {
                        "-".repeat(*w)
                    } else {
                        format!("{}:", "-".repeat(w - 1))
                    }
                })
                .collect();
            let _ = writeln!(out, "| {} |", rules.join(" | "));
        }
    }
    let c = &verdict.clients;
    let _ = writeln!(
        out,
        "\nclients: {} requests; {} answered 2xx ({} of them replays of an earlier submission); {} got no answer; \
         {} answered 5xx ({} of them 503); {} double sends, {} extra sends after a 2xx; {} keys needed a retry",
        c.requests,
        c.accepted_answers,
        c.replayed_answers,
        c.no_answer,
        c.answered_5xx,
        c.answered_503,
        c.double_sends,
        c.extra_sends,
        c.keys_retried
    );
    let _ = writeln!(
        out,
        "volume: {} input files stored as {} distinct blobs; jobs executed more than once (the extra outcomes \
         fenced off): {}; worker crashes from the poison job: {}; outbox entries left: {}",
        verdict.file_rows,
        verdict.blobs,
        verdict.executed_more_than_once.len(),
        verdict.poison_crashes,
        verdict.outbox_left.len()
    );
    for entry in &verdict.outbox_left {
        let _ = writeln!(out, "  outbox: {entry}");
    }
    let _ = writeln!(out, "\nfaults:");
    for (i, fault) in faults.iter().enumerate() {
        let _ = writeln!(out, "  {} ({})", fault.fault.name(), fault.fault.describe());
        for note in &fault.notes {
            let _ = writeln!(out, "    {note}");
        }
        if let Some(slow) = verdict.rows.get(i).and_then(|r| r.slowest.as_ref()) {
            let _ = writeln!(
                out,
                "    slowest job {} ({}): {:.1} s from request to end: {}",
                slow.key,
                slow.id,
                slow.seconds,
                slow.timeline.join(", ")
            );
        }
        if let Some(error) = &fault.error {
            let _ = writeln!(out, "    NOT INJECTED AS PLANNED: {error}");
        }
    }
    let _ = writeln!(out, "\nchecks:");
    for check in &verdict.checks {
        let scope = if check.scope.is_empty() {
            String::new()
        } else {
            format!(" ({})", check.scope)
        };
        let _ = writeln!(
            out,
            "  {}  {}{scope}",
            if check.passed { "PASS" } else { "FAIL" },
            check.name
        );
        for violation in check.violations.iter().take(10) {
            let _ = writeln!(out, "          {violation}");
        }
        if check.violations.len() > 10 {
            let _ = writeln!(out, "          ... and {} more", check.violations.len() - 10);
        }
    }
    // The last line: the verdict, and the count of checks in the form CI tools read.
    let failed = verdict.checks.iter().filter(|c| !c.passed).count();
    let _ = writeln!(
        out,
        "\n{}: {} passed, {failed} failed",
        if passed { "PASS" } else { "FAIL" },
        verdict.checks.len() - failed
    );
    out
}
