//! Passes killed midway and finished by the next one (on every store), and one pass at a time
//! across replicas.

use std::{
    ops::ControlFlow,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use baton::cleanup::{CleanupConfig, CleanupError, CleanupReport, PassOutcome, Retention, Step};
use baton_testkit::object_stores::Backend;
use futures::FutureExt;
use tokio::sync::Notify;
use uuid::Uuid;

use super::*;
use baton_e2e::*;

/// Three finished jobs (two sharing a blob), one queued job, an abandoned blob file and an
/// abandoned temp file: something for every step of a pass.
async fn untidy_volume(env: &TestEnv, app: &TestApp, seed: u64) -> String {
    let shared = bytes_of(seed, 20_000);
    for bytes in [&shared, &shared, &bytes_of(seed + 1, 20_000)] {
        let job = app.submit_ok(binary_job(bytes)).await;
        let id = job["id"].as_str().unwrap();
        assert_eq!(post(app, &format!("/v1/jobs/{id}/cancel")).await, 200);
    }
    let queued = app.submit_ok(binary_job(&bytes_of(seed + 2, 20_000))).await;

    let orphan = bytes_of(seed + 3, 20_000);
    let orphan_path = env.blob_path(&sha256_hex(&orphan));
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, &orphan).unwrap();
    age_file(&orphan_path, 2 * HOUR);
    let temp = env.storage_dir().join(format!("tmp/{}.part", Uuid::now_v7()));
    std::fs::write(&temp, bytes_of(seed + 4, 5_000)).unwrap();
    age_file(&temp, 2 * HOUR);
    queued["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_pass_killed_at_any_step_leaves_no_row_without_its_file_and_the_next_pass_finishes() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let config = CleanupConfig {
        retention: Retention::all(Duration::ZERO),
        interval: HOUR,
        grace: HOUR,
        // One job per transaction: more places to be killed at.
        batch: 1,
    };
    let mut queued = Vec::new();
    for kill_at in 1_usize.. {
        assert!(kill_at < 50, "a pass has fewer steps than that");
        queued.push(untidy_volume(&env, &app, 1_000 + 10 * kill_at as u64).await);

        let steps = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&steps);
        let killed = env.cleaner_with(config.clone()).with_hook(hook(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == kill_at {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }));
        let outcome = killed.run_once().await;
        assert_rows_have_files(&env).await;

        // Later, past the grace period, another pass runs.
        age_everything(env.storage_dir(), 2 * HOUR);
        let cleaner = env.cleaner_with(config.clone());
        assert!(
            eventually(Duration::from_secs(10), || async {
                matches!(cleaner.run_once().await, Ok(PassOutcome::Done(_)))
            })
            .await
        );
        assert_volume_matches_rows(&env).await;
        assert!(env.temp_files().is_empty());
        assert_eq!(
            env.count("jobs").await,
            queued.len() as i64,
            "only the queued jobs remain"
        );
        assert_eq!(env.count("blobs").await, queued.len() as i64);
        for id in &queued {
            assert!(job_exists(&app, id).await);
        }
        match outcome {
            Err(CleanupError::Interrupted) => {}
            Ok(PassOutcome::Done(_)) => break,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_pass_killed_at_any_step_leaves_no_row_without_its_object_and_the_next_pass_finishes_on_s3() {
    killed_passes_leave_no_row_without_its_bytes(Backend::S3).await;
}

#[tokio::test]
async fn a_pass_killed_at_any_step_leaves_no_row_without_its_blob_and_the_next_pass_finishes_on_azure() {
    killed_passes_leave_no_row_without_its_bytes(Backend::Azure).await;
}

/// As on the volume, with a grace period that everything already stored is past (an object's
/// age cannot be set back).
async fn killed_passes_leave_no_row_without_its_bytes(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    let config = CleanupConfig {
        retention: Retention::all(Duration::ZERO),
        interval: HOUR,
        grace: Duration::ZERO,
        batch: 1,
    };
    let mut queued = Vec::new();
    for kill_at in 1_usize.. {
        assert!(kill_at < 50, "a pass has fewer steps than that");
        queued.push(untidy_store(&env, &app, 2_000 + 10 * kill_at as u64).await);

        let steps = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&steps);
        let killed = env.cleaner_with(config.clone()).await.with_hook(hook(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == kill_at {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }));
        let outcome = killed.run_once().await;
        assert_rows_have_bytes(&env).await;

        let cleaner = env.cleaner_with(config.clone()).await;
        assert!(
            eventually(Duration::from_secs(10), || async {
                matches!(cleaner.run_once().await, Ok(PassOutcome::Done(_)))
            })
            .await
        );
        assert_store_matches_rows(&env).await;
        assert_eq!(
            env.count("jobs").await,
            queued.len() as i64,
            "{backend}: only the queued jobs remain"
        );
        for id in &queued {
            assert!(job_exists(&app, id).await);
        }
        match outcome {
            Err(CleanupError::Interrupted) => {}
            Ok(PassOutcome::Done(_)) => break,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
}

/// [`untidy_volume`] on any store: an abandoned blob and an abandoned staging object or temp
/// file.
async fn untidy_store(env: &BackendEnv, app: &TestApp, seed: u64) -> String {
    let shared = bytes_of(seed, 20_000);
    for bytes in [&shared, &shared, &bytes_of(seed + 1, 20_000)] {
        let job = app.submit_ok(binary_job(bytes)).await;
        let id = job["id"].as_str().unwrap();
        assert_eq!(post(app, &format!("/v1/jobs/{id}/cancel")).await, 200);
    }
    let queued = app.submit_ok(binary_job(&bytes_of(seed + 2, 20_000))).await;
    let orphan = bytes_of(seed + 3, 20_000);
    env.put_key(&blob_key(&sha256_hex(&orphan)), &orphan).await;
    let staging = match env.backend() {
        Backend::Volume => format!("tmp/{}.part", Uuid::now_v7()),
        _ => format!("staging/{}", Uuid::now_v7()),
    };
    env.put_key(&staging, &bytes_of(seed + 4, 5_000)).await;
    queued["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_upload_that_adopts_the_file_of_a_blob_row_just_deleted_keeps_it() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let bytes = bytes_of(41, 64_000);
    let old = app.submit_ok(binary_job(&bytes)).await;
    assert_eq!(
        post(&app, &format!("/v1/jobs/{}/cancel", old["id"].as_str().unwrap())).await,
        200
    );

    // Killed after the row was deleted, before its file was removed.
    let killed = env
        .cleaner(Retention::all(Duration::ZERO))
        .with_hook(hook(|step| match step {
            Step::BlobRowDeleted => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }));
    assert!(matches!(killed.run_once().await, Err(CleanupError::Interrupted)));
    assert_eq!(env.count("blobs").await, 0);
    assert_eq!(env.blob_files().len(), 1, "the file outlived its row");

    let new = app.submit_ok(binary_job(&bytes)).await;
    age_everything(env.storage_dir(), 2 * HOUR);
    let report = pass(&env.cleaner(Retention::all(Duration::ZERO))).await;
    assert_eq!(report.orphans, 0, "the new upload's row owns the file");
    assert_volume_matches_rows(&env).await;
    let _worker = env.spawn_worker();
    let done = app.wait_for_status(new["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(done["result"]["inputs"][0]["sha256_verified"], true);
}

#[tokio::test]
async fn only_one_instance_runs_a_pass_at_a_time_and_two_apps_clean_up_together() {
    let env = TestEnv::new().await;
    baton::db::migrate(&env.db).await.unwrap();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (on_enter, on_release) = (Arc::clone(&entered), Arc::clone(&release));
    let first = env.cleaner(Retention::all(HOUR)).with_hook(Arc::new(move |step| {
        let (entered, release) = (Arc::clone(&on_enter), Arc::clone(&on_release));
        async move {
            if step == Step::Started {
                entered.notify_one();
                release.notified().await;
            }
            ControlFlow::Continue(())
        }
        .boxed()
    }));
    let running = tokio::spawn(async move { first.run_once().await });
    entered.notified().await;
    let second = env.cleaner(Retention::all(HOUR));
    assert_eq!(second.run_once().await.unwrap(), PassOutcome::Busy);
    release.notify_one();
    assert_eq!(
        running.await.unwrap().unwrap(),
        PassOutcome::Done(CleanupReport::default())
    );
    assert_eq!(
        second.run_once().await.unwrap(),
        PassOutcome::Done(CleanupReport::default())
    );

    // Two replicas with the scheduled pass, zero retention, and work arriving.
    let flags = ["--retention", "0s", "--cleanup-interval", "100ms"];
    let apps = [
        env.spawn_app_with(&amqp_url(), &flags).await,
        env.spawn_app_with(&amqp_url(), &flags).await,
    ];
    let _worker = env.spawn_worker();
    for i in 0..12_u64 {
        apps[i as usize % 2]
            .submit_ok(binary_job(&bytes_of(50 + i % 4, 30_000)))
            .await;
    }
    let all_gone = eventually(Duration::from_secs(60), || async {
        env.count("jobs").await == 0 && env.count("blobs").await == 0 && env.blob_files().is_empty()
    })
    .await;
    assert!(
        all_gone,
        "jobs {}, blobs {}",
        env.count("jobs").await,
        env.count("blobs").await
    );
    let metrics = apps[0]
        .http
        .get(apps[0].url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("baton_cleanup_jobs_deleted_total"), "{metrics}");
}
