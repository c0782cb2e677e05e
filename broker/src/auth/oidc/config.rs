//! The OIDC settings, checked once at start: anything Baton cannot use stops it with one line
//! naming the variable.

use std::{net::IpAddr, time::Duration};

use reqwest::Url;

use super::claims::{ClaimMapping, RoleMap};
use crate::{
    auth::settings::{DEFAULT_OWNER_CLAIM, OidcSettings},
    service::InvalidConfig,
};

/// What [`super::Oidc`] runs on, from [`OidcSettings`].
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer exactly as tokens (and the discovery document) carry it.
    pub issuer: String,
    /// `{issuer}/.well-known/openid-configuration`.
    pub discovery_url: Url,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// Which claims give the owner and the role.
    pub mapping: ClaimMapping,
    /// Time between scheduled fetches of the keys.
    pub refresh: Duration,
    /// Least time between two fetches caused by unknown key ids.
    pub min_refetch: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl OidcConfig {
    /// `None` when `BATON_OIDC_ISSUER` is unset (or empty).
    pub fn from_settings(settings: &OidcSettings) -> Result<Option<Self>, InvalidConfig> {
        let issuer = settings.oidc_issuer.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let audience = settings
            .oidc_audience
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let Some(issuer) = issuer else {
            if audience.is_some() {
                return Err(invalid(
                    "BATON_OIDC_AUDIENCE",
                    "is set but BATON_OIDC_ISSUER is not; set both to accept OIDC tokens, or neither",
                ));
            }
            return Ok(None);
        };
        let discovery_url = discovery_url(issuer).map_err(|reason| invalid("BATON_OIDC_ISSUER", reason))?;
        let audience = audience.ok_or_else(|| {
            invalid(
                "BATON_OIDC_AUDIENCE",
                "is required with BATON_OIDC_ISSUER: the API's application (client) id tokens must be issued for",
            )
        })?;
        let owner_claim = match settings.oidc_owner_claim.trim() {
            "" => DEFAULT_OWNER_CLAIM,
            claim => claim,
        };
        let roles = RoleMap {
            read: role_value("BATON_OIDC_ROLE_READ", &settings.oidc_role_read)?,
            submit: role_value("BATON_OIDC_ROLE_SUBMIT", &settings.oidc_role_submit)?,
            admin: role_value("BATON_OIDC_ROLE_ADMIN", &settings.oidc_role_admin)?,
        };
        if roles.read == roles.submit || roles.submit == roles.admin || roles.read == roles.admin {
            return Err(invalid(
                "BATON_OIDC_ROLE_READ",
                "the read, submit and admin role values must differ",
            ));
        }
        InvalidConfig::positive("BATON_OIDC_REFRESH", settings.oidc_refresh)?;
        InvalidConfig::positive("BATON_OIDC_MIN_REFETCH", settings.oidc_min_refetch)?;
        Ok(Some(Self {
            issuer: issuer.to_owned(),
            discovery_url,
            audience: audience.to_owned(),
            mapping: ClaimMapping {
                owner_claim: owner_claim.to_owned(),
                roles,
            },
            refresh: settings.oidc_refresh,
            min_refetch: settings.oidc_min_refetch,
            leeway: settings.oidc_leeway,
        }))
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> InvalidConfig {
    InvalidConfig {
        setting,
        reason: reason.into(),
    }
}

fn role_value(setting: &'static str, raw: &str) -> Result<String, InvalidConfig> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(invalid(setting, "must not be empty"));
    }
    Ok(value.to_owned())
}

/// Where an issuer publishes its configuration (OpenID Connect Discovery 1.0, section 4).
fn discovery_url(issuer: &str) -> Result<Url, String> {
    let url = Url::parse(issuer).map_err(|e| format!("`{issuer}` is not a URL ({e})"))?;
    check_fetchable(&url)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{issuer}` must have no query or fragment"));
    }
    let base = issuer.trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/openid-configuration"))
        .map_err(|e| format!("`{issuer}` gives no discovery URL ({e})"))
}

/// Whether Baton may fetch keys from `url`: https anywhere, plain http only on loopback (a test's
/// issuer), never with credentials in the URL.
pub fn check_fetchable(url: &Url) -> Result<(), String> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{}` must not carry credentials", url.host_str().unwrap_or("")));
    }
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!("`{url}` must be https (plain http only on loopback)")),
        _ => Err(format!("`{url}` must be an https URL")),
    }
}

/// Whether `url` names this machine: `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(issuer: Option<&str>, audience: Option<&str>) -> OidcSettings {
        OidcSettings {
            oidc_issuer: issuer.map(str::to_owned),
            oidc_audience: audience.map(str::to_owned),
            oidc_owner_claim: "azp".into(),
            oidc_role_read: "Baton.Read".into(),
            oidc_role_submit: "Baton.Submit".into(),
            oidc_role_admin: "Baton.Admin".into(),
            oidc_refresh: Duration::from_secs(3600),
            oidc_min_refetch: Duration::from_secs(30),
            oidc_leeway: Duration::from_secs(60),
        }
    }

    #[test]
    fn plain_http_is_accepted_only_on_loopback() {
        for ok in [
            "https://login.microsoftonline.com/t/v2.0",
            "http://127.0.0.1:8080",
            "http://127.1.2.3/x",
            "http://[::1]:9000/",
            "http://localhost:1/issuer",
        ] {
            assert_eq!(check_fetchable(&Url::parse(ok).unwrap()), Ok(()), "{ok}");
        }
        for bad in [
            "http://login.microsoftonline.com/t/v2.0",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://localhost.example.com/",
            "ftp://127.0.0.1/",
            "https://user:pw@issuer.example/",
        ] {
            assert!(check_fetchable(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_discovery_document_is_under_the_issuer() {
        let entra = "https://login.microsoftonline.com/0c9a8e7f-1b2c-4d3e-8f4a-5b6c7d8e9f00/v2.0";
        let config = OidcConfig::from_settings(&settings(Some(entra), Some("api://baton")))
            .unwrap()
            .unwrap();
        assert_eq!(config.issuer, entra);
        assert_eq!(
            config.discovery_url.as_str(),
            format!("{entra}/.well-known/openid-configuration")
        );
        let slash = OidcConfig::from_settings(&settings(Some("http://127.0.0.1:1/"), Some("a")))
            .unwrap()
            .unwrap();
        assert_eq!(slash.issuer, "http://127.0.0.1:1/");
        assert_eq!(
            slash.discovery_url.as_str(),
            "http://127.0.0.1:1/.well-known/openid-configuration"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let mut empty = settings(Some("https://i.example"), Some(" "));
        assert_eq!(
            OidcConfig::from_settings(&empty).unwrap_err().setting,
            "BATON_OIDC_AUDIENCE"
        );
        empty.oidc_audience = Some("api://baton".into());
        empty.oidc_owner_claim = String::new();
        let config = OidcConfig::from_settings(&empty).unwrap().unwrap();
        assert_eq!(config.mapping.owner_claim, "azp");
        assert!(
            OidcConfig::from_settings(&settings(Some(""), Some("")))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn unusable_settings_name_their_variable() {
        let error = |s: OidcSettings| OidcConfig::from_settings(&s).unwrap_err().setting;
        assert_eq!(
            error(settings(Some("http://issuer.example"), Some("a"))),
            "BATON_OIDC_ISSUER"
        );
        assert_eq!(error(settings(Some("not a url"), Some("a"))), "BATON_OIDC_ISSUER");
        assert_eq!(error(settings(Some("https://i.example"), None)), "BATON_OIDC_AUDIENCE");
        assert_eq!(error(settings(None, Some("a"))), "BATON_OIDC_AUDIENCE");
        let mut same_roles = settings(Some("https://i.example"), Some("a"));
        same_roles.oidc_role_admin = "Baton.Read".into();
        assert_eq!(error(same_roles), "BATON_OIDC_ROLE_READ");
        let mut zero = settings(Some("https://i.example"), Some("a"));
        zero.oidc_min_refetch = Duration::ZERO;
        assert_eq!(error(zero), "BATON_OIDC_MIN_REFETCH");
        assert!(OidcConfig::from_settings(&settings(None, None)).unwrap().is_none());
        assert!(OidcConfig::from_settings(&settings(Some(""), None)).unwrap().is_none());
    }
}
