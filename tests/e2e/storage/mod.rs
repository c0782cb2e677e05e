//! Storage across backends: the volume, S3 (moto) and Azure Blob (Azurite).

mod migrate;
