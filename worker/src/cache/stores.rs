//! Object store clients built from the worker's own credentials, one per store Baton names
//! (`s3://bucket/prefix`, `az://container/prefix`), for `BATON_OBJECT_ACCESS=credentials`.
//!
//! Credentials and endpoints come from the standard variables read by object_store's
//! `from_env` builders: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, web identity; `AZURE_STORAGE_ACCOUNT_NAME`,
//! `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_USE_EMULATOR`, workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use baton_protocol::ObjectRef;
use futures::{StreamExt, TryStreamExt};
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::{AzureConfigKey, MicrosoftAzureBuilder},
    path::Path,
};

use super::{
    CacheError,
    source::{ByteStream, Failure},
};

/// The client's timeout covers a whole response body: generous, for large inputs. Stalled
/// transfers are caught by the read timeout.
const TIMEOUT: &str = "6h";
const READ_TIMEOUT: &str = "60s";
const CONNECT_TIMEOUT: &str = "5s";

#[derive(Default)]
pub(crate) struct Stores {
    clients: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    /// S3 settings to start from instead of the environment (tests).
    s3_base: Option<AmazonS3Builder>,
}

impl Stores {
    pub(super) async fn open(&self, object: &ObjectRef) -> Result<ByteStream, Failure> {
        let store = self.client(&object.store).map_err(Failure::Final)?;
        let path = Path::parse(&object.key)
            .map_err(|e| Failure::Final(CacheError::InvalidReference(format!("invalid object key: {e}"))))?;
        let result = store.get(&path).await.map_err(classify)?;
        Ok(result.into_stream().map_err(classify).boxed())
    }

    fn client(&self, store: &str) -> Result<Arc<dyn ObjectStore>, CacheError> {
        let mut clients = self.clients.lock().expect("object store clients lock");
        if let Some(client) = clients.get(store) {
            return Ok(Arc::clone(client));
        }
        let client = build(store, self.s3_base.clone())?;
        clients.insert(store.to_owned(), Arc::clone(&client));
        Ok(client)
    }
}

/// No retries inside the client: the cache tries a whole fetch again, cut transfers included.
fn no_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    }
}

fn build(store: &str, s3_base: Option<AmazonS3Builder>) -> Result<Arc<dyn ObjectStore>, CacheError> {
    let invalid = |e: object_store::Error| CacheError::InvalidReference(format!("object store `{store}`: {e}"));
    if store.starts_with("s3://") {
        // Timeouts set key by key: `with_client_options` would drop what the environment set
        // (`AWS_ALLOW_HTTP` among others).
        let client = s3_base
            .unwrap_or_else(AmazonS3Builder::from_env)
            .with_url(store)
            .with_retry(no_retries())
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), TIMEOUT)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ReadTimeout), READ_TIMEOUT)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                CONNECT_TIMEOUT,
            )
            .build()
            .map_err(invalid)?;
        Ok(Arc::new(client))
    } else if store.starts_with("az://") {
        let client = MicrosoftAzureBuilder::from_env()
            .with_url(store)
            .with_retry(no_retries())
            .with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), TIMEOUT)
            .with_config(AzureConfigKey::Client(ClientConfigKey::ReadTimeout), READ_TIMEOUT)
            .with_config(AzureConfigKey::Client(ClientConfigKey::ConnectTimeout), CONNECT_TIMEOUT)
            .build()
            .map_err(invalid)?;
        Ok(Arc::new(client))
    } else {
        Err(CacheError::InvalidReference(format!(
            "object store `{store}` is neither s3:// nor az://"
        )))
    }
}

fn classify(error: object_store::Error) -> Failure {
    match error {
        object_store::Error::NotFound { .. } => {
            Failure::Final(CacheError::Unavailable("the object does not exist".to_owned()))
        }
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => Failure::Final(
            CacheError::Unavailable(format!("the worker's credentials may not read the object: {error}")),
        ),
        other => Failure::Retryable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::{Router, http::header, routing::get};
    use futures::TryStreamExt;

    use super::*;

    /// Answers `GET /bucket/prefix/blobs/k` as S3 would (path-style), and nothing else.
    async fn fake_s3() -> String {
        let app = Router::new().route(
            "/bucket/prefix/blobs/k",
            get(|| async {
                (
                    [
                        (header::ETAG, "\"0\""),
                        (header::LAST_MODIFIED, "Thu, 03 Dec 2026 20:00:00 GMT"),
                    ],
                    "object bytes",
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn object(store: &str, key: &str) -> ObjectRef {
        ObjectRef {
            store: store.into(),
            key: key.into(),
            url: "http://127.0.0.1:1/not-used".into(),
            expires_at: time::OffsetDateTime::now_utc() + Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn an_s3_object_is_read_by_its_full_key_in_the_bucket_of_the_store() {
        let endpoint = fake_s3().await;
        let stores = Stores {
            s3_base: Some(
                AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_allow_http(true)
                    .with_region("us-east-1")
                    .with_access_key_id("test")
                    .with_secret_access_key("test"),
            ),
            ..Stores::default()
        };
        // The store's prefix is part of the key already: the store URL only names the bucket.
        let Ok(stream) = stores.open(&object("s3://bucket/prefix", "prefix/blobs/k")).await else {
            panic!("the object opens");
        };
        let bytes: Vec<bytes::Bytes> = stream.map_err(|_| ()).try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"object bytes");

        match stores.open(&object("s3://bucket/prefix", "prefix/blobs/gone")).await {
            Err(Failure::Final(CacheError::Unavailable(message))) => assert!(message.contains("does not exist")),
            _ => panic!("a missing object is unavailable, for good"),
        }
    }

    #[tokio::test]
    async fn a_store_that_is_neither_s3_nor_azure_is_an_invalid_reference() {
        let stores = Stores::default();
        assert!(matches!(
            stores.open(&object("gs://bucket", "k")).await,
            Err(Failure::Final(CacheError::InvalidReference(_)))
        ));
    }
}
