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
        let client = build(store)?;
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

fn build(store: &str) -> Result<Arc<dyn ObjectStore>, CacheError> {
    let invalid = |e: object_store::Error| CacheError::InvalidReference(format!("object store `{store}`: {e}"));
    if store.starts_with("s3://") {
        let client = AmazonS3Builder::from_env()
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
