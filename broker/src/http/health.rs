//! `GET /healthz` (alive) and `GET /readyz` (able to take submissions).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unready`.
    pub status: &'static str,
    /// `ok` or `unreachable`.
    pub postgres: &'static str,
    /// `ok` or `unwritable`.
    pub storage: &'static str,
    /// `connected` or `disconnected`. Reported only: submissions work while RabbitMQ is down,
    /// and queued jobs are published once it is back.
    pub rabbitmq: &'static str,
}

/// Liveness: the process is serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: Postgres reachable and the shared volume writable.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let postgres = tokio::time::timeout(
        CHECK_TIMEOUT,
        sqlx::query_scalar!("SELECT 1 AS \"one!\"").fetch_one(&state.db),
    )
    .await;
    let postgres_ok = matches!(postgres, Ok(Ok(_)));
    if let Ok(Err(e)) = &postgres {
        tracing::warn!(error = %e, "readiness: Postgres check failed");
    }
    let storage = tokio::time::timeout(CHECK_TIMEOUT, state.storage.check_writable()).await;
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
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
