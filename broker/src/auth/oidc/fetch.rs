//! The issuer's signing keys over HTTP: its discovery document names the JWKS, the JWKS holds
//! the keys. Each request is bounded in time and each document in size.

use std::{collections::HashMap, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, de::DeserializeOwned};

use super::config::{OidcConfig, check_fetchable};

/// Longest a discovery or JWKS request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest discovery document or JWKS read (Entra's are a few KiB).
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// A key tokens may be signed with, and the one algorithm it verifies.
pub struct SigningKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

/// The usable keys of one JWKS, by `kid`.
pub type KeySet = HashMap<String, Arc<SigningKey>>;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot fetch {url}: {source}")]
    Http {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: Url, status: StatusCode },
    #[error("{url} sent more than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: Url },
    #[error("{url} sent no valid JSON document: {source}")]
    Json {
        url: Url,
        #[source]
        source: serde_json::Error,
    },
    /// The configured issuer is not the one the discovery document names: a setting to fix.
    #[error("the discovery document at {url} names the issuer `{found}`, not `{expected}` (BATON_OIDC_ISSUER)")]
    IssuerMismatch { url: Url, found: String, expected: String },
    #[error("the discovery document's jwks_uri: {0}")]
    JwksUri(String),
    #[error("{url} holds no usable signing key (RSA, `use` absent or `sig`, with a `kid`)")]
    NoKeys { url: Url },
}

impl FetchError {
    /// Whether retrying cannot help: the issuer answers, but not as the settings say it should.
    pub fn is_misconfiguration(&self) -> bool {
        matches!(self, Self::IssuerMismatch { .. } | Self::JwksUri(_))
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

/// One JWK, only the members Baton looks at.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Fetches one issuer's discovery document and keys.
pub struct Fetcher {
    http: reqwest::Client,
    issuer: String,
    discovery_url: Url,
}

impl Fetcher {
    pub fn new(config: &OidcConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect could lead to plain http; the issuer's URLs are used as published.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for BATON_OIDC_ISSUER: {e}"))?;
        Ok(Self {
            http,
            issuer: config.issuer.clone(),
            discovery_url: config.discovery_url.clone(),
        })
    }

    /// The JWKS URL the discovery document names, once it proved to be the configured issuer's.
    pub async fn jwks_uri(&self) -> Result<Url, FetchError> {
        let url = &self.discovery_url;
        let discovery: Discovery = self.get_json(url).await?;
        if discovery.issuer != self.issuer {
            return Err(FetchError::IssuerMismatch {
                url: url.clone(),
                found: discovery.issuer,
                expected: self.issuer.clone(),
            });
        }
        let jwks_uri = Url::parse(&discovery.jwks_uri)
            .map_err(|e| FetchError::JwksUri(format!("`{}` is not a URL ({e})", discovery.jwks_uri)))?;
        check_fetchable(&jwks_uri).map_err(FetchError::JwksUri)?;
        Ok(jwks_uri)
    }

    /// The usable keys of the JWKS at `url`; keys Baton cannot use are left out.
    pub async fn keys(&self, url: &Url) -> Result<KeySet, FetchError> {
        let jwks: Jwks = self.get_json(url).await?;
        let keys: KeySet = jwks.keys.into_iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err(FetchError::NoKeys { url: url.clone() });
        }
        Ok(keys)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, FetchError> {
        let http = |source| FetchError::Http {
            url: url.clone(),
            source,
        };
        let mut response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(http)?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: url.clone(),
                status: response.status(),
            });
        }
        let too_large = || FetchError::TooLarge { url: url.clone() };
        if response.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|source| FetchError::Json {
            url: url.clone(),
            source,
        })
    }
}

/// A JWK as a signing key, if Baton can verify tokens with it: an RSA key meant for signatures,
/// with a `kid`, whose algorithm (RS256 unless the key says otherwise) is an RSA one. Tokens
/// are then held to that algorithm, whatever their header says.
fn usable_key(raw: serde_json::Value) -> Option<(String, Arc<SigningKey>)> {
    let jwk: Jwk = serde_json::from_value(raw).ok()?;
    if jwk.kty != "RSA" || jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return None;
    }
    let kid = jwk.kid.filter(|kid| !kid.is_empty())?;
    let algorithm = match jwk.alg.as_deref() {
        None => Algorithm::RS256,
        Some(alg) => rsa_algorithm(alg)?,
    };
    let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?;
    Some((kid, Arc::new(SigningKey { key, algorithm })))
}

fn rsa_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Any base64url modulus will do: which keys are taken is tested, not verification.
    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUet";

    #[test]
    fn only_rsa_signing_keys_with_an_id_and_an_rsa_algorithm_are_taken() {
        let key = |extra: serde_json::Value| {
            let mut jwk = json!({"kty": "RSA", "kid": "k", "n": N, "e": "AQAB"});
            jwk.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            usable_key(jwk).map(|(kid, key)| (kid, key.algorithm))
        };
        assert_eq!(key(json!({})), Some(("k".into(), Algorithm::RS256)));
        assert_eq!(
            key(json!({"use": "sig", "alg": "PS256"})),
            Some(("k".into(), Algorithm::PS256))
        );
        assert_eq!(key(json!({"use": "enc"})), None);
        assert_eq!(key(json!({"alg": "HS256"})), None);
        assert_eq!(key(json!({"alg": "none"})), None);
        assert_eq!(key(json!({"kty": "oct", "k": "c2VjcmV0"})), None);
        assert_eq!(key(json!({"kty": "EC"})), None);
        assert_eq!(key(json!({"kid": ""})), None);
        assert_eq!(key(json!({"kid": null})), None);
        assert_eq!(key(json!({"e": null})), None);
        assert_eq!(key(json!({"n": "not base64!"})), None);
    }
}
