//! From a validated token's claims to an [`Identity`], and from a validation failure to what
//! the caller is told.

use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use serde_json::{Map, Value};

use crate::{
    auth::{AuthError, Identity, Role},
    domain::Owner,
};

/// The `roles` values that grant Baton's roles (app roles defined in the API's app
/// registration, assigned to client applications).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMap {
    pub read: String,
    pub submit: String,
    pub admin: String,
}

impl RoleMap {
    /// The highest role any of `values` grants.
    pub fn highest<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Option<Role> {
        values
            .into_iter()
            .filter_map(|value| match value {
                v if v == self.admin => Some(Role::Admin),
                v if v == self.submit => Some(Role::Submit),
                v if v == self.read => Some(Role::Read),
                _ => None,
            })
            .max()
    }
}

/// Which claims give a token's owner and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// `BATON_OIDC_OWNER_CLAIM`.
    pub owner_claim: String,
    pub roles: RoleMap,
}

/// The identity of a token whose signature, issuer, audience and times checked out: the owner
/// from the owner claim, the highest role its `roles` grant, the subject `oidc:<sub>`.
pub fn identity(claims: &Map<String, Value>, mapping: &ClaimMapping) -> Result<Identity, AuthError> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|sub| !sub.is_empty())
        .ok_or_else(|| AuthError::Invalid("the token has no `sub` claim".into()))?;
    let roles = match claims.get("roles") {
        Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let RoleMap { read, submit, admin } = &mapping.roles;
    let role = mapping.roles.highest(roles).ok_or_else(|| {
        AuthError::Forbidden(format!(
            "the token's `roles` claim grants no Baton role: assign the calling application one of the app roles \
             `{read}`, `{submit}` or `{admin}`"
        ))
    })?;
    let claim = &mapping.owner_claim;
    let raw_owner = claims.get(claim).and_then(Value::as_str).ok_or_else(|| {
        AuthError::Forbidden(format!(
            "the token has no string `{claim}` claim, which names the owner (BATON_OIDC_OWNER_CLAIM)"
        ))
    })?;
    let owner = Owner::parse(raw_owner).ok_or_else(|| {
        AuthError::Forbidden(format!(
            "the token's `{claim}` claim is not a valid owner: it must match [a-z0-9_-]{{1,64}}"
        ))
    })?;
    Ok(Identity {
        owner,
        role,
        subject: format!("oidc:{subject}"),
    })
}

/// What a caller is told about a token that failed validation: enough to act on (an expired
/// token is refreshed; a wrong audience means the client asked for the wrong scope).
pub fn rejection(error: &JwtError) -> AuthError {
    let message = match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired; get a new one".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf` is in the future)".to_owned(),
        ErrorKind::InvalidAudience => "the token was issued for another audience (`aud`)".to_owned(),
        ErrorKind::InvalidIssuer => "the token comes from another issuer (`iss`)".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's `{claim}` claim is malformed"),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not its signing key's".to_owned(),
        _ => "the token is not a well-formed signed JWT".to_owned(),
    };
    AuthError::Invalid(message)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping() -> ClaimMapping {
        ClaimMapping {
            owner_claim: "azp".into(),
            roles: RoleMap {
                read: "Baton.Read".into(),
                submit: "Baton.Submit".into(),
                admin: "Baton.Admin".into(),
            },
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    const APP: &str = "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f";

    #[test]
    fn an_app_token_maps_to_its_client_as_owner_and_its_highest_role() {
        let token = claims(json!({
            "sub": "a1b2", "azp": APP, "roles": ["Other.Role", "Baton.Read", "Baton.Submit"],
        }));
        let identity = identity(&token, &mapping()).unwrap();
        assert_eq!(identity.owner.as_str(), APP);
        assert_eq!(identity.role, Role::Submit);
        assert_eq!(identity.subject, "oidc:a1b2");
        let admin = claims(json!({"sub": "s", "azp": APP, "roles": ["Baton.Admin", "Baton.Read"]}));
        assert_eq!(super::identity(&admin, &mapping()).unwrap().role, Role::Admin);
    }

    #[test]
    fn the_owner_claim_is_configurable() {
        let mut mapping = mapping();
        mapping.owner_claim = "team".into();
        let token = claims(json!({"sub": "s", "azp": APP, "team": "vision", "roles": ["Baton.Read"]}));
        assert_eq!(identity(&token, &mapping).unwrap().owner.as_str(), "vision");
    }

    #[test]
    fn tokens_without_a_role_or_a_usable_owner_are_forbidden() {
        let forbidden = |value: Value| match identity(&claims(value), &mapping()) {
            Err(AuthError::Forbidden(message)) => message,
            other => panic!("expected forbidden, got {other:?}"),
        };
        assert!(forbidden(json!({"sub": "s", "azp": APP})).contains("Baton.Submit"));
        assert!(forbidden(json!({"sub": "s", "azp": APP, "roles": "Baton.Admin"})).contains("roles"));
        assert!(forbidden(json!({"sub": "s", "azp": APP, "roles": ["baton.read"]})).contains("roles"));
        assert!(forbidden(json!({"sub": "s", "roles": ["Baton.Read"]})).contains("`azp`"));
        assert!(forbidden(json!({"sub": "s", "azp": 7, "roles": ["Baton.Read"]})).contains("`azp`"));
        assert!(forbidden(json!({"sub": "s", "azp": "Team A", "roles": ["Baton.Read"]})).contains("`azp`"));
        let long = "a".repeat(65);
        assert!(forbidden(json!({"sub": "s", "azp": long, "roles": ["Baton.Read"]})).contains("`azp`"));
    }

    #[test]
    fn a_token_without_a_subject_is_invalid() {
        let token = claims(json!({"azp": APP, "roles": ["Baton.Read"]}));
        assert!(matches!(identity(&token, &mapping()), Err(AuthError::Invalid(_))));
        let empty = claims(json!({"sub": "", "azp": APP, "roles": ["Baton.Read"]}));
        assert!(matches!(identity(&empty, &mapping()), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn an_expired_token_says_so() {
        let error = JwtError::from(ErrorKind::ExpiredSignature);
        assert_eq!(
            rejection(&error),
            AuthError::Invalid("the token has expired; get a new one".into())
        );
    }
}
