//! `GET`, `PUT` and `DELETE /v1/quotas/{owner}`: an owner's quotas and usage, for admins.

use axum::{
    Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, ErrorCode},
    extract::JsonBody,
};
use crate::{
    db,
    domain::Owner,
    quota::{Limits, Quotas},
};

pub(super) const GET_ERRORS: &[ErrorCode] = &[ErrorCode::InvalidOwner, ErrorCode::Internal, ErrorCode::Unavailable];
pub(super) const SET_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidOwner,
    ErrorCode::InvalidBody,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_quota, set_quota, reset_quota))
}

/// Limits; null is unlimited (in `overrides`: the default applies).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuotaLimits {
    /// Most bytes of distinct content the owner may store.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub stored_bytes: Option<u64>,
    /// Most jobs queued or running at once.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub active_jobs: Option<u64>,
    /// Most submissions per second (bursts of up to one second's worth).
    #[schema(exclusive_minimum = 0, maximum = 1_000_000)]
    pub submit_rate: Option<f64>,
}

/// A count, written as an integer or as a number with no fraction (`10.0`), as JSON Schema's
/// `integer` allows.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_u64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=i64::MAX as f64).contains(&f) => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "{number} is not a count from 0 to 2^63-1"
        ))),
    }
}

impl QuotaLimits {
    /// Stores these as the owner's overrides; [`validate`] them first.
    pub async fn store(&self, db: &sqlx::PgPool, owner: &Owner) -> sqlx::Result<()> {
        let as_i64 = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        db::quotas::set(
            db,
            owner,
            as_i64(self.stored_bytes),
            as_i64(self.active_jobs),
            self.submit_rate,
        )
        .await?;
        Ok(())
    }
}

impl From<Limits> for QuotaLimits {
    fn from(limits: Limits) -> Self {
        Self {
            stored_bytes: limits.stored_bytes,
            active_jobs: limits.active_jobs,
            submit_rate: limits.submit_rate,
        }
    }
}

/// What an owner uses now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub stored_bytes: u64,
    pub active_jobs: u64,
}

/// An owner's quotas: the defaults, its overrides, what applies, and its usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    pub owner: String,
    pub defaults: QuotaLimits,
    pub overrides: QuotaLimits,
    pub effective: QuotaLimits,
    pub usage: Usage,
}

/// The quotas of `owner`, as [`QuotaView`] shows them.
pub async fn view(db: &sqlx::PgPool, quotas: &Quotas, owner: &Owner) -> sqlx::Result<QuotaView> {
    let overrides = db::quotas::get(db, owner).await?;
    let effective = quotas.defaults().with_overrides(overrides.as_ref());
    let overrides = Limits::default().with_overrides(overrides.as_ref());
    Ok(QuotaView {
        owner: owner.as_str().to_owned(),
        defaults: quotas.defaults().into(),
        overrides: overrides.into(),
        effective: effective.into(),
        usage: Usage {
            stored_bytes: db::quotas::stored_bytes(db, owner).await?,
            active_jobs: db::quotas::active_jobs(db, owner).await?,
        },
    })
}

/// Checks overrides before they are stored.
pub fn validate(limits: &QuotaLimits) -> Result<(), String> {
    let too_big = |v: Option<u64>| v.is_some_and(|v| v > i64::MAX as u64);
    if too_big(limits.stored_bytes) || too_big(limits.active_jobs) {
        return Err("quota values must fit in a signed 64-bit integer".into());
    }
    if limits
        .submit_rate
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0 && rate <= 1e6))
    {
        return Err("`submit_rate` must be above 0 and at most 1000000".into());
    }
    Ok(())
}

fn owner_of(raw: &str) -> Result<Owner, ApiError> {
    Owner::parse(raw).ok_or_else(|| ApiError::new(ErrorCode::InvalidOwner, "an owner matches [a-z0-9_-]{1,64}"))
}

/// An owner's quotas and usage (admin).
#[utoipa::path(
    get,
    path = "/v1/quotas/{owner}",
    tag = "access",
    params(("owner" = String, Path, description = "The owner", pattern = "^[a-z0-9_-]{1,64}$")),
    responses((status = 200, description = "The owner's quotas", body = QuotaView))
)]
pub async fn get_quota(State(state): State<AppState>, Path(owner): Path<String>) -> Result<Json<QuotaView>, ApiError> {
    let owner = owner_of(&owner)?;
    Ok(Json(view(&state.db, &state.quotas, &owner).await?))
}

/// Set an owner's overrides (admin): all three, null for the default.
#[utoipa::path(
    put,
    path = "/v1/quotas/{owner}",
    tag = "access",
    params(("owner" = String, Path, description = "The owner", pattern = "^[a-z0-9_-]{1,64}$")),
    request_body = QuotaLimits,
    responses((status = 200, description = "The owner's quotas now", body = QuotaView))
)]
pub async fn set_quota(
    State(state): State<AppState>,
    Path(owner): Path<String>,
    JsonBody(limits): JsonBody<QuotaLimits>,
) -> Result<Json<QuotaView>, ApiError> {
    let owner = owner_of(&owner)?;
    validate(&limits).map_err(|message| ApiError::new(ErrorCode::InvalidBody, message))?;
    limits.store(&state.db, &owner).await?;
    tracing::info!(owner = %owner.as_str(), ?limits, "quota overrides set");
    Ok(Json(view(&state.db, &state.quotas, &owner).await?))
}

/// Remove an owner's overrides (admin): the defaults apply again.
#[utoipa::path(
    delete,
    path = "/v1/quotas/{owner}",
    tag = "access",
    params(("owner" = String, Path, description = "The owner", pattern = "^[a-z0-9_-]{1,64}$")),
    responses((status = 200, description = "The owner's quotas now", body = QuotaView))
)]
pub async fn reset_quota(
    State(state): State<AppState>,
    Path(owner): Path<String>,
) -> Result<Json<QuotaView>, ApiError> {
    let owner = owner_of(&owner)?;
    db::quotas::reset(&state.db, &owner).await?;
    Ok(Json(view(&state.db, &state.quotas, &owner).await?))
}
