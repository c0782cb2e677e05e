//! What the checker looks at, gathered once at the end of the run from Postgres, the store
//! (the volume, or the object store's listing) and the workers' log of completed executions.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use anyhow::Context;
use baton_testkit::{files::list_files, object_stores::TestStore};
use sqlx::{PgPool, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

/// One job as Postgres has it.
#[derive(Debug, Clone)]
pub struct JobFact {
    pub id: Uuid,
    pub key: Option<String>,
    pub status: String,
    pub attempt: i32,
    pub first_attempt: i32,
    pub max_attempts: i32,
    pub has_result: bool,
    pub error_code: Option<String>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

impl JobFact {
    pub fn terminal(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

/// Everything the checker looks at, gathered once at the end of the run.
pub struct Facts {
    pub jobs: Vec<JobFact>,
    /// (job, timeline kind) → count.
    pub events: HashMap<(Uuid, String), i64>,
    /// Each job's timeline: (kind, at, attempt), in order.
    pub timelines: HashMap<Uuid, Vec<(String, OffsetDateTime, Option<i32>)>>,
    /// (owner, sha256) → size, from the `blobs` table.
    pub blob_rows: BTreeMap<(String, String), i64>,
    /// Blob rows per store they name (`volume`, `az://…`).
    pub blob_stores: BTreeMap<String, usize>,
    /// (owner, sha256) → size, from the files under `blobs/` on the volume, or the objects under
    /// `blobs/` in the object store.
    pub blob_files: BTreeMap<(String, String), u64>,
    /// Files or objects under `blobs/` whose path is not a blob path, and objects outside
    /// `blobs/` and `staging/`.
    pub stray_files: Vec<String>,
    /// Uploads in progress left: files in the volume's `tmp/`, objects under `staging/`.
    pub temp_files: Vec<String>,
    /// Outbox entries left: (job, its status, entry attempt, job attempt).
    pub outbox: Vec<(Uuid, String, i32, i32)>,
    pub file_rows: i64,
    /// Completed executions per job, from the workers' log.
    pub executions: HashMap<Uuid, usize>,
}

/// Where the run's blobs and uploads in progress are.
pub enum StoredFiles<'a> {
    Volume(&'a Path),
    Object(&'a TestStore),
}

impl StoredFiles<'_> {
    /// Every file or object, by its path relative to the store's root, with its size.
    async fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
        match self {
            Self::Volume(volume) => Ok(["blobs", "tmp"]
                .iter()
                .flat_map(|dir| list_files(&volume.join(dir)))
                .map(|path| {
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or_default();
                    let relative = path.strip_prefix(volume).unwrap_or(&path).display().to_string();
                    (relative, size)
                })
                .collect()),
            Self::Object(store) => store.objects().await,
        }
    }
}

pub async fn gather(db: &PgPool, stored: &StoredFiles<'_>, executions_log: &Path) -> anyhow::Result<Facts> {
    let rows = sqlx::query(
        "SELECT id, idempotency_key, status, attempt, first_attempt, max_attempts, result IS NOT NULL AS has_result,
                error->>'code' AS error_code, created_at, finished_at
         FROM jobs",
    )
    .fetch_all(db)
    .await
    .context("reading jobs")?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        jobs.push(JobFact {
            id: row.try_get("id")?,
            key: row.try_get("idempotency_key")?,
            status: row.try_get("status")?,
            attempt: row.try_get("attempt")?,
            first_attempt: row.try_get("first_attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            has_result: row.try_get("has_result")?,
            error_code: row.try_get("error_code")?,
            created_at: row.try_get("created_at")?,
            finished_at: row.try_get("finished_at")?,
        });
    }
    let mut events = HashMap::new();
    for row in sqlx::query("SELECT job_id, kind, count(*) AS n FROM job_events GROUP BY job_id, kind")
        .fetch_all(db)
        .await
        .context("reading job_events")?
    {
        events.insert((row.try_get("job_id")?, row.try_get("kind")?), row.try_get("n")?);
    }
    let mut timelines: HashMap<Uuid, Vec<(String, OffsetDateTime, Option<i32>)>> = HashMap::new();
    for row in sqlx::query("SELECT job_id, kind, at, attempt FROM job_events ORDER BY at, id")
        .fetch_all(db)
        .await
        .context("reading job timelines")?
    {
        timelines.entry(row.try_get("job_id")?).or_default().push((
            row.try_get("kind")?,
            row.try_get("at")?,
            row.try_get("attempt")?,
        ));
    }
    let mut blob_rows = BTreeMap::new();
    let mut blob_stores = BTreeMap::new();
    for row in sqlx::query("SELECT owner, sha256, size, store FROM blobs")
        .fetch_all(db)
        .await
        .context("reading blobs")?
    {
        blob_rows.insert((row.try_get("owner")?, row.try_get("sha256")?), row.try_get("size")?);
        *blob_stores.entry(row.try_get("store")?).or_insert(0) += 1;
    }
    let outbox: Vec<(Uuid, String, i32, i32)> = sqlx::query_as(
        "SELECT o.job_id, j.status, o.attempt, j.attempt
         FROM outbox o JOIN jobs j ON j.id = o.job_id ORDER BY o.job_id",
    )
    .fetch_all(db)
    .await
    .context("reading the outbox")?;
    let file_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM files").fetch_one(db).await?;

    let mut blob_files = BTreeMap::new();
    let mut stray_files = Vec::new();
    let mut temp_files = Vec::new();
    for (path, size) in stored.list().await? {
        if let Some(relative) = path.strip_prefix("blobs/") {
            match blob_path(relative) {
                Some(key) => {
                    blob_files.insert(key, size);
                }
                None => stray_files.push(path),
            }
        } else if path.starts_with("tmp/") || path.starts_with("staging/") {
            temp_files.push(path);
        } else {
            stray_files.push(path);
        }
    }

    let mut executions = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(executions_log) {
        for line in text.lines() {
            if let Some(id) = line.split_whitespace().next().and_then(|s| s.parse::<Uuid>().ok()) {
                *executions.entry(id).or_insert(0) += 1;
            }
        }
    }
    Ok(Facts {
        jobs,
        events,
        timelines,
        blob_rows,
        blob_stores,
        blob_files,
        stray_files,
        temp_files,
        outbox,
        file_rows,
        executions,
    })
}

/// (owner, sha256) of a path below `blobs/` that is a blob's: `owner/aa/bb/<sha256>`.
fn blob_path(relative: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = relative.split('/').collect();
    let [owner, aa, bb, hex] = parts[..] else {
        return None;
    };
    let valid = hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && aa == &hex[0..2]
        && bb == &hex[2..4];
    valid.then(|| (owner.to_owned(), hex.to_owned()))
}
