//! Storage on every backend: the volume, S3 (moto) and Azure Blob (Azurite).

mod dedup;
mod download;
mod expiry;
mod faults;
mod limits;
mod memory;
mod redirect;
mod round_trip;
