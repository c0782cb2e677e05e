//! Baton never loses a job: leases, fencing, lost workers, poison jobs, timeouts, reconciliation.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

fn text_job(text: &str) -> reqwest::multipart::Form {
    job_form(vec![("input", file_part(text.to_owned(), "a.txt", "text/plain"))])
}

#[tokio::test]
async fn heartbeats_keep_a_job_running_longer_than_its_lease() {
    let env = TestEnv::new().await;
    let app = env
        .spawn_app_with(&amqp_url(), &["--lease", "2s", "--reconcile-interval", "200ms"])
        .await;
    let _worker = env.spawn_worker();
    let job = app
        .submit_ok(text_job("long job").text("params", r#"{"sleep_ms": 5000}"#))
        .await;
    let id = job["id"].as_str().unwrap();
    let done = app
        .wait_for_job(id, Duration::from_secs(30), |j| {
            j["status"] != "queued" && j["status"] != "running"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["attempt"], 1, "never retried: the lease was renewed");
    let timeline = env.timeline(&app, id).await;
    assert!(timeline.contains(&"heartbeat".to_owned()), "{timeline:?}");
}

#[tokio::test]
async fn a_worker_that_stops_heartbeating_loses_its_lease_and_its_late_result_is_ignored() {
    let env = TestEnv::new().await;
    let app = env
        .spawn_app_with(&amqp_url(), &["--lease", "1s", "--reconcile-interval", "200ms"])
        .await;
    let job = app.submit_ok(text_job("hang")).await;
    let id = job["id"].as_str().unwrap().to_owned();

    // A worker takes it, starts, acks early, and then hangs: no heartbeats.
    let hung = ManualWorker::connect(&env).await;
    let (message, delivery) = hung.take(&env).await;
    hung.send(&message, json!({"type": "started"})).await;
    delivery.delivery.ack(Default::default()).await.unwrap();
    let retried = app
        .wait_for_job(&id, Duration::from_secs(20), |j| j["attempt"] == 2)
        .await;
    assert_eq!(retried["error"]["code"], "lease_expired");

    // A healthy worker runs attempt 2; the hung worker's late success for attempt 1 is fenced off.
    let _worker = env.spawn_worker();
    let done = app.wait_for_status(&id, "succeeded").await;
    hung.send(&message, json!({"type": "succeeded", "result": {"stale": true}}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = app.job(&id).await;
    assert_eq!(after["result"], done["result"]);
    assert_eq!(after["attempt"], 2);
    assert_ne!(after["worker"].as_str(), Some(hung.id.as_str()));
    let timeline = env.timeline(&app, &id).await;
    assert!(timeline.iter().filter(|k| *k == "started").count() == 2, "{timeline:?}");
}

#[tokio::test]
async fn a_worker_killed_mid_job_hands_the_job_back_and_it_is_retried() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app.submit_ok(text_job("killed")).await;
    let id = job["id"].as_str().unwrap().to_owned();

    let doomed = ManualWorker::connect(&env).await;
    let (message, _unacked) = doomed.take(&env).await;
    doomed.send(&message, json!({"type": "started"})).await;
    app.wait_for_status(&id, "running").await;
    doomed.die().await;

    let retried = app
        .wait_for_job(&id, Duration::from_secs(20), |j| j["attempt"] == 2)
        .await;
    assert_eq!(retried["error"]["code"], "worker_lost");
    let _worker = env.spawn_worker();
    let done = app.wait_for_status(&id, "succeeded").await;
    assert_eq!(done["attempts_used"], 2);
}

#[tokio::test]
async fn a_poison_job_that_kills_every_worker_fails_after_its_maximum_attempts() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app.submit_ok(text_job("poison").text("max_attempts", "2")).await;
    let id = job["id"].as_str().unwrap().to_owned();

    for attempt in 1..=2 {
        let victim = ManualWorker::connect(&env).await;
        let (message, _unacked) = victim.take(&env).await;
        assert_eq!(message.attempt, attempt);
        victim.send(&message, json!({"type": "started"})).await;
        app.wait_for_job(&id, Duration::from_secs(10), |j| {
            j["status"] == "running" && j["attempt"] == attempt
        })
        .await;
        victim.die().await;
    }
    let failed = app.wait_for_status(&id, "failed").await;
    assert_eq!(failed["error"]["code"], "worker_lost");
    assert_eq!(failed["attempts_used"], 2);
}

#[tokio::test]
async fn a_message_handed_back_unstarted_is_published_again_without_using_an_attempt() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app.submit_ok(text_job("returned")).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let shy = ManualWorker::connect(&env).await;
    let (message, delivery) = shy.take(&env).await;
    assert_eq!(message.attempt, 1);
    delivery
        .delivery
        .nack(lapin::options::BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let _worker = env.spawn_worker();
    let done = app.wait_for_status(&id, "succeeded").await;
    // A new attempt number fences off the returned copy, but the budget is untouched.
    assert_eq!(done["attempt"], 2);
    assert_eq!(done["attempts_used"], 1);
    assert!(env.timeline(&app, &id).await.contains(&"returned".to_owned()));
}

#[tokio::test]
async fn a_job_nobody_starts_within_its_queue_timeout_fails_with_the_reason() {
    let env = TestEnv::new().await;
    let app = env
        .spawn_app_with(&amqp_url(), &["--reconcile-interval", "200ms"])
        .await;
    let job = app.submit_ok(text_job("nobody").text("queue_timeout", "1s")).await;
    let failed = app.wait_for_status(job["id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["error"]["code"], "queue_timeout");
    assert_eq!(failed["queue_timeout_ms"], 1000);
}

#[tokio::test]
async fn a_job_running_past_its_run_timeout_fails_and_its_worker_is_told_to_stop() {
    let env = TestEnv::new().await;
    let app = env
        .spawn_app_with(&amqp_url(), &["--reconcile-interval", "200ms"])
        .await;
    let (handler, mut stopped) = CancellableHandler::new();
    let _worker = env.spawn_worker_with(handler, |_| {});
    let job = app.submit_ok(text_job("slow").text("run_timeout", "1s")).await;
    let failed = app.wait_for_status(job["id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["error"]["code"], "run_timeout");
    let told = tokio::time::timeout(Duration::from_secs(10), stopped.recv()).await;
    assert!(matches!(told, Ok(Some(_))), "the handler saw the cancellation");
}

#[tokio::test]
async fn a_job_whose_message_was_lost_is_found_and_dispatched_again() {
    let env = TestEnv::new().await;
    let app = env
        .spawn_app_with(
            &amqp_url(),
            &["--redispatch-after", "1s", "--reconcile-interval", "300ms"],
        )
        .await;
    let job = app.submit_ok(text_job("lost")).await;
    let id = job["id"].as_str().unwrap().to_owned();
    app.wait_for_job(&id, Duration::from_secs(10), |j| j["dispatched_at"].is_string())
        .await;

    // The queue is deleted under the job, message and all.
    let connection = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(env.job_queue("example").as_str().into(), Default::default())
        .await
        .unwrap();
    connection.close(200, "done".into()).await.unwrap();

    let _worker = env.spawn_worker();
    let done = app.wait_for_status(&id, "succeeded").await;
    assert_eq!(done["attempt"], 1);
    assert!(env.timeline(&app, &id).await.contains(&"redispatched".to_owned()));
}

#[tokio::test]
async fn submits_fail_with_503_while_postgres_is_unreachable_and_work_again_after() {
    let env = TestEnv::new().await;
    let gate = TcpGate::postgres(true).await;
    let url = format!("postgres://postgres@{}/{}", gate.addr(), env.db_name);
    let settings_url = ["--database-url", url.as_str()];
    let app = env.spawn_app_with(&amqp_url(), &settings_url).await;
    app.submit_ok(text_job("before")).await;

    gate.close();
    let response = app.submit(text_job("during")).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(env.temp_files().is_empty());
    assert_eq!(env.count("jobs").await, 1, "nothing committed during the outage");

    gate.open();
    let recovered = eventually(Duration::from_secs(20), || async {
        app.submit(text_job("after")).await.status() == 202
    })
    .await;
    assert!(recovered, "submits work again without restarting Baton");
}
