//! Committing a submission: blobs in place, then ONE transaction for blobs, job, files and the
//! intent to publish. A job exists if and only if that transaction commits.
//!
//! Placement happens while the transaction holds each blob's row lock, which makes it safe
//! against identical uploads racing (the second waits, then finds the first's blob and drops
//! its own bytes) and against cleanup (which deletes a blob's file only while holding the same
//! row `FOR UPDATE`).

use std::{collections::BTreeMap, io};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{
        self,
        files::{BlobClaim, FileRow, NewFile},
        jobs::{JobRow, NewJob},
    },
    domain::{Owner, Sha256Hex},
    storage::{Placement, Storage, Written},
};

/// One uploaded file, written and synced in `tmp/`, waiting to be committed.
#[derive(Debug)]
pub struct StagedFile {
    pub name: String,
    pub filename: String,
    pub content_type: String,
    pub written: Written,
}

#[derive(Debug)]
pub struct Submission {
    pub owner: Owner,
    pub model: String,
    pub params: Value,
    pub files: Vec<StagedFile>,
}

/// The committed job and its files.
#[derive(Debug)]
pub struct Submitted {
    pub job: JobRow,
    pub files: Vec<FileRow>,
    /// Files whose bytes were already stored and were not written again.
    pub deduplicated: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Storage(#[from] io::Error),
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
pub async fn commit(
    db: &PgPool,
    storage: &Storage,
    submission: Submission,
) -> Result<Submitted, SubmitError> {
    let Submission {
        owner,
        model,
        params,
        files,
    } = submission;
    let job_id = Uuid::now_v7();
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
        distinct
            .entry(file.written.sha256.clone())
            .or_insert(file.written);
    }

    let mut tx = db.begin().await?;
    let mut placed_new: Vec<Sha256Hex> = Vec::new();
    let result = async {
        let mut deduplicated = metadata.len() - distinct.len();
        for (sha256, written) in distinct {
            let claim =
                db::files::claim_blob(&mut tx, &owner, &sha256, written.size, &written.md5).await?;
            let placement = place(storage, &owner, written).await?;
            match (claim, placement) {
                (BlobClaim::Inserted, Placement::Placed) => placed_new.push(sha256),
                (BlobClaim::Existing, Placement::AlreadyPresent) => deduplicated += 1,
                (BlobClaim::Existing, Placement::Placed) => {
                    tracing::warn!(%sha256, "blob row had no file; restored it from this upload");
                }
                // A file with no row: left by an upload whose commit failed. Same bytes, adopt it.
                (BlobClaim::Inserted, Placement::AlreadyPresent) => {}
            }
        }

        let job = db::jobs::insert(
            &mut tx,
            &NewJob {
                id: job_id,
                owner: &owner,
                model: &model,
                params: &params,
            },
        )
        .await?;
        let mut rows = Vec::with_capacity(metadata.len());
        for (position, meta) in metadata.into_iter().enumerate() {
            let id = Uuid::now_v7();
            let position = i32::try_from(position).expect("file count is bounded");
            let created_at = db::files::insert(
                &mut tx,
                &NewFile {
                    id,
                    job_id,
                    owner: &owner,
                    position,
                    name: &meta.name,
                    filename: &meta.filename,
                    sha256: &meta.sha256,
                    content_type: &meta.content_type,
                },
            )
            .await?;
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
                md5: meta.md5,
                created_at,
            });
        }
        db::outbox::enqueue(&mut tx, job_id, job.attempt, std::time::Duration::ZERO).await?;
        Ok::<_, SubmitError>(Submitted {
            job,
            files: rows,
            deduplicated,
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
            for sha256 in &placed_new {
                let (storage, owner, sha256) = (storage.clone(), owner.clone(), sha256.clone());
                let removed =
                    tokio::task::spawn_blocking(move || storage.remove_blob(&owner, &sha256)).await;
                if let Ok(Err(e)) | Err(e) = removed.map_err(io::Error::other) {
                    tracing::warn!(error = %e, "could not remove a blob of a failed submission");
                }
            }
            drop(tx);
            Err(error)
        }
    }
}

async fn place(storage: &Storage, owner: &Owner, written: Written) -> io::Result<Placement> {
    let (storage, owner) = (storage.clone(), owner.clone());
    tokio::task::spawn_blocking(move || {
        storage.place_blob(written.temp, &owner, &written.sha256, written.size)
    })
    .await
    .map_err(io::Error::other)?
}
