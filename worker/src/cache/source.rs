//! Where an object's bytes come from: a `GET` of its signed URL, or (with the `object-store`
//! feature) the store itself, read with the worker's own credentials.

use std::time::Duration;

use baton_protocol::ObjectRef;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};

use super::{CacheError, config::ObjectAccess};

/// The object's bytes, as they arrive.
pub(super) type ByteStream = BoxStream<'static, Result<Bytes, Failure>>;

/// Why one try of a fetch failed, and whether another try may do better.
#[derive(Debug)]
pub(super) enum Failure {
    /// A connection failure, a timeout, a cut transfer, an overloaded or failing server.
    Retryable(String),
    /// Another try would get the same answer.
    Final(CacheError),
}

/// A connection that stays silent this long is given up (and tried again).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) enum Source {
    SignedUrl(reqwest::Client),
    #[cfg(feature = "object-store")]
    Credentials(Box<super::stores::Stores>),
}

impl Source {
    pub(super) fn new(access: ObjectAccess) -> anyhow::Result<Self> {
        match access {
            ObjectAccess::SignedUrl => {
                // No overall timeout: inputs may be large. Stalls are caught by the read timeout.
                let client = reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .build()?;
                Ok(Self::SignedUrl(client))
            }
            #[cfg(feature = "object-store")]
            ObjectAccess::Credentials => Ok(Self::Credentials(Box::default())),
            #[cfg(not(feature = "object-store"))]
            ObjectAccess::Credentials => anyhow::bail!(
                "BATON_OBJECT_ACCESS=credentials needs baton-worker built with its `object-store` feature"
            ),
        }
    }

    /// Starts reading the object.
    pub(super) async fn open(&self, object: &ObjectRef) -> Result<ByteStream, Failure> {
        match self {
            Self::SignedUrl(client) => open_url(client, &object.url).await,
            #[cfg(feature = "object-store")]
            Self::Credentials(stores) => stores.open(object).await,
        }
    }
}

async fn open_url(client: &reqwest::Client, url: &str) -> Result<ByteStream, Failure> {
    // The URL is a bearer secret: errors are reported without it.
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| Failure::Retryable(format!("GET failed: {}", e.without_url())))?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(Failure::Retryable(format!("GET answered {status}")));
    }
    if !status.is_success() {
        // 403 for an expired or revoked URL, 404 for an object that is gone: Baton publishes
        // another attempt with a fresh URL.
        return Err(Failure::Final(CacheError::Unavailable(format!(
            "GET answered {status}"
        ))));
    }
    Ok(response
        .bytes_stream()
        .map_err(|e| Failure::Retryable(format!("reading the object failed: {}", e.without_url())))
        .boxed())
}
