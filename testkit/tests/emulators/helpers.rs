use baton_testkit::object_stores::{Backend, TestStore};
use object_store::path::Path;

/// A fresh bucket or container for each object-store backend.
pub async fn object_stores() -> Vec<TestStore> {
    let mut stores = Vec::new();
    for backend in Backend::OBJECT_STORES {
        stores.push(backend.test_store().await.expect("a test store"));
    }
    stores
}

pub fn key(name: &str) -> Path {
    Path::from(format!("baton/{name}"))
}

/// `len` bytes of a pattern that shows misplaced ranges.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
