//! A database of its own on a shared Postgres server, created for one test or run and dropped
//! afterwards.

use anyhow::Context;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

#[derive(Debug, Clone)]
pub struct Database {
    /// The server's URL, without a database.
    pub server: String,
    pub name: String,
    pub url: String,
}

impl Database {
    /// Names a database on `server` without creating it.
    pub fn named(server: &str, name: &str) -> Self {
        let server = server.trim_end_matches('/').to_owned();
        Self {
            url: format!("{server}/{name}"),
            server,
            name: name.to_owned(),
        }
    }

    /// Creates `name` on `server`.
    pub async fn create(server: &str, name: &str) -> anyhow::Result<Self> {
        let database = Self::named(server, name);
        let mut admin = database.admin().await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin.close().await.context("closing the admin connection")?;
        Ok(database)
    }

    /// A connection to the server's maintenance database.
    pub async fn admin(&self) -> anyhow::Result<PgConnection> {
        PgConnection::connect(&format!("{}/postgres", self.server))
            .await
            .with_context(|| format!("connecting to Postgres at {}", self.server))
    }

    /// Drops the database (if it exists), disconnecting whoever still uses it.
    pub async fn drop_now(&self) -> anyhow::Result<()> {
        let mut admin = self.admin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .with_context(|| format!("dropping database {}", self.name))?;
        admin.close().await.context("closing the admin connection")?;
        Ok(())
    }
}
