//! Request headers of `GET /v1/files/{id}/content`.

use utoipa::IntoParams;

/// Conditional and partial downloads (documentation only; the handler reads the headers).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ContentHeaders {
    /// One byte range: `bytes=first-last`, `bytes=first-` or `bytes=-length`. Several ranges,
    /// or a header Baton cannot read, get the whole file; a range that starts past the end gets
    /// 416.
    #[param(rename = "Range", required = false, nullable = false, value_type = String, example = "bytes=0-1023")]
    range: Option<String>,
    /// An ETag: `Range` is honoured only if it is the file's current one.
    #[param(rename = "If-Range", required = false, nullable = false, value_type = String)]
    if_range: Option<String>,
    /// ETags (or `*`), comma-separated: if one is the file's, the answer is 304 with no body.
    #[param(rename = "If-None-Match", required = false, nullable = false, value_type = String)]
    if_none_match: Option<String>,
}
