//! Object storage (S3 or Azure Blob): one [`super::Backend`], through the `object_store` crate.
//!
//! Layout under the store's prefix, the volume's layout again:
//! - `staging/<uuid>`: uploads in progress, written by multipart upload while hashed; aborted or
//!   deleted on every failure path, and swept by cleanup after the grace if a crash left one;
//! - `blobs/<owner>/<aa>/<bb>/<sha256>`: committed content, reached from staging by a
//!   create-if-absent copy, so an object already there (the same bytes) is never overwritten.

mod upload;

use std::{io, sync::Arc, time::Duration, time::SystemTime};

use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{
    ClientConfigKey, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey, S3CopyIfNotExists},
    azure::{AzureConfigKey, MicrosoftAzureBuilder},
    path::Path,
    signer::{Method, Signer},
};
use uuid::Uuid;

pub use upload::{ObjectUpload, Staged, UploadMemory};

use super::{Placement, StoreEnv, StoreName, StoreUrl, Unavailable};
use crate::domain::{Owner, Sha256Hex};

/// How long a signed URL may live at most: S3 allows 7 days, and Baton asks no more of Azure.
pub const MAX_SIGNED_URL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone)]
pub struct ObjectBackend {
    name: StoreName,
    store: Arc<dyn ObjectStore>,
    /// `None` for a store that cannot sign (the in-memory one of unit tests).
    signer: Option<Arc<dyn Signer>>,
    /// The key prefix, without a trailing slash; empty for the bucket's root.
    prefix: String,
    /// Shared by every upload to any object store of this process.
    memory: UploadMemory,
}

impl std::fmt::Debug for ObjectBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBackend")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An object found by listing, for cleanup.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: Path,
    pub size: u64,
    pub modified: SystemTime,
}

impl ObjectBackend {
    /// Builds the client from `url` and the store's standard environment variables. Nothing is
    /// contacted yet: [`ObjectBackend::check`] proves the store answers.
    pub fn open(url: &StoreUrl, env: &StoreEnv, memory: UploadMemory) -> io::Result<Self> {
        let (store, signer, prefix): (Arc<dyn ObjectStore>, Arc<dyn Signer>, &str) = match url {
            StoreUrl::S3 { bucket, prefix } => {
                let mut builder = env.apply(AmazonS3Builder::new(), "AWS_", AmazonS3Builder::with_config);
                // Create-if-absent copies: AWS S3 takes a conditional multipart completion.
                if env.get("AWS_COPY_IF_NOT_EXISTS").is_none() {
                    builder = builder.with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
                }
                let s3 = Arc::new(
                    client_settings(builder, env, |b, k, v| b.with_config(AmazonS3ConfigKey::Client(k), v))
                        .with_bucket_name(bucket)
                        .with_retry(retry())
                        .build()
                        .map_err(|e| invalid(url, e))?,
                );
                (s3.clone(), s3, prefix)
            }
            StoreUrl::Azure { container, prefix } => {
                let builder = env.apply(
                    MicrosoftAzureBuilder::new(),
                    "AZURE_",
                    MicrosoftAzureBuilder::with_config,
                );
                let builder = azurite(env, builder);
                let azure = Arc::new(
                    client_settings(builder, env, |b, k, v| b.with_config(AzureConfigKey::Client(k), v))
                        .with_container_name(container)
                        .with_retry(retry())
                        .build()
                        .map_err(|e| invalid(url, e))?,
                );
                (azure.clone(), azure, prefix)
            }
            StoreUrl::Volume(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a volume is not an object store",
                ));
            }
        };
        Ok(Self {
            name: url.name(),
            store,
            signer: Some(signer),
            prefix: prefix.to_owned(),
            memory,
        })
    }

    pub fn name(&self) -> &StoreName {
        &self.name
    }

    /// The full key of a blob in the bucket or container, as sent to workers.
    pub fn blob_key(&self, owner: &Owner, sha256: &Sha256Hex) -> Path {
        self.key(&blob_relative(owner, sha256))
    }

    fn staging_key(&self) -> Path {
        self.key(&format!("staging/{}", Uuid::now_v7()))
    }

    fn key(&self, relative: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{}/{relative}", self.prefix))
        }
    }

    /// A multipart upload to a fresh staging key.
    pub fn upload(&self) -> ObjectUpload {
        ObjectUpload::new(self.clone(), self.staging_key())
    }

    /// Copies a staged upload to its content address unless an object is already there: an
    /// existing object of the right size is the same bytes (content-addressed). The staging
    /// object is deleted either way.
    pub async fn place(&self, staged: Staged, owner: &Owner, sha256: &Sha256Hex, size: u64) -> io::Result<Placement> {
        let to = self.blob_key(owner, sha256);
        let placed = match self.store.copy_if_not_exists(staged.key(), &to).await {
            Ok(()) => Placement::Placed,
            Err(object_store::Error::AlreadyExists { .. }) => self.keep_or_replace(staged.key(), &to, size).await?,
            // A store without a conditional copy: the caller's lock on the blob row serialises
            // every writer of this key, so looking first is enough.
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => {
                self.keep_or_replace(staged.key(), &to, size).await?
            }
            Err(e) => return Err(self.error(e)),
        };
        staged.delete().await;
        Ok(placed)
    }

    async fn keep_or_replace(&self, from: &Path, to: &Path, size: u64) -> io::Result<Placement> {
        match self.store.head(to).await {
            Ok(meta) if meta.size == size => return Ok(Placement::AlreadyPresent),
            Ok(meta) => tracing::warn!(key = %to, found = meta.size, size, "replacing an object of the wrong size"),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error(e)),
        }
        self.store.copy(from, to).await.map_err(|e| self.error(e))?;
        Ok(Placement::Placed)
    }

    /// Removes a blob object; false when there was none.
    pub async fn remove(&self, owner: &Owner, sha256: &Sha256Hex) -> io::Result<bool> {
        let key = self.blob_key(owner, sha256);
        if self.size_of(&key).await?.is_none() {
            return Ok(false);
        }
        self.delete(&key).await.map(|()| true)
    }

    pub async fn delete(&self, key: &Path) -> io::Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// A blob's size in the store, or `None` when it is not there.
    pub async fn blob_size(&self, owner: &Owner, sha256: &Sha256Hex) -> io::Result<Option<u64>> {
        self.size_of(&self.blob_key(owner, sha256)).await
    }

    async fn size_of(&self, key: &Path) -> io::Result<Option<u64>> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Streams `length` bytes of a blob from `start`. A missing object is `NotFound`.
    pub async fn read(
        &self,
        owner: &Owner,
        sha256: &Sha256Hex,
        start: u64,
        length: u64,
    ) -> io::Result<BoxStream<'static, io::Result<bytes::Bytes>>> {
        let options = GetOptions {
            range: (length > 0).then_some(GetRange::Bounded(start..start + length)),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&self.blob_key(owner, sha256), options)
            .await
            .map_err(|e| self.error(e))?;
        let this = self.clone();
        Ok(result.into_stream().map_err(move |e| this.error(e)).boxed())
    }

    /// A URL that lets its holder GET the blob, and nothing else, until it expires.
    pub async fn signed_url(&self, owner: &Owner, sha256: &Sha256Hex, ttl: Duration) -> io::Result<String> {
        let ttl = ttl.min(MAX_SIGNED_URL).max(Duration::from_secs(1));
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| Unavailable::error(self.name.clone(), "this store cannot sign URLs"))?;
        let url = signer
            .signed_url(Method::GET, &self.blob_key(owner, sha256), ttl)
            .await
            .map_err(|e| self.error(e))?;
        Ok(url.into())
    }

    /// Every object under `blobs/` whose key is a blob's, with its owner and digest.
    pub fn list_blobs(&self) -> BoxStream<'static, io::Result<(Owner, Sha256Hex, Listed)>> {
        let this = self.clone();
        self.list_under("blobs")
            .try_filter_map(move |listed| {
                let parsed = parse_blob_key(&this.prefix, &listed.key);
                async move { Ok(parsed.map(|(owner, sha256)| (owner, sha256, listed))) }
            })
            .boxed()
    }

    /// Every staging object, for the sweep of uploads a crash left behind.
    pub fn list_staging(&self) -> BoxStream<'static, io::Result<Listed>> {
        self.list_under("staging")
    }

    fn list_under(&self, dir: &str) -> BoxStream<'static, io::Result<Listed>> {
        let this = self.clone();
        self.store
            .list(Some(&self.key(dir)))
            .map(move |meta| {
                let meta = meta.map_err(|e| this.error(e))?;
                let seconds = u64::try_from(meta.last_modified.timestamp()).unwrap_or_default();
                Ok(Listed {
                    key: meta.location,
                    size: meta.size,
                    modified: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
                })
            })
            .boxed()
    }

    /// Proves the store answers and takes writes: puts and deletes a probe object.
    pub async fn check(&self) -> io::Result<()> {
        let probe = self.staging_key();
        self.store
            .put(&probe, bytes::Bytes::from_static(b"baton").into())
            .await
            .map_err(|e| self.error(e))?;
        self.delete(&probe).await
    }

    /// Maps a store error: a missing object is `NotFound`; anything else means the store cannot
    /// serve now, which clients see as `503 storage_unavailable`.
    fn error(&self, error: object_store::Error) -> io::Error {
        match error {
            object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, error.to_string()),
            other => {
                tracing::warn!(store = %self.name, error = %other, "object store request failed");
                io::Error::other(Unavailable {
                    store: self.name.clone(),
                    reason: other.to_string(),
                })
            }
        }
    }
}

/// A blob's key below the prefix: the volume's relative path.
fn blob_relative(owner: &Owner, sha256: &Sha256Hex) -> String {
    let hex = sha256.as_str();
    format!("blobs/{}/{}/{}/{hex}", owner.as_str(), &hex[0..2], &hex[2..4])
}

fn parse_blob_key(prefix: &str, key: &Path) -> Option<(Owner, Sha256Hex)> {
    let key = key.as_ref();
    let relative = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let mut parts = relative.split('/');
    let (Some("blobs"), Some(owner), Some(aa), Some(bb), Some(hex), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let sha256 = Sha256Hex::parse(hex)?;
    (hex.get(0..2) == Some(aa) && hex.get(2..4) == Some(bb)).then_some(())?;
    Some((Owner::parse(owner)?, sha256))
}

/// Azurite's published development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// With `AZURE_STORAGE_USE_EMULATOR`, the Azurite account at `AZURITE_BLOB_STORAGE_URL`
/// (default `http://127.0.0.1:10000`), addressed like any account by its endpoint: the
/// builder's own emulator mode reads that URL from the process environment only, which a
/// process running Batons against several emulators cannot share.
fn azurite(env: &StoreEnv, builder: MicrosoftAzureBuilder) -> MicrosoftAzureBuilder {
    let on = env
        .get("AZURE_STORAGE_USE_EMULATOR")
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"));
    if !on {
        return builder;
    }
    let base = env
        .get("AZURITE_BLOB_STORAGE_URL")
        .unwrap_or_else(|| "http://127.0.0.1:10000".to_owned());
    let account = env
        .get("AZURE_STORAGE_ACCOUNT_NAME")
        .unwrap_or_else(|| AZURITE_ACCOUNT.to_owned());
    let key = env
        .get("AZURE_STORAGE_ACCOUNT_KEY")
        .unwrap_or_else(|| AZURITE_KEY.to_owned());
    builder
        .with_use_emulator(false)
        .with_endpoint(format!("{}/{account}", base.trim_end_matches('/')))
        .with_account(account)
        .with_access_key(key)
        .with_allow_http(true)
}

/// Few, quick retries: a request that still fails is answered `503` with `Retry-After`, and the
/// client (or the cleanup round, or the migration's rerun) tries again.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    }
}

/// The client's timeouts, unless the environment sets them: the default whole-request timeout
/// (30 s) would cut a large body short, so a stalled read is what ends a request instead.
fn client_settings<B>(builder: B, env: &StoreEnv, set: impl Fn(B, ClientConfigKey, String) -> B) -> B {
    let mut builder = builder;
    for (key, variable, value) in [
        (ClientConfigKey::Timeout, "TIMEOUT", "1h"),
        (ClientConfigKey::ReadTimeout, "READ_TIMEOUT", "60s"),
        (ClientConfigKey::ConnectTimeout, "CONNECT_TIMEOUT", "5s"),
    ] {
        let set_in_env = ["AWS_", "AZURE_"]
            .iter()
            .any(|prefix| env.get(&format!("{prefix}{variable}")).is_some());
        if !set_in_env {
            builder = set(builder, key, value.to_owned());
        }
    }
    builder
}

fn invalid(url: &StoreUrl, error: object_store::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("cannot use {}: {error}", url.name()),
    )
}

#[cfg(test)]
impl ObjectBackend {
    /// An in-memory store, for unit tests of uploads.
    pub(crate) fn in_memory(memory: UploadMemory) -> Self {
        Self {
            name: StoreUrl::parse("s3://memory").expect("a valid URL").name(),
            store: Arc::new(object_store::memory::InMemory::new()),
            signer: None,
            prefix: "p".to_owned(),
            memory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_round_trip_through_listing_names() {
        let owner = Owner::parse("team-a").unwrap();
        let sha = Sha256Hex::parse(&"ab".repeat(32)).unwrap();
        let key = Path::from(format!("pre/fix/{}", blob_relative(&owner, &sha)));
        assert_eq!(key.as_ref(), format!("pre/fix/blobs/team-a/ab/ab/{}", "ab".repeat(32)));
        assert_eq!(parse_blob_key("pre/fix", &key), Some((owner, sha)));
        for other in [
            "pre/fix/blobs/team-a/cd/ab/x",
            "other/blobs/team-a/ab/ab/y",
            "pre/fix/staging/z",
        ] {
            assert_eq!(parse_blob_key("pre/fix", &Path::from(other)), None, "{other}");
        }
    }
}
