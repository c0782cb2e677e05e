//! The object stores' standard variables (`AWS_*`, `AZURE_*`): endpoints, regions, credentials,
//! workload identity. Read from the process environment, as the stores' own tools do, with
//! overrides on top for a process that runs several Batons against different stores (tests).

use std::{str::FromStr, sync::Arc};

#[derive(Debug, Clone, Default)]
pub struct StoreEnv {
    overrides: Arc<Vec<(String, String)>>,
}

impl StoreEnv {
    /// The process environment with `overrides` (name, value) over it.
    pub fn with_overrides(overrides: Vec<(String, String)>) -> Self {
        Self {
            overrides: Arc::new(overrides),
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
