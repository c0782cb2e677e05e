//! The sweeps of every store: unfinished uploads (the volume's temp files, an object store's
//! staging objects), blobs without rows naming their store, rows without their bytes.

use std::time::Duration;

use baton::cleanup::{Cleaner, CleanupConfig, Retention};
use baton_testkit::object_stores::Backend;
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
    store_and_database_are_reconciled(Backend::Volume).await;
}

#[tokio::test]
async fn an_s3_bucket_and_the_database_are_reconciled_in_both_directions() {
    store_and_database_are_reconciled(Backend::S3).await;
}

#[tokio::test]
async fn an_azure_container_and_the_database_are_reconciled_in_both_directions() {
    store_and_database_are_reconciled(Backend::Azure).await;
}

async fn store_and_database_are_reconciled(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    let cleaner = env.cleaner(Retention::all(HOUR)).await;

    // A row whose bytes were removed behind Baton's back: reported, marked, its job told.
    let bytes = bytes_of(71, 40_000);
    let sha256 = sha256_hex(&bytes);
    let job = app.submit_ok(binary_job(&bytes)).await;
    let id = job["id"].as_str().unwrap();
    // Another blob stays, so that the store does not look unmounted.
    app.submit_ok(binary_job(&bytes_of(74, 1_000))).await;
    env.remove_key(&blob_key(&sha256)).await;
    let report = pass(&cleaner).await;
    assert_eq!((report.missing, report.newly_missing), (1, 1));
    let timeline = env.timeline(&app, id).await;
    assert_eq!(
        timeline.iter().filter(|k| *k == "file_missing").count(),
        1,
        "{timeline:?}"
    );
    assert_eq!(count_missing(&env).await, 1);
    assert_eq!(cleaner.dry_run().await.unwrap().missing, 1, "a dry run counts it too");
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

    // The same bytes uploaded again restore the blob and clear the mark.
    app.submit_ok(binary_job(&bytes)).await;
    assert_eq!(env.read_key(&blob_key(&sha256)).await, Some(bytes));
    assert_eq!(count_missing(&env).await, 0);
    assert_eq!(pass(&cleaner).await.missing, 0);

    // Bytes that no row names: kept while younger than the grace period, then removed.
    let orphan = bytes_of(72, 30_000);
    let orphan_key = blob_key(&sha256_hex(&orphan));
    env.put_key(&orphan_key, &orphan).await;
    // Names Baton does not give are not its to remove.
    env.put_key("blobs/default/notes.txt", b"an operator's note").await;
    assert_eq!(pass(&cleaner).await.orphans, 0, "younger than the grace period");
    assert!(env.read_key(&orphan_key).await.is_some());
    let late = cleaner_without_grace(&env, Retention::all(HOUR)).await;
    let planned = late.dry_run().await.unwrap();
    assert_eq!((planned.orphans, planned.orphan_bytes), (1, 30_000));
    assert!(env.read_key(&orphan_key).await.is_some(), "a dry run removes nothing");
    let report = pass(&late).await;
    assert_eq!((report.orphans, report.orphan_bytes), (1, 30_000));
    assert_eq!(env.read_key(&orphan_key).await, None);
    assert!(env.read_key("blobs/default/notes.txt").await.is_some());
    assert_eq!(pass(&late).await.missing, 0);
}

async fn count_missing(env: &BackendEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM blobs WHERE missing_at IS NOT NULL")
        .fetch_one(&env.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_uploads_staging_object_is_swept_after_the_grace_period_on_s3() {
    staging_objects_are_swept(Backend::S3).await;
}

#[tokio::test]
async fn an_uploads_staging_object_is_swept_after_the_grace_period_on_azure() {
    staging_objects_are_swept(Backend::Azure).await;
}

/// What an upload cut off by a crash leaves in an object store: its staging object.
async fn staging_objects_are_swept(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    let crashed = format!("staging/{}", Uuid::now_v7());
    env.put_key(&crashed, &bytes_of(61, 50_000)).await;

    let report = pass(&env.cleaner(Retention::all(HOUR)).await).await;
    assert_eq!(report.temp_files, 0, "younger than the grace period");
    let late = cleaner_without_grace(&env, Retention::all(HOUR)).await;
    let planned = late.dry_run().await.unwrap();
    assert_eq!((planned.temp_files, planned.temp_bytes), (1, 50_000));
    assert_eq!(env.staging_keys().await, vec![crashed], "a dry run removes nothing");
    let report = pass(&late).await;
    assert_eq!((report.temp_files, report.temp_bytes), (1, 50_000));
    assert_eq!(env.staging_keys().await, Vec::<String>::new());

    // Uploads after the sweep store and deduplicate as before.
    let bytes = bytes_of(63, 200_000);
    app.submit_ok(binary_job(&bytes)).await;
    app.submit_ok(binary_job(&bytes)).await;
    pass(&late).await;
    assert_eq!(env.read_key(&blob_key(&sha256_hex(&bytes))).await, Some(bytes));
    assert_store_matches_rows(&env).await;
}

#[tokio::test]
async fn an_object_whose_row_names_another_store_is_an_orphan_except_while_a_migration_into_its_store_runs() {
    for backend in Backend::OBJECT_STORES {
        let env = BackendEnv::new(backend).await;
        let app = env.spawn_app().await;
        // A blob whose row moved to another store (a migration killed after switching it, then
        // finished elsewhere): the copy here is nobody's.
        let bytes = bytes_of(75, 20_000);
        let sha256 = sha256_hex(&bytes);
        app.submit_ok(binary_job(&bytes)).await;
        let elsewhere = format!("{}-elsewhere", env.store_name());
        sqlx::query("UPDATE blobs SET store = $2 WHERE sha256 = $1")
            .bind(&sha256)
            .bind(&elsewhere)
            .execute(&env.db)
            .await
            .unwrap();
        let cleaner = cleaner_without_grace(&env, Retention::all(HOUR)).await;

        // While a migration into this store is unfinished, its copies have no row yet: kept.
        sqlx::query("INSERT INTO storage_migrations (source, target) VALUES ($1, $2)")
            .bind(&elsewhere)
            .bind(env.store_name())
            .execute(&env.db)
            .await
            .unwrap();
        assert_eq!(pass(&cleaner).await.orphans, 0, "{backend}");
        assert_eq!(env.read_key(&blob_key(&sha256)).await, Some(bytes.clone()));

        sqlx::query("UPDATE storage_migrations SET finished_at = now()")
            .execute(&env.db)
            .await
            .unwrap();
        let report = pass(&cleaner).await;
        assert_eq!((report.orphans, report.orphan_bytes), (1, 20_000), "{backend}");
        assert_eq!(env.read_key(&blob_key(&sha256)).await, None, "{backend}");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs WHERE store = $1")
            .bind(&elsewhere)
            .fetch_one(&env.db)
            .await
            .unwrap();
        assert_eq!(rows, 1, "the row in the other store is untouched");
    }
}

#[tokio::test]
async fn an_object_store_that_lists_no_blobs_while_rows_name_it_is_not_taken_for_lost_data() {
    for backend in Backend::OBJECT_STORES {
        let env = BackendEnv::new(backend).await;
        let app = env.spawn_app().await;
        let bytes = bytes_of(81, 1_000);
        app.submit_ok(binary_job(&bytes)).await;
        env.remove_key(&blob_key(&sha256_hex(&bytes))).await;
        let report = pass(&env.cleaner(Retention::all(HOUR)).await).await;
        assert_eq!(report.missing, 0, "{backend}");
        assert_eq!(count_missing(&env).await, 0, "{backend}");
    }
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
