use baton_testkit::object_stores::{Backend, Emulator, shared_emulator, unique_bucket_name};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, aws::S3CopyIfNotExists, path::Path};
use reqwest::StatusCode;

use crate::helpers::{key, object_stores};

async fn content(store: &dyn ObjectStore, path: &Path) -> Vec<u8> {
    store.get(path).await.unwrap().bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn copy_if_not_exists_refuses_an_existing_target_on_both_emulators() {
    // The testkit's S3 client is configured with S3CopyIfNotExists::Multipart.
    for store in object_stores().await {
        let client = store.client().unwrap();
        client
            .put(&key("staging/a"), PutPayload::from_static(b"first"))
            .await
            .unwrap();
        client
            .put(&key("staging/b"), PutPayload::from_static(b"second"))
            .await
            .unwrap();
        let target = key("blobs/t");
        client.copy_if_not_exists(&key("staging/a"), &target).await.unwrap();
        let again = client.copy_if_not_exists(&key("staging/b"), &target).await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{}: {again:?}",
            store.backend
        );
        assert_eq!(content(client.as_ref(), &target).await, b"first", "{}", store.backend);
    }
}

#[tokio::test]
async fn put_with_mode_create_refuses_an_existing_key_on_both_emulators() {
    for store in object_stores().await {
        let client = store.client().unwrap();
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let path = key("blobs/c");
        client
            .put_opts(&path, PutPayload::from_static(b"1"), create())
            .await
            .unwrap();
        let again = client.put_opts(&path, PutPayload::from_static(b"2"), create()).await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{}: {again:?}",
            store.backend
        );
        assert_eq!(content(client.as_ref(), &path).await, b"1", "{}", store.backend);
    }
}

#[tokio::test]
async fn on_moto_the_header_variants_of_copy_if_not_exists_overwrite_silently_and_none_is_unsupported() {
    let Emulator::Moto(moto) = shared_emulator(Backend::S3).await.unwrap() else {
        unreachable!("the S3 emulator is moto")
    };
    let header = |name: &str| S3CopyIfNotExists::Header(name.into(), "*".into());
    let variants = [
        Some(header("If-None-Match")),
        Some(header("x-amz-copy-source-if-none-match")),
        Some(S3CopyIfNotExists::HeaderWithStatus(
            "If-None-Match".into(),
            "*".into(),
            StatusCode::PRECONDITION_FAILED,
        )),
        None,
    ];
    for variant in variants {
        let bucket = unique_bucket_name();
        moto.create_bucket(&bucket).await.unwrap();
        let mut builder = moto.bare_builder(&bucket);
        if let Some(variant) = variant.clone() {
            builder = builder.with_copy_if_not_exists(variant);
        }
        let client = builder.build().unwrap();
        client
            .put(&Path::from("a"), PutPayload::from_static(b"first"))
            .await
            .unwrap();
        client
            .put(&Path::from("b"), PutPayload::from_static(b"second"))
            .await
            .unwrap();
        let first = client.copy_if_not_exists(&Path::from("a"), &Path::from("t")).await;
        let second = client.copy_if_not_exists(&Path::from("b"), &Path::from("t")).await;
        if variant.is_some() {
            first.unwrap();
            second.unwrap();
            assert_eq!(content(&client, &Path::from("t")).await, b"second", "{variant:?}");
        } else {
            assert!(
                matches!(first, Err(object_store::Error::NotSupported { .. })),
                "{first:?}"
            );
        }
    }
}
