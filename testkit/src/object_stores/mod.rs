//! Object-store emulators for tests, bench and fault suite: Azurite (Azure Blob) and moto
//! (S3), installed at pinned versions into `.tools/` by scripts/emulators, run as private child
//! processes on free loopback ports (never a shared or well-known one).
//!
//! - [`Backend::test_store`]: a fresh, empty location for one test (its own bucket or container,
//!   or its own volume directory) on an emulator shared by the whole test binary, with the
//!   `BATON_STORAGE_URL` and environment Baton needs to reach it. Loop over [`Backend::ALL`].
//! - [`Emulator::start`]: an emulator of the caller's own, to stop, kill and start again (fault
//!   tests). Azurite comes back with its data; moto comes back EMPTY (it keeps everything in
//!   memory): see [`Emulator::keeps_data_across_restart`].

pub mod azure_shared_key;
pub mod azurite;
mod emulator;
pub(crate) mod emulator_process;
pub mod moto;
mod shared;
mod test_store;

use std::time::Duration;

use object_store::ClientOptions;

pub use azurite::Azurite;
pub use emulator::Emulator;
pub use moto::Moto;
pub use shared::shared_emulator;
pub use test_store::{PREFIX, TestStore};

/// Where Baton keeps files in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A directory (the shared volume).
    Volume,
    /// S3, on moto.
    S3,
    /// Azure Blob, on Azurite.
    Azure,
}

impl Backend {
    pub const ALL: [Self; 3] = [Self::Volume, Self::S3, Self::Azure];
    pub const OBJECT_STORES: [Self; 2] = [Self::S3, Self::Azure];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Volume => "volume",
            Self::S3 => "s3",
            Self::Azure => "azure",
        }
    }

    /// A fresh, empty location for one test: a new bucket (S3) or container (Azure) on the
    /// emulator this test binary shares, or a new temporary directory (volume).
    pub async fn test_store(self) -> anyhow::Result<TestStore> {
        match self {
            Self::Volume => TestStore::volume(),
            Self::S3 | Self::Azure => shared_emulator(self).await?.test_store().await,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The HTTP client options of every in-test client. object_store's default 30 s timeout covers
/// a whole response body, too short for large objects on a busy machine.
pub fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_timeout(Duration::from_secs(300))
        .with_connect_timeout(Duration::from_secs(5))
}

/// A bucket or container name no other test uses: lowercase letters and digits, 33
/// characters, valid on S3 and Azure alike.
pub fn unique_bucket_name() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}
