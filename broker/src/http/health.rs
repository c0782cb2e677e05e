//! `GET /healthz` (alive) and `GET /readyz` (able to take submissions).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, error::ErrorCode, openapi::examples};
use crate::db;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `healthz` answers with no error code of its own; the OpenAPI document lists the codes any
/// request can get (`openapi::errors`).
pub(super) const HEALTHZ_ERRORS: &[ErrorCode] = &[];

/// `readyz` reports a failed check in its 503 body, never as an error code.
pub(super) const READYZ_ERRORS: &[ErrorCode] = &[];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(schema_with = health_status)]
    pub status: &'static str,
}

fn words(words: &[&str], description: &str) -> utoipa::openapi::schema::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(words.iter().copied()))
        .description(Some(description))
        .build()
}

fn health_status() -> utoipa::openapi::schema::Object {
    words(&["ok"], "Always `ok`.")
}

fn ready_status() -> utoipa::openapi::schema::Object {
    words(
        &["ready", "unready"],
        "`ready` when Postgres is reachable and the storage backend (volume or object store) takes writes.",
    )
}

fn postgres_status() -> utoipa::openapi::schema::Object {
    words(&["ok", "unreachable"], "Whether Postgres answered within 3 s.")
}

fn storage_status() -> utoipa::openapi::schema::Object {
    words(
        &["ok", "unwritable"],
        "Whether a probe was written to the storage backend and removed within 3 s.",
    )
}

fn rabbitmq_status() -> utoipa::openapi::schema::Object {
    words(
        &["connected", "disconnected"],
        "Reported only: submissions work while RabbitMQ is down, and queued jobs are published once it is back.",
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(schema_with = ready_status)]
    pub status: &'static str,
    #[schema(schema_with = postgres_status)]
    pub postgres: &'static str,
    #[schema(schema_with = storage_status)]
    pub storage: &'static str,
    #[schema(schema_with = rabbitmq_status)]
    pub rabbitmq: &'static str,
    #[schema(schema_with = auth_status)]
    pub auth: &'static str,
    /// Present when authentication is off: anyone who can reach Baton is its admin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'static str>,
}

fn auth_status() -> utoipa::openapi::schema::Object {
    words(
        &["on", "off"],
        "`off` (`BATON_AUTH=off`): every request acts as the `default` owner's admin; for local development only.",
    )
}

const AUTH_OFF_WARNING: &str =
    "authentication is off (BATON_AUTH=off): every request acts as the default owner with the admin role";

/// Liveness: the process is serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Health, example = examples::health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: Postgres reachable and the shared volume writable.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to take submissions", body = Readiness, example = examples::ready),
        (status = 503, description = "Not ready: Postgres is unreachable or the storage backend takes no writes",
         body = Readiness, example = examples::unready),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let postgres = tokio::time::timeout(CHECK_TIMEOUT, db::ping(&state.db)).await;
    let postgres_ok = matches!(postgres, Ok(Ok(_)));
    if let Ok(Err(e)) = &postgres {
        tracing::warn!(error = %e, "readiness: Postgres check failed");
    }
    let storage = tokio::time::timeout(CHECK_TIMEOUT, state.storage.write_backend().check()).await;
    let storage_ok = matches!(storage, Ok(Ok(())));
    if let Ok(Err(e)) = &storage {
        tracing::warn!(error = %e, "readiness: storage check failed");
    }
    let amqp_up = state.amqp.publisher_connected() && state.amqp.consumer_connected();
    let ready = postgres_ok && storage_ok;
    let body = Readiness {
        status: if ready { "ready" } else { "unready" },
        postgres: if postgres_ok { "ok" } else { "unreachable" },
        storage: if storage_ok { "ok" } else { "unwritable" },
        rabbitmq: if amqp_up { "connected" } else { "disconnected" },
        auth: if state.auth.is_off() { "off" } else { "on" },
        warning: state.auth.is_off().then_some(AUTH_OFF_WARNING),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
