//! Submit → worker → result, with the bytes in each store: the worker reads object-stored
//! inputs through signed URLs into its cache.

use baton_e2e::*;

/// Bigger than one multipart part (8 MiB), so object stores get a real multipart upload.
const LARGE: usize = 9 << 20;

async fn a_job_runs_from_submit_to_result(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    let _worker = env.spawn_worker();

    let text = "one two three\nfour five\n";
    let large = bytes_of(21, LARGE);
    let form = job_form(vec![
        ("document", file_part(text, "notes.txt", "text/plain")),
        ("data", file_part(large.clone(), "data.bin", "application/octet-stream")),
    ]);
    let job = app.submit_ok(form).await;

    // 202 means the bytes are in the store, under their content address, and the rows say so.
    let sha = sha256_hex(&large);
    let key = format!("blobs/default/{}/{}/{sha}", &sha[0..2], &sha[2..4]);
    assert!(
        env.blob_keys().await.contains(&key),
        "{backend}: {:?}",
        env.keys().await
    );
    assert_eq!(env.read_blob(&key).await, large, "{backend}: the stored bytes");
    env.assert_store_matches_rows().await;

    let done = app.wait_for_status(job["id"].as_str().unwrap(), "succeeded").await;
    let inputs = done["result"]["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["kind"], "text");
    assert_eq!(inputs[0]["words"], 5);
    assert_eq!(inputs[1]["size"], LARGE);
    for input in inputs {
        assert_eq!(input["sha256_verified"], true, "{backend}: {done:#}");
    }
    assert_eq!(done["attempt"], 1);
    env.assert_store_matches_rows().await;
}

#[tokio::test]
async fn a_job_on_the_volume_runs_from_submit_to_result() {
    a_job_runs_from_submit_to_result(Backend::Volume).await;
}

#[tokio::test]
async fn a_job_on_s3_runs_from_submit_to_result_with_its_input_fetched_by_signed_url() {
    a_job_runs_from_submit_to_result(Backend::S3).await;
}

#[tokio::test]
async fn a_job_on_azure_blob_runs_from_submit_to_result_with_its_input_fetched_by_signed_url() {
    a_job_runs_from_submit_to_result(Backend::Azure).await;
}
