use std::time::Duration;

use baton_testkit::object_stores::{Backend, Emulator, shared_emulator, unique_bucket_name, client_options};
use futures::StreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    azure::MicrosoftAzureBuilder,
    path::Path,
};

#[tokio::test]
async fn explore() {
    let Emulator::Moto(moto) = shared_emulator(Backend::S3).await.unwrap() else { panic!() };
    let Emulator::Azurite(az) = shared_emulator(Backend::Azure).await.unwrap() else { panic!() };
    let b = unique_bucket_name();
    moto.create_bucket(&b).await.unwrap();
    az.create_container(&b).await.unwrap();
    let s3 = moto.client(&b).unwrap();
    let azc = az.client(&b).unwrap();
    let big = vec![7u8; 64 * 1024 * 1024];
    s3.put(&Path::from("big"), PutPayload::from(big.clone())).await.unwrap();
    azc.put(&Path::from("big"), PutPayload::from(big.clone())).await.unwrap();
    for retries in [0usize, 10] {
        let retry = RetryConfig { max_retries: retries, ..Default::default() };
        let short = client_options().with_timeout(Duration::from_millis(1000));
        let s3short = moto.builder(&b).with_client_options(short.clone()).with_allow_http(true).with_retry(retry.clone()).build().unwrap();
        let azshort = MicrosoftAzureBuilder::new().with_client_options(short.clone()).with_endpoint(az.account_url()).with_allow_http(true).with_account("devstoreaccount1").with_access_key(baton_testkit::object_stores::azurite::ACCOUNT_KEY).with_container_name(&b).with_retry(retry.clone()).build().unwrap();
        for (name, c) in [("s3", &s3short as &dyn ObjectStore), ("az", &azshort as &dyn ObjectStore)] {
            let started = std::time::Instant::now();
            let mut stream = c.get_opts(&Path::from("big"), Default::default()).await.unwrap().into_stream();
            let mut total = 0; let mut err = None; let mut chunks = 0;
            while let Some(chunk) = stream.next().await {
                match chunk { Ok(c) => { total += c.len(); chunks += 1; tokio::time::sleep(Duration::from_millis(10)).await; } Err(e) => { err = Some(e.to_string()); break; } }
            }
            println!("TIMEOUT get retries={retries} {name}: read {total} in {chunks} chunks {:?}, err {err:?}", started.elapsed());
            let started = std::time::Instant::now();
            let tiny = client_options().with_timeout(Duration::from_millis(100));
            let put = if name == "s3" {
                moto.builder(&b).with_client_options(tiny).with_allow_http(true).with_retry(retry.clone()).build().unwrap().put(&Path::from("big2"), PutPayload::from(big.clone())).await.map(|_| ())
            } else {
                MicrosoftAzureBuilder::new().with_client_options(tiny).with_endpoint(az.account_url()).with_allow_http(true).with_account("devstoreaccount1").with_access_key(baton_testkit::object_stores::azurite::ACCOUNT_KEY).with_container_name(&b).with_retry(retry.clone()).build().unwrap().put(&Path::from("big2"), PutPayload::from(big.clone())).await.map(|_| ())
            };
            println!("TIMEOUT put retries={retries} {name}: {:?} {:?}", started.elapsed(), put.map_err(|e| e.to_string().chars().take(300).collect::<String>()));
        }
    }
}
