use baton_testkit::object_stores::Backend;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};

use crate::helpers::{key, object_stores, pattern};

#[tokio::test]
async fn put_get_range_head_list_and_delete_work_on_both_emulators() {
    for store in object_stores().await {
        let client = store.client().unwrap();
        let data = pattern(10_000);
        let path = key("blobs/team/ab/cd/abcd");
        client.put(&path, PutPayload::from(data.clone())).await.unwrap();

        let got = client.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.as_ref(), data.as_slice(), "{}", store.backend);

        let range = client.get_range(&path, 100..1100).await.unwrap();
        assert_eq!(range.as_ref(), &data[100..1100], "{}", store.backend);

        let meta = client.head(&path).await.unwrap();
        assert_eq!(meta.size, 10_000, "{}", store.backend);
        assert!(meta.e_tag.is_some(), "{}", store.backend);

        client
            .put(&key("staging/u1"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(
            store.keys().await.unwrap(),
            ["blobs/team/ab/cd/abcd", "staging/u1"],
            "{}",
            store.backend
        );
        let listed: Vec<_> = client.list(Some(&key("blobs"))).try_collect().await.unwrap();
        assert_eq!(listed.len(), 1, "{}", store.backend);

        client.delete(&path).await.unwrap();
        let gone = client.head(&path).await.unwrap_err();
        assert!(
            matches!(gone, object_store::Error::NotFound { .. }),
            "{}: {gone}",
            store.backend
        );
        // Deleting what is not there: S3 says nothing, Azure says NotFound.
        let again = client.delete(&path).await;
        match store.backend {
            Backend::Azure => assert!(matches!(again, Err(object_store::Error::NotFound { .. })), "{again:?}"),
            _ => again.unwrap(),
        }
    }
}

#[tokio::test]
async fn each_test_store_is_a_separate_empty_bucket() {
    for backend in Backend::ALL {
        let a = backend.test_store().await.unwrap();
        let b = backend.test_store().await.unwrap();
        assert_ne!(a.url, b.url);
        assert!(a.keys().await.unwrap().is_empty(), "{backend}");
        if let Some(client) = a.client() {
            client
                .put(&key("blobs/x"), PutPayload::from_static(b"x"))
                .await
                .unwrap();
            assert_eq!(a.keys().await.unwrap(), ["blobs/x"]);
            assert!(b.keys().await.unwrap().is_empty(), "{backend}");
        }
    }
}
