//! An upload over a limit is refused in every store and leaves nothing: no row, no blob, no
//! staging object, no multipart upload left open.

use serde_json::Value;

use baton_e2e::*;

async fn an_upload_over_the_file_limit_is_413_and_leaves_nothing(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    // Past one multipart part (8 MiB) before the limit is hit: the object store has an upload
    // under way to abort.
    let app = env.spawn_app_with(&["--max-file-bytes", "12MiB"]).await;
    let form = job_form(vec![(
        "input",
        file_part(bytes_of(1, 20 << 20), "big.bin", "application/octet-stream"),
    )]);
    let response = app.submit(form).await;
    assert_eq!(response.status(), 413, "{backend}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "file_too_large", "{backend}: {body}");

    env.assert_store_matches_rows().await;
    assert!(env.keys().await.is_empty(), "{backend}: {:?}", env.keys().await);
    for table in ["jobs", "files", "blobs", "outbox"] {
        assert_eq!(env.count(table).await, 0, "{backend}: rows left in {table}");
    }
}

#[tokio::test]
async fn on_the_volume_an_upload_over_the_file_limit_is_413_and_leaves_nothing() {
    an_upload_over_the_file_limit_is_413_and_leaves_nothing(Backend::Volume).await;
}

#[tokio::test]
async fn on_s3_an_upload_over_the_file_limit_is_413_and_leaves_nothing() {
    an_upload_over_the_file_limit_is_413_and_leaves_nothing(Backend::S3).await;
}

#[tokio::test]
async fn on_azure_blob_an_upload_over_the_file_limit_is_413_and_leaves_nothing() {
    an_upload_over_the_file_limit_is_413_and_leaves_nothing(Backend::Azure).await;
}
