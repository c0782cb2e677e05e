//! Cleanup passes over a [`BackendEnv`]'s database and store.

use std::time::Duration;

use baton::cleanup::{Cleaner, CleanupConfig, Retention};
use sqlx::postgres::PgPoolOptions;

use crate::BackendEnv;

impl BackendEnv {
    /// A cleanup pass as a replica on this store would run it (grace period 1h, batches of
    /// 500), with its own connections.
    pub async fn cleaner(&self, retention: Retention) -> Cleaner {
        self.cleaner_with(CleanupConfig {
            retention,
            interval: Duration::from_secs(3600),
            grace: Duration::from_secs(3600),
            batch: 500,
        })
        .await
    }

    pub async fn cleaner_with(&self, config: CleanupConfig) -> Cleaner {
        let db = PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy(&self.database_url)
            .expect("cleaner pool");
        let storage = self.settings(&[]).storage.open().await.expect("open the test store");
        Cleaner::new(db, storage, config)
    }

    /// The blob rows' keys and sizes whose bytes this store holds, sorted by key.
    pub async fn blob_rows(&self) -> Vec<(String, u64)> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT sha256, size FROM blobs WHERE store = $1")
            .bind(self.store_name())
            .fetch_all(&self.db)
            .await
            .expect("read blob rows");
        let mut rows: Vec<(String, u64)> = rows
            .into_iter()
            .map(|(sha256, size)| (crate::blob_key(&sha256), size as u64))
            .collect();
        rows.sort();
        rows
    }
}
