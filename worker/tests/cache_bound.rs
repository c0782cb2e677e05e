//! The cache's bound: least recently used files go first, files in use never, and what was
//! cached survives a restart.

use baton_worker::cache::CacheError;

use crate::helpers::{ObjectServer, cache_at, listing, sha256};

#[tokio::test]
async fn the_least_recently_used_inputs_are_evicted_to_stay_within_the_bound() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 30);
    let names = ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "dddddddddd"];
    let objects: Vec<_> = names
        .iter()
        .map(|n| (server.put(n, n.as_bytes()), sha256(n.as_bytes())))
        .collect();
    for (object, sha) in &objects[..3] {
        cache.get(object, sha, 10).await.unwrap();
    }
    // `a` used again: `b` is now the least recently used.
    cache.get(&objects[0].0, &objects[0].1, 10).await.unwrap();
    assert_eq!(server.gets(), 3);

    cache.get(&objects[3].0, &objects[3].1, 10).await.unwrap();
    let mut kept = vec![objects[0].1.clone(), objects[2].1.clone(), objects[3].1.clone()];
    kept.sort();
    assert_eq!(listing(dir.path()), kept, "`b` was evicted");
    assert_eq!(cache.usage().bytes, 30);
}

#[tokio::test]
async fn inputs_held_by_running_jobs_are_never_evicted() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 20);
    let names = ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "dddddddddd"];
    let objects: Vec<_> = names
        .iter()
        .map(|n| (server.put(n, n.as_bytes()), sha256(n.as_bytes())))
        .collect();

    let held_a = cache.get(&objects[0].0, &objects[0].1, 10).await.unwrap();
    drop(cache.get(&objects[1].0, &objects[1].1, 10).await.unwrap());
    // `a` is older but held: `b` goes.
    let held_c = cache.get(&objects[2].0, &objects[2].1, 10).await.unwrap();
    assert!(held_a.path().exists() && held_c.path().exists());
    assert!(!dir.path().join(&objects[1].1).exists());

    // Both files held fill the bound: no room, and nothing evicted.
    let error = cache.get(&objects[3].0, &objects[3].1, 10).await.unwrap_err();
    assert_eq!(
        error,
        CacheError::Full {
            wanted: 10,
            held: 20,
            max: 20
        }
    );
    assert!(held_a.path().exists() && held_c.path().exists());

    drop(held_a);
    cache.get(&objects[3].0, &objects[3].1, 10).await.unwrap();
    assert!(!dir.path().join(&objects[0].1).exists(), "released, `a` could go");
    assert!(held_c.path().exists());
}

#[tokio::test]
async fn an_input_larger_than_the_bound_is_refused_without_evicting_anything() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 10);
    let small = server.put("small", b"0123456789");
    cache.get(&small, &sha256(b"0123456789"), 10).await.unwrap();
    let big = server.put("big", &[1; 11]);

    let error = cache.get(&big, &sha256(&[1; 11]), 11).await.unwrap_err();
    assert!(matches!(error, CacheError::Full { wanted: 11, .. }), "{error:?}");
    assert_eq!(listing(dir.path()), [sha256(b"0123456789")]);
    assert_eq!(server.gets(), 1, "nothing fetched for the big one");
}

#[tokio::test]
async fn a_reopened_cache_keeps_its_files_drops_partial_ones_and_shrinks_to_its_bound() {
    let server = ObjectServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_at(dir.path(), 100);
    let names = ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"];
    for name in names {
        cache
            .get(&server.put(name, name.as_bytes()), &sha256(name.as_bytes()), 10)
            .await
            .unwrap();
    }
    drop(cache);
    std::fs::write(dir.path().join(".partial-left-by-a-crash"), b"half").unwrap();

    let reopened = cache_at(dir.path(), 20);
    assert_eq!(reopened.usage().files, 2, "shrunk to the new bound");
    assert!(!dir.path().join(".partial-left-by-a-crash").exists());
    let survivor = names
        .iter()
        .find(|n| dir.path().join(sha256(n.as_bytes())).exists())
        .expect("a file survived");
    let gets = server.gets();
    reopened
        .get(
            &server.put(survivor, survivor.as_bytes()),
            &sha256(survivor.as_bytes()),
            10,
        )
        .await
        .unwrap();
    assert_eq!(server.gets(), gets, "served from the reopened cache");
}
