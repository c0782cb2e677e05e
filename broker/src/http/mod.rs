//! The HTTP API: one small module per resource, merged into one router with the middleware
//! every request passes through (request id, tracing, panic guard).

pub mod access;
pub mod error;
mod extract;
mod filename;
mod files;
mod health;
mod job_control;
mod jobs;
pub mod keys;
mod metrics;
mod openapi;
pub mod quotas;
mod range;
mod server;
mod submit;
mod timeline;
mod upload;
pub mod views;

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::HeaderName,
    response::{IntoResponse, Response},
};
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa_axum::router::OpenApiRouter;

pub use openapi::{document, openapi, openapi_text};
pub use server::{ServerLimits, serve};
pub use upload::{MAX_PART_OVERHEAD, Rules as BodyRules};

use self::{
    access::RouteAccess,
    error::{ApiError, ErrorCode},
};
use crate::{
    auth::Authenticator,
    config::{JobSettings, Limits},
    queue::{AmqpHealth, control::Control},
    quota::Quotas,
    storage::{Redirect, Storage},
};

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub storage: Storage,
    pub limits: Limits,
    pub job_defaults: JobSettings,
    /// Wakes the dispatcher right after a submit commits.
    pub dispatch_wake: Arc<Notify>,
    pub amqp: AmqpHealth,
    /// Tells workers to stop attempts.
    pub control: Control,
    /// Work that must finish even if its request is dropped; shutdown waits for it.
    pub tasks: TaskTracker,
    /// Uploads in progress; one more than `BATON_MAX_UPLOADS` is refused with 503 `busy`.
    pub uploads: Arc<Semaphore>,
    /// Turns a request's credentials into an identity.
    pub auth: Authenticator,
    /// Each route's required role.
    pub access: RouteAccess,
    pub quotas: Quotas,
    /// `BATON_CONTENT_REDIRECT`: object-stored content answers 302 to a signed URL.
    pub content_redirect: Redirect,
    pub content_redirect_ttl: std::time::Duration,
}

/// Every route, with its OpenAPI description collected alongside: one router per resource.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(jobs::router())
        .merge(files::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(metrics::router())
        .merge(keys::router())
        .merge(quotas::router())
}

/// Each route's required role, from the document the routes are described in.
pub fn route_access() -> RouteAccess {
    RouteAccess::from_document(document())
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(CatchPanicLayer::custom(|_panic| -> Response {
            ApiError::internal("a request handler panicked").into_response()
        }));
    let (routes, _) = api_router().split_for_parts();
    routes
        // Only matched routes: an unknown route is 404 whoever asks.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), access::authorize))
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound, "no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method; see /openapi.json",
            )
        })
        // Upload limits are enforced while streaming, per file and per job; see `upload`.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware)
        .with_state(state)
}

/// `/metrics` alone and without credentials, for `BATON_METRICS_LISTEN`: an address a Route does
/// not expose, scraped from inside the cluster.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::metrics))
        .with_state(state)
}

/// The span every request's logs are in, with the request id the layer above assigned.
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}
