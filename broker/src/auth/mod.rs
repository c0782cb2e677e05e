//! Who is calling: API keys ([`keys`]) and OIDC bearer tokens ([`oidc`]), both sent as
//! `Authorization: Bearer ...`, each resolving to an [`Identity`]: an owner, a role and the
//! subject recorded on the jobs it submits. With authentication off every request is the
//! `default` owner's admin.

pub mod keys;
pub mod oidc;
pub mod settings;

use std::{fmt, sync::Arc};

use sqlx::PgPool;

pub use self::settings::AuthSettings;
use self::{keys::KeyStore, oidc::Oidc};
use crate::domain::Owner;

/// What an identity may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// GET of the owner's own jobs and files.
    Read,
    /// Read, plus submit, cancel and retry the owner's jobs.
    Submit,
    /// Any owner (through the `owner` query parameter), keys, quotas and operations.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Submit, Role::Admin];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Submit => "submit",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == raw)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A caller whose credentials checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub owner: Owner,
    pub role: Role,
    /// Recorded as a job's `submitted_by`: `key:<id>`, `oidc:<subject>` or `anonymous`.
    pub subject: String,
}

impl Identity {
    /// Everyone, when authentication is off.
    pub fn anonymous_admin() -> Self {
        Self {
            owner: Owner::default_owner(),
            role: Role::Admin,
            subject: "anonymous".to_owned(),
        }
    }
}

/// Why a request's credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no credentials: send `Authorization: Bearer <API key or token>`")]
    Missing,
    /// Credentials that are malformed, unknown, revoked, expired or badly signed; the message says
    /// which only where that helps the caller (an expired token is worth refreshing).
    #[error("{0}")]
    Invalid(String),
    /// Valid credentials that map to no role or no valid owner.
    #[error("{0}")]
    Forbidden(String),
    /// Tokens cannot be checked now (the issuer's keys were never fetched, or Postgres is down).
    #[error("{0}")]
    Unavailable(String),
}

/// How requests are authenticated: the one place a bearer credential becomes an identity.
#[derive(Clone)]
pub struct Authenticator {
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    Off,
    On { keys: KeyStore, oidc: Option<Arc<Oidc>> },
}

impl Authenticator {
    pub fn off() -> Self {
        Self { mode: Mode::Off }
    }

    pub fn on(db: PgPool, oidc: Option<Arc<Oidc>>) -> Self {
        Self {
            mode: Mode::On {
                keys: KeyStore::new(db),
                oidc,
            },
        }
    }

    pub fn is_off(&self) -> bool {
        matches!(self.mode, Mode::Off)
    }

    /// The identity behind an `Authorization` header value (`None`: no header).
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Identity, AuthError> {
        let (keys, oidc) = match &self.mode {
            Mode::Off => return Ok(Identity::anonymous_admin()),
            Mode::On { keys, oidc } => (keys, oidc),
        };
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = bearer(header)?;
        if keys::looks_like_key(token) {
            return keys.authenticate(token).await;
        }
        match oidc {
            Some(oidc) => oidc.authenticate(token).await,
            None => Err(AuthError::Invalid(
                "the bearer credential is not a Baton API key (and no OIDC issuer is configured)".into(),
            )),
        }
    }
}

/// The credential of `Bearer <credential>` (the scheme is case-insensitive).
fn bearer(header: &[u8]) -> Result<&str, AuthError> {
    let malformed = || AuthError::Invalid("the Authorization header must be `Bearer <credential>`".into());
    let header = std::str::from_utf8(header).map_err(|_| malformed())?;
    let (scheme, credential) = header.split_once(' ').ok_or_else(malformed)?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() || credential.len() > 16 * 1024 {
        return Err(malformed());
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_credentials_are_taken() {
        assert_eq!(bearer(b"Bearer abc"), Ok("abc"));
        assert_eq!(bearer(b"bearer  abc "), Ok("abc"));
        for bad in [&b"Basic abc"[..], b"Bearer", b"Bearer ", b"abc", b"Bearer \xff"] {
            assert!(matches!(bearer(bad), Err(AuthError::Invalid(_))), "{bad:?}");
        }
        let huge = format!("Bearer {}", "a".repeat(16 * 1024 + 1));
        assert!(
            matches!(bearer(huge.as_bytes()), Err(AuthError::Invalid(_))),
            "a credential over 16 KiB"
        );
    }

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Read < Role::Submit && Role::Submit < Role::Admin);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
