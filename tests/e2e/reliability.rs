//! Baton never loses a job: leases, fencing, lost workers, poison jobs, timeouts, reconciliation.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use baton_worker::{Handler, Job, JobError, example::ExampleHandler};
use serde_json::{Value, json};

use baton_e2e::*;

fn text_job(text: &str) -> reqwest::multipart::Form {
    job_form(vec![("input", file_part(text.to_owned(), "a.txt", "text/plain"))])
}

#[tokio::test]
async fn job_messages_tell_workers_the_lease_and_to_heartbeat_three_times_per_lease() {
    let env = TestEnv::new().await;
    let app = env.spawn_app_with(&amqp_url(), &["--lease", "20s"]).await;
    app.submit_ok(text_job("paced")).await;
    let (message, _unacked) = ManualWorker::connect(&env).await.take(&env).await;
    assert_eq!(message.lease_ms, Some(20_000));
    assert_eq!(message.heartbeat_interval_ms, Some(6_666));
}

#[tokio::test]
async fn heartbeats_at_the_interval_in_the_job_message_keep_a_job_running_longer_than_its_lease() {
    let env = TestEnv::new().await;
    let app = env
        .spawn_app_with(&amqp_url(), &["--lease", "2s", "--reconcile-interval", "200ms"])
        .await;
    // The worker's own interval is only for messages that do not carry one: here it would never
    // fire, so only the message's 666 ms can keep the lease.
    let _worker = env.spawn_worker_with(ExampleHandler, |config| {
        config.fallback_heartbeat_interval = Duration::from_secs(3600);
    });
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
    let ignored = |timeline: Vec<String>| timeline.iter().filter(|k| *k == "ignored").count();
    let ignored_before = ignored(env.timeline(&app, &id).await);
    hung.send(&message, json!({"type": "succeeded", "result": {"stale": true}}))
        .await;
    let handled = eventually(Duration::from_secs(10), || async {
        ignored(env.timeline(&app, &id).await) > ignored_before
    })
    .await;
    assert!(handled, "the stale success was never recorded as ignored");
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
    let gate = postgres_gate(true).await;
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

/// The example model, counting how often it is run.
struct CountingHandler {
    runs: Arc<AtomicUsize>,
}

impl Handler for CountingHandler {
    async fn handle(&self, job: Job) -> Result<Value, JobError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        ExampleHandler.handle(job).await
    }
}

#[tokio::test]
async fn a_second_delivery_of_an_attempt_a_worker_is_running_is_dropped_and_the_first_reports() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app
        .submit_ok(text_job("delivered twice").text("params", r#"{"sleep_ms": 1500}"#))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();

    // Two copies of attempt 1 in the queue, as when Baton publishes an attempt again.
    let taker = ManualWorker::connect(&env).await;
    let (_, original) = taker.take(&env).await;
    for _ in 0..2 {
        env.publish_raw(&env.job_queue("example"), &original.delivery.data)
            .await;
    }
    original.delivery.ack(Default::default()).await.unwrap();
    taker.die().await;

    let runs = Arc::new(AtomicUsize::new(0));
    let _worker = env.spawn_worker_with(
        CountingHandler {
            runs: Arc::clone(&runs),
        },
        |_| {},
    );
    let done = app.wait_for_status(&id, "succeeded").await;
    assert_eq!(done["attempt"], 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the model ran once");
    let timeline = env.timeline(&app, &id).await;
    assert_eq!(timeline.iter().filter(|k| *k == "started").count(), 1, "{timeline:?}");
    // Acked, not handed back: a returned copy of a running attempt would have cost it.
    assert!(
        !timeline.iter().any(|k| k == "returned" || k == "retried"),
        "{timeline:?}"
    );
}
