//! Storage on every backend: the volume, S3 (moto) and Azure Blob (Azurite); and replication of
//! the volume to an object store.

mod dedup;
mod download;
mod expiry;
mod faults;
mod limits;
mod memory;
mod migrate;
mod redirect;
mod replication;
mod round_trip;
