use std::time::Duration;

use baton_testkit::object_stores::{Backend, Emulator, client_options, shared_emulator, unique_bucket_name};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, path::Path};

const MIB: usize = 1024 * 1024;

/// A new bucket on `backend`'s shared emulator.
async fn new_bucket(backend: Backend) -> String {
    let bucket = unique_bucket_name();
    shared_emulator(backend)
        .await
        .unwrap()
        .create_bucket(&bucket)
        .await
        .unwrap();
    bucket
}

/// A client on `bucket` with its own total request timeout and retries.
async fn client_with(backend: Backend, bucket: &str, timeout: Duration, retries: usize) -> Box<dyn ObjectStore> {
    let emulator = shared_emulator(backend).await.unwrap();
    let options = client_options().with_timeout(timeout).with_allow_http(true);
    let retry = RetryConfig {
        max_retries: retries,
        ..RetryConfig::default()
    };
    match emulator {
        Emulator::Moto(m) => Box::new(
            m.builder(bucket)
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .unwrap(),
        ),
        Emulator::Azurite(a) => Box::new(
            a.builder(bucket)
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .unwrap(),
        ),
    }
}

/// Reads the object as a consumer slower than the timeout: the pauses alone outlast it.
async fn read_slowly(client: &dyn ObjectStore, path: &Path) -> Result<usize, object_store::Error> {
    let mut stream = client.get(path).await?.into_stream();
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk?.len();
        // The slowness under test, not a wait for an outcome.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(total)
}

#[tokio::test]
async fn the_total_timeout_cuts_a_slow_download_unless_retries_resume_it_on_both_emulators() {
    let data = vec![7u8; 64 * MIB];
    for backend in Backend::OBJECT_STORES {
        let bucket = new_bucket(backend).await;
        let path = Path::from("baton/big");
        let emulator = shared_emulator(backend).await.unwrap();
        emulator
            .client(&bucket)
            .unwrap()
            .put(&path, PutPayload::from(data.clone()))
            .await
            .unwrap();

        let strict = client_with(backend, &bucket, Duration::from_secs(2), 0).await;
        let cut = read_slowly(strict.as_ref(), &path).await;
        assert!(
            matches!(cut, Err(object_store::Error::Generic { .. })),
            "{backend}: {cut:?}"
        );

        // Same timeout with the default retries: object_store resumes the body with ranged GETs.
        let resuming = client_with(backend, &bucket, Duration::from_secs(2), 10).await;
        assert_eq!(
            read_slowly(resuming.as_ref(), &path).await.unwrap(),
            data.len(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn the_total_timeout_covers_sending_a_put_body_on_both_emulators() {
    let data = vec![7u8; 128 * MIB];
    for backend in Backend::OBJECT_STORES {
        let client = client_with(backend, &new_bucket(backend).await, Duration::from_millis(50), 0).await;
        let put = client
            .put(&Path::from("baton/big"), PutPayload::from(data.clone()))
            .await;
        assert!(
            matches!(put, Err(object_store::Error::Generic { .. })),
            "{backend}: {put:?}"
        );
    }
}
