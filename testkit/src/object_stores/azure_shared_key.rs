//! Azure Blob's "Create Container", signed with the account key (Shared Key authorization):
//! object_store works inside an existing container and cannot make one.

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

/// The REST API version these requests speak.
const API_VERSION: &str = "2021-08-06";

/// RFC 1123 in GMT, the form `x-ms-date` takes.
const HTTP_DATE: &[FormatItem<'static>] =
    format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");

/// `PUT {account_url}/{container}?restype=container`. `account_url` is the account's endpoint
/// (for Azurite `http://127.0.0.1:{port}/devstoreaccount1`).
pub(crate) async fn create_container(
    account_url: &str,
    account: &str,
    key: &str,
    container: &str,
) -> anyhow::Result<()> {
    let url =
        reqwest::Url::parse(&format!("{account_url}/{container}?restype=container")).context("the container's URL")?;
    let date = OffsetDateTime::now_utc().format(HTTP_DATE)?;
    let canonical_headers = format!("x-ms-date:{date}\nx-ms-version:{API_VERSION}\n");
    // Resource: the account, then the URL's path (which for the emulator starts with the account
    // again), then each query parameter on a line of its own.
    let canonical_resource = format!("/{account}{}\nrestype:container", url.path());
    // Verb, eleven standard headers (all empty here: no body, no conditions), then the rest.
    let string_to_sign = format!("PUT\n\n\n\n\n\n\n\n\n\n\n\n{canonical_headers}{canonical_resource}");
    let signature = sign(key, &string_to_sign)?;
    let response = reqwest::Client::new()
        .put(url)
        .header("x-ms-date", date)
        .header("x-ms-version", API_VERSION)
        .header("Authorization", format!("SharedKey {account}:{signature}"))
        .header("Content-Length", "0")
        .send()
        .await
        .context("Create Container request")?;
    let status = response.status();
    if status != reqwest::StatusCode::CREATED {
        let body = response.text().await.unwrap_or_default();
        bail!("Create Container {container} answered {status}: {body}");
    }
    Ok(())
}

/// Base64 of HMAC-SHA256 over `text` with the base64-decoded account key.
fn sign(key: &str, text: &str) -> anyhow::Result<String> {
    let key = STANDARD.decode(key).context("the account key is not base64")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).context("the account key")?;
    mac.update(text.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}
