//! Fetching object-stored inputs into the cache: verification, single flight, retries.

use std::time::Duration;

use baton_testkit::poll::eventually;
use baton_worker::cache::{CacheConfig, CacheError, ObjectAccess, ObjectCache};
use futures::future::join_all;

use crate::helpers::{ObjectServer, cache_at, listing, object_at, quick_retries, sha256};

#[tokio::test]
async fn a_fetched_input_is_verified_and_kept_under_its_sha256() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 1 << 20);
    let bytes = b"hello from object storage".repeat(1000);
    let object = server.put("a", &bytes);

    let file = cache.get(&object, &sha256(&bytes), bytes.len() as u64).await.unwrap();
    assert_eq!(std::fs::read(file.path()).unwrap(), bytes);
    assert_eq!(file.path(), dir.path().join(sha256(&bytes)));
    drop(file);

    let again = cache.get(&object, &sha256(&bytes), bytes.len() as u64).await.unwrap();
    assert_eq!(std::fs::read(again.path()).unwrap(), bytes);
    assert_eq!(server.gets(), 1, "the second request is served from the cache");
    assert_eq!(listing(dir.path()), [sha256(&bytes)]);
}

#[tokio::test]
async fn bytes_that_do_not_match_the_recorded_sha256_are_refused_and_not_kept() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 1 << 20);
    let object = server.put("a", b"tampered bytes");

    let error = cache.get(&object, &sha256(b"original bytes"), 14).await.unwrap_err();
    assert!(matches!(error, CacheError::Corrupt(_)), "{error:?}");
    assert_eq!(server.gets(), 1, "a mismatch is not fetched again within the attempt");
    assert!(
        listing(dir.path()).is_empty(),
        "neither the file nor a partial one is left"
    );
    assert_eq!(cache.usage().bytes, 0, "the reservation is given back");
}

#[tokio::test]
async fn bytes_of_another_size_than_recorded_are_refused_and_not_kept() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 1 << 20);
    let bytes = b"twelve bytes";
    let object = server.put("a", bytes);

    for recorded in [11, 13] {
        let error = cache.get(&object, &sha256(bytes), recorded).await.unwrap_err();
        assert!(matches!(error, CacheError::Corrupt(_)), "{recorded}: {error:?}");
    }
    assert!(listing(dir.path()).is_empty());
}

#[tokio::test]
async fn concurrent_requests_for_one_input_share_a_single_get() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 1 << 20);
    let bytes = vec![7_u8; 256 * 1024];
    let object = server.put("a", &bytes);
    let sha = sha256(&bytes);

    server.hold();
    let requests = join_all((0..8).map(|_| {
        let (cache, object, sha) = (cache.clone(), object.clone(), sha.clone());
        tokio::spawn(async move { cache.get(&object, &sha, 256 * 1024).await })
    }));
    let requests = tokio::spawn(requests);
    assert!(
        eventually(Duration::from_secs(10), || async { server.gets() >= 1 }).await,
        "the fetch reached the server"
    );
    server.release();
    let files = requests.await.unwrap();
    for file in files {
        let file = file.unwrap().unwrap();
        assert_eq!(file.path(), dir.path().join(&sha));
    }
    assert_eq!(server.gets(), 1, "eight requests, one GET");
}

#[tokio::test]
async fn server_errors_are_tried_again_until_the_input_arrives() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 1 << 20);
    let object = server.put("a", b"eventually");
    server.fail_next(2, 503);

    let file = cache.get(&object, &sha256(b"eventually"), 10).await.unwrap();
    assert_eq!(std::fs::read(file.path()).unwrap(), b"eventually");
    assert_eq!(server.gets(), 3, "two 503 answers, then the bytes");
}

#[tokio::test]
async fn a_refused_url_is_not_tried_again() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 1 << 20);
    let object = server.put("a", b"expired");
    server.fail_next(1, 403);

    let error = cache.get(&object, &sha256(b"expired"), 7).await.unwrap_err();
    assert_eq!(error, CacheError::Unavailable("GET answered 403 Forbidden".to_owned()));
    assert_eq!(server.gets(), 1);
    assert!(listing(dir.path()).is_empty());
}

#[tokio::test]
async fn an_unreachable_store_is_tried_again_then_reported_unavailable() {
    // A port nothing listens on: every connection is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let cache = ObjectCache::open(CacheConfig {
        dir: dir.path().to_owned(),
        max_bytes: 1 << 20,
        access: ObjectAccess::SignedUrl,
        retry: quick_retries(4),
    })
    .unwrap();
    let object = object_at(&format!("http://{addr}/secret-signature"));

    let error = cache.get(&object, &sha256(b"x"), 1).await.unwrap_err();
    let CacheError::Unavailable(message) = &error else {
        panic!("unavailable, not {error:?}");
    };
    assert!(message.ends_with("(after 4 tries)"), "{message}");
    assert!(
        !message.contains("secret-signature"),
        "the signed URL stays out of errors: {message}"
    );
    assert!(listing(dir.path()).is_empty());
    assert_eq!(cache.usage().bytes, 0);
}

#[tokio::test]
async fn a_reference_whose_sha256_is_not_hex_cannot_name_a_cache_file() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 1 << 20);
    let object = server.put("a", b"x");
    for bad in ["../../etc/passwd", "", &"A".repeat(64)] {
        let error = cache.get(&object, bad, 1).await.unwrap_err();
        assert!(matches!(error, CacheError::InvalidReference(_)), "{bad:?}: {error:?}");
    }
    assert_eq!(server.gets(), 0);
}
