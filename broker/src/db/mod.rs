//! Postgres: the source of truth. Pool set-up, migrations and the queries of each table.

pub mod blobs;
pub mod files;
pub mod jobs;
pub mod keys;
pub mod locks;
pub mod migrations;
pub mod outbox;
pub mod quotas;
pub mod replicas;
pub mod startup;
pub mod timeline;

use std::time::Duration;

use sqlx::{
    PgExecutor, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions, types::PgInterval},
};

/// Migrations under `sql/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../sql");

/// A pool that connects lazily, so a Postgres that goes away later makes Baton report itself
/// unready instead of stopping, and that recycles connections so a Postgres restart heals by
/// itself. [`startup::open`] builds it once the database is known to be there.
pub fn pool(options: PgConnectOptions, max_connections: u32) -> PgPool {
    let options = options.application_name("baton");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(60))
        .max_lifetime(Duration::from_secs(30 * 60))
        .test_before_acquire(true)
        .connect_lazy_with(options)
}

/// A duration as SQL takes it: every query binds durations through this, as an interval, and
/// turns stored milliseconds into one with `* interval '1 millisecond'`. Postgres keeps
/// microseconds, so finer parts are dropped (sqlx's own conversion refuses them); durations
/// beyond Postgres's range saturate.
pub(crate) fn interval(duration: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(duration.as_micros()).unwrap_or(i64::MAX),
    }
}

/// Whether Postgres answers a trivial query: readiness.
pub async fn ping(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#).fetch_one(db).await?;
    Ok(())
}

/// Runs pending migrations; several replicas starting at once are serialised by sqlx's lock.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Whether an error means "Postgres is unreachable or restarting", as opposed to a bug or a
/// constraint violation. Such errors become 503 and are retried by background tasks.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        // A server going away mid-handshake (a restart, a proxy in between) garbles the protocol.
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown,
            // cannot connect now; 53300: too many connections.
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}

/// Whether Postgres refused a value as malformed (SQLSTATE class 22: a NUL in text, a number
/// out of range, invalid JSON text). Input reaches such errors only when the edge missed a
/// check, so they are the client's fault.
pub fn is_data_exception(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("22")))
}
