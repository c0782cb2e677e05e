//! `GET /openapi.json`: the OpenAPI 3.1 description, generated from the handlers' annotations.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Baton",
        description = "Job broker for ML inference with large input files. Errors are JSON \
                       `{\"error\": {\"code\", \"message\"}}` with a stable code.",
    ),
    tags(
        (name = "jobs", description = "Submit and follow inference jobs"),
        (name = "files", description = "Input files and their bytes"),
        (name = "operations", description = "Health and readiness"),
    )
)]
struct ApiDoc;

pub(super) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The full description, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    super::api_router().into_openapi()
}

static SPEC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(SPEC.get_or_init(openapi).clone())
}
