//! Building a store's client from its URL and the standard variables: retries, timeouts, and
//! the Azurite development account.

use std::{io, time::Duration};

use object_store::{ClientConfigKey, RetryConfig, azure::MicrosoftAzureBuilder};

use super::super::{StoreEnv, StoreUrl};

/// Azurite's published development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// With `AZURE_STORAGE_USE_EMULATOR`, the Azurite account at `AZURITE_BLOB_STORAGE_URL`
/// (default `http://127.0.0.1:10000`), addressed like any account by its endpoint: the
/// builder's own emulator mode reads that URL from the process environment only, which a
/// process running Batons against several emulators cannot share.
pub(super) fn azurite(env: &StoreEnv, builder: MicrosoftAzureBuilder) -> MicrosoftAzureBuilder {
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
pub(super) fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    }
}

/// The client's timeouts, unless the environment sets them: the default whole-request timeout
/// (30 s) would cut a large body short, so a stalled read is what ends a request instead.
pub(super) fn client_settings<B>(builder: B, env: &StoreEnv, set: impl Fn(B, ClientConfigKey, String) -> B) -> B {
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

pub(super) fn invalid(url: &StoreUrl, error: object_store::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("cannot use {}: {error}", url.name()),
    )
}
