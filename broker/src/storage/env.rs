//! What object stores are opened with: the stores' standard variables (`AWS_*`, `AZURE_*`:
//! endpoints, regions, credentials, workload identity), read from the process environment as
//! the stores' own tools do, with overrides on top for a process that runs several Batons
//! against different stores (tests); and the memory all uploads to them may buffer.

use std::{str::FromStr, sync::Arc};

use super::object::UploadMemory;

/// Default of `BATON_OBJECT_UPLOAD_MEMORY`.
pub const DEFAULT_UPLOAD_MEMORY: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct StoreEnv {
    overrides: Arc<Vec<(String, String)>>,
    pub(super) memory: UploadMemory,
}

impl Default for StoreEnv {
    fn default() -> Self {
        Self::new(Vec::new(), DEFAULT_UPLOAD_MEMORY)
    }
}

impl StoreEnv {
    /// The process environment with `overrides` (name, value) over it; uploads buffer at most
    /// `upload_memory` bytes together.
    pub fn new(overrides: Vec<(String, String)>, upload_memory: u64) -> Self {
        Self {
            overrides: Arc::new(overrides),
            memory: UploadMemory::new(upload_memory),
        }
    }

    /// A variable's value; empty values (a template parameter left blank) count as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match self.overrides.iter().rev().find(|(n, _)| n == name) {
            Some((_, value)) => Some(value.clone()),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// Every variable starting with `prefix`, set on `builder` as the builders' own `from_env`
    /// would (the lowercased name is the config key), skipping names that are no key.
    pub fn apply<B, K: FromStr>(&self, builder: B, prefix: &str, set: fn(B, K, String) -> B) -> B {
        let mut names: Vec<String> = std::env::vars()
            .map(|(name, _)| name)
            .chain(self.overrides.iter().map(|(name, _)| name.clone()))
            .filter(|name| name.starts_with(prefix))
            .collect();
        names.sort();
        names.dedup();
        let mut builder = builder;
        for name in names {
            if let (Some(value), Ok(key)) = (self.get(&name), name.to_ascii_lowercase().parse::<K>()) {
                builder = set(builder, key, value);
            }
        }
        builder
    }
}
