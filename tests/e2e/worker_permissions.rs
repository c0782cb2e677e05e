//! Workers as least-privilege RabbitMQ users: a user made with `rabbitmqctl` and given exactly
//! the permissions `protocol/README.md` documents for one model runs the example worker binary
//! for that model (also when it starts before Baton ever declared its queues), and is refused
//! another model's queue, which ends the worker with a clear error instead of a reconnection
//! loop.

use std::{path::Path, time::Duration};

use lapin::{Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable};

use baton_e2e::*;

fn text_job(model: &str, text: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("model", model.to_owned())
        .part("input", file_part(text.to_owned(), "a.txt", "text/plain"))
}

/// Messages ready in `queue`, looked up by the administrator (guest).
async fn ready_messages(queue: &str) -> u32 {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("{queue} exists: {e}"));
    connection.close(200, "done".into()).await.ok();
    declared.message_count()
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Submits a text job for `example` and asserts the worker whose log is `log` completed it.
async fn assert_completes_a_job(app: &TestApp, log: &Path) {
    let job = app.submit_ok(text_job("example", "hello least privilege\n")).await;
    let id = job["id"].as_str().unwrap();
    let done = app
        .wait_for_job(id, Duration::from_secs(60), |job| {
            matches!(job["status"].as_str(), Some("succeeded" | "failed"))
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done:#}\nworker log:\n{}", log_of(log));
    assert_eq!(done["attempt"], 1);
    let input = &done["result"]["inputs"][0];
    assert_eq!((input["lines"].as_u64(), input["words"].as_u64()), (Some(1), Some(3)));
}

#[tokio::test]
async fn the_example_worker_as_a_least_privilege_user_completes_a_job_of_its_model() {
    let env = TestEnv::new().await;
    let user = WorkerUser::create(&env.prefix, "example").await;
    let app = env.spawn_app().await;
    env.wait_for_worker_topology().await;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("worker.log");
    let worker = env.spawn_worker_process(&user.amqp_url(), "example", &log);

    assert_completes_a_job(&app, &log).await;

    // Nothing the worker did was refused or retried, and it stops cleanly.
    let status = worker.stop(Duration::from_secs(15)).await;
    let text = log_of(&log);
    assert!(
        !text.contains("ACCESS_REFUSED") && !text.contains("reconnecting"),
        "worker log:\n{text}"
    );
    assert!(status.is_some_and(|s| s.success()), "worker exit: {status:?}\n{text}");
}

#[tokio::test]
async fn a_least_privilege_worker_started_before_baton_ever_ran_waits_for_baton_and_then_serves() {
    let env = TestEnv::new().await;
    let user = WorkerUser::create(&env.prefix, "example").await;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("worker.log");
    let worker = env.spawn_worker_process(&user.amqp_url(), "example", &log);
    // It may not declare Baton's events queue, so it reports it missing and tries again.
    let missing = format!("NOT_FOUND - no queue '{}'", env.events_queue());
    let waiting = eventually(Duration::from_secs(30), || {
        let text = log_of(&log);
        let waited = text.contains("reconnecting") && text.contains(&missing);
        async move { waited }
    })
    .await;
    assert!(waiting, "the worker did not wait for Baton:\n{}", log_of(&log));

    let app = env.spawn_app().await;
    assert_completes_a_job(&app, &log).await;
    let status = worker.stop(Duration::from_secs(15)).await;
    let text = log_of(&log);
    assert!(
        !text.lines().any(|line| line.starts_with("error: ")),
        "worker log:\n{text}"
    );
    assert!(status.is_some_and(|s| s.success()), "worker exit: {status:?}\n{text}");
}

#[tokio::test]
async fn a_worker_user_pointed_at_another_models_queue_exits_with_access_refused_and_leaves_the_job_queued() {
    let env = TestEnv::new().await;
    env.uses_model("other");
    let user = WorkerUser::create(&env.prefix, "example").await;
    let app = env.spawn_app().await;
    let job = app.submit_ok(text_job("other", "not yours\n")).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_job(id, Duration::from_secs(30), |job| job["dispatched_at"].is_string())
        .await;

    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("worker.log");
    let mut worker = env.spawn_worker_process(&user.amqp_url(), "other", &log);
    let exited = until_some(Duration::from_secs(30), Duration::from_millis(100), || {
        let status = worker.exited();
        async move { status }
    })
    .await;
    let text = log_of(&log);
    let status = exited.unwrap_or_else(|| panic!("the worker kept running after a refusal:\n{text}"));

    assert_eq!(status.code(), Some(1), "exit status {status}; log:\n{text}");
    let queue = env.job_queue("other");
    let error = text
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{text}"));
    assert!(error.contains("RabbitMQ refused access"), "{error}");
    assert!(error.contains("ACCESS_REFUSED"), "{error}");
    assert!(
        error.contains(&format!("'{queue}'")),
        "the error names the queue: {error}"
    );
    assert!(error.contains(&user.name), "the error names the user: {error}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("reconnecting"), "a refusal is not retried:\n{text}");

    // The job for the other model is untouched: queued, never started, its message still there.
    let job = app.job(id).await;
    assert_eq!(job["status"], "queued", "{job:#}");
    assert_eq!(job["attempt"], 1);
    assert!(job["started_at"].is_null(), "{job:#}");
    assert!(!env.timeline(&app, id).await.contains(&"started".to_owned()));
    assert_eq!(ready_messages(&queue).await, 1);
}
