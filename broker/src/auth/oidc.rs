//! OIDC bearer tokens. Placeholder interface: the implementation lands with its tests.

use std::sync::Arc;

use super::{AuthError, Identity, settings::OidcSettings};

pub struct Oidc {
    _settings: OidcSettings,
}

impl Oidc {
    /// `None` when no issuer is configured.
    pub async fn start(settings: &OidcSettings) -> anyhow::Result<Option<Arc<Self>>> {
        if settings.oidc_issuer.is_none() {
            return Ok(None);
        }
        anyhow::bail!("OIDC tokens are not supported yet (BATON_OIDC_ISSUER)")
    }

    pub async fn authenticate(&self, _token: &str) -> Result<Identity, AuthError> {
        Err(AuthError::Unavailable("OIDC tokens are not supported yet".into()))
    }
}
