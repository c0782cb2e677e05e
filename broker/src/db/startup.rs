//! Reaching the configured database at start. Every failure becomes one line that says what to
//! fix and names `BATON_DATABASE_URL`, never the URL itself (it may hold a password). A database
//! that does not exist yet is created when the configured user may, so a first start needs no
//! `createdb`.

use std::{io, time::Duration};

use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, postgres::PgConnectOptions};
use tokio::time::Instant;

/// How long one connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts while waiting for Postgres.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The database every Postgres server has; `CREATE DATABASE` is run from there.
const MAINTENANCE_DATABASE: &str = "postgres";
/// SQLSTATE `invalid_catalog_name`: the database named in the connection does not exist.
const DATABASE_MISSING: &str = "3D000";
/// SQLSTATE `duplicate_database`: another instance created it first.
const DATABASE_EXISTS: &str = "42P04";
/// SQLSTATE `unique_violation`: the same, when the two `CREATE DATABASE` ran at the same time.
const DATABASE_CREATED_CONCURRENTLY: &str = "23505";

/// What to do when the configured database does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenMissing {
    /// Create it: the caller runs the migrations next.
    Create,
    /// Stop: the caller needs Baton's tables to be there already, and a new empty database
    /// would only hide a mistyped name.
    Stop,
}

/// Why Baton cannot use its database. Each message is one line naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("BATON_DATABASE_URL is not a valid Postgres URL: {0}")]
    InvalidUrl(String),
    #[error("cannot reach Postgres at {server} (BATON_DATABASE_URL): {reason}")]
    Unreachable { server: String, reason: String },
    #[error("Postgres at {server} refused user {user} for database {database} (BATON_DATABASE_URL): {reason}")]
    Refused {
        server: String,
        user: String,
        database: String,
        reason: String,
    },
    #[error(
        "database {database} does not exist on {server} and user {user} may not create it ({reason}): \
         have a user who may create it for {user} (e.g. `{createdb}`), or point BATON_DATABASE_URL at an \
         existing database"
    )]
    CannotCreate {
        server: String,
        user: String,
        database: String,
        reason: String,
        createdb: String,
    },
    #[error(
        "database {database} does not exist on {server} (BATON_DATABASE_URL): \
         `baton migrate` creates it, or fix the name"
    )]
    Missing { server: String, database: String },
}

impl StartupError {
    /// Whether waiting may help: the server is down, starting or full, not misconfigured.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// Parses `BATON_DATABASE_URL` (any error message leaves the URL out).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, StartupError> {
    url.parse::<PgConnectOptions>().map_err(|e| {
        let reason = match e {
            sqlx::Error::Configuration(inner) => inner.to_string(),
            other => other.to_string(),
        };
        StartupError::InvalidUrl(reason)
    })
}

/// A pool for `url` once Postgres answers and the database exists (created when missing if
/// `when_missing` says so). While the server is unreachable it tries again every second for
/// up to `wait`, so a Baton started alongside its database does not crash-loop.
pub async fn open(
    url: &str,
    pool_size: u32,
    when_missing: WhenMissing,
    wait: Duration,
) -> Result<PgPool, StartupError> {
    let options = connect_options(url)?;
    let deadline = Instant::now() + wait;
    loop {
        match reach(&options, when_missing).await {
            Ok(()) => return Ok(super::pool(options, pool_size)),
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tracing::warn!(error = %e, "waiting for Postgres");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One attempt: connect, and on "database does not exist" create it and connect again.
async fn reach(options: &PgConnectOptions, when_missing: WhenMissing) -> Result<(), StartupError> {
    let target = Target::of(options);
    match connect(options).await {
        Ok(connection) => {
            close(connection).await;
            Ok(())
        }
        Err(e) if has_sqlstate(&e, DATABASE_MISSING) => match when_missing {
            WhenMissing::Stop => Err(StartupError::Missing {
                server: target.server,
                database: target.database,
            }),
            WhenMissing::Create => {
                create_database(options, &target).await?;
                let connection = connect(options).await.map_err(|e| target.error(e))?;
                close(connection).await;
                Ok(())
            }
        },
        Err(e) => Err(target.error(e)),
    }
}

/// Creates the configured database from the maintenance database, with the same server and
/// credentials. Not being allowed to (to connect there, or to create) is reported with the
/// command that would do it.
async fn create_database(options: &PgConnectOptions, target: &Target) -> Result<(), StartupError> {
    let cannot = |reason: String| StartupError::CannotCreate {
        server: target.server.clone(),
        user: target.user.clone(),
        database: target.database.clone(),
        reason,
        createdb: target.createdb_command(),
    };
    if target.database == MAINTENANCE_DATABASE {
        return Err(cannot(format!("{MAINTENANCE_DATABASE} is the maintenance database")));
    }
    let maintenance = options.clone().database(MAINTENANCE_DATABASE);
    let mut connection = match connect(&maintenance).await {
        Ok(connection) => connection,
        Err(e) if crate::db::is_unavailable(&e) => return Err(target.error(e)),
        Err(e) => return Err(cannot(format!("connecting to {MAINTENANCE_DATABASE}: {}", reason(&e)))),
    };
    // CREATE DATABASE takes no bind parameters: the name is quoted as an identifier instead.
    let statement = format!("CREATE DATABASE {}", quote_identifier(&target.database));
    let created = sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut connection).await;
    close(connection).await;
    match created {
        Ok(_) => {
            tracing::info!(
                database = %target.database,
                server = %target.server,
                "created the database: it did not exist"
            );
            Ok(())
        }
        Err(e) if has_sqlstate(&e, DATABASE_EXISTS) || has_sqlstate(&e, DATABASE_CREATED_CONCURRENTLY) => Ok(()),
        Err(e) if crate::db::is_unavailable(&e) => Err(target.error(e)),
        Err(e) => Err(cannot(reason(&e))),
    }
}

/// One connection, cut off after [`CONNECT_TIMEOUT`] (an unanswered SYN would otherwise wait
/// for the kernel's timeout, minutes).
async fn connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {CONNECT_TIMEOUT:?}"),
        ))),
    }
}

async fn close(connection: PgConnection) {
    if let Err(e) = connection.close().await {
        tracing::debug!(error = %e, "closing a start-up connection failed");
    }
}

fn has_sqlstate(error: &sqlx::Error, code: &str) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(code))
}

/// The part of an error a person acts on, without sqlx's "error returned from database:" and
/// similar prefixes.
fn reason(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(e) => lowercase_first(&e.to_string()),
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Tls(e) => format!("TLS: {e}"),
        other => other.to_string(),
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        // "Connection refused (os error 111)" reads better mid-sentence in lower case.
        Some(first) if chars.clone().next().is_some_and(char::is_lowercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_owned(),
    }
}

/// `"name"`, with any `"` doubled, as Postgres quotes identifiers.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A word for a shell command line: as is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':'));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Where Baton connects, as messages show it: server, user and database; no password.
#[derive(Debug, Clone)]
struct Target {
    server: String,
    host: String,
    port: u16,
    user: String,
    database: String,
}

impl Target {
    fn of(options: &PgConnectOptions) -> Self {
        let port = options.get_port();
        let (server, host) = match options.get_socket() {
            Some(dir) => (format!("{}/.s.PGSQL.{port}", dir.display()), dir.display().to_string()),
            None => {
                let host = options.get_host();
                let server = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                (server, host.to_owned())
            }
        };
        let user = options.get_username().to_owned();
        // Postgres's own default: a URL without a database means the one named after the user.
        let database = options.get_database().unwrap_or(&user).to_owned();
        Self {
            server,
            host,
            port,
            user,
            database,
        }
    }

    /// The command an administrator runs: the configured user owns the new database, so that
    /// the migrations may create tables in it.
    fn createdb_command(&self) -> String {
        format!(
            "createdb -h {} -p {} -U postgres -O {} {}",
            shell_word(&self.host),
            self.port,
            shell_word(&self.user),
            shell_word(&self.database)
        )
    }

    /// The error for a failed connection to this target.
    fn error(&self, error: sqlx::Error) -> StartupError {
        if crate::db::is_unavailable(&error) {
            StartupError::Unreachable {
                server: self.server.clone(),
                reason: reason(&error),
            }
        } else {
            StartupError::Refused {
                server: self.server.clone(),
                user: self.user.clone(),
                database: self.database.clone(),
                reason: reason(&error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_server_user_and_database_but_never_the_password() {
        let options = connect_options("postgres://baton:s3cret@db.example:6543/jobs").unwrap();
        let target = Target::of(&options);
        assert_eq!(target.server, "db.example:6543");
        assert_eq!(
            target.createdb_command(),
            "createdb -h db.example -p 6543 -U postgres -O baton jobs"
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let message = target.error(sqlx::Error::Io(refused)).to_string();
        assert!(message.starts_with("cannot reach Postgres at db.example:6543 (BATON_DATABASE_URL): "));
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn a_url_without_a_database_means_the_users_database() {
        let target = Target::of(&connect_options("postgres://alice@127.0.0.1").unwrap());
        assert_eq!(target.database, "alice");
    }

    #[test]
    fn an_invalid_url_is_reported_without_echoing_it() {
        let error = connect_options("postgres://baton:s3cret@db.example:notaport/jobs").unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("BATON_DATABASE_URL is not a valid Postgres URL: "));
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn identifiers_and_shell_words_are_quoted() {
        assert_eq!(quote_identifier("baton"), "\"baton\"");
        assert_eq!(quote_identifier("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(shell_word("baton_test-1"), "baton_test-1");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(
            lowercase_first("Connection refused (os error 111)"),
            "connection refused (os error 111)"
        );
        assert_eq!(lowercase_first("TLS handshake"), "TLS handshake");
    }
}
