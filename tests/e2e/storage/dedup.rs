//! The same bytes from the same owner are stored once in every store, even when uploads race:
//! on object stores each upload is staged, then copied to its address only if absent.

use futures::future::join_all;

use baton_e2e::*;

async fn racing_and_repeated_uploads_store_the_bytes_once(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    // Over one multipart part: every racer stages a multipart upload of its own.
    let bytes = bytes_of(12, 9 << 20);

    let racers = (0..4).map(|i| {
        app.submit_ok(job_form(vec![(
            "input",
            file_part(bytes.clone(), &format!("{i}.bin"), "application/octet-stream"),
        )]))
    });
    let jobs = join_all(racers).await;
    // Once more after the race: a dedup hit on a blob already in place.
    let again = app
        .submit_ok(job_form(vec![(
            "input",
            file_part(bytes.clone(), "again.bin", "application/octet-stream"),
        )]))
        .await;

    for job in jobs.iter().chain([&again]) {
        assert_eq!(job["files"][0]["sha256"], sha256_hex(&bytes), "{backend}");
    }
    let blobs = env.blob_keys().await;
    assert_eq!(blobs.len(), 1, "{backend}: one blob in the store: {blobs:?}");
    assert_eq!(env.read_blob(&blobs[0]).await, bytes, "{backend}");
    assert_eq!(env.count("blobs").await, 1, "{backend}");
    assert_eq!(env.count("files").await, 5, "{backend}");
    assert_eq!(env.count("jobs").await, 5, "{backend}");
    env.assert_store_matches_rows().await;
}

#[tokio::test]
async fn on_the_volume_racing_and_repeated_uploads_store_the_bytes_once() {
    racing_and_repeated_uploads_store_the_bytes_once(Backend::Volume).await;
}

#[tokio::test]
async fn on_s3_racing_and_repeated_uploads_store_the_bytes_once() {
    racing_and_repeated_uploads_store_the_bytes_once(Backend::S3).await;
}

#[tokio::test]
async fn on_azure_blob_racing_and_repeated_uploads_store_the_bytes_once() {
    racing_and_repeated_uploads_store_the_bytes_once(Backend::Azure).await;
}
