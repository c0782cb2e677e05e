use anyhow::Context;
use baton::{
    app::{Application, shutdown_signal},
    cleanup::{Cleaner, PassOutcome},
    cli::{CleanupArgs, Cli, Command},
    db,
    storage::Storage,
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse_or_exit().command {
        Command::Serve(settings) => {
            telemetry::init(&settings.log);
            let app = Application::build(*settings).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate(args) => {
            telemetry::init(&args.log);
            let pool = db::pool(&args.database_url, 1)?;
            db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Cleanup(args) => {
            telemetry::init(&args.log);
            cleanup(args).await
        }
        Command::Openapi => {
            print!("{}", baton::http::openapi_text());
            Ok(())
        }
    }
}

/// `baton cleanup [--dry-run]`: the scheduled pass, once, with a summary on stdout.
async fn cleanup(args: CleanupArgs) -> anyhow::Result<()> {
    let storage = Storage::open_existing(&args.storage_dir)
        .with_context(|| format!("cannot use BATON_STORAGE_DIR {}", args.storage_dir.display()))?;
    let pool = db::pool(&args.database_url, 4).context("BATON_DATABASE_URL is not a valid Postgres URL")?;
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
