//! One store, whichever kind: the operations uploads, downloads, dispatch, cleanup and migration
//! need, each with the same meaning on the volume and on object storage.

use std::{io, io::SeekFrom, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{
    Placement, StoreName, TempPath, Volume,
    object::{self, ObjectBackend, ObjectUpload},
    volume::BlobWriter,
};
use crate::domain::{Owner, Sha256Hex};

/// Read buffer for streaming a blob off the volume.
const READ_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub enum Backend {
    Volume(Volume),
    Object(ObjectBackend),
}

/// An upload being streamed to a store. Dropping it unfinished leaves nothing behind.
pub enum Upload {
    Volume(BlobWriter),
    Object(Box<ObjectUpload>),
}

/// A finished upload, not yet at its content address. Dropped unplaced, it is removed.
pub enum Staged {
    Volume(TempPath),
    Object(object::Staged),
}

/// A fully written, durable upload and its digests.
pub struct Written {
    /// The store that holds it.
    pub store: StoreName,
    pub staged: Staged,
    pub size: u64,
    pub sha256: Sha256Hex,
    pub md5: String,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("store", &self.store)
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl Upload {
    pub fn size(&self) -> u64 {
        match self {
            Self::Volume(writer) => writer.size(),
            Self::Object(upload) => upload.size(),
        }
    }

    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        match self {
            Self::Volume(writer) => writer.write(chunk).await,
            Self::Object(upload) => upload.write(chunk).await,
        }
    }

    /// Makes the upload durable in its store and returns its digests.
    pub async fn finish(self, store: StoreName) -> io::Result<Written> {
        Ok(match self {
            Self::Volume(writer) => {
                let written = writer.finish().await?;
                Written {
                    store,
                    staged: Staged::Volume(written.temp),
                    size: written.size,
                    sha256: written.sha256,
                    md5: written.md5,
                }
            }
            Self::Object(upload) => {
                let uploaded = upload.finish().await?;
                Written {
                    store,
                    staged: Staged::Object(uploaded.staged),
                    size: uploaded.size,
                    sha256: uploaded.sha256,
                    md5: uploaded.md5,
                }
            }
        })
    }
}

impl Backend {
    pub fn name(&self) -> StoreName {
        match self {
            Self::Volume(_) => StoreName::volume(),
            Self::Object(object) => object.name().clone(),
        }
    }

    pub fn upload(&self) -> Upload {
        match self {
            Self::Volume(volume) => Upload::Volume(volume.writer()),
            Self::Object(object) => Upload::Object(Box::new(object.upload())),
        }
    }

    /// Moves a staged upload of this store to its content address (see [`Placement`]). Callers
    /// hold the blob's row (a lock or an uncommitted insert), which serialises every writer and
    /// remover of one blob.
    pub async fn place(&self, staged: Staged, owner: &Owner, sha256: &Sha256Hex, size: u64) -> io::Result<Placement> {
        match (self, staged) {
            (Self::Volume(volume), Staged::Volume(temp)) => {
                let (volume, owner, sha256) = (volume.clone(), owner.clone(), sha256.clone());
                tokio::task::spawn_blocking(move || volume.place_blob(temp, &owner, &sha256, size))
                    .await
                    .map_err(io::Error::other)?
            }
            (Self::Object(object), Staged::Object(staged)) => object.place(staged, owner, sha256, size).await,
            _ => Err(io::Error::other(
                "an upload can only be placed in the store it was written to",
            )),
        }
    }

    /// Removes a blob's bytes; false when they were not there.
    pub async fn remove(&self, owner: &Owner, sha256: &Sha256Hex) -> io::Result<bool> {
        match self {
            Self::Volume(volume) => {
                let (volume, owner, sha256) = (volume.clone(), owner.clone(), sha256.clone());
                tokio::task::spawn_blocking(move || volume.remove_blob(&owner, &sha256))
                    .await
                    .map_err(io::Error::other)?
            }
            Self::Object(object) => object.remove(owner, sha256).await,
        }
    }

    /// A blob's size as stored, or `None` when it is not there.
    pub async fn blob_size(&self, owner: &Owner, sha256: &Sha256Hex) -> io::Result<Option<u64>> {
        match self {
            Self::Volume(volume) => {
                let (volume, owner, sha256) = (volume.clone(), owner.clone(), sha256.clone());
                tokio::task::spawn_blocking(move || volume.blob_size(&owner, &sha256))
                    .await
                    .map_err(io::Error::other)?
            }
            Self::Object(object) => object.blob_size(owner, sha256).await,
        }
    }

    /// Streams `length` bytes of a blob from `start`. Missing bytes are `NotFound`.
    pub async fn read(
        &self,
        owner: &Owner,
        sha256: &Sha256Hex,
        start: u64,
        length: u64,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        match self {
            Self::Volume(volume) => {
                let mut file = tokio::fs::File::open(volume.blob_path(owner, sha256)).await?;
                if start > 0 {
                    file.seek(SeekFrom::Start(start)).await?;
                }
                Ok(ReaderStream::with_capacity(file.take(length), READ_BUFFER).boxed())
            }
            Self::Object(object) => object.read(owner, sha256, start, length).await,
        }
    }

    /// A URL that lets its holder GET the blob until it expires; `None` on the volume, which
    /// workers read through their mount.
    pub async fn signed_url(&self, owner: &Owner, sha256: &Sha256Hex, ttl: Duration) -> io::Result<Option<String>> {
        match self {
            Self::Volume(_) => Ok(None),
            Self::Object(object) => object.signed_url(owner, sha256, ttl).await.map(Some),
        }
    }

    /// Proves the store takes writes.
    pub async fn check(&self) -> io::Result<()> {
        match self {
            Self::Volume(volume) => volume.check_writable().await,
            Self::Object(object) => object.check().await,
        }
    }
}
