//! The environment the testkit hands Baton (`TestStore::env`) is enough for object_store's
//! `from_env()` builders with the store URL. A binary of its own: it sets this process's
//! environment, which no other test may read or write meanwhile.

use baton_testkit::object_stores::{Backend, Emulator, PREFIX, unique_bucket_name};
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3Builder, azure::MicrosoftAzureBuilder, path::Path,
    prefix::PrefixStore,
};

#[allow(unsafe_code)]
fn set_env(vars: &[(String, String)]) {
    for (key, value) in vars {
        // SAFETY: this binary's one test sets the environment before it starts a runtime or
        // any thread of its own; the only other thread (the emulator spawner) is idle, blocked
        // on its channel, and reads the environment only when asked to spawn.
        unsafe { std::env::set_var(key, value) };
    }
}

#[test]
fn from_env_builders_with_the_store_url_reach_the_emulators_and_ignore_the_url_path() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let moto = Emulator::start(Backend::S3, &dir.path().join("s3")).unwrap();
    let azurite = Emulator::start(Backend::Azure, &dir.path().join("azure")).unwrap();
    let bucket = unique_bucket_name();
    runtime.block_on(async {
        moto.create_bucket(&bucket).await.unwrap();
        azurite.create_bucket(&bucket).await.unwrap();
    });
    let mut env = moto.env();
    env.extend(azurite.env());
    set_env(&env);

    let s3 = AmazonS3Builder::from_env()
        .with_url(format!("s3://{bucket}/{PREFIX}"))
        .build()
        .unwrap();
    let azure = MicrosoftAzureBuilder::from_env()
        .with_url(format!("az://{bucket}/{PREFIX}"))
        .build()
        .unwrap();
    let stores: [(&Emulator, Box<dyn ObjectStore>); 2] = [(&moto, Box::new(s3)), (&azurite, Box::new(azure))];
    runtime.block_on(async {
        for (emulator, from_env) in stores {
            let backend = emulator.backend();
            // The URL's path is not a prefix: keys land at the bucket's root unless the caller
            // adds the prefix, here with a PrefixStore.
            from_env
                .put(&Path::from("root-key"), PutPayload::from_static(b"r"))
                .await
                .unwrap();
            let prefixed = PrefixStore::new(from_env, PREFIX);
            prefixed
                .put(&Path::from("blobs/k"), PutPayload::from_static(b"k"))
                .await
                .unwrap();

            // Create-if-absent works as configured by the environment alone.
            prefixed
                .copy_if_not_exists(&Path::from("blobs/k"), &Path::from("blobs/copy"))
                .await
                .unwrap();
            let again = prefixed
                .copy_if_not_exists(&Path::from("blobs/k"), &Path::from("blobs/copy"))
                .await;
            assert!(
                matches!(again, Err(object_store::Error::AlreadyExists { .. })),
                "{backend}: {again:?}"
            );

            let direct = emulator.client(&bucket).unwrap();
            let root = direct
                .get(&Path::from("root-key"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(root.as_ref(), b"r", "{backend}");
            let under_prefix = direct.get(&Path::from(format!("{PREFIX}/blobs/k"))).await.unwrap();
            assert_eq!(under_prefix.bytes().await.unwrap().as_ref(), b"k", "{backend}");
        }
    });
}
