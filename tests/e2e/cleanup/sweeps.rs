//! The sweeps of the volume: temp files of interrupted uploads, blob files without rows, rows
//! without files.

use std::time::Duration;

use baton::cleanup::{Cleaner, CleanupConfig, Retention};
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::*;
use baton_e2e::*;

#[tokio::test]
async fn an_interrupted_uploads_temp_file_is_swept_after_the_grace_period_and_a_live_upload_is_not() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    // What a Baton killed mid-upload leaves, two hours ago and ten minutes ago.
    let crashed = env.storage_dir().join(format!("tmp/{}.part", Uuid::now_v7()));
    std::fs::write(&crashed, bytes_of(61, 50_000)).unwrap();
    age_file(&crashed, 2 * HOUR);
    let recent = env.storage_dir().join(format!("tmp/{}.part", Uuid::now_v7()));
    std::fs::write(&recent, bytes_of(62, 1_000)).unwrap();
    age_file(&recent, 10 * MINUTE);

    // An upload in progress: half of its file sent, the rest still to come.
    let bytes = bytes_of(63, 200_000);
    let (chunks, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let part = Part::stream(reqwest::Body::wrap_stream(body))
        .file_name("slow.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    let form = Form::new().text("model", "example").part("input", part);
    let upload = tokio::spawn(app.http.post(app.url("/v1/jobs")).multipart(form).send());
    chunks
        .send(Ok(Bytes::copy_from_slice(&bytes[..100_000])))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || async { env.temp_files().len() == 3 }).await);

    let cleaner = env.cleaner(Retention::all(HOUR));
    let planned = cleaner.dry_run().await.unwrap();
    assert_eq!((planned.temp_files, planned.temp_bytes), (1, 50_000));
    assert!(crashed.exists(), "a dry run removes nothing");
    let report = pass(&cleaner).await;
    assert_eq!((report.temp_files, report.temp_bytes), (1, 50_000));
    assert!(!crashed.exists());
    assert!(recent.exists(), "younger than the grace period");
    assert_eq!(env.temp_files().len(), 2, "the live upload's file stays");

    chunks
        .send(Ok(Bytes::copy_from_slice(&bytes[100_000..])))
        .await
        .unwrap();
    drop(chunks);
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["files"][0]["sha256"], sha256_hex(&bytes));
    assert_eq!(std::fs::read(env.blob_path(&sha256_hex(&bytes))).unwrap(), bytes);
}

#[tokio::test]
async fn the_volume_and_the_database_are_reconciled_in_both_directions() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let cleaner = env.cleaner(Retention::all(HOUR));

    // A row whose file was removed behind Baton's back: reported, marked, its job told.
    let bytes = bytes_of(71, 40_000);
    let sha256 = sha256_hex(&bytes);
    let job = app.submit_ok(binary_job(&bytes)).await;
    let id = job["id"].as_str().unwrap();
    std::fs::remove_file(env.blob_path(&sha256)).unwrap();
    let report = pass(&cleaner).await;
    assert_eq!((report.missing, report.newly_missing), (1, 1));
    let timeline = env.timeline(&app, id).await;
    assert_eq!(
        timeline.iter().filter(|k| *k == "file_missing").count(),
        1,
        "{timeline:?}"
    );
    let missing: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs WHERE missing_at IS NOT NULL")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(missing, 1);
    let report = pass(&cleaner).await;
    assert_eq!(
        (report.missing, report.newly_missing),
        (1, 0),
        "reported again, marked once"
    );
    assert_eq!(
        env.timeline(&app, id)
            .await
            .iter()
            .filter(|k| *k == "file_missing")
            .count(),
        1
    );

    // The same bytes uploaded again restore the file and clear the mark.
    app.submit_ok(binary_job(&bytes)).await;
    assert_eq!(std::fs::read(env.blob_path(&sha256)).unwrap(), bytes);
    let missing: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs WHERE missing_at IS NOT NULL")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(missing, 0);
    assert_eq!(pass(&cleaner).await.missing, 0);

    // Files that no row knows: removed once older than the grace period.
    let old = bytes_of(72, 30_000);
    let young = bytes_of(73, 30_000);
    for (orphan, age) in [(&old, 2 * HOUR), (&young, 10 * MINUTE)] {
        let path = env.blob_path(&sha256_hex(orphan));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, orphan).unwrap();
        age_file(&path, age);
    }
    let planned = cleaner.dry_run().await.unwrap();
    assert_eq!((planned.orphans, planned.orphan_bytes), (1, 30_000));
    assert!(env.blob_path(&sha256_hex(&old)).exists(), "a dry run removes nothing");
    let report = pass(&cleaner).await;
    assert_eq!((report.orphans, report.orphan_bytes), (1, 30_000));
    assert!(!env.blob_path(&sha256_hex(&old)).exists());
    assert!(
        env.blob_path(&sha256_hex(&young)).exists(),
        "younger than the grace period"
    );
    // Files Baton did not name are not its to remove.
    let stranger = env.storage_dir().join("blobs/default/notes.txt");
    std::fs::write(&stranger, "an operator's note").unwrap();
    age_file(&stranger, 2 * HOUR);
    pass(&cleaner).await;
    assert!(stranger.exists());
}

#[tokio::test]
async fn an_empty_volume_is_taken_for_an_unmounted_one_and_nothing_is_marked_missing() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    app.submit_ok(binary_job(&bytes_of(81, 1_000))).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let config = CleanupConfig {
        retention: Retention::all(HOUR),
        interval: HOUR,
        grace: HOUR,
        batch: 500,
    };
    let storage = baton::storage::Storage::volume_at(elsewhere.path()).unwrap();
    let report = pass(&Cleaner::new(env.db.clone(), storage, config)).await;
    assert_eq!(report.missing, 0);
    let missing: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs WHERE missing_at IS NOT NULL")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(missing, 0);
}
