//! Every replica sends new uploads to an unfinished migration's target: this service polls
//! `storage_migrations` and points the storage's write store at the target, and back at the
//! configured store once the migration is finished.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    db,
    service::{InvalidConfig, Service, jittered, pause},
    storage::{Storage, StoreName},
};

#[derive(Debug, Clone)]
pub struct WriteTargetConfig {
    /// Time between looks at the active migration (default 1 s, jittered by ±20%): how long a
    /// replica may still send uploads to the old store after a migration starts.
    pub poll: Duration,
    /// Longest one look may take.
    pub timeout: Duration,
}

impl Default for WriteTargetConfig {
    fn default() -> Self {
        Self {
            poll: super::FOLLOW_POLL,
            timeout: Duration::from_secs(10),
        }
    }
}

pub struct WriteTargetFollower {
    db: PgPool,
    storage: Storage,
    config: WriteTargetConfig,
    /// The target now in force (`None`: the configured store).
    current: Option<StoreName>,
}

impl WriteTargetFollower {
    pub fn new(db: PgPool, storage: Storage, config: WriteTargetConfig) -> Result<Self, InvalidConfig> {
        InvalidConfig::positive("write target poll", config.poll)?;
        InvalidConfig::positive("write target timeout", config.timeout)?;
        Ok(Self {
            db,
            storage,
            config,
            current: None,
        })
    }

    /// Looks at the active migration once and applies its target; returns the target in force.
    pub async fn run_once(&mut self) -> Result<Option<StoreName>, sqlx::Error> {
        let wanted = db::migrations::active(&self.db)
            .await?
            .map(|row| StoreName::from_stored(&row.target));
        if wanted == self.current {
            return Ok(self.current.clone());
        }
        match &wanted {
            None => {
                self.storage.set_write_target(None);
                tracing::info!("no migration is running: new uploads go to the configured store");
            }
            Some(name) => match self.storage.backend(name) {
                Ok(backend) => {
                    self.storage.set_write_target(Some(backend));
                    tracing::info!(target = %name, "a migration is running: new uploads go to its target");
                }
                Err(error) => {
                    // Uploads stay where they were; the migration's final passes move them.
                    tracing::warn!(target = %name, error = %error,
                        "a migration is running but this replica cannot reach its target");
                    return Ok(self.current.clone());
                }
            },
        }
        self.current = wanted;
        Ok(self.current.clone())
    }
}

impl Service for WriteTargetFollower {
    fn name(&self) -> &'static str {
        "write-target"
    }

    async fn run(mut self, cancel: CancellationToken) {
        loop {
            match tokio::time::timeout(self.config.timeout, self.run_once()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::debug!(error = %error, "cannot read the active migration"),
                Err(_) => tracing::debug!("reading the active migration timed out"),
            }
            if pause(&cancel, jittered(self.config.poll)).await.is_break() {
                break;
            }
        }
    }
}
