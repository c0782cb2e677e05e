use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use baton::{
    app::{Application, shutdown_signal},
    cleanup::{Cleaner, PassOutcome},
    cli::{self, CleanupArgs, Cli, Command, MigrateArgs},
    db::{self, startup::WhenMissing},
    telemetry,
};

/// Runs one command. A failure is one line on stderr (what to fix, then its causes) and exit
/// status 1; logs go to stdout.
#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse_or_exit().command {
        Command::Serve(settings) => {
            telemetry::init(&settings.log);
            serve(*settings).await
        }
        Command::Migrate(args) => {
            telemetry::init(&args.log);
            migrate(args).await
        }
        Command::Cleanup(args) => {
            telemetry::init(&args.log);
            cleanup(*args).await
        }
        Command::Keys(command) => baton::admin::keys(command).await,
        Command::Quotas(command) => baton::admin::quotas(command).await,
        Command::Storage(command) => baton::migration::run(command).await,
        Command::Openapi => {
            print!("{}", baton::http::openapi_text());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cli::one_line(&error));
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: baton::config::Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}

/// `baton migrate`: creates the database if it does not exist, then applies the migrations.
async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let pool = db::startup::open(&args.db.database_url, 1, WhenMissing::Create, Duration::ZERO).await?;
    db::migrate(&pool).await.context("running database migrations")?;
    tracing::info!("migrations applied");
    Ok(())
}

/// `baton cleanup [--dry-run]`: the scheduled pass, once, with a summary on stdout.
async fn cleanup(args: CleanupArgs) -> anyhow::Result<()> {
    let storage = args.storage.open_existing().await?;
    // A missing database holds nothing to clean: creating one would only hide a mistyped name.
    let pool = db::startup::open(&args.db.database_url, 4, WhenMissing::Stop, Duration::ZERO).await?;
    let cleaner = Cleaner::new(pool, storage, args.cleanup.config());
    if args.dry_run {
        let report = cleaner.dry_run().await?;
        println!("A cleanup pass would delete and free (dry run: nothing was changed):\n{report}");
        return Ok(());
    }
    match cleaner.run_once().await? {
        PassOutcome::Done(report) => {
            println!("Cleanup pass done:\n{report}");
            Ok(())
        }
        PassOutcome::Busy => anyhow::bail!("another Baton instance is running a cleanup pass; nothing was done"),
    }
}
