//! The object store failing under Baton and its workers: an upload in flight gets `503
//! storage_unavailable` and leaves nothing; a worker that cannot fetch an input retries, then
//! fails the attempt as retryable, and the job succeeds once the store is back.

use std::time::Duration;

use baton_testkit::object_stores::Emulator;
use baton_worker::{cache::RetryPolicy, example::ExampleHandler};
use reqwest::{
    header,
    multipart::{Form, Part},
};
use serde_json::Value;
use tokio::sync::mpsc;

use baton_e2e::*;

const MIB: usize = 1 << 20;

/// An emulator of this test's own (to stop and restart) and an environment on a bucket of it.
async fn on_private_emulator(backend: Backend) -> (Emulator, BackendEnv, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(backend, dir.path()).expect("start the emulator");
    let store = emulator.test_store().await.expect("a bucket");
    (emulator, BackendEnv::on(store).await, dir)
}

/// A one-file job form whose bytes the test sends when it wants.
fn fed_form() -> (Form, mpsc::Sender<Result<Vec<u8>, std::io::Error>>) {
    let (sender, mut receiver) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let part = Part::stream(body)
        .file_name("fed.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    (Form::new().text("model", "example").part("input", part), sender)
}

async fn the_store_stopped_mid_upload_answers_503_and_leaves_nothing(backend: Backend) {
    let (mut emulator, env, _dir) = on_private_emulator(backend).await;
    let app = env.spawn_app().await;

    let (form, feed) = fed_form();
    let request = tokio::spawn(app.http.post(app.url("/v1/jobs")).multipart(form).send());
    // More than one part (8 MiB): the multipart upload is under way in the store.
    feed.send(Ok(vec![7; 9 * MIB])).await.unwrap();
    if backend == Backend::S3 {
        let started = eventually(Duration::from_secs(20), || async {
            env.multipart_uploads_in_progress().await == 1
        })
        .await;
        assert!(started, "the multipart upload reached the store");
    }
    emulator.stop().expect("stop the emulator");
    feed.send(Ok(vec![8; 9 * MIB])).await.ok();
    drop(feed);

    let response = request.await.unwrap().expect("an answer, not a cut connection");
    assert_eq!(response.status(), 503, "{backend}");
    assert_eq!(response.headers()[header::RETRY_AFTER], "2", "{backend}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable", "{backend}: {body}");
    for table in ["jobs", "files", "blobs", "outbox"] {
        assert_eq!(env.count(table).await, 0, "{backend}: rows left in {table}");
    }

    emulator.restart().await.expect("restart the emulator");
    if emulator.keeps_data_across_restart() {
        // Only a store that keeps its data can show that nothing was left in it: moto comes
        // back empty whatever Baton did.
        env.assert_store_matches_rows().await;
        assert!(env.keys().await.is_empty(), "{backend}: {:?}", env.keys().await);
    }

    // The same Baton takes uploads again once the store is back.
    let job = app
        .submit_ok(job_form(vec![(
            "input",
            file_part(bytes_of(3, 2 * MIB), "b.bin", "application/octet-stream"),
        )]))
        .await;
    assert_eq!(job["status"], "queued", "{backend}");
    env.assert_store_matches_rows().await;
}

#[tokio::test]
async fn azure_blob_stopped_mid_upload_gives_503_storage_unavailable_and_leaves_nothing_in_the_store() {
    the_store_stopped_mid_upload_answers_503_and_leaves_nothing(Backend::Azure).await;
}

#[tokio::test]
async fn s3_stopped_mid_upload_gives_503_storage_unavailable_and_no_rows() {
    the_store_stopped_mid_upload_answers_503_and_leaves_nothing(Backend::S3).await;
}

/// On Azurite only: the input must still be in the store after the restart, and moto comes back
/// empty.
#[tokio::test]
async fn a_worker_that_cannot_reach_the_store_retries_fails_the_attempt_retryable_and_the_job_succeeds_later() {
    let (mut emulator, env, _dir) = on_private_emulator(Backend::Azure).await;
    let app = env.spawn_app_with(&["--max-attempts", "5"]).await;
    let job = app
        .submit_ok(job_form(vec![(
            "input",
            file_part("fetch me\n", "f.txt", "text/plain"),
        )]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();

    emulator.stop().expect("stop the emulator");
    let _worker = env.spawn_worker_with(ExampleHandler, |config| {
        config.cache.retry = RetryPolicy {
            tries: 3,
            first_delay: Duration::from_millis(200),
        };
    });
    // The first attempt failed retryable: Baton scheduled the next one and recorded why.
    let retry = until_some(Duration::from_secs(60), Duration::from_millis(100), || async {
        let events = app.get_json(&format!("/v1/jobs/{id}/events")).await;
        events["events"]
            .as_array()?
            .iter()
            .find(|e| e["kind"] == "retried")
            .cloned()
    })
    .await
    .expect("the first attempt failed and was retried");
    assert_eq!(retry["attempt"], 1, "{retry:#}");
    let error = &retry["detail"]["error"];
    assert_eq!(error["code"], "input_unavailable", "{retry:#}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("after 3 tries"),
        "tried again before failing: {message}"
    );

    emulator.restart().await.expect("restart the emulator");
    let done = app
        .wait_for_job(&id, Duration::from_secs(60), |job| {
            job["status"] == "succeeded" || job["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["result"]["inputs"][0]["sha256_verified"], true, "{done:#}");
}
