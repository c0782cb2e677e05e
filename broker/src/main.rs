use baton::{
    app::{Application, shutdown_signal},
    cli::{Cli, Command},
    db, telemetry,
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
    }
}
