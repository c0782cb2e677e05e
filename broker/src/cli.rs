//! The `baton` command line.

use clap::{CommandFactory, Parser, Subcommand, error::ContextKind};

use crate::{
    admin::{KeysCommand, QuotasCommand},
    config::{CleanupSettings, LogSettings, Settings},
    storage::StorageSettings,
};

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "Job broker for ML inference with large input files"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker: HTTP API, dispatcher and worker-event consumer. Migrations run first.
    Serve(Box<Settings>),
    /// Run database migrations and exit.
    Migrate(MigrateArgs),
    /// Run one cleanup pass now (or, with --dry-run, print what it would delete and free).
    Cleanup(Box<CleanupArgs>),
    /// API keys: create, list, revoke (straight on the database; admins can also use `/v1/keys`).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Per-owner quotas: show, set, reset (admins can also use `/v1/quotas/{owner}`).
    #[command(subcommand)]
    Quotas(QuotasCommand),
    /// Stored blobs: move them to another store (`migrate`), see where they are (`status`).
    #[command(subcommand)]
    Storage(crate::migration::StorageCommand),
    /// Print the OpenAPI 3.1 document that `GET /openapi.json` serves, and exit. Needs no
    /// database: `baton openapi > openapi/baton.json` refreshes the committed copy.
    Openapi,
}

/// The database a one-off command works on.
#[derive(Debug, clap::Args)]
pub struct Database {
    /// Postgres connection URL.
    #[arg(
        long,
        env = "BATON_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/baton"
    )]
    pub database_url: String,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: Database,

    #[command(flatten)]
    pub log: LogSettings,
}

#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// Print what a pass would delete and free, and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub db: Database,

    #[command(flatten)]
    pub storage: StorageSettings,

    #[command(flatten)]
    pub cleanup: CleanupSettings,

    #[command(flatten)]
    pub log: LogSettings,
}

impl Cli {
    /// Parses arguments and environment. On a bad value the message names the environment
    /// variable it came from, since that is how Baton is usually configured.
    pub fn parse_or_exit() -> Self {
        match Self::try_parse() {
            Ok(cli) => cli,
            Err(error) => {
                if let Some(variable) = failing_env_var(&error) {
                    let reason = error.to_string();
                    let reason = reason.trim_start_matches("error: ").lines().next().unwrap_or_default();
                    eprintln!("error: invalid {variable}: {reason}");
                    std::process::exit(2);
                }
                error.exit()
            }
        }
    }
}

/// An error and its causes on one line (`what to fix: why: why`), for the message a failed
/// command ends with. A cause whose text the line already holds (a wrapper that prints its
/// source) is left out, and line breaks inside a message become spaces.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The environment variable behind the argument a parse error is about, if that argument's
/// value came from the environment.
fn failing_env_var(error: &clap::Error) -> Option<String> {
    let arg = error.get(ContextKind::InvalidArg)?.to_string();
    let long = arg.split_whitespace().next()?.trim_start_matches("--").to_owned();
    let command = Cli::command();
    command
        .get_subcommands()
        .flat_map(|sub| sub.get_arguments())
        .find(|a| a.get_long() == Some(long.as_str()))
        .and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .filter(|env| std::env::var_os(env).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_takes_the_retention_settings_and_a_dry_run_flag() {
        let cli = Cli::try_parse_from(["baton", "cleanup", "--dry-run", "--retention-failed", "0s"]).unwrap();
        let Command::Cleanup(args) = cli.command else {
            panic!("not the cleanup command");
        };
        assert!(args.dry_run);
        assert_eq!(args.cleanup.config().retention.failed, std::time::Duration::ZERO);
    }

    #[test]
    fn an_error_chain_becomes_one_line_without_repeats() {
        let root = std::io::Error::other("permission denied\nfor schema public");
        let wrapped =
            anyhow::Error::new(root).context("while executing migrations: permission denied for schema public");
        let error = wrapped.context("running database migrations");
        assert_eq!(
            one_line(&error),
            "running database migrations: while executing migrations: permission denied for schema public"
        );
    }
}
