//! Storage backends: replication of the volume to an object store.

mod replication;
