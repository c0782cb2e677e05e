//! Committing a submission: blobs in place, then ONE transaction for the job, its blobs and
//! files, the intent to publish and its timeline. A job exists if and only if that transaction
//! commits.
//!
//! Placement happens while the transaction holds each blob's row lock, which makes it safe
//! against identical uploads racing (the second waits, then finds the first's blob and drops
//! its own bytes) and against cleanup, which deletes a blob's row only after locking it
//! `FOR UPDATE` (never granted while a submission holds it) and removes a file only while its
//! own uncommitted insert of the same key makes every upload of that content wait: see
//! `cleanup`.

use std::{collections::BTreeMap, io};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{
    db::{
        self,
        blobs::BlobClaim,
        files::{FileRow, NewFile},
        jobs::{JobRow, NewJob},
        timeline,
    },
    domain::{FileId, JobId, Owner, Sha256Hex, TimelineKind},
    quota,
    storage::{Placement, Storage, StoreName, Written},
};

/// One uploaded file, durable in its store's staging area, waiting to be committed.
#[derive(Debug)]
pub struct StagedFile {
    pub name: String,
    pub filename: String,
    pub content_type: String,
    pub written: Written,
}

/// Per-job settings, already validated and defaulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    pub max_attempts: i32,
    pub queue_timeout_ms: i64,
    pub run_timeout_ms: i64,
}

#[derive(Debug)]
pub struct Submission {
    pub owner: Owner,
    pub model: String,
    pub params: Value,
    pub options: JobOptions,
    pub files: Vec<StagedFile>,
    pub idempotency_key: Option<String>,
    pub received_at: OffsetDateTime,
    /// Recorded as the job's `submitted_by`.
    pub submitted_by: String,
    /// The owner's quotas, checked again inside the transaction.
    pub limits: quota::Limits,
}

/// The committed job and its files.
#[derive(Debug)]
pub struct Submitted {
    pub job: JobRow,
    pub files: Vec<FileRow>,
    /// Files whose bytes were already stored and were not written again.
    pub deduplicated: usize,
    /// True when an earlier submission with the same idempotency key is returned instead.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Storage(#[from] io::Error),
    #[error("the idempotency key was used for a different request")]
    KeyReused,
    #[error(transparent)]
    Quota(#[from] quota::Exceeded),
}

impl From<quota::QuotaError> for SubmitError {
    fn from(error: quota::QuotaError) -> Self {
        match error {
            quota::QuotaError::Exceeded(exceeded) => Self::Quota(exceeded),
            quota::QuotaError::Database(e) => Self::Database(e),
        }
    }
}

struct Metadata {
    name: String,
    filename: String,
    content_type: String,
    sha256: Sha256Hex,
    size: u64,
    md5: String,
}

#[tracing::instrument(skip_all, fields(job_id, model = %submission.model))]
pub async fn commit(db: &PgPool, storage: &Storage, submission: Submission) -> Result<Submitted, SubmitError> {
    let Submission {
        owner,
        model,
        params,
        options,
        files,
        idempotency_key,
        received_at,
        submitted_by,
        limits,
    } = submission;
    let job_id = JobId::new();
    tracing::Span::current().record("job_id", tracing::field::display(job_id));

    // One temp file per distinct content; blob rows are locked in digest order so that two
    // jobs sharing several blobs cannot deadlock.
    let mut metadata = Vec::with_capacity(files.len());
    let mut distinct: BTreeMap<Sha256Hex, Written> = BTreeMap::new();
    for file in files {
        metadata.push(Metadata {
            name: file.name,
            filename: file.filename,
            content_type: file.content_type,
            sha256: file.written.sha256.clone(),
            size: file.written.size,
            md5: file.written.md5.clone(),
        });
        distinct.entry(file.written.sha256.clone()).or_insert(file.written);
    }
    let request_hash = idempotency_key
        .as_ref()
        .map(|_| request_hash(&model, &params, &options, &metadata));

    let mut tx = db.begin().await?;
    quota::lock(&mut tx, &owner, &limits).await?;
    let new_job = NewJob {
        id: job_id,
        owner: &owner,
        model: &model,
        params: &params,
        max_attempts: options.max_attempts,
        queue_timeout_ms: options.queue_timeout_ms,
        run_timeout_ms: options.run_timeout_ms,
        idempotency: idempotency_key.as_deref().zip(request_hash.as_deref()),
        submitted_by: &submitted_by,
    };
    // The job row comes first: an idempotency key already taken ends the transaction before
    // anything is stored.
    let Some(job) = db::jobs::insert(&mut tx, &new_job).await? else {
        let key = idempotency_key.as_deref().unwrap_or_default();
        let original = db::jobs::get_by_idempotency_key(&mut *tx, &owner, key)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        drop(tx);
        if original.request_hash != request_hash {
            return Err(SubmitError::KeyReused);
        }
        let files = db::files::of_jobs(db, &[original.id]).await?;
        return Ok(Submitted {
            job: original,
            files,
            deduplicated: 0,
            replayed: true,
        });
    };

    let mut placed_new: Vec<(Sha256Hex, StoreName)> = Vec::new();
    let result = async {
        let mut deduplicated = metadata.len() - distinct.len();
        // Where each blob's bytes are, for the file rows.
        let mut stores: BTreeMap<Sha256Hex, StoreName> = BTreeMap::new();
        for (sha256, written) in distinct {
            let store = written.store.clone();
            let claim = db::blobs::claim(&mut tx, &owner, &sha256, written.size, &written.md5, &store).await?;
            if let BlobClaim::Existing(held) = &claim
                && *held != store
            {
                // Already stored elsewhere (before a migration began, and not moved yet): that
                // copy serves, and this upload's staged bytes are dropped.
                deduplicated += 1;
                stores.insert(sha256, held.clone());
                continue;
            }
            stores.insert(sha256.clone(), store.clone());
            let placement = place(storage, &owner, written).await?;
            match (claim, placement) {
                (BlobClaim::Inserted, Placement::Placed) => placed_new.push((sha256, store)),
                (BlobClaim::Existing(_), Placement::AlreadyPresent) => deduplicated += 1,
                (BlobClaim::Existing(_), Placement::Placed) => {
                    tracing::warn!(%sha256, "blob row had no file; restored it from this upload");
                    db::blobs::clear_missing(&mut *tx, &owner, &sha256).await?;
                }
                // A file with no row: left by an upload whose commit failed, or by cleanup between
                // deleting a row and removing its file (it will find this row and keep the file).
                // Same bytes, adopt it.
                (BlobClaim::Inserted, Placement::AlreadyPresent) => {}
            }
        }

        quota::hold(&mut tx, &owner, &limits).await?;

        let mut rows = Vec::with_capacity(metadata.len());
        let mut bytes: u64 = 0;
        for (position, meta) in metadata.into_iter().enumerate() {
            let id = FileId::new();
            let position = i32::try_from(position).expect("file count is bounded");
            let new_file = NewFile {
                id,
                job_id,
                owner: &owner,
                position,
                name: &meta.name,
                filename: &meta.filename,
                sha256: &meta.sha256,
                content_type: &meta.content_type,
            };
            let created_at = db::files::insert(&mut tx, &new_file).await?;
            bytes += meta.size;
            rows.push(FileRow {
                id,
                job_id,
                owner: owner.as_str().to_owned(),
                position,
                name: meta.name,
                filename: meta.filename,
                sha256: meta.sha256.to_string(),
                content_type: meta.content_type,
                size: i64::try_from(meta.size).expect("file sizes fit in i64"),
                store: stores
                    .get(&meta.sha256)
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                md5: meta.md5,
                created_at,
            });
        }
        db::outbox::enqueue(&mut tx, job_id, job.attempt, std::time::Duration::ZERO).await?;
        timeline::record_at(&mut tx, job_id, TimelineKind::Received, received_at).await?;
        let detail = json!({ "files": rows.len(), "bytes": bytes, "deduplicated": deduplicated });
        timeline::record(&mut tx, job_id, TimelineKind::Stored, None, None, Some(detail)).await?;
        Ok::<_, SubmitError>(Submitted {
            job,
            files: rows,
            deduplicated,
            replayed: false,
        })
    }
    .await;

    match result {
        Ok(submitted) => {
            // If COMMIT fails its outcome is unknown, so placed blobs stay; the orphan sweep
            // removes any that no row claims.
            tx.commit().await?;
            Ok(submitted)
        }
        Err(error) => {
            // Still holding the new rows' locks: nobody else can have deduplicated onto these.
            for (sha256, store) in &placed_new {
                let removed = match storage.backend(store) {
                    Ok(backend) => backend.remove(&owner, sha256).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = removed {
                    tracing::warn!(error = %e, "could not remove a blob of a failed submission");
                }
            }
            drop(tx);
            Err(error)
        }
    }
}

async fn place(storage: &Storage, owner: &Owner, written: Written) -> io::Result<Placement> {
    storage
        .backend(&written.store)?
        .place(written.staged, owner, &written.sha256, written.size)
        .await
}

/// What makes two submissions "the same request": model, parameters, options, and each input's
/// name, file name and content. Hashed over canonical JSON (object keys sorted).
fn request_hash(model: &str, params: &Value, options: &JobOptions, files: &[Metadata]) -> String {
    let files: Vec<Value> = files
        .iter()
        .map(|f| json!([f.name, f.filename, f.sha256.as_str()]))
        .collect();
    let request = json!({
        "model": model,
        "params": params,
        "max_attempts": options.max_attempts,
        "queue_timeout_ms": options.queue_timeout_ms,
        "run_timeout_ms": options.run_timeout_ms,
        "files": files,
    });
    let mut canonical = String::new();
    write_canonical(&request, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let (mut a, mut b) = (String::new(), String::new());
        write_canonical(&json!({"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": null}}), &mut a);
        write_canonical(&json!({"a": {"x": null, "y": [1, {"p": 3, "q": 2}]}, "b": 1}), &mut b);
        assert_eq!(a, b);
        assert_eq!(a, r#"{"a":{"x":null,"y":[1,{"p":3,"q":2}]},"b":1}"#);
    }
}
