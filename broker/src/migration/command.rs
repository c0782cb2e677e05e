//! `baton storage migrate --to URL --plan | --execute [--rate 50MiB]` and `baton storage status`.
//!
//! Output: the plan, the outcome and the status go to stdout, as do the logs; the progress bar
//! (on a terminal) goes to stderr.

use std::{io::IsTerminal, time::Duration};

use anyhow::Context;
use clap::{ArgGroup, Subcommand};

use super::{Migration, Outcome, plan};
use crate::{
    cleanup::human_bytes,
    cli::Database,
    config::LogSettings,
    db::{self, startup::WhenMissing},
    storage::{Backend, Storage, StorageSettings, StoreUrl},
    telemetry,
};

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Move every stored blob to another store while Baton keeps serving: `--plan` shows what
    /// would move, `--execute` moves it (killed, run it again: it resumes).
    Migrate(Box<MigrateArgs>),
    /// Where blobs are, the unfinished migration, and copies still kept for unfinished jobs.
    Status(Box<StatusArgs>),
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["plan", "execute"])))]
pub struct MigrateArgs {
    /// The store to move to: a directory (the shared volume, as this replica mounts it),
    /// `s3://bucket/prefix` or `az://container/prefix`.
    #[arg(long, value_parser = StoreUrl::parse)]
    pub to: StoreUrl,

    /// Print what would move (blobs, bytes, an estimate) per source store; change nothing.
    #[arg(long)]
    pub plan: bool,

    /// Move it: new uploads go to the target from now on; every copy is verified before its
    /// blob switches; the old copies go once no unfinished job can read them.
    #[arg(long)]
    pub execute: bool,

    /// Most bytes per second read and written by the copy (e.g. `50MiB`) [default: no limit].
    #[arg(long, value_parser = crate::config::parse_bytes)]
    pub rate: Option<u64>,

    #[command(flatten)]
    pub db: Database,

    #[command(flatten)]
    pub storage: StorageSettings,

    #[command(flatten)]
    pub log: LogSettings,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: Database,
}

pub async fn run(command: StorageCommand) -> anyhow::Result<()> {
    match command {
        StorageCommand::Migrate(args) => {
            telemetry::init(&args.log);
            migrate(*args).await
        }
        StorageCommand::Status(args) => status(*args).await,
    }
}

async fn migrate(mut args: MigrateArgs) -> anyhow::Result<()> {
    if let StoreUrl::Volume(dir) = &args.to {
        let explicit = args.storage.storage_url.is_some() || args.storage.storage_dir.is_some();
        match args.storage.volume_dir().map(std::path::Path::to_owned) {
            Some(mounted) if explicit => anyhow::ensure!(
                same_dir(&mounted, dir),
                "--to names the volume at {}, but this replica's volume is {} (BATON_STORAGE_DIR)",
                dir.display(),
                mounted.display()
            ),
            _ => args.storage.storage_dir = Some(dir.clone()),
        }
    }
    let storage = if matches!(args.to, StoreUrl::Volume(_)) {
        args.storage.open().await?
    } else {
        args.storage.open_existing().await?
    };
    let pool = db::startup::open(&args.db.database_url, 4, WhenMissing::Stop, Duration::ZERO).await?;
    db::migrate(&pool).await.context("running database migrations")?;
    let target_name = args.to.name();
    let target = target_backend(&storage, &args.to)?;
    if args.plan {
        let plan = plan::plan(&pool, &storage, &target_name, args.rate).await?;
        print!("{plan}");
        return Ok(());
    }
    target
        .check()
        .await
        .with_context(|| format!("the target {target_name} does not take writes"))?;
    let progress_bar = std::io::stderr().is_terminal();
    let migration = Migration::new(pool, storage, target)
        .with_rate(args.rate)
        .with_progress_bar(progress_bar);
    let outcome = migration
        .execute()
        .await
        .with_context(|| format!("migrating to {target_name} stopped; run the same command again to resume"))?;
    print!("{}", report(&target_name.to_string(), &outcome));
    Ok(())
}

/// The store `to` names, as `storage` reaches it (the volume it mounts, or an object store).
pub fn target_backend(storage: &Storage, to: &StoreUrl) -> anyhow::Result<Backend> {
    Ok(match to {
        StoreUrl::Volume(_) => Backend::Volume(
            storage
                .volume()
                .cloned()
                .context("the target volume is not mounted here (BATON_STORAGE_DIR)")?,
        ),
        _ => storage.backend(&to.name())?,
    })
}

fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The outcome for people.
pub fn report(target: &str, outcome: &Outcome) -> String {
    let mut out = format!(
        "Moved {} blobs ({}) to {target} in {} passes: {} copied, {} reused copies already there; each verified \
         (size and SHA-256)\n",
        outcome.moved,
        human_bytes(outcome.bytes),
        outcome.passes,
        outcome.copied,
        outcome.moved - outcome.copied,
    );
    out.push_str(&format!(
        "Removed {} copies ({}) from the stores they were moved from\n",
        outcome.released.copies,
        human_bytes(outcome.released.bytes)
    ));
    for held in &outcome.held {
        out.push_str(&format!(
            "Waiting: {} copies ({}) in {} are kept for {} unfinished jobs created before their move; cleanup \
             removes them once those jobs finish\n",
            held.blobs,
            human_bytes(u64::try_from(held.bytes).unwrap_or_default()),
            held.store,
            held.jobs
        ));
    }
    for left in &outcome.left {
        out.push_str(&format!(
            "Not moved: {} blobs in {} ({} of them missing their bytes); run the command again later\n",
            left.blobs, left.store, left.missing
        ));
    }
    out
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let pool = db::startup::open(&args.db.database_url, 2, WhenMissing::Stop, Duration::ZERO).await?;
    match db::migrations::latest(&pool).await? {
        Some(row) => match row.finished_at {
            None => println!(
                "migration {} to {} running since {} (new uploads go there)",
                row.id, row.target, row.started_at
            ),
            Some(finished) => println!("last migration {} to {} finished {}", row.id, row.target, finished),
        },
        None => println!("no migration has run"),
    }
    for store in db::blobs::moves::outside(&pool, "").await? {
        println!(
            "{}: {} blobs, {}",
            store.store,
            store.blobs,
            human_bytes(u64::try_from(store.bytes).unwrap_or_default())
        );
    }
    for held in db::blobs::moves::held(&pool).await? {
        println!(
            "kept in {} after a move: {} copies, {}, for {} unfinished jobs",
            held.store,
            held.blobs,
            human_bytes(u64::try_from(held.bytes).unwrap_or_default()),
            held.jobs
        );
    }
    Ok(())
}
