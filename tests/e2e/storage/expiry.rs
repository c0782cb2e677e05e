//! A worker that finds an input's signed URL expired (or about to) hands the message back
//! before `started`; Baton publishes the attempt again with a fresh URL, without using the
//! job's attempt budget, and the worker fetches the input from the store with it.

use std::time::Duration;

use lapin::options::BasicAckOptions;
use time::OffsetDateTime;

use baton_e2e::*;

async fn a_message_held_past_its_url_expiry_runs_again_with_a_fresh_url(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    let job = app
        .submit_ok(job_form(vec![("input", file_part("one two\n", "f.txt", "text/plain"))]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();

    // Baton's own message, held (as by a slow queue) until its URL is within the margin.
    let manual = ManualWorker::connect(&env).await;
    let (mut message, original) = manual.take(&env).await;
    assert_eq!(message.version, 2, "{backend}: a message naming an object");
    let object = message.files[0].object.as_mut().expect("an object-stored input");
    assert!(object.url.starts_with("http"), "{backend}: {}", object.url);
    assert!(
        object.expires_at > OffsetDateTime::now_utc() + Duration::from_secs(3600),
        "{backend}: valid for the queue and run timeouts"
    );
    object.expires_at = OffsetDateTime::now_utc() + Duration::from_secs(2);
    env.publish_raw(&env.job_queue("example"), &serde_json::to_vec(&message).unwrap())
        .await;
    original.delivery.ack(BasicAckOptions::default()).await.unwrap();
    manual.die().await;

    let _worker = env.spawn_worker();
    let done = app
        .wait_for_job(&id, Duration::from_secs(30), |j| {
            j["status"] == "succeeded" || j["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{backend}: {done:#}");
    assert_eq!(done["result"]["inputs"][0]["words"], 2, "{backend}: {done:#}");
    assert_eq!(done["attempt"], 2, "{backend}: published again as a new attempt");
    assert_eq!(
        done["attempts_used"], 1,
        "{backend}: the handed-back attempt cost nothing"
    );
    let timeline = env.timeline(&app, &id).await;
    assert!(timeline.contains(&"returned".to_owned()), "{backend}: {timeline:?}");
    assert_eq!(
        timeline.iter().filter(|k| *k == "started").count(),
        1,
        "{backend}: the handed-back attempt never started: {timeline:?}"
    );
}

#[tokio::test]
async fn on_s3_a_message_held_past_its_url_expiry_runs_again_with_a_fresh_url_at_no_cost() {
    a_message_held_past_its_url_expiry_runs_again_with_a_fresh_url(Backend::S3).await;
}

#[tokio::test]
async fn on_azure_blob_a_message_held_past_its_url_expiry_runs_again_with_a_fresh_url_at_no_cost() {
    a_message_held_past_its_url_expiry_runs_again_with_a_fresh_url(Backend::Azure).await;
}
