//! Who may call which operation: every operation's required role, and the middleware that turns
//! a request's bearer credential into the [`Caller`] its handler acts for.
//!
//! Requirements are keyed by OpenAPI `operationId`, and the router's routes are mapped to them
//! through the OpenAPI document built from the same handlers: a route without a requirement
//! fails the tests, and is refused (admin only) rather than left open.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{FromRequestParts, MatchedPath, Query, Request, State},
    http::{HeaderValue, Method, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::openapi::OpenApi;

use super::{
    AppState,
    error::{ApiError, ErrorCode},
};
use crate::{
    auth::{AuthError, Identity, Role},
    domain::Owner,
};

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health checks and the API description.
    Open,
    /// An identity with at least this role.
    Role(Role),
}

/// Every operation's requirement, by `operationId`.
pub const REQUIREMENTS: &[(&str, Access)] = &[
    ("submit_job", Access::Role(Role::Submit)),
    ("list_jobs", Access::Role(Role::Read)),
    ("get_job", Access::Role(Role::Read)),
    ("cancel_job", Access::Role(Role::Submit)),
    ("retry_job", Access::Role(Role::Submit)),
    ("job_events", Access::Role(Role::Read)),
    ("get_file", Access::Role(Role::Read)),
    ("get_file_content", Access::Role(Role::Read)),
    ("create_key", Access::Role(Role::Admin)),
    ("list_keys", Access::Role(Role::Admin)),
    ("revoke_key", Access::Role(Role::Admin)),
    ("get_quota", Access::Role(Role::Admin)),
    ("set_quota", Access::Role(Role::Admin)),
    ("reset_quota", Access::Role(Role::Admin)),
    ("metrics", Access::Role(Role::Admin)),
    ("healthz", Access::Open),
    ("readyz", Access::Open),
    ("openapi_json", Access::Open),
];

/// The requirement of an operation; one missing from [`REQUIREMENTS`] needs admin.
pub fn requirement(operation_id: &str) -> Access {
    REQUIREMENTS
        .iter()
        .find(|(id, _)| *id == operation_id)
        .map_or(Access::Role(Role::Admin), |(_, access)| *access)
}

/// The identity a handler acts for, and the owner whose jobs and files it may touch: the
/// identity's own, or (admins only) the one the `owner` query parameter names.
#[derive(Debug, Clone)]
pub struct Caller {
    pub owner: Owner,
    pub identity: Identity,
}

/// Requirements by route (method and path template), from the OpenAPI document.
#[derive(Debug, Clone, Default)]
pub struct RouteAccess(Arc<HashMap<String, Vec<(Method, Access)>>>);

impl RouteAccess {
    pub fn from_document(doc: &OpenApi) -> Self {
        let mut routes: HashMap<String, Vec<(Method, Access)>> = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    let id = operation.operation_id.as_deref().unwrap_or_default();
                    routes.entry(path.clone()).or_default().push((method, requirement(id)));
                }
            }
        }
        Self(Arc::new(routes))
    }

    fn get(&self, method: &Method, path: &str) -> Access {
        // HEAD is served by the GET route.
        let method = if method == Method::HEAD { &Method::GET } else { method };
        self.0
            .get(path)
            .and_then(|operations| operations.iter().find(|(m, _)| m == method))
            .map_or(Access::Role(Role::Admin), |(_, access)| *access)
    }
}

#[derive(Deserialize)]
struct OwnerQuery {
    owner: Option<String>,
}

/// Checks the request's credentials against its route's requirement, and hands the handler a
/// [`Caller`]. Runs before any of the body is read.
pub async fn authorize(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let access = path.map_or(Access::Open, |path| state.access.get(request.method(), &path));
    let Access::Role(needed) = access else {
        return next.run(request).await;
    };
    let authorization = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    let identity = match state.auth.authenticate(authorization).await {
        Ok(identity) => identity,
        Err(error) => return refusal(error),
    };
    match caller(identity, needed, request.uri()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

fn caller(identity: Identity, needed: Role, uri: &axum::http::Uri) -> Result<Caller, ApiError> {
    if identity.role < needed {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "this operation needs the {needed} role; the caller has {}",
                identity.role
            ),
        ));
    }
    let requested = Query::<OwnerQuery>::try_from_uri(uri).ok().and_then(|q| q.0.owner);
    let owner = match requested {
        None => identity.owner.clone(),
        Some(raw) => {
            let owner = Owner::parse(&raw)
                .ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, "`owner` must match [a-z0-9_-]{1,64}"))?;
            if owner != identity.owner && identity.role != Role::Admin {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "only admins may act for another owner (`owner`)",
                ));
            }
            owner
        }
    };
    Ok(Caller { owner, identity })
}

fn refusal(error: AuthError) -> Response {
    match error {
        AuthError::Missing => ApiError::new(ErrorCode::Unauthenticated, error.to_string())
            .with_challenge("Bearer realm=\"baton\"")
            .into_response(),
        AuthError::Invalid(message) => ApiError::new(ErrorCode::InvalidCredentials, message)
            .with_challenge("Bearer realm=\"baton\", error=\"invalid_token\"")
            .into_response(),
        AuthError::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message).into_response(),
        AuthError::Unavailable(message) => ApiError::new(ErrorCode::AuthUnavailable, message).into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a handler needs a caller but its route is open"))
    }
}
