//! Cancellation, manual retry, idempotent submits, the timeline and metrics.

use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use baton_e2e::*;

fn text_job(text: &str) -> reqwest::multipart::Form {
    job_form(vec![("input", file_part(text.to_owned(), "a.txt", "text/plain"))])
}

async fn post(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.http.post(app.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_cancelled_queued_job_never_starts() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app.submit_ok(text_job("never")).await;
    let id = job["id"].as_str().unwrap();
    let (status, cancelled) = post(&app, &format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["status"], "cancelled");

    // A job submitted after it is done once the worker has consumed past the cancelled one.
    let _worker = env.spawn_worker();
    let later = app.submit_ok(text_job("after")).await;
    app.wait_for_status(later["id"].as_str().unwrap(), "succeeded").await;
    let after = app.job(id).await;
    assert_eq!(after["status"], "cancelled");
    assert!(after["started_at"].is_null());
    assert!(!env.timeline(&app, id).await.contains(&"started".to_owned()));
}

#[tokio::test]
async fn cancelling_a_running_job_tells_its_handler_and_ends_it_cancelled() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let (handler, mut stopped) = CancellableHandler::new();
    let _worker = env.spawn_worker_with(handler, |_| {});
    let job = app.submit_ok(text_job("stop me")).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "running").await;

    let (status, body) = post(&app, &format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")));
    let told = tokio::time::timeout(Duration::from_secs(10), stopped.recv()).await;
    assert!(matches!(told, Ok(Some(_))), "the handler was told to stop");
    assert_eq!(app.job(id).await["status"], "cancelled");
}

#[tokio::test]
async fn cancelling_a_finished_job_is_a_409_and_retrying_a_running_one_too() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let _worker = env.spawn_worker();
    let job = app.submit_ok(text_job("done")).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded").await;
    let (status, body) = post(&app, &format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("job_finished")));
    let (status, body) = post(&app, &format!("/v1/jobs/{id}/retry")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("job_not_retryable"))
    );
    let (status, _) = post(&app, &format!("/v1/jobs/{}/cancel", uuid::Uuid::now_v7())).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn retrying_a_failed_job_runs_it_again() {
    let env = TestEnv::new().await;
    let app = env
        .spawn_app_with(&amqp_url(), &["--reconcile-interval", "200ms"])
        .await;
    let job = app.submit_ok(text_job("again").text("queue_timeout", "1s")).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "failed").await;

    let _worker = env.spawn_worker();
    let (status, body) = post(&app, &format!("/v1/jobs/{id}/retry")).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("queued")));
    let done = app.wait_for_status(id, "succeeded").await;
    assert_eq!(done["attempt"], 2);
    assert_eq!(done["attempts_used"], 1);
}

#[tokio::test]
async fn a_repeated_submit_with_the_same_idempotency_key_returns_the_original_and_stores_nothing() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let send = |key: &'static str, text: &'static str| {
        app.http
            .post(app.url("/v1/jobs"))
            .header("idempotency-key", key)
            .multipart(text_job(text))
            .send()
    };
    let first = send("order-42", "same").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();

    let again = send("order-42", "same").await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(env.count("jobs").await, 1);
    assert_eq!(env.count("files").await, 1);
    assert!(env.temp_files().is_empty());

    let different = send("order-42", "different").await.unwrap();
    assert_eq!(different.status(), 422);
    let body: Value = different.json().await.unwrap();
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(env.count("jobs").await, 1);
    assert_eq!(env.blob_files().len(), 1, "the different upload left nothing behind");
}

#[tokio::test]
async fn concurrent_submits_with_one_idempotency_key_create_one_job() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let requests = (0..6).map(|_| {
        app.http
            .post(app.url("/v1/jobs"))
            .header("idempotency-key", "k1")
            .multipart(text_job("racing"))
            .send()
    });
    let responses = join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(env.count("jobs").await, 1);
}

#[tokio::test]
async fn invalid_job_options_are_rejected_with_their_own_codes() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    for (part, value, code) in [
        ("max_attempts", "0", "invalid_max_attempts"),
        ("max_attempts", "many", "invalid_max_attempts"),
        ("queue_timeout", "soon", "invalid_timeout"),
        ("run_timeout", "90d", "invalid_timeout"),
        ("run_timeout", "500ms", "invalid_timeout"),
    ] {
        let response = app.submit(text_job("x").text(part, value)).await;
        assert_eq!(response.status(), 400, "{part}={value}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{part}={value}");
    }
    let response = app
        .http
        .post(app.url("/v1/jobs"))
        .header("idempotency-key", "")
        .multipart(text_job("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(env.count("jobs").await, 0);
    assert!(env.temp_files().is_empty());
}

#[tokio::test]
async fn every_job_keeps_a_timeline_of_what_happened() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let _worker = env.spawn_worker();
    let job = app.submit_ok(text_job("story")).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded").await;
    let response = app
        .http
        .get(app.url(&format!("/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    // A heartbeat may or may not fall within such a short job.
    let events: Vec<&Value> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "heartbeat")
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["received", "stored", "dispatched", "started", "succeeded"],
        "{body:#}"
    );
    assert!(events[3]["worker"].as_str().unwrap().starts_with("test-worker-"));
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let times: Vec<time::OffsetDateTime> = events
        .iter()
        .map(|e| time::OffsetDateTime::parse(e["at"].as_str().unwrap(), rfc3339).unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "in order");
}

#[tokio::test]
async fn metrics_report_jobs_uploads_and_connections_in_prometheus_format() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let _worker = env.spawn_worker();
    let job = app.submit_ok(text_job("counted")).await;
    app.wait_for_status(job["id"].as_str().unwrap(), "succeeded").await;
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for name in [
        "baton_jobs{",
        "baton_jobs_submitted_total",
        "baton_job_queue_wait_seconds_bucket",
        "baton_job_run_seconds_bucket",
        "baton_dispatch_backlog",
        "baton_upload_bytes_total",
        "baton_rabbitmq_connected",
        "baton_postgres_up 1",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        text.contains(r#"baton_jobs{model="example",status="succeeded"} 1"#),
        "{text}"
    );
}
