//! Retention: each terminal status after its own period, never an unfinished job, and a blob
//! only once the last job using it is gone.

use baton::cleanup::Retention;
use serde_json::{Value, json};

use super::*;
use baton_e2e::*;

async fn send_event(env: &TestEnv, job: &str, kind: &str, extra: Value) {
    let mut event = json!({"version": 1, "job_id": job, "attempt": 1, "worker": "w1", "type": kind});
    event
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    env.publish_raw(&env.events_queue(), event.to_string().as_bytes()).await;
}

/// Submits distinct bytes and brings the job to `status` the way a worker or a client would.
async fn job_in(env: &TestEnv, app: &TestApp, status: &str, seed: u64) -> String {
    let job = app.submit_ok(binary_job(&bytes_of(seed, 10_000))).await;
    let id = job["id"].as_str().unwrap().to_owned();
    match status {
        "queued" => {}
        "cancelled" => assert_eq!(post(app, &format!("/v1/jobs/{id}/cancel")).await, 200),
        _ => {
            send_event(env, &id, "started", json!({})).await;
            app.wait_for_status(&id, "running").await;
            match status {
                "running" => {}
                "succeeded" => send_event(env, &id, "succeeded", json!({"result": {}})).await,
                "failed" => {
                    let error = json!({"error": {"code": "bad_input", "message": "no"}, "retryable": false});
                    send_event(env, &id, "failed", error).await;
                }
                other => panic!("no way to reach {other}"),
            }
        }
    }
    app.wait_for_status(&id, status).await;
    id
}

#[tokio::test]
async fn retention_deletes_each_terminal_status_after_its_own_period_and_never_an_unfinished_job() {
    let env = TestEnv::new().await;
    let app = env.spawn_app_with(&amqp_url(), &["--lease", "10m"]).await;
    env.wait_for_events_queue().await;
    let retention = Retention {
        succeeded: HOUR,
        failed: 2 * HOUR,
        cancelled: 3 * HOUR,
    };

    let mut kept = Vec::new();
    let mut expired = Vec::new();
    for (seed, status) in [(1, "succeeded"), (3, "failed"), (5, "cancelled")] {
        let period = retention.of(baton::domain::JobStatus::parse(status).unwrap()).unwrap();
        let young = job_in(&env, &app, status, seed).await;
        env.backdate_finished(&young, period - MINUTE).await;
        let old = job_in(&env, &app, status, seed + 1).await;
        env.backdate_finished(&old, period + MINUTE).await;
        kept.push(young);
        expired.push(old);
    }
    for (seed, status) in [(7, "queued"), (8, "running")] {
        let id = job_in(&env, &app, status, seed).await;
        sqlx::query("UPDATE jobs SET created_at = now() - interval '400 days' WHERE id = $1::uuid")
            .bind(&id)
            .execute(&env.db)
            .await
            .unwrap();
        kept.push(id);
    }
    let cleaner = env.cleaner(retention);

    let planned = cleaner.dry_run().await.unwrap();
    assert_eq!(env.count("jobs").await, 8, "a dry run deletes nothing");
    assert_eq!(env.blob_files().len(), 8);

    let report = pass(&cleaner).await;
    assert_eq!(
        (report.jobs_succeeded, report.jobs_failed, report.jobs_cancelled),
        (1, 1, 1)
    );
    assert_eq!((report.files, report.blobs, report.blob_bytes), (3, 3, 30_000));
    assert_eq!(report, planned, "the dry run predicted the pass");
    for id in &expired {
        assert!(!job_exists(&app, id).await, "{id} expired");
    }
    for id in &kept {
        assert!(job_exists(&app, id).await, "{id} is kept");
    }
    assert_eq!(env.count("files").await, 5);
    assert_eq!(env.count("blobs").await, 5);
    assert_eq!(env.blob_files().len(), 5);
    assert_volume_matches_rows(&env).await;
    assert!(pass(&cleaner).await.is_empty(), "nothing left to do");
}

#[tokio::test]
async fn a_blob_shared_by_two_jobs_stays_until_the_last_job_using_it_expires() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let _worker = env.spawn_worker();
    let bytes = bytes_of(21, 100_000);
    let first = app.submit_ok(binary_job(&bytes)).await;
    let second = app.submit_ok(binary_job(&bytes)).await;
    let (first, second) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());
    app.wait_for_status(first, "succeeded").await;
    let done = app.wait_for_status(second, "succeeded").await;
    let cleaner = env.cleaner(Retention::all(HOUR));

    env.backdate_finished(first, 2 * HOUR).await;
    let report = pass(&cleaner).await;
    assert_eq!((report.jobs(), report.files, report.blobs), (1, 1, 0));
    assert!(!job_exists(&app, first).await);
    assert_eq!(env.count("blobs").await, 1);
    let file_id = done["files"][0]["id"].as_str().unwrap();
    let content = app
        .http
        .get(app.url(&format!("/v1/files/{file_id}/content")))
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(
        content.bytes().await.unwrap(),
        bytes,
        "the remaining job's file is intact"
    );

    env.backdate_finished(second, 2 * HOUR).await;
    let report = pass(&cleaner).await;
    assert_eq!((report.jobs(), report.files, report.blobs), (1, 1, 1));
    assert_eq!(report.blob_bytes, 100_000);
    assert_eq!(env.count("blobs").await, 0);
    assert!(env.blob_files().is_empty());
}
