//! Worker events move jobs forward only; duplicates and stale attempts change nothing.

use std::time::Duration;

use serde_json::{Value, json};

use baton_e2e::*;

async fn send(env: &TestEnv, event: Value) {
    env.publish_raw(&env.events_queue(), event.to_string().as_bytes()).await;
}

fn event(job: &str, attempt: u32, kind: &str, extra: Value) -> Value {
    let mut event = json!({"version": 1, "job_id": job, "attempt": attempt, "worker": "w1", "type": kind});
    event
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    event
}

/// Waits until the job's timeline records `count` ignored events: every event sent so far
/// has then been applied (or ignored, which is what the test checks).
async fn wait_for_ignored(env: &TestEnv, app: &TestApp, id: &str, count: usize) {
    let seen = eventually(Duration::from_secs(20), || async {
        env.timeline(app, id).await.iter().filter(|k| *k == "ignored").count() >= count
    })
    .await;
    assert!(
        seen,
        "{count} ignored events recorded: {:?}",
        env.timeline(app, id).await
    );
}

#[tokio::test]
async fn duplicate_and_stale_worker_events_change_nothing() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app
        .submit_ok(job_form(vec![("input", file_part("x", "a.txt", "text/plain"))]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();

    send(&env, event(&id, 1, "started", json!({}))).await;
    let running = app.wait_for_status(&id, "running").await;
    send(&env, event(&id, 1, "started", json!({}))).await;
    send(&env, event(&id, 1, "succeeded", json!({"result": {"answer": 42}}))).await;
    let done = app.wait_for_status(&id, "succeeded").await;
    assert_eq!(done["result"], json!({"answer": 42}));
    assert_eq!(
        done["started_at"], running["started_at"],
        "a duplicate start does not restart the clock"
    );

    // Duplicates, late failures, and events of attempts that never existed.
    send(&env, event(&id, 1, "succeeded", json!({"result": {"answer": 0}}))).await;
    send(
        &env,
        event(
            &id,
            1,
            "failed",
            json!({"error": {"code": "late", "message": "late"}, "retryable": false}),
        ),
    )
    .await;
    send(&env, event(&id, 1, "started", json!({}))).await;
    send(&env, event(&id, 2, "succeeded", json!({"result": {"answer": 7}}))).await;
    send(
        &env,
        event(
            &id,
            0,
            "failed",
            json!({"error": {"code": "x", "message": "x"}, "retryable": true}),
        ),
    )
    .await;
    env.publish_raw(&env.events_queue(), b"not json at all").await;
    wait_for_ignored(&env, &app, &id, 6).await;

    let after = app.job(&id).await;
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["result"], json!({"answer": 42}));
    assert_eq!(after["attempt"], 1);
    assert_eq!(after["finished_at"], done["finished_at"]);
    assert!(after["error"].is_null());
}

#[tokio::test]
async fn a_retryable_failure_requeues_the_next_attempt_and_ignores_the_old_one() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app
        .submit_ok(job_form(vec![("input", file_part("y", "a.txt", "text/plain"))]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();

    send(&env, event(&id, 1, "started", json!({}))).await;
    send(
        &env,
        event(
            &id,
            1,
            "failed",
            json!({"error": {"code": "oom", "message": "out of memory"}, "retryable": true}),
        ),
    )
    .await;
    let retried = app
        .wait_for_job(&id, Duration::from_secs(10), |j| j["attempt"] == 2)
        .await;
    assert_eq!(retried["status"], "queued");
    assert_eq!(retried["error"]["code"], "oom");

    // The old attempt's late success must not count.
    send(&env, event(&id, 1, "succeeded", json!({"result": "stale"}))).await;
    wait_for_ignored(&env, &app, &id, 1).await;
    assert_eq!(app.job(&id).await["status"], "queued");

    // The next attempt is published again; a worker picks it up and finishes the job.
    let _worker = env.spawn_worker();
    let done = app.wait_for_status(&id, "succeeded").await;
    assert_eq!(done["attempt"], 2);
    assert!(done["error"].is_null());
}

#[tokio::test]
async fn a_permanent_failure_fails_the_job_with_its_error() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app
        .submit_ok(job_form(vec![("input", file_part("z", "a.txt", "text/plain"))]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    send(
        &env,
        event(
            &id,
            1,
            "failed",
            json!({"error": {"code": "bad_input", "message": "unreadable"}, "retryable": false}),
        ),
    )
    .await;
    let failed = app.wait_for_status(&id, "failed").await;
    assert_eq!(failed["error"], json!({"code": "bad_input", "message": "unreadable"}));
    assert!(failed["finished_at"].is_string());
}
