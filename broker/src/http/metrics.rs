//! `GET /metrics`: Prometheus text format.

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, error::ErrorCode, openapi::examples};
use crate::{db, telemetry::metrics as m};

/// `metrics` answers with no error code of its own: a failed database query leaves its gauges
/// as they were and sets `baton_postgres_up` to 0.
pub(super) const METRICS_ERRORS: &[ErrorCode] = &[];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Metrics in Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format, version 0.0.4",
               content_type = "text/plain", example = examples::metrics))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let handle = m::handle();
    refresh_gauges(&state).await;
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn refresh_gauges(state: &AppState) {
    let amqp = [
        ("publisher", state.amqp.publisher_connected()),
        ("consumer", state.amqp.consumer_connected()),
    ];
    for (connection, up) in amqp {
        metrics::gauge!(m::AMQP_CONNECTED, "connection" => connection).set(f64::from(u8::from(up)));
    }
    let counts = db::jobs::count_by_model_and_status(&state.db).await;
    let backlog = db::outbox::backlog(&state.db).await;
    let missing = db::blobs::count_missing(&state.db).await;
    let up = counts.is_ok() && backlog.is_ok() && missing.is_ok();
    metrics::gauge!(m::POSTGRES_UP).set(f64::from(u8::from(up)));
    if let Ok(counts) = counts {
        for (model, status, count) in counts {
            metrics::gauge!(m::JOBS, "model" => model, "status" => status.as_str()).set(count as f64);
        }
    }
    if let Ok(backlog) = backlog {
        metrics::gauge!(m::DISPATCH_BACKLOG).set(backlog as f64);
    }
    if let Ok(missing) = missing {
        metrics::gauge!(m::BLOBS_MISSING).set(missing as f64);
    }
    if let Some(replica) = state.storage.replica() {
        match db::replicas::backlog(&state.db, &replica.name()).await {
            Ok(backlog) => {
                metrics::gauge!(m::REPLICATION_LAG).set(backlog.lag_seconds);
                metrics::gauge!(m::REPLICATION_UNREPLICATED_BYTES).set(backlog.bytes as f64);
                metrics::gauge!(m::REPLICATION_UNREPLICATED_BLOBS).set(backlog.blobs as f64);
            }
            Err(error) => tracing::debug!(error = %error, "reading the replication backlog failed"),
        }
    }
    if let Err(error) = crate::migration::refresh_metrics(&state.db).await {
        tracing::debug!(error = %error, "cannot read the storage migration's progress");
    }
}
