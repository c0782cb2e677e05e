//! Local-first replication (`BATON_STORAGE_REPLICA_URL`) against the real emulators: uploads
//! stay on the volume and are copied to the object store in the background, verified; a replica
//! that is down never fails an upload and is caught up once back; a copy that does not match is
//! never counted; cleanup removes the copy of a deleted blob.

use std::time::Duration;

use baton::{
    cleanup::{Cleaner, CleanupConfig, PassOutcome, Retention},
    config::Settings,
    db::replicas,
    domain::{Owner, Sha256Hex},
    replication::{CopyError, ReplicationConfig, Replicator},
    storage::{Backend, Storage, StoreName},
};
use baton_testkit::object_stores::{Backend as TestBackend, Emulator, TestStore};
use futures::TryStreamExt;
use reqwest::multipart::Form;

use baton_e2e::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Settings of an app of `env` replicating its volume to `store`, with quick rounds and retries.
fn replicated_settings(env: &TestEnv, store: &TestStore) -> Settings {
    let mut settings = env.settings(
        &amqp_url(),
        &[
            "--storage-replica-url",
            &store.url,
            "--replication-interval",
            "100ms",
            "--replication-backoff-min",
            "100ms",
            "--replication-backoff-max",
            "1s",
        ],
    );
    settings.storage.store_env = store.env.clone();
    settings
}

/// The stores an app of these settings opens: the volume, and the replica.
async fn stores(settings: &Settings) -> (Storage, Backend) {
    let storage = settings.storage.open().await.expect("open the stores");
    let replica = storage.replica().expect("a replica is configured").clone();
    (storage, replica)
}

fn binary_job(bytes: &[u8]) -> Form {
    job_form(vec![(
        "input",
        file_part(bytes.to_vec(), "input.bin", "application/octet-stream"),
    )])
}

fn key(sha256: &str) -> (Owner, Sha256Hex) {
    (Owner::default_owner(), Sha256Hex::parse(sha256).unwrap())
}

/// When the blob's copy was verified, if it was.
async fn replicated(env: &TestEnv, sha256: &str) -> bool {
    sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM blob_replicas WHERE sha256 = $1 AND replicated_at IS NOT NULL)",
    )
    .bind(sha256)
    .fetch_one(&env.db)
    .await
    .unwrap()
}

async fn wait_replicated(env: &TestEnv, sha256: &str) {
    let done = eventually(DEADLINE, || replicated(env, sha256)).await;
    assert!(done, "blob {sha256} was never replicated");
}

/// The replica holds exactly `bytes` for the blob.
async fn assert_copy_is(replica: &Backend, bytes: &[u8]) {
    let (owner, sha256) = key(&sha256_hex(bytes));
    let size = bytes.len() as u64;
    let read: Vec<bytes::Bytes> = replica
        .read(&owner, &sha256, 0, size)
        .await
        .expect("the copy is there")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.concat(), bytes, "the replica's copy is the blob");
}

/// A metric's value in `/metrics` (0 when absent).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn uploads_and_blobs_stored_before_replication_are_copied_and_verified_on_s3_and_azure() {
    for backend in TestBackend::OBJECT_STORES {
        let env = TestEnv::new().await;
        let store = backend.test_store().await.unwrap();
        let before = bytes_of(1, 300_000);
        let plain = env.spawn_app().await;
        plain.submit_ok(binary_job(&before)).await;
        plain.stop().await;

        let settings = replicated_settings(&env, &store);
        let (_, replica) = stores(&settings).await;
        let app = TestEnv::spawn_app_from(settings).await;
        let after = bytes_of(2, 9 * 1024 * 1024 + 7);
        app.submit_ok(binary_job(&after)).await;

        for bytes in [&before, &after] {
            wait_replicated(&env, &sha256_hex(bytes)).await;
            assert_copy_is(&replica, bytes).await;
        }
        let keys = store.keys().await.unwrap();
        for bytes in [&before, &after] {
            let sha = sha256_hex(bytes);
            let key = format!("blobs/default/{}/{}/{sha}", &sha[0..2], &sha[2..4]);
            assert!(keys.contains(&key), "{}: {key} in {keys:?}", backend.name());
        }
        assert!(
            !keys.iter().any(|k| k.starts_with("staging/")),
            "{}: no staging object is left: {keys:?}",
            backend.name()
        );
        assert!(env.blob_path(&sha256_hex(&after)).exists(), "the volume keeps the blob");
        assert_eq!(metric(&app, "baton_replication_unreplicated_bytes").await, 0.0);
        assert_eq!(metric(&app, "baton_replication_lag_seconds").await, 0.0);
        assert!(metric(&app, "baton_replication_blobs_total").await >= 2.0);
        app.stop().await;
    }
}

#[tokio::test]
async fn uploads_succeed_while_the_replica_is_down_and_are_copied_once_it_is_back() {
    for backend in TestBackend::OBJECT_STORES {
        let dir = tempfile::tempdir().unwrap();
        let mut emulator = Emulator::start(backend, dir.path()).unwrap();
        let store = emulator.test_store().await.unwrap();
        let env = TestEnv::new().await;
        let settings = replicated_settings(&env, &store);
        let (_, replica) = stores(&settings).await;
        let app = TestEnv::spawn_app_from(settings).await;

        // Counters are the process's: count from here.
        let failures_before = metric(&app, "baton_replication_failures_total").await;
        emulator.stop().unwrap();
        let bytes = bytes_of(3, 100_000);
        app.submit_ok(binary_job(&bytes)).await;
        let sha = sha256_hex(&bytes);

        let failing = eventually(DEADLINE, || async {
            metric(&app, "baton_replication_failures_total").await >= failures_before + 2.0
        })
        .await;
        assert!(failing, "{}: failed copies are counted", backend.name());
        assert!(!replicated(&env, &sha).await);
        let error: Option<String> = sqlx::query_scalar("SELECT last_error FROM blob_replicas WHERE sha256 = $1")
            .bind(&sha)
            .fetch_one(&env.db)
            .await
            .unwrap();
        assert!(error.is_some(), "the failure is recorded");
        assert_eq!(
            metric(&app, "baton_replication_unreplicated_bytes").await,
            bytes.len() as f64
        );
        let first_lag = metric(&app, "baton_replication_lag_seconds").await;
        let grows = eventually(DEADLINE, || async {
            metric(&app, "baton_replication_lag_seconds").await >= first_lag + 1.0
        })
        .await;
        assert!(grows, "{}: the lag grows while the replica is down", backend.name());
        // Uploads keep working.
        app.submit_ok(binary_job(&bytes_of(4, 1000))).await;

        emulator.restart().await.unwrap();
        wait_replicated(&env, &sha).await;
        wait_replicated(&env, &sha256_hex(&bytes_of(4, 1000))).await;
        assert_copy_is(&replica, &bytes).await;
        let caught_up = eventually(DEADLINE, || async {
            metric(&app, "baton_replication_unreplicated_bytes").await == 0.0
                && metric(&app, "baton_replication_lag_seconds").await == 0.0
        })
        .await;
        assert!(caught_up, "{}: the backlog is gone", backend.name());
        app.stop().await;
    }
}

/// A replicator over `settings`' stores, retrying failed blobs at once.
async fn replicator(env: &TestEnv, settings: &Settings) -> (Replicator, Backend) {
    let (storage, replica) = stores(settings).await;
    let volume = Backend::Volume(storage.volume().unwrap().clone());
    let config = ReplicationConfig {
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(1),
        ..ReplicationConfig::default()
    };
    let replicator = Replicator::new(env.db.clone(), volume, replica.clone(), config).unwrap();
    (replicator, replica)
}

/// Places `bytes` in `store` under the key of the blob `sha256`, as a copy gone wrong would.
async fn place_wrong_copy(store: &Backend, sha256: &str, bytes: &[u8]) {
    let (owner, sha256) = key(sha256);
    let mut upload = store.upload();
    upload.write(bytes.to_vec().into()).await.unwrap();
    let written = upload.finish(store.name()).await.unwrap();
    store
        .place(written.staged, &owner, &sha256, bytes.len() as u64)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_remote_copy_that_does_not_match_is_never_counted_as_replicated() {
    for backend in TestBackend::OBJECT_STORES {
        let env = TestEnv::new().await;
        let store = backend.test_store().await.unwrap();
        let app = env.spawn_app().await;
        let bytes = bytes_of(5, 50_000);
        app.submit_ok(binary_job(&bytes)).await;
        let sha = sha256_hex(&bytes);
        let settings = replicated_settings(&env, &store);
        let (mut replicator, replica) = replicator(&env, &settings).await;

        // Same size, other bytes: a create-if-absent placement keeps it; the read-back does not.
        place_wrong_copy(&replica, &sha, &bytes_of(6, 50_000)).await;
        let round = replicator.run_once().await.unwrap();
        assert_eq!(
            (round.claimed, round.replicated, round.failed),
            (1, 0, 1),
            "{}",
            backend.name()
        );
        assert!(
            !replicated(&env, &sha).await,
            "{}: a wrong copy is not a replica",
            backend.name()
        );
        let error: String = sqlx::query_scalar("SELECT last_error FROM blob_replicas WHERE sha256 = $1")
            .bind(&sha)
            .fetch_one(&env.db)
            .await
            .unwrap();
        assert!(error.contains("does not match"), "{error}");
        let backlog = replicas::backlog(&env.db, &replica.name()).await.unwrap();
        assert_eq!(backlog.bytes, bytes.len() as i64);

        // The wrong copy was removed, so the next attempt writes the blob.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !replicated(&env, &sha).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: the blob is replicated on a later round",
                backend.name()
            );
            replicator.run_once().await.unwrap();
        }
        assert_copy_is(&replica, &bytes).await;

        // A copy that is gone, or cut short, does not verify.
        let (owner, sha256) = key(&sha);
        let size = bytes.len() as u64;
        assert!(
            baton::replication::verify(&replica, &owner, &sha256, size)
                .await
                .is_ok()
        );
        replica.remove(&owner, &sha256).await.unwrap();
        let missing = baton::replication::verify(&replica, &owner, &sha256, size).await;
        assert!(matches!(missing, Err(CopyError::Mismatch(_))), "{missing:?}");
        place_wrong_copy(&replica, &sha, &bytes[..1000]).await;
        let short = baton::replication::verify(&replica, &owner, &sha256, size).await;
        assert!(matches!(short, Err(CopyError::Mismatch(_))), "{short:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn cleanup_removes_the_replica_copy_of_a_deleted_blob() {
    let env = TestEnv::new().await;
    let store = TestBackend::S3.test_store().await.unwrap();
    let settings = replicated_settings(&env, &store);
    let (storage, replica) = stores(&settings).await;
    let app = TestEnv::spawn_app_from(settings).await;
    let (gone, kept) = (bytes_of(7, 20_000), bytes_of(8, 20_000));
    let gone_job = app.submit_ok(binary_job(&gone)).await;
    app.submit_ok(binary_job(&kept)).await;
    for bytes in [&gone, &kept] {
        wait_replicated(&env, &sha256_hex(bytes)).await;
    }
    let id = gone_job["id"].as_str().unwrap();
    let cancelled = app
        .http
        .post(app.url(&format!("/v1/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    app.wait_for_status(id, "cancelled").await;
    env.backdate_finished(id, Duration::from_secs(7200)).await;

    let cleaner = Cleaner::new(
        env.db.clone(),
        storage,
        CleanupConfig {
            retention: Retention::all(Duration::from_secs(3600)),
            ..CleanupConfig::default()
        },
    );
    let PassOutcome::Done(report) = cleaner.run_once().await.unwrap() else {
        panic!("no other pass runs");
    };
    assert_eq!(report.blobs, 1);

    let (owner, gone_sha) = key(&sha256_hex(&gone));
    assert_eq!(
        replica.blob_size(&owner, &gone_sha).await.unwrap(),
        None,
        "the copy is gone"
    );
    assert!(!env.blob_path(gone_sha.as_str()).exists(), "the volume's file is gone");
    assert_eq!(
        env.count("blob_replicas").await,
        1,
        "the replica row went with the blob"
    );
    assert_copy_is(&replica, &kept).await;
    assert!(replicated(&env, &sha256_hex(&kept)).await);
    assert_eq!(replica.name(), StoreName::from_stored(&store.url));
    app.stop().await;
}
