use std::time::{Duration, Instant};

use baton_testkit::object_stores::{Backend, Emulator, unique_bucket_name};
use object_store::{ObjectStoreExt, PutPayload, RetryConfig};

use crate::helpers::key;

async fn started(backend: Backend) -> (tempfile::TempDir, Emulator, String) {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(backend, dir.path()).unwrap();
    let bucket = unique_bucket_name();
    emulator.create_bucket(&bucket).await.unwrap();
    (dir, emulator, bucket)
}

#[tokio::test]
async fn azurite_keeps_blobs_across_a_graceful_stop_and_across_a_kill_once_its_metadata_is_saved() {
    let (_dir, mut azurite, container) = started(Backend::Azure).await;
    assert!(azurite.keeps_data_across_restart());
    let port = azurite.port();
    let client = azurite.client(&container).unwrap();
    client
        .put(&key("before-stop"), PutPayload::from_static(b"1"))
        .await
        .unwrap();

    azurite.stop().unwrap();
    azurite.restart().await.unwrap();
    assert_eq!(azurite.port(), port);
    let got = client.get(&key("before-stop")).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), b"1");

    client
        .put(&key("before-kill"), PutPayload::from_static(b"2"))
        .await
        .unwrap();
    azurite.wait_for_writes_saved().unwrap();
    azurite.kill().unwrap();
    azurite.restart().await.unwrap();
    let got = client.get(&key("before-kill")).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), b"2");
}

#[tokio::test]
async fn moto_comes_back_on_the_same_port_with_its_buckets_but_no_objects() {
    let (_dir, mut moto, bucket) = started(Backend::S3).await;
    assert!(!moto.keeps_data_across_restart());
    let port = moto.port();
    let client = moto.client(&bucket).unwrap();
    client.put(&key("lost"), PutPayload::from_static(b"1")).await.unwrap();

    moto.kill().unwrap();
    moto.restart().await.unwrap();
    assert_eq!(moto.port(), port);
    let err = client.head(&key("lost")).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    client.put(&key("after"), PutPayload::from_static(b"2")).await.unwrap();
}

#[tokio::test]
async fn a_stopped_emulator_fails_requests_at_once_without_retries_and_serves_again_after_restart() {
    for backend in Backend::OBJECT_STORES {
        let (_dir, mut emulator, bucket) = started(backend).await;
        let no_retries = RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        };
        let client = emulator.client_with_retry(&bucket, no_retries).unwrap();
        emulator.stop().unwrap();
        let asked = Instant::now();
        let err = client.put(&key("x"), PutPayload::from_static(b"x")).await.unwrap_err();
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{backend}: {:?}",
            asked.elapsed()
        );
        assert!(matches!(err, object_store::Error::Generic { .. }), "{backend}: {err}");
        emulator.restart().await.unwrap();
        client.put(&key("x"), PutPayload::from_static(b"x")).await.unwrap();
    }
}
