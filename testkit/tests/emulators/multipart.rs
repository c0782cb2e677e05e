use baton_testkit::object_stores::{Backend, TestStore};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use crate::helpers::{key, object_stores, pattern};

const MIB: usize = 1024 * 1024;

/// The multipart uploads in progress in an S3 bucket (moto checks no signatures, so a plain GET
/// lists them).
async fn s3_uploads_in_progress(store: &TestStore) -> usize {
    let env: std::collections::HashMap<_, _> = store.env.iter().cloned().collect();
    let url = format!("{}/{}?uploads", env["AWS_ENDPOINT"], store.bucket.as_deref().unwrap());
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    body.matches("<UploadId>").count()
}

#[tokio::test]
async fn put_part_and_complete_assemble_the_object_on_both_emulators() {
    for store in object_stores().await {
        let client = store.client().unwrap();
        let data = pattern(11 * MIB + 123);
        let path = key("staging/multipart");
        let mut upload = client.put_multipart(&path).await.unwrap();
        // Parts go up concurrently; order is the order of put_part calls.
        let parts: Vec<_> = data
            .chunks(5 * MIB)
            .map(|chunk| upload.put_part(PutPayload::from(chunk.to_vec())))
            .collect();
        futures::future::try_join_all(parts).await.unwrap();
        upload.complete().await.unwrap();
        let got = client.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.len(), data.len(), "{}", store.backend);
        assert!(got.as_ref() == data.as_slice(), "{}", store.backend);
    }
}

#[tokio::test]
async fn write_multipart_streams_in_5_mib_chunks_on_both_emulators() {
    for store in object_stores().await {
        let client = store.client().unwrap();
        let data = pattern(12 * MIB + 7);
        let path = key("staging/write-multipart");
        let mut writer = WriteMultipart::new(client.put_multipart(&path).await.unwrap());
        for piece in data.chunks(64 * 1024) {
            writer.wait_for_capacity(4).await.unwrap();
            writer.write(piece);
        }
        writer.finish().await.unwrap();
        let meta = client.head(&path).await.unwrap();
        assert_eq!(meta.size, data.len() as u64, "{}", store.backend);
    }
}

#[tokio::test]
async fn parts_under_5_mib_before_the_last_are_refused_by_moto_and_taken_by_azurite() {
    for store in object_stores().await {
        let client = store.client().unwrap();
        let path = key("staging/small-parts");
        let mut upload = client.put_multipart(&path).await.unwrap();
        upload.put_part(PutPayload::from(vec![1u8; 1024])).await.unwrap();
        upload.put_part(PutPayload::from(vec![2u8; 1024])).await.unwrap();
        let completed = upload.complete().await;
        match store.backend {
            Backend::S3 => {
                let err = completed.unwrap_err();
                assert!(err.to_string().contains("EntityTooSmall"), "{err}");
            }
            _ => {
                completed.unwrap();
                assert_eq!(client.head(&path).await.unwrap().size, 2048);
            }
        }
    }
}

#[tokio::test]
async fn abort_leaves_no_object_and_on_s3_no_upload_in_progress() {
    for store in object_stores().await {
        let client = store.client().unwrap();
        let path = key("staging/aborted");
        let mut upload = client.put_multipart(&path).await.unwrap();
        upload.put_part(PutPayload::from(pattern(5 * MIB))).await.unwrap();
        if store.backend == Backend::S3 {
            assert_eq!(s3_uploads_in_progress(&store).await, 1);
        }
        upload.abort().await.unwrap();
        let err = client.head(&path).await.unwrap_err();
        assert!(
            matches!(err, object_store::Error::NotFound { .. }),
            "{}: {err}",
            store.backend
        );
        assert!(store.keys().await.unwrap().is_empty(), "{}", store.backend);
        if store.backend == Backend::S3 {
            assert_eq!(s3_uploads_in_progress(&store).await, 0);
        }
    }
}

#[tokio::test]
async fn a_dropped_upload_stays_in_progress_on_s3_until_aborted() {
    let store = Backend::S3.test_store().await.unwrap();
    let client = store.client().unwrap();
    let mut upload = client.put_multipart(&key("staging/dropped")).await.unwrap();
    upload.put_part(PutPayload::from(pattern(5 * MIB))).await.unwrap();
    drop(upload);
    assert_eq!(s3_uploads_in_progress(&store).await, 1);
    assert!(store.keys().await.unwrap().is_empty());
}
