//! A plain HTTP GET, for readiness and health checks.

use std::time::Duration;

/// How long a check may take before it counts as no answer.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `GET url` answers 2xx within [`CHECK_TIMEOUT`].
pub async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).timeout(CHECK_TIMEOUT).send().await {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}
