//! OIDC bearer tokens, Microsoft Entra ID v2.0 access tokens first: JWTs signed by the issuer
//! in `BATON_OIDC_ISSUER` for the audience `BATON_OIDC_AUDIENCE`.
//!
//! The signing keys come from the issuer's discovery document and JWKS ([`fetch`]), held in a
//! [`cache`] that [`KeyRefresher`] keeps current. A token is checked against the key its `kid`
//! names and only with that key's algorithm (RS256 for Entra), whatever its header claims, so
//! `none` and HMAC tokens never verify; `exp`, `nbf`, `iss` and `aud` are required. Its claims
//! then give the owner and the role ([`claims`]).

mod cache;
mod claims;
mod config;
mod fetch;
mod refresh;

use std::sync::Arc;

use anyhow::Context;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

pub use self::{
    cache::Fetched,
    claims::{ClaimMapping, RoleMap},
    config::OidcConfig,
    refresh::{KeyRefresher, KeyRefresherConfig},
};
use self::{cache::KeyCache, fetch::Fetcher};
use super::{AuthError, Identity, settings::OidcSettings};

/// Longest `kid` taken; Entra's are about 30 characters.
const MAX_KID_LEN: usize = 256;

pub struct Oidc {
    config: OidcConfig,
    keys: Arc<KeyCache>,
}

impl Oidc {
    /// `None` when no issuer is configured. Otherwise checks the settings (an unusable one is an
    /// error naming its variable) and fetches the issuer's keys once. An issuer that cannot be
    /// reached does not stop Baton: tokens get 503 `auth_unavailable` until the returned
    /// [`KeyRefresher`], which must be run, fetches the keys. An issuer that answers as another
    /// one (its discovery document names a different issuer) stops Baton here.
    pub async fn start(settings: &OidcSettings) -> anyhow::Result<Option<(Arc<Self>, KeyRefresher)>> {
        let Some(config) = OidcConfig::from_settings(settings)? else {
            return Ok(None);
        };
        // An error means it is installed already (by an earlier start in this process).
        jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default().ok();
        let fetcher = Fetcher::new(&config)?;
        let keys = Arc::new(KeyCache::new(fetcher, config.min_refetch));
        match keys.refresh().await {
            Ok(fetched) => {
                tracing::info!(issuer = %config.issuer, keys = fetched.keys, "accepting OIDC tokens");
            }
            Err(error) if error.is_misconfiguration() => {
                return Err(error).context("the OIDC issuer does not match BATON_OIDC_ISSUER");
            }
            Err(error) => tracing::warn!(
                issuer = %config.issuer, %error,
                "cannot fetch the OIDC issuer's keys yet; OIDC tokens get 503 until Baton can"
            ),
        }
        let refresher = KeyRefresher::new(Arc::clone(&keys), KeyRefresherConfig::new(config.refresh));
        Ok(Some((Arc::new(Self { config, keys }), refresher)))
    }

    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::Invalid(
                "the bearer credential is neither a Baton API key nor a signed JWT of a supported algorithm".into(),
            )
        })?;
        let kid = header
            .kid
            .as_deref()
            .filter(|kid| !kid.is_empty() && kid.len() <= MAX_KID_LEN)
            .ok_or_else(|| AuthError::Invalid("the token names no signing key (`kid`)".into()))?;
        let key = self.keys.key(kid).await?;
        if header.alg != key.algorithm {
            return Err(AuthError::Invalid(format!(
                "the token's algorithm is {:?}; its signing key takes only {:?}",
                header.alg, key.algorithm
            )));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &self.validation(key.algorithm))
            .map_err(|error| claims::rejection(&error))?;
        claims::identity(&data.claims, &self.config.mapping)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[&self.config.audience]);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway.as_secs();
        validation
    }
}
