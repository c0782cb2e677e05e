//! Uploads of the same bytes racing cleanup: in a loop with workers reading, at every point of a
//! blob's removal, and while an upload holds the blob; each on the volume, S3 and Azure Blob.

use std::{
    collections::HashSet,
    ops::ControlFlow,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use baton::cleanup::{PassOutcome, Retention, Step, StepHook};
use baton_testkit::object_stores::Backend;
use baton_worker::{Handler, Job, JobError};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::*;
use baton_e2e::*;

/// Reads every input to its end and checks its digest; tells the test about each job.
struct ReadsEveryByte {
    seen: mpsc::UnboundedSender<(Uuid, Result<(), String>)>,
}

impl Handler for ReadsEveryByte {
    async fn handle(&self, job: Job) -> Result<Value, JobError> {
        let mut outcome = Ok(());
        for input in &job.inputs {
            match tokio::fs::read(&input.path).await {
                Ok(bytes) if sha256_hex(&bytes) == input.file.sha256 => {}
                Ok(_) => outcome = Err(format!("`{}` has other bytes", input.file.name)),
                Err(e) => outcome = Err(format!("`{}`: {e}", input.file.name)),
            }
        }
        self.seen.send((job.message.job_id, outcome.clone())).ok();
        outcome
            .map(|()| json!({}))
            .map_err(|message| JobError::permanent("unreadable", message))
    }
}

/// A job with a single attempt: one whose file went missing would fail, and failed jobs are kept.
async fn submit_once(app: &TestApp, bytes: &[u8]) -> String {
    let form = binary_job(bytes).text("max_attempts", "1");
    app.submit_ok(form).await["id"].as_str().unwrap().to_owned()
}

/// Waits until the job finished, or is already gone because it finished and was cleaned up.
async fn wait_finished_or_gone(app: &TestApp, id: &str) {
    let done = eventually(Duration::from_secs(30), || async {
        let response = app.http.get(app.url(&format!("/v1/jobs/{id}"))).send().await.unwrap();
        match response.status().as_u16() {
            404 => true,
            200 => {
                let job: Value = response.json().await.unwrap();
                job["status"] == "succeeded" || job["status"] == "failed"
            }
            other => panic!("GET job {id}: {other}"),
        }
    })
    .await;
    assert!(done, "job {id} did not finish");
}

#[tokio::test]
async fn cleanup_with_zero_retention_racing_uploads_of_the_same_bytes_never_takes_a_file_from_a_worker_on_the_volume() {
    racing_uploads_never_take_a_file_from_a_worker(Backend::Volume).await;
}

#[tokio::test]
async fn cleanup_with_zero_retention_racing_uploads_of_the_same_bytes_never_takes_an_object_from_a_worker_on_s3() {
    racing_uploads_never_take_a_file_from_a_worker(Backend::S3).await;
}

#[tokio::test]
async fn cleanup_with_zero_retention_racing_uploads_of_the_same_bytes_never_takes_a_blob_from_a_worker_on_azure() {
    racing_uploads_never_take_a_file_from_a_worker(Backend::Azure).await;
}

async fn racing_uploads_never_take_a_file_from_a_worker(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let _workers: Vec<_> = (0..2)
        .map(|_| env.spawn_worker_with(ReadsEveryByte { seen: seen.clone() }, |_| {}))
        .collect();
    let bytes = bytes_of(31, 256 * 1024);

    let cleaner = env
        .cleaner(Retention {
            succeeded: Duration::ZERO,
            failed: HOUR,
            cancelled: Duration::ZERO,
        })
        .await;
    let stop = CancellationToken::new();
    let looping = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut passes, mut blobs_deleted) = (0, 0);
            while !stop.is_cancelled() {
                if let PassOutcome::Done(report) = cleaner.run_once().await.expect("cleanup pass") {
                    passes += 1;
                    blobs_deleted += report.blobs;
                }
            }
            (passes, blobs_deleted)
        }
    });

    let mut submitted = Vec::new();
    // One at a time first: each upload comes after cleanup removed the blob of the last one.
    for _ in 0..3 {
        let id = submit_once(&app, &bytes).await;
        wait_finished_or_gone(&app, &id).await;
        assert!(eventually(Duration::from_secs(30), || async { env.count("blobs").await == 0 }).await);
        submitted.push(id);
    }
    // Then three clients at once, each uploading again a moment after its last job finished:
    // now and then none has a job left, cleanup removes the blob, and uploads land meanwhile.
    let clients = (0..3).map(|client| {
        let (app, bytes) = (&app, &bytes);
        async move {
            let mut ids = Vec::new();
            for round in 0..12_u64 {
                let id = submit_once(app, bytes).await;
                wait_finished_or_gone(app, &id).await;
                tokio::time::sleep(Duration::from_millis((client * 37 + round * 11) % 150)).await;
                ids.push(id);
            }
            ids
        }
    });
    submitted.extend(futures::future::join_all(clients).await.into_iter().flatten());

    stop.cancel();
    let (passes, blobs_deleted) = looping.await.unwrap();
    assert!(
        blobs_deleted >= 3,
        "cleanup removed the blob again and again ({blobs_deleted} times in {passes} passes)"
    );
    let mut handled = HashSet::new();
    while let Ok((id, outcome)) = seen_rx.try_recv() {
        assert_eq!(outcome, Ok(()), "job {id} could not read its input");
        handled.insert(id.to_string());
    }
    for id in &submitted {
        assert!(handled.contains(id), "job {id} never reached a worker's handler");
    }
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'failed'")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(failed, 0, "no job failed for want of its file");

    let cleaner = env.cleaner(Retention::all(Duration::ZERO)).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            pass(&cleaner).await;
            env.count("jobs").await == 0
        })
        .await
    );
    assert_eq!(env.count("blobs").await, 0);
    assert_eq!(env.blob_keys().await, Vec::<String>::new());
}

/// Polls until some statement of this environment's database waits for a lock.
async fn wait_for_a_lock_wait(db: &sqlx::PgPool) {
    let waiting = eventually(Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(db)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
    assert!(waiting, "the upload never waited for cleanup's reservation");
}

#[tokio::test]
async fn an_upload_of_the_same_bytes_landing_between_any_two_steps_of_a_blob_removal_keeps_its_file_on_the_volume() {
    upload_between_removal_steps_keeps_its_bytes(Backend::Volume).await;
}

#[tokio::test]
async fn an_upload_of_the_same_bytes_landing_between_any_two_steps_of_a_blob_removal_keeps_its_object_on_s3() {
    upload_between_removal_steps_keeps_its_bytes(Backend::S3).await;
}

#[tokio::test]
async fn an_upload_of_the_same_bytes_landing_between_any_two_steps_of_a_blob_removal_keeps_its_blob_on_azure() {
    upload_between_removal_steps_keeps_its_bytes(Backend::Azure).await;
}

async fn upload_between_removal_steps_keeps_its_bytes(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    let _worker = env.spawn_worker();
    let points = [
        Step::Started,
        Step::JobsDeleted,
        Step::BlobRowDeleted,
        Step::BlobFileRemoved,
    ];
    for (seed, point) in (90..).zip(points) {
        let bytes = bytes_of(seed, 80_000);
        // For a model no worker serves, so it is still queued when cancelled.
        let unserved = reqwest::multipart::Form::new().text("model", "unserved").part(
            "input",
            file_part(bytes.clone(), "input.bin", "application/octet-stream"),
        );
        let old = app.submit_ok(unserved).await;
        assert_eq!(
            post(&app, &format!("/v1/jobs/{}/cancel", old["id"].as_str().unwrap())).await,
            200
        );

        // The hook uploads the same bytes when the pass reaches `point`. While the file's key is
        // reserved the upload must wait, so there the pass goes on once it does.
        let (http, url, db, payload) = (app.http.clone(), app.url("/v1/jobs"), env.db.clone(), bytes.clone());
        let (uploads, mut uploaded) = mpsc::unbounded_channel();
        let fired = Arc::new(AtomicUsize::new(0));
        let upload_at_point: StepHook = Arc::new(move |step| {
            let (http, url, db, uploads, bytes) =
                (http.clone(), url.clone(), db.clone(), uploads.clone(), payload.clone());
            let first = step == point && fired.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    let upload = tokio::spawn(async move {
                        let response = http.post(url).multipart(binary_job(&bytes)).send().await.unwrap();
                        assert_eq!(response.status(), 202);
                        response.json::<Value>().await.unwrap()
                    });
                    if step == Step::BlobFileRemoved {
                        wait_for_a_lock_wait(&db).await;
                    } else {
                        while !upload.is_finished() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    uploads.send(upload).unwrap();
                }
                ControlFlow::Continue(())
            }
            .boxed()
        });
        // Cancelled jobs expire at once; the new job, run meanwhile by the worker, does not.
        let retention = Retention {
            cancelled: Duration::ZERO,
            ..Retention::all(HOUR)
        };
        let cleaner = env.cleaner(retention).await.with_hook(upload_at_point);
        pass(&cleaner).await;

        let new = uploaded
            .recv()
            .await
            .expect("the pass reached the point")
            .await
            .unwrap();
        assert_rows_have_bytes(&env).await;
        let done = app.wait_for_status(new["id"].as_str().unwrap(), "succeeded").await;
        assert_eq!(done["result"]["inputs"][0]["sha256_verified"], true, "{point:?}");
        assert_eq!(
            env.read_key(&blob_key(&sha256_hex(&bytes))).await,
            Some(bytes),
            "{point:?}"
        );
    }
}

#[tokio::test]
async fn a_blob_an_upload_is_committing_is_left_alone_until_the_upload_is_done_on_the_volume() {
    blob_being_committed_is_left_alone(Backend::Volume).await;
}

#[tokio::test]
async fn an_object_an_upload_is_committing_is_left_alone_until_the_upload_is_done_on_s3() {
    blob_being_committed_is_left_alone(Backend::S3).await;
}

#[tokio::test]
async fn a_blob_an_upload_is_committing_is_left_alone_until_the_upload_is_done_on_azure() {
    blob_being_committed_is_left_alone(Backend::Azure).await;
}

async fn blob_being_committed_is_left_alone(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    // Everything already stored is past this cleaner's grace period.
    let cleaner = cleaner_without_grace(&env, Retention::all(Duration::ZERO)).await;

    // An upload deduplicating onto the blob holds its row (as `claim_blob` does) while cleanup runs.
    let bytes = bytes_of(95, 10_000);
    let sha256 = sha256_hex(&bytes);
    let old = app.submit_ok(binary_job(&bytes)).await;
    assert_eq!(
        post(&app, &format!("/v1/jobs/{}/cancel", old["id"].as_str().unwrap())).await,
        200
    );
    let mut upload = env.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM blobs WHERE owner = 'default' AND sha256 = $1 FOR KEY SHARE")
        .bind(&sha256)
        .fetch_one(&mut *upload)
        .await
        .unwrap();
    let report = pass(&cleaner).await;
    assert_eq!(
        (report.jobs(), report.blobs),
        (1, 0),
        "the held row is skipped, not waited for"
    );
    assert!(env.read_key(&blob_key(&sha256)).await.is_some());
    upload.rollback().await.unwrap();
    assert_eq!(pass(&cleaner).await.blobs, 1, "a later pass deletes it");
    assert_eq!(env.read_key(&blob_key(&sha256)).await, None);

    // An upload that inserted the row of bytes cleanup takes for an orphan (it placed them),
    // and has not committed its job yet.
    let orphan = bytes_of(96, 10_000);
    let sha256 = sha256_hex(&orphan);
    let key = blob_key(&sha256);
    env.put_key(&key, &orphan).await;
    let mut upload = env.db.begin().await.unwrap();
    let job = Uuid::now_v7();
    let statements = [
        "INSERT INTO blobs (owner, sha256, size, md5, store) VALUES ('default', $2, 10000, repeat('a', 32), $3)",
        "INSERT INTO jobs (id, owner, model, params, max_attempts, queue_timeout_ms, run_timeout_ms)
         VALUES ($1, 'default', 'example', '{}', 1, 60000, 60000)",
        "INSERT INTO files (id, job_id, owner, position, name, filename, sha256, content_type)
         VALUES ($1, $1, 'default', 0, 'input', 'input.bin', $2, 'application/octet-stream')",
    ];
    for statement in statements {
        sqlx::query(statement)
            .bind(job)
            .bind(&sha256)
            .bind(env.store_name())
            .execute(&mut *upload)
            .await
            .unwrap();
    }
    let report = pass(&cleaner).await;
    assert_eq!(
        (report.orphans, report.deferred),
        (0, 1),
        "left for later after a short wait"
    );
    assert_eq!(env.read_key(&key).await, Some(orphan.clone()));
    upload.commit().await.unwrap();
    assert_eq!(pass(&cleaner).await.orphans, 0, "the committed row owns the bytes");
    assert_eq!(env.read_key(&key).await, Some(orphan));
    assert_store_matches_rows(&env).await;
}
