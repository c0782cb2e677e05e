//! `baton-bench`: measures Baton against the limits of the machine it runs on, measured in the
//! same run, and against Celery on the same RabbitMQ. See `bench/README.md`.

mod cpu;
mod depth;
mod env;
mod limits;
mod load;
mod options;
mod peer;
mod phases;
mod raw_store;
mod report;
mod rows;
mod rss;
mod stats;
mod tap;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use anyhow::Context;
use baton_testkit::database::Database;
use clap::Parser;

pub use crate::options::{Options, Part, Scale};
use crate::{
    env::{Baton, BatonSetup, Binaries},
    options::{Cli, Command},
    phases::slow,
    report::Report,
};

pub const MIB: f64 = 1024.0 * 1024.0;
pub const RSS_GOAL_MIB: f64 = 64.0;
pub const P99_GOAL_MS: f64 = 20.0;

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
pub struct Ctx {
    pub options: Options,
    pub scale: Scale,
    pub workspace: PathBuf,
    pub binaries: Binaries,
    pub database: Database,
    pub prefix: String,
    /// The run's directory (storage, logs, emulators' data).
    pub work: PathBuf,
    pub storage: PathBuf,
    pub logs: PathBuf,
    pub client: reqwest::Client,
    pub venv: peer::Venv,
    pub tag: u64,
}

impl Ctx {
    /// The job queue of `model`, named as Baton names it.
    pub fn queue(&self, model: &str) -> String {
        baton_protocol::queue::job_queue(&self.prefix, model)
    }

    pub fn celery_queue(&self) -> String {
        format!("{}celery", self.prefix)
    }

    pub async fn start_baton(&self, tag: &str) -> anyhow::Result<Baton> {
        self.start_baton_with(tag, &self.options.baton_env).await
    }

    /// Baton with `extra_env` instead of the run's `--baton-env`.
    pub async fn start_baton_with(&self, tag: &str, extra_env: &[(String, String)]) -> anyhow::Result<Baton> {
        Baton::start(
            &BatonSetup {
                binary: &self.binaries.baton,
                database_url: &self.database.url,
                amqp_url: &self.options.amqp_url,
                queue_prefix: &self.prefix,
                storage_dir: &self.storage,
                log_dir: &self.logs,
                extra_env,
            },
            tag,
        )
        .await
    }
}

pub fn step(what: &str) {
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

    let profile = env::profile();
    step(&format!("building Baton ({profile:?})").to_lowercase());
    let build_started = Instant::now();
    let build_root = workspace.clone();
    let binaries = tokio::task::spawn_blocking(move || env::build(&build_root, profile)).await??;
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
        work: work.clone(),
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
    queues.push(baton_protocol::queue::events_queue(&ctx.prefix));
    queues.push(ctx.celery_queue());
    if let Err(e) = baton_testkit::amqp::delete(&options.amqp_url, &queues, &[ctx.celery_queue()]).await {
        eprintln!("  deleting queues failed: {e:#}");
    }
    if let Err(e) = ctx.database.drop_now().await {
        eprintln!("  dropping database {} failed: {e:#}", ctx.database.name);
    }
    if outcome.is_ok() && !options.keep {
        if let Err(e) = std::fs::remove_dir_all(&work) {
            eprintln!("  removing {} failed: {e}", work.display());
        }
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
        upload_limit = Some(phases::large::large_upload(ctx, report).await?);
    }
    if runs(Part::Medium) {
        phases::medium::medium_uploads(ctx, report, upload_limit).await?;
    }
    let which = phases::stores::Which {
        large: runs(Part::StoreLarge),
        medium: runs(Part::StoreMedium),
    };
    if which.large || which.medium {
        phases::stores::store_uploads(ctx, report, which).await?;
    }
    if runs(Part::Small) {
        phases::small::small_jobs(ctx, report).await?;
    }
    let mut baton_e2e = None;
    if runs(Part::E2e) {
        baton_e2e = Some(phases::e2e::end_to_end(ctx, report).await?);
    }
    if runs(Part::Peer) {
        phases::celery::peer(ctx, report, baton_e2e).await?;
    }
    if runs(Part::Slow) {
        slow::slow_clients(ctx, report).await?;
    }
    Ok(())
}
