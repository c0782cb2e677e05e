//! `baton-bench`: measures Baton against the limits of the machine it runs on, measured in the
//! same run, and against Celery on the same RabbitMQ. See `bench/README.md`.

mod cpu;
mod env;
mod limits;
mod load;
mod peer;
mod report;
mod rss;
mod slow;
mod stats;
mod tap;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::{
    cpu::{CpuMeter, CpuUse, Who},
    env::{Baton, BatonConfig, Binaries, Database, Service},
    load::{JobSpec, LoopOutcome, Stop, Submitter},
    report::{Report, Target, num},
    rss::{RssSampler, RssStats},
    stats::{Latency, mb_per_s, per_s},
    tap::Tap,
};

#[derive(Parser)]
#[command(
    name = "baton-bench",
    about = "Benchmarks Baton against this machine's limits and against Celery"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build Baton, start it with a fresh database, queues and volume, and run every
    /// measurement; print one table and optionally write JSON.
    All(Options),
}

#[derive(Args, Clone)]
struct Options {
    /// A small run (seconds) that proves the suite works; its figures mean little.
    #[arg(long)]
    quick: bool,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Postgres server (no database): a database is created for the run and dropped after.
    #[arg(
        long,
        env = "BATON_BENCH_DATABASE_SERVER",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    database_server: String,
    /// RabbitMQ URL; the run's queues get a unique prefix and are deleted after.
    #[arg(
        long,
        env = "BATON_BENCH_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    /// Where the run's storage directory and logs go (default: bench/.run in the workspace).
    /// Use a directory on the filesystem Baton's volume would be on.
    #[arg(long, env = "BATON_BENCH_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Keep the run's directory (storage and logs) instead of removing it.
    #[arg(long)]
    keep: bool,
    /// Python used to create the Celery virtualenv.
    #[arg(long, env = "BATON_BENCH_PYTHON", default_value = "python3")]
    python: String,
    /// Example-worker processes for the end-to-end figures.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Prefetch of each example worker.
    #[arg(long, default_value_t = 16)]
    worker_prefetch: u16,
    /// Queue type of Celery's queue: `quorum` (as Baton's) or `classic` (Celery's default).
    #[arg(long, default_value = "quorum")]
    celery_queue_type: String,
    /// Run only these parts (comma-separated): large, medium, small, e2e, peer, slow.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Part>,
    /// Extra environment for Baton, for experiments (repeatable): `--baton-env KEY=VALUE`.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    baton_env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Part {
    Large,
    Medium,
    Small,
    E2e,
    Peer,
    Slow,
}

fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{raw}` is not KEY=VALUE"))
}

impl Options {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

/// Sizes and durations of a run.
#[derive(Debug, Clone, Serialize)]
struct Scale {
    large_bytes: u64,
    hash_bytes: u64,
    phase: Duration,
    floor: Duration,
    clients: usize,
    floor_threads: usize,
    /// Alternating slices of the volume floor and Baton in the small-jobs part.
    small_rounds: usize,
    pg_connections: usize,
    e2e_jobs: usize,
    peer_client_procs: usize,
    peer_concurrency: usize,
}

impl Scale {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                large_bytes: 128 << 20,
                hash_bytes: 64 << 20,
                phase: Duration::from_millis(1500),
                floor: Duration::from_secs(1),
                clients: 64,
                floor_threads: 16,
                small_rounds: 1,
                pg_connections: 64,
                e2e_jobs: 64,
                peer_client_procs: 2,
                peer_concurrency: 2,
            }
        } else {
            Self {
                large_bytes: 2 << 30,
                hash_bytes: 1 << 30,
                phase: Duration::from_secs(10),
                floor: Duration::from_millis(2500),
                clients: 64,
                floor_threads: 16,
                small_rounds: 4,
                pg_connections: 64,
                e2e_jobs: 2000,
                peer_client_procs: 4,
                peer_concurrency: 2,
            }
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;
const RSS_GOAL_MIB: f64 = 64.0;
const P99_GOAL_MS: f64 = 20.0;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::All(options) = cli.command;
    match run_all(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a run shares.
struct Ctx {
    options: Options,
    scale: Scale,
    workspace: PathBuf,
    binaries: Binaries,
    database: Database,
    prefix: String,
    storage: PathBuf,
    logs: PathBuf,
    client: reqwest::Client,
    venv: peer::Venv,
    tag: u64,
}

impl Ctx {
    fn queue(&self, model: &str) -> String {
        format!("{}jobs.{model}", self.prefix)
    }

    fn celery_queue(&self) -> String {
        format!("{}celery", self.prefix)
    }

    async fn start_baton(&self, tag: &str) -> anyhow::Result<Baton> {
        Baton::start(
            &BatonConfig {
                binary: &self.binaries.baton,
                database_url: &self.database.url,
                amqp_url: &self.options.amqp_url,
                queue_prefix: &self.prefix,
                storage_dir: &self.storage,
                log_dir: &self.logs,
                extra_env: &self.options.baton_env,
            },
            &self.client,
            tag,
        )
        .await
    }
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

async fn run_all(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    if cfg!(debug_assertions) {
        eprintln!("warning: baton-bench itself is a debug build; run it with `cargo run --release -p baton-bench`");
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate lives inside the workspace")?
        .to_path_buf();
    let bench_dir = workspace.join("bench");
    let scale = Scale::new(options.quick);
    let run_id = format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);

    step("building Baton (release)");
    let build_started = Instant::now();
    let build_root = workspace.clone();
    let binaries = tokio::task::spawn_blocking(move || env::build(&build_root)).await??;
    let build_seconds = build_started.elapsed().as_secs_f64();

    step("Celery virtualenv");
    let (python, dir) = (options.python.clone(), bench_dir.clone());
    let venv = tokio::task::spawn_blocking(move || peer::ensure_venv(&dir, &python)).await??;
    eprintln!(
        "  {} in {:.1} s",
        if venv.created { "created" } else { "up to date" },
        venv.seconds
    );

    let work = options
        .work_dir
        .clone()
        .unwrap_or_else(|| bench_dir.join(".run"))
        .join(&run_id);
    let storage = work.join("storage");
    let logs = work.join("logs");
    std::fs::create_dir_all(storage.join("tmp"))?;
    std::fs::create_dir_all(&logs)?;
    let storage = storage.canonicalize()?;

    let database = Database::create(&options.database_server, &format!("baton_bench_{run_id}")).await?;
    let prefix = format!("bench{run_id}.");
    eprintln!(
        "  run {run_id}: database {}, queue prefix {prefix}, volume {}",
        database.name,
        storage.display()
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()?;
    let ctx = Ctx {
        options: options.clone(),
        scale: scale.clone(),
        workspace,
        binaries,
        database,
        prefix,
        storage,
        logs: logs.clone(),
        client,
        venv: venv.clone(),
        tag: fastrand::u64(..),
    };

    let mut report = Report::default();
    let outcome = tokio::select! {
        outcome = run_phases(&ctx, &mut report) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };

    step("cleaning up");
    let models = [
        "benchlarge",
        "benchmedium",
        "benchsmall",
        "benchfloor",
        "example",
        slow::MODEL,
    ];
    let mut queues: Vec<String> = models.iter().map(|m| ctx.queue(m)).collect();
    queues.push(format!("{}events", ctx.prefix));
    queues.push(ctx.celery_queue());
    if let Err(e) = env::delete_queues(&options.amqp_url, &queues, &[ctx.celery_queue()]).await {
        eprintln!("  deleting queues failed: {e:#}");
    }
    if let Err(e) = ctx.database.drop_now().await {
        eprintln!("  dropping database {} failed: {e:#}", ctx.database.name);
    }
    if outcome.is_ok() && !options.keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("  kept {} (storage and logs)", work.display());
    }

    report.detail(
        "run",
        serde_json::json!({
            "mode": if options.quick { "quick" } else { "full" },
            "run_id": run_id,
            "started_unix": load::unix_now() - started.elapsed().as_secs_f64(),
            "seconds_total": started.elapsed().as_secs_f64(),
            "seconds_build": build_seconds,
            "seconds_excluding_build": started.elapsed().as_secs_f64() - build_seconds,
            "celery_venv": venv,
            "scale": scale,
            "workers": options.workers,
            "worker_prefetch": options.worker_prefetch,
            "celery_queue_type": options.celery_queue_type,
            "only": options.only,
            "baton_env": options.baton_env,
            "cores": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "bench_debug_build": cfg!(debug_assertions),
            "complete": outcome.is_ok(),
        }),
    );
    println!();
    println!(
        "baton-bench {} run {run_id}: {:.0} s ({:.0} s without the build; Celery venv {} in {:.1} s)",
        if options.quick { "--quick" } else { "(full)" },
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() - build_seconds,
        if venv.created { "created" } else { "reused" },
        venv.seconds,
    );
    report.print_table();
    if let Some(path) = &options.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    outcome
}

async fn run_phases(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let runs = |part| ctx.options.runs(part);
    let mut upload_limit = None;
    if runs(Part::Large) {
        upload_limit = Some(large_upload(ctx, report).await?);
    }
    if runs(Part::Medium) {
        medium_uploads(ctx, report, upload_limit).await?;
    }
    if runs(Part::Small) {
        small_jobs(ctx, report).await?;
    }
    let mut baton_e2e = None;
    if runs(Part::E2e) {
        baton_e2e = Some(end_to_end(ctx, report).await?);
    }
    if runs(Part::Peer) {
        peer(ctx, report, baton_e2e).await?;
    }
    if runs(Part::Slow) {
        slow::slow_clients(ctx, report).await?;
    }
    Ok(())
}

/// Part 1, one large file: MB/s next to a plain write with fdatasync and single-core hashing.
/// Returns min(disk write, MD5) in MB/s.
async fn large_upload(ctx: &Ctx, report: &mut Report) -> anyhow::Result<f64> {
    let section = "1 large upload";
    let size = ctx.scale.large_bytes;
    let size_label = human_bytes(size);

    step("single-core MD5 and SHA-256");
    let hash_bytes = ctx.scale.hash_bytes;
    let hashes = tokio::task::spawn_blocking(move || limits::hash_speeds(hash_bytes)).await?;

    step(&format!("sequential write of {size_label} + fdatasync"));
    let dir = ctx.storage.join("tmp");
    let disk = tokio::task::spawn_blocking(move || limits::sequential_write(&dir, size)).await??;

    step(&format!("Baton: one {size_label} upload"));
    let baton = ctx.start_baton("1").await?;
    let tap = Tap::start(&ctx.options.amqp_url, &[ctx.queue("benchlarge")]).await?;
    let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
    let sampler = RssSampler::start(baton.pid());
    let meter = cpu_meter(baton.pid(), Vec::new());
    let submitted = submitter.submit_streamed("benchlarge", size, ctx.tag).await;
    let cpu = meter.finish();
    let rss = sampler.finish().await;
    let submitted = submitted.context("the large upload failed")?;
    let upload_mb_s = mb_per_s(size, submitted.latency);

    let limit = disk.mb_s.min(hashes.md5_mb_s);
    report.compare(
        section,
        &format!("upload {size_label} to 202"),
        upload_mb_s,
        "MB/s",
        format!("{} MB/s", num(upload_mb_s)),
        limit,
        format!("{} MB/s = min(disk write, MD5)", num(limit)),
        Some(Target::AtLeast(0.8)),
    );
    report.info(
        section,
        &format!("plain write {size_label} + fdatasync"),
        disk.mb_s,
        "MB/s",
        format!("{} MB/s", num(disk.mb_s)),
    );
    report.info(
        section,
        "MD5, one core",
        hashes.md5_mb_s,
        "MB/s",
        format!("{} MB/s", num(hashes.md5_mb_s)),
    );
    report.info(
        section,
        "SHA-256, one core",
        hashes.sha256_mb_s,
        "MB/s",
        format!("{} MB/s", num(hashes.sha256_mb_s)),
    );
    rss_row(report, section, "Baton peak RSS during the upload", &rss);
    cpu_row(
        report,
        section,
        &cpu,
        (size >> 30).max(1) as usize,
        if size >= 1 << 30 { "GiB" } else { "upload" },
    );
    report.detail(
        "large_upload",
        serde_json::json!({
            "cpu": cpu,
            "bytes": size,
            "seconds": submitted.latency.as_secs_f64(),
            "mb_s": upload_mb_s,
            "disk_write": disk,
            "hashes": hashes,
            "rss": rss,
        }),
    );
    tap.close().await;
    baton.stop().await;
    Ok(limit)
}

/// Part 2, many concurrent 1 MiB uploads.
async fn medium_uploads(ctx: &Ctx, report: &mut Report, upload_limit: Option<f64>) -> anyhow::Result<()> {
    let section = "2 medium uploads";
    let clients = ctx.scale.clients;
    step(&format!("Baton: {clients} clients uploading 1 MiB files"));
    let baton = ctx.start_baton("2").await?;
    let tap = Tap::start(&ctx.options.amqp_url, &[ctx.queue("benchmedium")]).await?;
    let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
    let spec = JobSpec::new("benchmedium", 1 << 20, ctx.tag ^ 2);
    // A short warm-up: connections, Postgres pool.
    let _ = load::closed_loop(&submitter, &spec, clients, Stop::Jobs(clients)).await;
    let sampler = RssSampler::start(baton.pid());
    let meter = cpu_meter(baton.pid(), Vec::new());
    let outcome = load::closed_loop(&submitter, &spec, clients, Stop::After(ctx.scale.phase)).await;
    let cpu = meter.finish();
    let rss = sampler.finish().await;
    check_errors("1 MiB uploads", &outcome)?;
    let jobs = outcome.submitted.len();
    let jobs_s = per_s(jobs, outcome.elapsed);
    let mb_s = mb_per_s(jobs as u64 * spec.size(), outcome.elapsed);
    let latency = Latency::from_durations(&outcome.latencies());

    report.info(
        section,
        &format!("1 MiB jobs, {clients} clients"),
        jobs_s,
        "jobs/s",
        format!("{} jobs/s", num(jobs_s)),
    );
    match upload_limit {
        Some(limit) => report.compare(
            section,
            "1 MiB jobs: upload rate",
            mb_s,
            "MB/s",
            format!("{} MB/s", num(mb_s)),
            limit,
            format!("{} MB/s = min(disk write, MD5)", num(limit)),
            None,
        ),
        None => report.info(
            section,
            "1 MiB jobs: upload rate",
            mb_s,
            "MB/s",
            format!("{} MB/s", num(mb_s)),
        ),
    }
    latency_row(report, section, "submit -> 202", &latency);
    rss_row(report, section, "Baton peak RSS", &rss);
    cpu_row(report, section, &cpu, jobs, "job");
    report.detail(
        "medium_uploads",
        serde_json::json!({
            "cpu": cpu,
            "clients": clients, "jobs": jobs, "seconds": outcome.elapsed.as_secs_f64(),
            "jobs_s": jobs_s, "mb_s": mb_s, "submit_to_202": latency, "rss": rss,
        }),
    );
    tap.close().await;
    baton.stop().await;
    Ok(())
}

/// Part 3, small jobs: throughput and latency to 202 and to the worker, next to the volume's
/// and Postgres's durability floors; then latency at half the maximum rate.
///
/// The volume's fsync latency drifts (by several times within a minute here), so the floor and
/// Baton are measured in alternating slices and compared over the sums.
async fn small_jobs(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let section = "3 small jobs";
    let clients = ctx.scale.clients;
    let (threads, slice, rounds) = (ctx.scale.floor_threads, ctx.scale.floor, ctx.scale.small_rounds);

    // Measured while Baton is stopped: its pool would otherwise hold Postgres connections.
    step(&format!(
        "Postgres floor: single-row INSERT commits, {} connections and 1",
        ctx.scale.pg_connections
    ));
    let pg = limits::postgres_floor(&ctx.database.url, ctx.scale.pg_connections, slice).await?;
    let pg_serial = limits::postgres_floor(&ctx.database.url, 1, slice).await?;

    let baton = ctx.start_baton("3").await?;
    let queue = ctx.queue("benchsmall");
    let tap = Tap::start(&ctx.options.amqp_url, std::slice::from_ref(&queue)).await?;
    let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
    let spec = JobSpec::new("benchsmall", 4096, ctx.tag ^ 3);
    let warm = load::closed_loop(&submitter, &spec, clients, Stop::Jobs(clients)).await;
    check_errors("4 KiB warm-up", &warm)?;
    tap.wait_for(&warm.ids(), Duration::from_secs(10)).await;

    step(&format!(
        "volume floor with a new leaf directory per file ({threads} threads)"
    ));
    let floor_new_dirs = volume_floor(ctx, threads, slice, true).await?;

    let sampler = RssSampler::start(baton.pid());
    let mut floors = Vec::with_capacity(rounds);
    let mut cpu_slices = Vec::with_capacity(rounds);
    let mut closed = LoopOutcome::default();
    let baton_slice = ctx.scale.phase / u32::try_from(rounds).unwrap_or(1);
    for round in 1..=rounds {
        step(&format!(
            "round {round}/{rounds}: volume floor (4 KiB files, {threads} threads), then Baton with {clients} clients submitting 4 KiB jobs"
        ));
        floors.push(volume_floor(ctx, threads, slice, false).await?);
        let meter = cpu_meter(baton.pid(), Vec::new());
        let outcome = load::closed_loop(&submitter, &spec, clients, Stop::After(baton_slice)).await;
        cpu_slices.push(meter.finish());
        check_errors("4 KiB jobs", &outcome)?;
        closed.merge(outcome);
        // Let the dispatcher catch up so that the next floor slice runs on a quiet volume.
        tap.wait_for(&closed.ids(), Duration::from_secs(30)).await;
    }
    let missing = tap.wait_for(&closed.ids(), Duration::from_secs(30)).await;
    let max_rate = per_s(closed.submitted.len(), closed.elapsed);
    let to_202 = Latency::from_durations(&closed.latencies());
    let to_worker = to_worker_latency(&tap, &closed);
    let floor_ops: usize = floors.iter().map(|f| f.ops).sum();
    let floor_seconds: f64 = floors.iter().map(|f| f.seconds).sum();
    let floor = floor_ops as f64 / floor_seconds;
    let floor_range = floors
        .iter()
        .map(|f| f.ops_s)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));

    let rate = max_rate / 2.0;
    step(&format!("Baton: open loop at {rate:.0} jobs/s (half the maximum)"));
    let open = load::open_loop(&submitter, &spec, rate, ctx.scale.phase, 1024).await;
    check_errors("4 KiB open loop", &open)?;
    let open_missing = tap.wait_for(&open.ids(), Duration::from_secs(30)).await;
    let rss = sampler.finish().await;
    step(&format!(
        "RabbitMQ alone at {rate:.0} messages/s: persistent, confirmed, quorum queue"
    ));
    let (amqp_delivered, amqp_confirmed) =
        tap::amqp_floor(&ctx.options.amqp_url, &ctx.queue("benchfloor"), rate, ctx.scale.phase).await?;
    let open_to_202 = Latency::from_durations(&open.latencies());
    let open_to_worker = to_worker_latency(&tap, &open);
    let cpu = CpuUse::sum(&cpu_slices);
    let timestamps = job_timestamps(&ctx.database.url, "benchsmall").await?;
    let closed_stages = stages(&tap, &closed, &timestamps);
    let open_stages = stages(&tap, &open, &timestamps);
    tap.close().await;
    baton.stop().await;

    report.compare(
        section,
        &format!("4 KiB jobs, {clients} clients"),
        max_rate,
        "jobs/s",
        format!("{} jobs/s", num(max_rate)),
        floor,
        format!(
            "{} files/s volume floor (slices {}..{})",
            num(floor),
            num(floor_range.0),
            num(floor_range.1)
        ),
        Some(Target::AtLeast(0.7)),
    );
    report.compare(
        section,
        "4 KiB jobs vs Postgres commits",
        max_rate,
        "jobs/s",
        format!("{} jobs/s", num(max_rate)),
        pg.ops_s,
        format!("{} commits/s ({} connections)", num(pg.ops_s), pg.threads),
        None,
    );
    report.info(
        section,
        "volume floor, new leaf dir per file",
        floor_new_dirs.ops_s,
        "files/s",
        format!("{} files/s", num(floor_new_dirs.ops_s)),
    );
    report.info(
        section,
        "Postgres commits, 1 connection",
        pg_serial.ops_s,
        "commits/s",
        format!(
            "{} commits/s (p50 {} ms)",
            num(pg_serial.ops_s),
            num(pg_serial.latency.p50_ms)
        ),
    );
    latency_row(report, section, "submit -> 202", &to_202);
    latency_row(report, section, "submit -> worker has it", &to_worker);
    report.compare(
        section,
        &format!("half rate ({} jobs/s): p99 submit -> worker", num(rate)),
        open_to_worker.p99_ms,
        "ms",
        format!(
            "p50 {} / p99 {} ms",
            num(open_to_worker.p50_ms),
            num(open_to_worker.p99_ms)
        ),
        P99_GOAL_MS,
        format!("{P99_GOAL_MS} ms goal"),
        Some(Target::AtMost(1.0)),
    );
    latency_row(
        report,
        section,
        "half rate, RabbitMQ alone: publish -> delivered",
        &amqp_delivered,
    );
    latency_row(
        report,
        section,
        "half rate, RabbitMQ alone: publish -> confirmed",
        &amqp_confirmed,
    );
    latency_row(report, section, "half rate: submit -> 202", &open_to_202);
    latency_row(
        report,
        section,
        "half rate: submit -> tx start (upload, fsync)",
        &open_stages.submit_to_tx,
    );
    latency_row(
        report,
        section,
        "half rate: tx start -> 202 (place, commit)",
        &open_stages.tx_to_202,
    );
    latency_row(
        report,
        section,
        "half rate: tx start -> worker has it",
        &open_stages.tx_to_worker,
    );
    rss_row(report, section, "Baton peak RSS", &rss);
    cpu_row(report, section, &cpu, closed.submitted.len(), "job");
    report.detail(
        "small_jobs",
        serde_json::json!({
            "cpu_closed_loop": cpu,
            "stages_closed_loop": closed_stages,
            "stages_half_rate": open_stages,
            "rabbitmq_alone_half_rate": { "publish_to_delivered": amqp_delivered, "publish_to_confirmed": amqp_confirmed },
            "clients": clients,
            "rounds": rounds,
            "closed_loop": {
                "jobs": closed.submitted.len(), "seconds": closed.elapsed.as_secs_f64(),
                "jobs_s": max_rate, "submit_to_202": to_202, "submit_to_worker": to_worker,
                "not_received": missing,
            },
            "open_loop": {
                "rate": rate, "jobs": open.submitted.len(), "shed": open.shed,
                "submit_to_202": open_to_202, "submit_to_worker": open_to_worker,
                "not_received": open_missing,
            },
            "volume_floor": { "files_s": floor, "slices": floors },
            "volume_floor_new_leaf_dirs": floor_new_dirs,
            "postgres_floor": pg,
            "postgres_serial": pg_serial,
            "rss": rss,
        }),
    );
    Ok(())
}

async fn volume_floor(ctx: &Ctx, threads: usize, duration: Duration, new_dirs: bool) -> anyhow::Result<limits::Floor> {
    let root = ctx.storage.clone();
    tokio::task::spawn_blocking(move || limits::volume_floor(&root, threads, duration, new_dirs)).await?
}

/// `(created_at, dispatched_at)` of a model's jobs as Unix seconds (Postgres `now()` of the
/// submit transaction, and of the dispatcher's update after RabbitMQ's confirm).
async fn job_timestamps(database_url: &str, model: &str) -> anyhow::Result<HashMap<uuid::Uuid, (f64, Option<f64>)>> {
    let mut db = PgConnection::connect(database_url).await?;
    let rows: Vec<(uuid::Uuid, f64, Option<f64>)> = sqlx::query_as(
        "SELECT id, extract(epoch FROM created_at)::float8, extract(epoch FROM dispatched_at)::float8
         FROM jobs WHERE model = $1",
    )
    .bind(model)
    .fetch_all(&mut db)
    .await?;
    db.close().await?;
    Ok(rows.into_iter().map(|(id, c, d)| (id, (c, d))).collect())
}

/// Where a submission's time goes, from the client's clock and Postgres's (same host).
#[derive(Debug, Default, Serialize)]
struct Stages {
    /// Request start to the submit transaction's start: upload, hashing, temp-file fsync,
    /// waiting for a pooled connection.
    submit_to_tx: Latency,
    /// Transaction start to the 202 arriving: blob row, placement (rename, directory fsyncs),
    /// job rows, commit, response.
    tx_to_202: Latency,
    /// Transaction start to the message reaching the consumer: commit, dispatcher wake-up,
    /// claim, publish, RabbitMQ's confirm path, delivery.
    tx_to_worker: Latency,
    /// Transaction start to the dispatcher recording the confirmed publish.
    tx_to_dispatched: Latency,
}

fn stages(tap: &Tap, outcome: &LoopOutcome, timestamps: &HashMap<uuid::Uuid, (f64, Option<f64>)>) -> Stages {
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for s in &outcome.submitted {
        let Some((created, dispatched)) = timestamps.get(&s.id) else {
            continue;
        };
        a.push((created - s.started_unix) * 1e3);
        b.push((s.started_unix + s.latency.as_secs_f64() - created) * 1e3);
        if let Some(at) = tap.get(&s.id) {
            let received = s.started_unix + at.saturating_duration_since(s.started).as_secs_f64();
            c.push((received - created) * 1e3);
        }
        if let Some(dispatched) = dispatched {
            d.push((dispatched - created) * 1e3);
        }
    }
    Stages {
        submit_to_tx: Latency::from_ms(a),
        tx_to_202: Latency::from_ms(b),
        tx_to_worker: Latency::from_ms(c),
        tx_to_dispatched: Latency::from_ms(d),
    }
}

fn to_worker_latency(tap: &Tap, outcome: &LoopOutcome) -> Latency {
    let samples: Vec<Duration> = outcome
        .submitted
        .iter()
        .filter_map(|s| tap.get(&s.id).map(|at| at.saturating_duration_since(s.started)))
        .collect();
    Latency::from_durations(&samples)
}

/// `(id, status, created, dispatched, started, finished)`, times as Unix seconds.
type JobTimes = (uuid::Uuid, String, f64, Option<f64>, Option<f64>, Option<f64>);

/// Baton's 1 MiB end-to-end figures, for the comparison with the peer.
#[derive(Debug, Clone, Copy)]
struct EndToEnd {
    jobs_s: f64,
    peak_rss_mib: f64,
}

/// Part 4, end to end through the example worker.
async fn end_to_end(ctx: &Ctx, report: &mut Report) -> anyhow::Result<EndToEnd> {
    let section = "4 end to end";
    let (jobs, clients, workers) = (ctx.scale.e2e_jobs, ctx.scale.clients, ctx.options.workers);
    step(&format!(
        "Baton end to end: {jobs} jobs of 1 MiB, {clients} clients, {workers} example workers (prefetch {})",
        ctx.options.worker_prefetch
    ));
    let baton = ctx.start_baton("4").await?;
    let mut worker_services = Vec::new();
    for i in 0..workers {
        worker_services.push(Service::spawn(
            &format!("worker {i}"),
            &ctx.binaries.worker,
            &[],
            &[
                ("BATON_AMQP_URL", ctx.options.amqp_url.clone()),
                ("BATON_STORAGE_DIR", ctx.storage.to_string_lossy().into_owned()),
                ("BATON_WORKER_MODEL", "example".to_owned()),
                ("BATON_QUEUE_PREFIX", ctx.prefix.clone()),
                ("BATON_WORKER_PREFETCH", ctx.options.worker_prefetch.to_string()),
                ("BATON_WORKER_ID", format!("bench-worker-{i}")),
                ("BATON_LOG", "warn".to_owned()),
            ],
            None,
            ctx.logs.join(format!("worker-{i}.log")),
        )?);
    }
    let queue = ctx.queue("example");
    let deadline = Instant::now() + Duration::from_secs(30);
    while (env::consumer_count(&ctx.options.amqp_url, &queue).await? as usize) < workers {
        for worker in &mut worker_services {
            worker.check_alive()?;
        }
        if Instant::now() > deadline {
            bail!("the example workers did not start consuming within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
    let spec = JobSpec::new("example", 1 << 20, ctx.tag ^ 4);
    let mut db = PgConnection::connect(&ctx.database.url).await?;
    let sampler = RssSampler::start(baton.pid());
    let worker_pids: Vec<Who> = worker_services.iter().map(|w| Who::Pid(w.pid())).collect();
    let meter = cpu_meter(baton.pid(), vec![("workers".to_owned(), worker_pids)]);
    let events_queue = format!("{}events", ctx.prefix);
    let depths = env::DepthSampler::start(&ctx.options.amqp_url, vec![queue.clone(), events_queue.clone()]).await?;
    let outcome = load::closed_loop(&submitter, &spec, clients, Stop::Jobs(jobs)).await;
    check_errors("end-to-end submissions", &outcome)?;
    let submitted = outcome.submitted.len();
    let timeout = if ctx.options.quick { 60 } else { 600 };
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let finished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE model = 'example' AND finished_at IS NOT NULL")
                .fetch_one(&mut db)
                .await?;
        if finished as usize >= submitted {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {finished} of {submitted} jobs finished within {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = meter.finish();
    let rss = sampler.finish().await;
    let depths = depths.finish().await;
    let rows: Vec<JobTimes> = sqlx::query_as(
        "SELECT id, status,
                    extract(epoch FROM created_at)::float8,
                    extract(epoch FROM dispatched_at)::float8,
                    extract(epoch FROM started_at)::float8,
                    extract(epoch FROM finished_at)::float8
             FROM jobs WHERE model = 'example'",
    )
    .fetch_all(&mut db)
    .await?;
    db.close().await?;
    for worker in worker_services {
        worker.stop(Duration::from_secs(30)).await;
    }
    baton.stop().await;

    let started_at: HashMap<uuid::Uuid, f64> = outcome.submitted.iter().map(|s| (s.id, s.started_unix)).collect();
    let first_submit = started_at.values().copied().fold(f64::INFINITY, f64::min);
    let (mut to_result, mut commit_to_result) = (Vec::new(), Vec::new());
    let (mut commit_to_dispatched, mut dispatched_to_started, mut started_to_finished) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut last_finish = f64::NEG_INFINITY;
    let mut failed = 0;
    for (id, status, created, dispatched, started, finished) in &rows {
        if status != "succeeded" {
            failed += 1;
        }
        let Some(finished) = finished else { continue };
        last_finish = last_finish.max(*finished);
        if let Some(submitted_at) = started_at.get(id) {
            to_result.push((finished - submitted_at) * 1e3);
        }
        commit_to_result.push((finished - created) * 1e3);
        if let (Some(dispatched), Some(started)) = (dispatched, started) {
            commit_to_dispatched.push((dispatched - created) * 1e3);
            dispatched_to_started.push((started - dispatched) * 1e3);
            started_to_finished.push((finished - started) * 1e3);
        }
    }
    let seconds = last_finish - first_submit;
    let jobs_s = submitted as f64 / seconds;
    let to_result = Latency::from_ms(to_result);
    let commit_to_result = Latency::from_ms(commit_to_result);

    report.info(
        section,
        &format!(
            "1 MiB jobs end to end ({workers} workers x prefetch {})",
            ctx.options.worker_prefetch
        ),
        jobs_s,
        "jobs/s",
        format!("{} jobs/s", num(jobs_s)),
    );
    latency_row(report, section, "submit -> result recorded", &to_result);
    latency_row(report, section, "commit -> result recorded", &commit_to_result);
    rss_row(report, section, "Baton peak RSS", &rss);
    report.info(
        section,
        "Baton RSS growth over the run",
        rss.growth_mib(),
        "MiB",
        format!("{:+.1} MiB", rss.growth_mib()),
    );
    cpu_row(report, section, &cpu, submitted, "job");
    let depth = |name: &str| depths.iter().find(|(q, _)| q == name).map_or(0, |(_, d)| *d);
    let (jobs_depth, events_depth) = (depth(&queue), depth(&events_queue));
    report.info(
        section,
        "deepest backlog: job queue / events queue",
        f64::from(events_depth),
        "messages",
        format!("{jobs_depth} / {events_depth} messages"),
    );
    report.info(
        section,
        "stages p50: commit->dispatched, ->started, ->finished",
        stage_p50(&commit_to_dispatched),
        "ms",
        format!(
            "{} / {} / {} ms",
            num(stage_p50(&commit_to_dispatched)),
            num(stage_p50(&dispatched_to_started)),
            num(stage_p50(&started_to_finished))
        ),
    );
    report.detail(
        "end_to_end",
        serde_json::json!({
            "cpu": cpu,
            "max_queue_depth": { "jobs": jobs_depth, "events": events_depth },
            "jobs": submitted, "failed": failed, "clients": clients, "workers": workers,
            "worker_prefetch": ctx.options.worker_prefetch, "seconds": seconds, "jobs_s": jobs_s,
            "submit_to_202": Latency::from_durations(&outcome.latencies()),
            "submit_to_result": to_result,
            "commit_to_result": commit_to_result,
            "stages": {
                "commit_to_dispatched": Latency::from_ms(commit_to_dispatched.clone()),
                "dispatched_to_started": Latency::from_ms(dispatched_to_started.clone()),
                "started_to_finished": Latency::from_ms(started_to_finished.clone()),
            },
            "timestamps": "submit: the bench's clock before sending; created/dispatched/started/finished: Postgres now() in Baton's transactions, same host clock",
            "rss": rss,
        }),
    );
    Ok(EndToEnd {
        jobs_s,
        peak_rss_mib: rss.peak_mib(),
    })
}

/// Part 5, Celery on the same RabbitMQ: 1 MiB inline (base64) and a 300-byte reference.
async fn peer(ctx: &Ctx, report: &mut Report, baton: Option<EndToEnd>) -> anyhow::Result<()> {
    let section = "5 peer: Celery";
    let bench_dir = ctx.workspace.join("bench");
    let venv = &ctx.venv;
    let queue = ctx.celery_queue();
    let celery = peer::Celery {
        venv,
        bench_dir: &bench_dir,
        amqp_url: &ctx.options.amqp_url,
        queue: &queue,
        queue_type: &ctx.options.celery_queue_type,
        log_dir: &ctx.logs,
    };
    let (jobs, procs) = (ctx.scale.e2e_jobs, ctx.scale.peer_client_procs);
    step(&format!(
        "Celery: {jobs} tasks each with 1 MiB inline (base64), then with a 300-byte reference; {procs} client processes, prefork worker x{}",
        ctx.scale.peer_concurrency
    ));
    let mut worker = celery.start_worker(ctx.scale.peer_concurrency)?;
    let timeout = Duration::from_secs(if ctx.options.quick { 120 } else { 900 });
    let meter = |worker: &Service| {
        CpuMeter::start(vec![
            ("celery-worker".to_owned(), vec![Who::Tree(worker.pid())]),
            ("celery-client".to_owned(), vec![Who::WaitedChildren]),
            ("rabbitmq".to_owned(), vec![Who::Comm("beam.smp")]),
        ])
    };
    let inline_meter = meter(&worker);
    let inline = celery.run("inline", jobs, procs, 1 << 20, timeout).await;
    let inline_cpu = inline_meter.finish();
    let inline = inline.and_then(|run| {
        worker.check_alive()?;
        Ok(run)
    });
    let (reference, reference_cpu) = match &inline {
        Ok(_) => {
            let reference_meter = meter(&worker);
            let run = celery.run("ref", jobs, procs, 1 << 20, timeout).await;
            (Some(run), Some(reference_meter.finish()))
        }
        Err(_) => (None, None),
    };
    worker.stop(Duration::from_secs(30)).await;
    let inline = inline?;
    let reference = reference.expect("ran after a successful inline run")?;
    let reference_cpu = reference_cpu.expect("measured with the run");
    for run in [&inline, &reference] {
        if run.errors > 0 {
            bail!("{} Celery tasks ({}) failed", run.errors, run.mode);
        }
    }

    if let Some(baton) = baton {
        report.compare(
            section,
            "Baton 1 MiB e2e vs Celery 1 MiB inline",
            baton.jobs_s,
            "jobs/s",
            format!("{} jobs/s", num(baton.jobs_s)),
            inline.jobs_s,
            format!("{} jobs/s Celery inline", num(inline.jobs_s)),
            Some(Target::AtLeast(3.0)),
        );
        report.compare(
            section,
            "Baton 1 MiB e2e peak RSS",
            baton.peak_rss_mib,
            "MiB",
            format!("{} MiB", num(baton.peak_rss_mib)),
            RSS_GOAL_MIB,
            format!("{RSS_GOAL_MIB} MiB goal"),
            Some(Target::AtMost(1.0)),
        );
    }
    for (run, cpu, what) in [
        (&inline, &inline_cpu, "1 MiB inline base64"),
        (&reference, &reference_cpu, "300-byte reference"),
    ] {
        cpu_row(report, section, cpu, run.jobs, &format!("job ({})", run.mode));
        report.info(
            section,
            &format!("Celery {what}"),
            run.jobs_s,
            "jobs/s",
            format!("{} jobs/s", num(run.jobs_s)),
        );
        latency_row(
            report,
            section,
            &format!("Celery {what}: submit -> done"),
            &run.submit_to_done,
        );
    }
    if let Some(baton) = baton {
        report.compare(
            section,
            "Baton 1 MiB e2e vs Celery 300-byte ref",
            baton.jobs_s,
            "jobs/s",
            format!("{} jobs/s", num(baton.jobs_s)),
            reference.jobs_s,
            format!("{} jobs/s Celery reference", num(reference.jobs_s)),
            None,
        );
    }
    report.detail(
        "peer",
        serde_json::json!({
            "celery": "5.7.0, pyamqp transport, confirm_publish, persistent messages, rpc:// results, prefork worker, default prefetch",
            "queue_type": ctx.options.celery_queue_type,
            "worker_concurrency": ctx.scale.peer_concurrency,
            "inline": inline,
            "inline_cpu": inline_cpu,
            "reference": reference,
            "reference_cpu": reference_cpu,
            "timestamps": "submit: the client's clock before apply_async; done: time.time() in the task, same host clock",
        }),
    );
    Ok(())
}

/// Starts measuring CPU time of Baton, the bench's own clients, Postgres and RabbitMQ (and any
/// `extra` components).
fn cpu_meter(baton_pid: u32, extra: Vec<(String, Vec<Who>)>) -> CpuMeter {
    let mut groups = vec![
        ("baton".to_owned(), vec![Who::Pid(baton_pid)]),
        ("bench".to_owned(), vec![Who::Pid(std::process::id())]),
        ("postgres".to_owned(), vec![Who::Comm("postgres")]),
        ("rabbitmq".to_owned(), vec![Who::Comm("beam.smp")]),
    ];
    groups.extend(extra);
    CpuMeter::start(groups)
}

fn cpu_row(report: &mut Report, section: &str, cpu: &CpuUse, units: usize, unit: &str) {
    let total: f64 = cpu.per(units).values().sum();
    report.info(
        section,
        &format!("CPU ms per {unit}"),
        total,
        &format!("ms/{unit}"),
        format!(
            "total {total:.2}: {}; machine {:.1}/{} cores busy",
            cpu.summary(units),
            cpu.machine_busy_cores,
            cpu.cores
        ),
    );
}

fn stage_p50(samples_ms: &[f64]) -> f64 {
    Latency::from_ms(samples_ms.to_vec()).p50_ms
}

fn check_errors(what: &str, outcome: &LoopOutcome) -> anyhow::Result<()> {
    if outcome.errors > 0 {
        bail!(
            "{what}: {} of {} requests failed; first: {}",
            outcome.errors,
            outcome.errors + outcome.submitted.len(),
            outcome.first_error.as_deref().unwrap_or("?")
        );
    }
    if outcome.submitted.is_empty() {
        bail!("{what}: no request completed");
    }
    Ok(())
}

fn latency_row(report: &mut Report, section: &str, figure: &str, latency: &Latency) {
    report.info(
        section,
        figure,
        latency.p99_ms,
        "ms (p99)",
        format!("p50 {} / p99 {} ms", num(latency.p50_ms), num(latency.p99_ms)),
    );
}

fn rss_row(report: &mut Report, section: &str, figure: &str, rss: &RssStats) {
    let peak = rss.peak_kib as f64 * 1024.0 / MIB;
    report.compare(
        section,
        figure,
        peak,
        "MiB",
        format!("{} MiB", num(peak)),
        RSS_GOAL_MIB,
        format!("{RSS_GOAL_MIB} MiB goal"),
        Some(Target::AtMost(1.0)),
    );
}

fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}
