//! `baton keys ...` and `baton quotas ...`: access administration straight on the database, for
//! the first admin key and for operators at a shell. The same operations are on the API for
//! admins (`/v1/keys`, `/v1/quotas`).
//!
//! Output: what a script captures goes to stdout (a new key's token, alone); everything else
//! to stderr.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use sqlx::PgPool;

use crate::{
    auth::keys,
    cli::Database,
    db::{self, startup::WhenMissing},
    domain::Owner,
    http::{
        keys::{KeySpec, KeyView},
        quotas::{self as quota_api, QuotaLimits},
    },
    quota::{QuotaSettings, Quotas},
};

impl Database {
    /// The database, migrated (a `baton keys create` may come before the first `baton serve`).
    async fn open(&self) -> anyhow::Result<PgPool> {
        let pool = db::startup::open(&self.database_url, 2, WhenMissing::Create, Duration::ZERO).await?;
        db::migrate(&pool).await.context("running database migrations")?;
        Ok(pool)
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints its token (shown only this once) alone on stdout.
    Create {
        /// The owner whose jobs and files the key reaches.
        #[arg(long)]
        owner: String,
        /// read, submit or admin.
        #[arg(long)]
        role: String,
        /// How long the key works: a whole number of s, m, h or d (e.g. `90d`) [default: until revoked].
        #[arg(long)]
        expires: Option<String>,
        /// A label for listings.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        db: Database,
    },
    /// List keys (never their secrets), newest first.
    List {
        /// Only this owner's keys.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        db: Database,
    },
    /// Revoke a key: it stops working on every replica within 2 seconds.
    Revoke {
        /// The key's id (`baton_<id>_...`).
        id: String,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuotasCommand {
    /// An owner's quotas (defaults from `BATON_QUOTA_*`, overrides, effective) and usage, as JSON.
    Show {
        owner: String,
        #[command(flatten)]
        defaults: QuotaSettings,
        #[command(flatten)]
        db: Database,
    },
    /// Set an owner's overrides; an option left out returns to the default.
    Set {
        owner: String,
        /// Most bytes stored (e.g. `500GiB`).
        #[arg(long, value_parser = crate::config::parse_bytes)]
        stored_bytes: Option<u64>,
        /// Most jobs queued or running.
        #[arg(long)]
        active_jobs: Option<u64>,
        /// Most submissions per second.
        #[arg(long, value_parser = crate::quota::parse_rate)]
        submit_rate: Option<f64>,
        #[command(flatten)]
        defaults: QuotaSettings,
        #[command(flatten)]
        db: Database,
    },
    /// Remove an owner's overrides: the defaults apply again.
    Reset {
        owner: String,
        #[command(flatten)]
        defaults: QuotaSettings,
        #[command(flatten)]
        db: Database,
    },
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            owner,
            role,
            expires,
            name,
            db,
        } => {
            let spec = KeySpec::parse(&owner, &role, name, expires.as_deref()).map_err(anyhow::Error::msg)?;
            let (token, row) = spec.create(&db.open().await?).await.context("storing the key")?;
            eprintln!(
                "created key {} (owner {}, role {}); its token follows and is not shown again",
                row.id, row.owner, row.role
            );
            println!("{token}");
        }
        KeysCommand::List { owner, db } => {
            let owner = owner.as_deref().map(owner_arg).transpose()?;
            let rows = db::keys::list(&db.open().await?, owner.as_ref()).await?;
            let views: Vec<KeyView> = rows.into_iter().map(KeyView::from).collect();
            println!("{}", serde_json::to_string_pretty(&views)?);
        }
        KeysCommand::Revoke { id, db } => {
            anyhow::ensure!(
                keys::is_valid_id(&id),
                "`{id}` is not a key id (1 to 32 lowercase letters and digits)"
            );
            let row = db::keys::revoke(&db.open().await?, &id).await?;
            let row = row.with_context(|| format!("no key with id {id}"))?;
            eprintln!(
                "revoked key {} (owner {}); it stops working within 2 seconds",
                row.id, row.owner
            );
        }
    }
    Ok(())
}

pub async fn quotas(command: QuotasCommand) -> anyhow::Result<()> {
    /// What to change before the quotas are shown.
    enum Change {
        None,
        Set(QuotaLimits),
        Reset,
    }
    let (owner, defaults, db, change) = match command {
        QuotasCommand::Show { owner, defaults, db } => (owner, defaults, db, Change::None),
        QuotasCommand::Set {
            owner,
            stored_bytes,
            active_jobs,
            submit_rate,
            defaults,
            db,
        } => {
            let limits = QuotaLimits {
                stored_bytes,
                active_jobs,
                submit_rate,
            };
            quota_api::validate(&limits).map_err(anyhow::Error::msg)?;
            (owner, defaults, db, Change::Set(limits))
        }
        QuotasCommand::Reset { owner, defaults, db } => (owner, defaults, db, Change::Reset),
    };
    let owner = owner_arg(&owner)?;
    let pool = db.open().await?;
    match change {
        Change::None => {}
        Change::Set(limits) => {
            limits.store(&pool, &owner).await?;
            eprintln!("quota overrides of {} set", owner.as_str());
        }
        Change::Reset => {
            let removed = db::quotas::reset(&pool, &owner).await?;
            eprintln!(
                "{}",
                if removed {
                    "overrides removed"
                } else {
                    "the owner had no overrides"
                }
            );
        }
    }
    let view = quota_api::view(&pool, &Quotas::new(defaults.limits()), &owner).await?;
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(())
}

fn owner_arg(raw: &str) -> anyhow::Result<Owner> {
    Owner::parse(raw).with_context(|| format!("`{raw}` is not an owner (1 to 64 of [a-z0-9_-])"))
}
