//! The same bytes from the same owner are stored once, even when uploads race.

use futures::future::join_all;

use baton_e2e::*;

#[tokio::test]
async fn the_same_bytes_uploaded_twice_are_stored_once() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let bytes = bytes_of(11, 200_000);

    let first = app
        .submit_ok(job_form(vec![(
            "input",
            file_part(bytes.clone(), "a.bin", "application/octet-stream"),
        )]))
        .await;
    let second = app
        .submit_ok(job_form(vec![(
            "input",
            file_part(bytes.clone(), "b.bin", "application/octet-stream"),
        )]))
        .await;

    assert_ne!(first["id"], second["id"]);
    assert_ne!(first["files"][0]["id"], second["files"][0]["id"]);
    assert_eq!(first["files"][0]["sha256"], second["files"][0]["sha256"]);
    assert_eq!(second["files"][0]["filename"], "b.bin");
    assert_eq!(env.blob_files().len(), 1);
    assert_eq!(env.count("blobs").await, 1);
    assert_eq!(env.count("files").await, 2);
    assert!(env.temp_files().is_empty());
}

#[tokio::test]
async fn identical_uploads_racing_end_with_one_blob_and_every_job_committed() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let bytes = bytes_of(12, 2 << 20);

    let submissions = (0..8).map(|i| {
        let form = job_form(vec![(
            "input",
            file_part(bytes.clone(), &format!("{i}.bin"), "application/octet-stream"),
        )]);
        app.submit_ok(form)
    });
    let jobs = join_all(submissions).await;

    assert_eq!(jobs.len(), 8);
    let blobs = env.blob_files();
    assert_eq!(blobs.len(), 1, "one blob on disk: {blobs:?}");
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), bytes);
    assert_eq!(env.count("blobs").await, 1);
    assert_eq!(env.count("files").await, 8);
    assert_eq!(env.count("jobs").await, 8);
    assert!(env.temp_files().is_empty(), "{:?}", env.temp_files());
}

#[tokio::test]
async fn the_same_bytes_twice_in_one_job_are_stored_once() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app
        .submit_ok(job_form(vec![
            ("left", file_part("same bytes", "l.txt", "text/plain")),
            ("right", file_part("same bytes", "r.txt", "text/plain")),
        ]))
        .await;
    assert_eq!(job["files"].as_array().unwrap().len(), 2);
    assert_eq!(env.blob_files().len(), 1);
    assert!(env.temp_files().is_empty());
}
