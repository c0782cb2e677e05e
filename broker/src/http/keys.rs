//! `POST /v1/keys`, `GET /v1/keys` and `DELETE /v1/keys/{id}`: API keys, for admins.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, ErrorCode},
    extract::JsonBody,
};
use crate::{
    auth::{Role, keys},
    db::{self, keys::KeyRow},
    domain::Owner,
};

pub(super) const CREATE_ERRORS: &[ErrorCode] = &[ErrorCode::InvalidBody, ErrorCode::Internal, ErrorCode::Unavailable];
pub(super) const LIST_ERRORS: &[ErrorCode] = &[ErrorCode::InvalidQuery, ErrorCode::Internal, ErrorCode::Unavailable];
pub(super) const REVOKE_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidKeyId,
    ErrorCode::KeyNotFound,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The key's id: the part of the token after `baton_` and before the next `_`.
    pub id: String,
    pub owner: String,
    #[schema(value_type = String, pattern = "^(read|submit|admin)$")]
    pub role: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub revoked_at: Option<OffsetDateTime>,
    /// When the key was last used, to the minute.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<KeyRow> for KeyView {
    fn from(row: KeyRow) -> Self {
        Self {
            id: row.id,
            owner: row.owner,
            role: row.role,
            name: row.name,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// The owner whose jobs and files the key reaches.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub owner: String,
    #[schema(value_type = String, pattern = "^(read|submit|admin)$")]
    pub role: String,
    /// A label for listings: up to 128 characters, none of them control characters.
    #[serde(default)]
    #[schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub name: String,
    /// How long the key works: a whole number of seconds, minutes, hours or days (`3600s`,
    /// `90d`); absent or null: until revoked.
    #[schema(pattern = "^[0-9]{1,5}[smhd]$")]
    pub expires_in: Option<String>,
}

/// A new key and its secret token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// `Authorization: Bearer <token>`. Baton keeps only its hash.
    pub token: String,
    pub key: KeyView,
}

/// The key a creation asks for, checked.
pub struct KeySpec {
    pub owner: Owner,
    pub role: Role,
    pub name: String,
    pub expires_at: Option<OffsetDateTime>,
}

impl KeySpec {
    pub fn parse(owner: &str, role: &str, name: String, expires_in: Option<&str>) -> Result<Self, String> {
        let owner = Owner::parse(owner).ok_or("`owner` must match [a-z0-9_-]{1,64}")?;
        let role = Role::parse(role).ok_or("`role` must be read, submit or admin")?;
        if name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err("`name` must be at most 128 characters, none of them control characters".into());
        }
        let expires_at = match expires_in {
            None => None,
            Some(raw) => Some(OffsetDateTime::now_utc() + lifetime(raw)?),
        };
        Ok(Self {
            owner,
            role,
            name,
            expires_at,
        })
    }

    /// Stores a new key; returns its token (to show once) and row.
    pub async fn create(&self, db: &sqlx::PgPool) -> sqlx::Result<(String, KeyRow)> {
        let key = keys::generate();
        let row = db::keys::insert(
            db,
            &db::keys::NewKeyRow {
                id: &key.id,
                secret_sha256: &key.secret_sha256,
                owner: &self.owner,
                role: self.role.as_str(),
                name: &self.name,
                expires_at: self.expires_at,
            },
        )
        .await?;
        Ok((key.token, row))
    }
}

/// A key's lifetime: `^[0-9]{1,5}[smhd]$`, e.g. `90d`.
fn lifetime(raw: &str) -> Result<time::Duration, String> {
    let refuse =
        || format!("`expires` must be a whole number of s, m, h or d such as 90d (at most 5 digits), not `{raw}`");
    let (digits, unit) = raw.split_at(raw.len().saturating_sub(1));
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let count: i64 = digits.parse().map_err(|_| refuse())?;
    match unit {
        "s" => Ok(time::Duration::seconds(count)),
        "m" => Ok(time::Duration::minutes(count)),
        "h" => Ok(time::Duration::hours(count)),
        "d" => Ok(time::Duration::days(count)),
        _ => Err(refuse()),
    }
}

/// Create an API key (admin). The response holds the token, which is never shown again.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "access",
    request_body = NewKeyRequest,
    responses((status = 201, description = "Created", body = CreatedKey))
)]
pub async fn create_key(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<NewKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let spec = KeySpec::parse(
        &request.owner,
        &request.role,
        request.name,
        request.expires_in.as_deref(),
    )
    .map_err(|message| ApiError::new(ErrorCode::InvalidBody, message))?;
    let (token, row) = spec.create(&state.db).await?;
    tracing::info!(key = %row.id, owner = %row.owner, role = %row.role, "API key created");
    let created = CreatedKey { token, key: row.into() };
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyFilter {
    /// Only this owner's keys.
    #[param(pattern = "^[a-z0-9_-]{1,64}$")]
    owner: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// List API keys (admin), newest first; never their secrets.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "access",
    params(KeyFilter),
    responses((status = 200, description = "The keys", body = KeyList))
)]
pub async fn list_keys(
    State(state): State<AppState>,
    filter: Result<Query<KeyFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<KeyList>, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let owner = match filter.owner.as_deref() {
        None => None,
        Some(raw) => Some(
            Owner::parse(raw)
                .ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, "`owner` must match [a-z0-9_-]{1,64}"))?,
        ),
    };
    let keys = db::keys::list(&state.db, owner.as_ref()).await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Revoke an API key (admin). It stops working on every replica within 2 seconds.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "access",
    params(("id" = String, Path, description = "The key's id", pattern = "^[a-z0-9]{1,32}$")),
    responses((status = 200, description = "Revoked: the key as it is now", body = KeyView))
)]
pub async fn revoke_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<KeyView>, ApiError> {
    if !keys::is_valid_id(&id) {
        return Err(ApiError::new(
            ErrorCode::InvalidKeyId,
            "a key id is 1 to 32 lowercase letters and digits",
        ));
    }
    let row = db::keys::revoke(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::KeyNotFound, "no API key with this id"))?;
    tracing::info!(key = %row.id, "API key revoked");
    Ok(Json(row.into()))
}

#[cfg(test)]
mod tests {
    use super::lifetime;

    #[test]
    fn lifetimes_are_a_whole_number_and_one_unit() {
        assert_eq!(lifetime("90d"), Ok(time::Duration::days(90)));
        assert_eq!(lifetime("1s"), Ok(time::Duration::seconds(1)));
        for bad in ["", "d", "1", "1.5h", "1h 30m", "123456d", "-1d", "1w"] {
            assert!(lifetime(bad).is_err(), "{bad}");
        }
    }
}
