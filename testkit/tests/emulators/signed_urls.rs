use std::time::Duration;

use baton_testkit::{
    eventually,
    object_stores::{Backend, Emulator, shared_emulator, unique_bucket_name},
};
use object_store::{
    ObjectStoreExt, PutPayload,
    path::Path,
    prefix::PrefixStore,
    signer::{Method, Signer, Url},
};
use reqwest::StatusCode;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A bucket (or container) on the shared emulator of `backend` holding `key` = "0123456789",
/// and a concrete client for it, as a signer.
async fn signer_with_object(backend: Backend, key: &Path) -> Box<dyn Signer> {
    let emulator = shared_emulator(backend).await.unwrap();
    let bucket = unique_bucket_name();
    emulator.create_bucket(&bucket).await.unwrap();
    let payload = || PutPayload::from_static(b"0123456789");
    match emulator {
        Emulator::Moto(m) => {
            let client = m.client(&bucket).unwrap();
            client.put(key, payload()).await.unwrap();
            Box::new(client)
        }
        Emulator::Azurite(a) => {
            let client = a.client(&bucket).unwrap();
            client.put(key, payload()).await.unwrap();
            Box::new(client)
        }
    }
}

async fn fetch(url: &Url, range: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut request = reqwest::Client::new().get(url.as_str());
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

fn tampered(url: &Url) -> Url {
    let text = url
        .as_str()
        .replace("sig=", "sig=AAAA")
        .replace("X-Amz-Signature=", "X-Amz-Signature=0000");
    Url::parse(&text).unwrap()
}

#[tokio::test]
async fn a_plain_get_on_a_signed_url_returns_the_bytes_and_honours_range_on_both_emulators() {
    for backend in Backend::OBJECT_STORES {
        let key = Path::from("baton/blobs/k");
        let signer = signer_with_object(backend, &key).await;
        let url = signer
            .signed_url(Method::GET, &key, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            fetch(&url, None).await,
            (StatusCode::OK, b"0123456789".to_vec()),
            "{backend}"
        );
        let part = fetch(&url, Some("bytes=2-4")).await;
        assert_eq!(part, (StatusCode::PARTIAL_CONTENT, b"234".to_vec()), "{backend}");
    }
}

#[tokio::test]
async fn object_store_caps_no_ttl_so_an_eight_day_url_is_signed_and_served_on_both_emulators() {
    for backend in Backend::OBJECT_STORES {
        let key = Path::from("baton/blobs/k");
        let signer = signer_with_object(backend, &key).await;
        let url = signer.signed_url(Method::GET, &key, 8 * DAY).await.unwrap();
        assert_eq!(fetch(&url, None).await.0, StatusCode::OK, "{backend}");
    }
}

#[tokio::test]
async fn azurite_refuses_a_tampered_an_expired_or_a_reused_signed_url() {
    let key = Path::from("baton/blobs/k");
    let signer = signer_with_object(Backend::Azure, &key).await;
    let url = signer
        .signed_url(Method::GET, &key, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(fetch(&tampered(&url), None).await.0, StatusCode::FORBIDDEN);
    let other_key = Url::parse(&url.as_str().replace("/blobs/k?", "/blobs/other?")).unwrap();
    assert_eq!(fetch(&other_key, None).await.0, StatusCode::FORBIDDEN);

    let short = signer
        .signed_url(Method::GET, &key, Duration::from_secs(1))
        .await
        .unwrap();
    let expired = eventually(Duration::from_secs(10), || async {
        fetch(&short, None).await.0 == StatusCode::FORBIDDEN
    });
    assert!(expired.await, "a URL signed for 1 s was still served after 10 s");
}

#[tokio::test]
async fn moto_checks_neither_signatures_nor_expiry_of_signed_urls() {
    let key = Path::from("baton/blobs/k");
    let signer = signer_with_object(Backend::S3, &key).await;
    let url = signer
        .signed_url(Method::GET, &key, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(fetch(&tampered(&url), None).await.0, StatusCode::OK);
    let short = signer
        .signed_url(Method::GET, &key, Duration::from_secs(1))
        .await
        .unwrap();
    // Past its expiry (X-Amz-Date has a 1 s resolution), moto still serves it.
    let stale_but_served = eventually(Duration::from_secs(10), || async {
        let expired = url_expiry(&short) < time::OffsetDateTime::now_utc() - Duration::from_secs(1);
        expired && fetch(&short, None).await.0 == StatusCode::OK
    });
    assert!(stale_but_served.await);
}

/// When an S3 presigned URL expires: X-Amz-Date plus X-Amz-Expires.
fn url_expiry(url: &Url) -> time::OffsetDateTime {
    let query = |name: &str| url.query_pairs().find(|(k, _)| k == name).unwrap().1.into_owned();
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let signed = time::PrimitiveDateTime::parse(&query("X-Amz-Date"), format)
        .unwrap()
        .assume_utc();
    signed + Duration::from_secs(query("X-Amz-Expires").parse().unwrap())
}

#[tokio::test]
async fn a_prefix_store_signs_the_prefixed_key_on_both_emulators() {
    for backend in Backend::OBJECT_STORES {
        let emulator = shared_emulator(backend).await.unwrap();
        let bucket = unique_bucket_name();
        emulator.create_bucket(&bucket).await.unwrap();
        let url = match emulator {
            Emulator::Moto(m) => {
                let store = PrefixStore::new(m.client(&bucket).unwrap(), "baton");
                store
                    .put(&Path::from("blobs/k"), PutPayload::from_static(b"p"))
                    .await
                    .unwrap();
                store
                    .signed_url(Method::GET, &Path::from("blobs/k"), DAY)
                    .await
                    .unwrap()
            }
            Emulator::Azurite(a) => {
                let store = PrefixStore::new(a.client(&bucket).unwrap(), "baton");
                store
                    .put(&Path::from("blobs/k"), PutPayload::from_static(b"p"))
                    .await
                    .unwrap();
                store
                    .signed_url(Method::GET, &Path::from("blobs/k"), DAY)
                    .await
                    .unwrap()
            }
        };
        assert!(
            url.path().ends_with(&format!("/{bucket}/baton/blobs/k")),
            "{backend}: {url}"
        );
        assert_eq!(fetch(&url, None).await, (StatusCode::OK, b"p".to_vec()), "{backend}");
    }
}
