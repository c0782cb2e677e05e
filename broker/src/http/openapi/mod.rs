//! `GET /openapi.json`: the OpenAPI 3.1 description. Operations come from the handlers'
//! annotations; error responses from the one error-code registry ([`errors`]); schemas the Rust
//! types cannot express are written here ([`schemas`], [`form`], [`timeline`]).
//!
//! `openapi/baton.json` in the repository is this document as `baton openapi` prints it; a test
//! keeps the two equal.

pub(super) mod download;
pub(super) mod errors;
pub(super) mod examples;
pub(super) mod form;
pub(super) mod schemas;
pub(super) mod security;
pub(super) mod timeline;

use utoipa::{
    OpenApi,
    openapi::{Ref, RefOr, Type, header::Header, path::Operation, schema::ObjectBuilder},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ErrorBody, ErrorCode, ErrorDetail},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Baton",
        description = "Job broker for ML inference with large input files.\n\n\
            Every error is JSON, `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`, with a stable \
            `code` from one registry; each operation lists the codes it can answer with, per status. \
            A 4xx message says what to fix; a 5xx message says nothing about internals.\n\n\
            Any request may be refused with 503 `busy` when Baton is at its connection limit \
            (`BATON_MAX_CONNECTIONS`); that answer carries `Retry-After` but no `x-request-id`, \
            as it is sent before the request is read. A path that matches no route gets 404 \
            `route_not_found`, and a method a route does not take gets 405 `method_not_allowed` \
            with an `Allow` header (see `components.responses`). A handler that fails unexpectedly \
            answers 500 `internal`.\n\n\
            Every operation but `/healthz`, `/readyz` and `/openapi.json` needs \
            `Authorization: Bearer <API key or OIDC token>` and a role (`read`, `submit` or `admin`; \
            `x-baton-role`): without credentials it answers 401 `unauthenticated`, with bad ones 401 \
            `invalid_credentials` (both with `WWW-Authenticate`), without the role 403 `forbidden`. \
            Another owner's job or file answers 404 exactly like an unknown id. When Baton runs with \
            `BATON_AUTH=off` (local development) every request acts as the `default` owner's admin.\n\n\
            Every response Baton routes carries `x-request-id`: the client's, if it sent one, \
            else a new UUID. Baton's logs show it.",
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "jobs", description = "Submit and follow inference jobs"),
        (name = "files", description = "Input files and their bytes"),
        (name = "access", description = "API keys and quotas (admin)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

/// Codes `GET /openapi.json` answers with besides those of any request.
pub(super) const OPENAPI_ERRORS: &[ErrorCode] = &[];

pub(super) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// The full description, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = super::api_router().into_openapi();
    errors::add_error_responses(&mut doc);
    security::add_security(&mut doc);
    add_request_id(&mut doc);
    doc
}

/// The document as committed at `openapi/baton.json`: pretty-printed, with a trailing newline.
pub fn openapi_text() -> String {
    let mut text = openapi().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// `x-request-id` on every response, operations' and general ones alike.
fn add_request_id(doc: &mut utoipa::openapi::OpenApi) {
    let header = Header::builder()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1))))
        .description(Some(
            "The request's id: the client's `x-request-id` if it sent one, else a new UUID. Baton's logs show it.",
        ))
        .example(Some(serde_json::json!("5f0c6a8e-3b1d-4c2a-9e7f-1a2b3c4d5e6f")))
        .build();
    let reference = || Ref::new(format!("#/components/headers/{}", errors::REQUEST_ID));
    let operations: Vec<&mut Operation> = doc.paths.paths.values_mut().flat_map(errors::operations_mut).collect();
    for operation in operations {
        for response in operation.responses.responses.values_mut() {
            if let RefOr::T(response) = response {
                response.headers.insert("X-Request-Id".into(), RefOr::Ref(reference()));
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for response in components.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.headers.insert("X-Request-Id".into(), RefOr::Ref(reference()));
        }
    }
    components.headers.insert(errors::REQUEST_ID.into(), header.into());
}

static SPEC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();

/// [`openapi`], built once per process: served as is, and read for each route's required role.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    SPEC.get_or_init(openapi)
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document().clone())
}

#[cfg(test)]
mod tests {
    /// `openapi/baton.json` is what Baton serves. After changing the API, refresh it with
    /// `cargo run -p baton-broker -- openapi > openapi/baton.json`.
    #[test]
    fn the_committed_document_is_the_served_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/baton.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::openapi_text(),
            "openapi/baton.json is out of date: run `cargo run -p baton-broker -- openapi > openapi/baton.json`"
        );
    }
}
