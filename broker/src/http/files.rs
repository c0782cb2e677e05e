//! `GET /v1/files/{id}` and `GET /v1/files/{id}/content`.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    access::Caller,
    error::{ApiError, ErrorCode},
    extract::IdPath,
    openapi::{download::ContentHeaders, examples, schemas::Id},
    range::{self, RangeRequest},
    views::FileView,
};
use crate::{
    db::{self, files::FileRow},
    domain::{FileId, Owner, Sha256Hex},
    storage::{Redirect, StoreName},
};

/// The codes `get_file` answers with; the OpenAPI document lists them (`openapi::errors`).
pub(super) const GET_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidId,
    ErrorCode::NotFound,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

/// The codes `get_file_content` answers with.
pub(super) const CONTENT_ERRORS: &[ErrorCode] = &[
    ErrorCode::InvalidId,
    ErrorCode::NotFound,
    ErrorCode::FileMissing,
    ErrorCode::RangeNotSatisfiable,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
    ErrorCode::StorageUnavailable,
];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_file))
        .routes(routes!(get_file_content))
}

/// Get a file's metadata.
#[utoipa::path(
    get,
    path = "/v1/files/{id}",
    tag = "files",
    params(("id" = Id, Path, description = "The file's id")),
    responses((status = 200, description = "The file's metadata", body = FileView, example = examples::file))
)]
pub async fn get_file(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<FileId>,
) -> Result<Json<FileView>, ApiError> {
    Ok(Json(FileView::from(find(&state, &caller.owner, id).await?)))
}

/// Download a file's bytes. Supports a single `Range`, `If-Range` and `If-None-Match`; the
/// ETag is the SHA-256.
#[utoipa::path(
    get,
    path = "/v1/files/{id}/content",
    tag = "files",
    params(("id" = Id, Path, description = "The file's id"), ContentHeaders),
    responses(
        (status = 200, description = "The whole file. `Content-Type` is the type Baton sniffed from the bytes \
         (e.g. `image/png`, `text/plain`), `application/octet-stream` when it could not tell.",
         content_type = "*/*",
         headers(
             ("ETag" = String, description = "The file's SHA-256 in quotes"),
             ("Cache-Control" = String, description = "`private, max-age=0, must-revalidate`"),
             ("Accept-Ranges" = String, description = "`bytes`"),
             ("Content-Disposition" = String, description = "`attachment` with the sanitised filename, \
              also in RFC 5987 form (`filename*=UTF-8''...`)"),
             ("Content-Length" = u64, description = "The file's size"),
         )),
        (status = 206, description = "The requested range of the file (same headers as 200).",
         content_type = "*/*",
         headers(
             ("Content-Range" = String, description = "`bytes first-last/size`"),
             ("ETag" = String, description = "The file's SHA-256 in quotes"),
             ("Cache-Control" = String, description = "`private, max-age=0, must-revalidate`"),
             ("Accept-Ranges" = String, description = "`bytes`"),
             ("Content-Disposition" = String, description = "As for 200"),
             ("Content-Length" = u64, description = "The range's length"),
         )),
        (status = 302, description = "With `BATON_CONTENT_REDIRECT=on`, for a file in object storage: `Location` is a \
         short-lived signed URL of the store that serves the bytes (with `Range`) itself.",
         headers(
             ("Location" = String, description = "The signed URL, valid for `BATON_CONTENT_REDIRECT_TTL`"),
             ("ETag" = String, description = "The file's SHA-256 in quotes"),
             ("Cache-Control" = String, description = "`private, no-store`: the URL expires"),
         )),
        (status = 304, description = "`If-None-Match` names the file's ETag: the client's copy is current.",
         headers(
             ("ETag" = String, description = "The file's SHA-256 in quotes"),
             ("Cache-Control" = String, description = "`private, max-age=0, must-revalidate`"),
         )),
    )
)]
pub async fn get_file_content(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<FileId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = find(&state, &caller.owner, id).await?;
    let size = u64::try_from(file.size).unwrap_or_default();
    let etag = format!("\"{}\"", file.sha256);

    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::ETAG, header_value(&etag)?);
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0, must-revalidate"),
    );

    if let Some(candidates) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && candidates.split(',').any(|c| {
            let c = c.trim();
            c == "*" || c.trim_start_matches("W/") == etag
        })
    {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }

    // If-Range: only honour Range when the client's copy is this content.
    let range_header = match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(validator) if validator.trim() != etag => None,
        _ => headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
    };
    let (status, range) = match range::parse(range_header, size) {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        RangeRequest::Unsatisfiable => {
            let mut response =
                ApiError::new(ErrorCode::RangeNotSatisfiable, format!("the file has {size} bytes")).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}"))?);
            return Ok(response);
        }
    };

    let owner = Owner::parse(&file.owner).ok_or_else(|| ApiError::internal("stored owner is invalid"))?;
    let sha256 = Sha256Hex::from_stored(&file.sha256);
    let backend = state
        .storage
        .backend(&StoreName::from_stored(&file.store))
        .map_err(ApiError::storage)?;
    if state.content_redirect == Redirect::On
        && let Some(url) = backend
            .signed_url(&owner, &sha256, state.content_redirect_ttl)
            .await
            .map_err(ApiError::storage)?
    {
        // The store answers Range itself; the client follows with its own headers.
        response_headers.insert(header::LOCATION, header_value(&url)?);
        response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        return Ok((StatusCode::FOUND, response_headers).into_response());
    }
    let (start, length) = match &range {
        Some(range) => (*range.start(), range.end() - range.start() + 1),
        None => (0, size),
    };
    let stream = backend
        .read(&owner, &sha256, start, length)
        .await
        .map_err(|e| missing_content(&file, e))?;
    if let Some(range) = &range {
        response_headers.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {}-{}/{size}", range.start(), range.end()))?,
        );
    }
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    response_headers.insert(
        header::CONTENT_DISPOSITION,
        header_value(&content_disposition(&file.filename))?,
    );
    response_headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));

    let body = Body::from_stream(stream);
    Ok((status, response_headers, body).into_response())
}

async fn find(state: &AppState, owner: &Owner, id: FileId) -> Result<FileRow, ApiError> {
    db::files::get(&state.db, owner, id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))
}

/// A row whose bytes are gone (removed by hand, or a volume restored without them) is not the
/// client's fault and not a crash: it is 410, and the operator sees a warning.
fn missing_content(file: &FileRow, error: std::io::Error) -> ApiError {
    if error.kind() != std::io::ErrorKind::NotFound {
        return ApiError::storage(error);
    }
    tracing::warn!(file_id = %file.id, store = %file.store, "a file's bytes are missing from their store");
    ApiError::new(ErrorCode::FileMissing, "this file's bytes are no longer stored")
}

fn header_value(value: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value).map_err(ApiError::internal)
}

/// `attachment` with an ASCII fallback name and the exact name in RFC 5987 encoding, so no
/// client-chosen character can break out of the header.
fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(filename.len() * 3);
    for byte in filename.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn content_disposition_cannot_be_broken_out_of() {
        assert_eq!(
            content_disposition("a\"b;c.txt"),
            "attachment; filename=\"a_b;c.txt\"; filename*=UTF-8''a%22b%3Bc.txt"
        );
        assert_eq!(
            content_disposition("café.png"),
            "attachment; filename=\"caf_.png\"; filename*=UTF-8''caf%C3%A9.png"
        );
    }
}
