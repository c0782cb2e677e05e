//! `BATON_AUTH` and its companions: who may call Baton, and how it learns.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::domain::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Every request needs an API key or an OIDC token.
    On,
    /// Every request acts as the `default` owner's admin: for local development only.
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    /// `on`: every request but `/healthz`, `/readyz` and `/openapi.json` needs
    /// `Authorization: Bearer <API key or OIDC token>`. `off`: every request acts as the
    /// `default` owner with the admin role (local development only; Baton says so loudly).
    #[arg(long, env = "BATON_AUTH", default_value = "on", value_enum)]
    pub auth: AuthMode,

    /// Secret part of the bootstrap admin key: when set, the token
    /// `baton_bootstrap_<this value>` works as an admin key (at least 32 characters from
    /// `[A-Za-z0-9_-]`). Revoking it (`baton keys revoke bootstrap`) is permanent.
    #[arg(long, env = "BATON_BOOTSTRAP_ADMIN_SECRET", hide_env_values = true,
          value_parser = parse_bootstrap_secret)]
    pub bootstrap_admin_secret: Option<String>,

    #[command(flatten)]
    pub oidc: OidcSettings,
}

/// OIDC bearer tokens (Microsoft Entra ID v2.0 first): off unless `BATON_OIDC_ISSUER` is set.
#[derive(Debug, Clone, Args)]
pub struct OidcSettings {
    /// Issuer URL, e.g. `https://login.microsoftonline.com/<tenant-id>/v2.0`; its discovery
    /// document and JWKS give the signing keys. Plain `http` only on loopback.
    #[arg(long, env = "BATON_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// The `aud` tokens must carry: the API's application (client) id.
    #[arg(long, env = "BATON_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,

    /// Claim whose value is the owner. `azp` (Entra v2.0: the calling application's client id)
    /// makes each team's client application an owner, and cannot be chosen by the caller.
    #[arg(long, env = "BATON_OIDC_OWNER_CLAIM", default_value = "azp")]
    pub oidc_owner_claim: String,

    /// Value in the `roles` claim that grants the read role.
    #[arg(long, env = "BATON_OIDC_ROLE_READ", default_value = "Baton.Read")]
    pub oidc_role_read: String,

    /// Value in the `roles` claim that grants the submit role.
    #[arg(long, env = "BATON_OIDC_ROLE_SUBMIT", default_value = "Baton.Submit")]
    pub oidc_role_submit: String,

    /// Value in the `roles` claim that grants the admin role.
    #[arg(long, env = "BATON_OIDC_ROLE_ADMIN", default_value = "Baton.Admin")]
    pub oidc_role_admin: String,

    /// How often the issuer's signing keys are fetched again.
    #[arg(long, env = "BATON_OIDC_REFRESH", default_value = "1h", value_parser = parse_duration)]
    pub oidc_refresh: Duration,

    /// Least time between two fetches caused by tokens with an unknown `kid`.
    #[arg(long, env = "BATON_OIDC_MIN_REFETCH", default_value = "30s", value_parser = parse_duration)]
    pub oidc_min_refetch: Duration,

    /// Clock skew allowed on `exp` and `nbf`.
    #[arg(long, env = "BATON_OIDC_LEEWAY", default_value = "60s", value_parser = parse_duration)]
    pub oidc_leeway: Duration,
}

fn parse_bootstrap_secret(raw: &str) -> Result<String, String> {
    let ok =
        raw.len() >= 32 && raw.len() <= 256 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("use 32 to 256 characters from [A-Za-z0-9_-]".into())
    }
}
