//! Every error code Baton's HTTP API can answer with: one registry that builds the responses
//! (each code carries its status) and the OpenAPI document (each operation lists its codes).
//!
//! Codes are stable: clients match on them. Add new ones; never rename or reuse one.

use axum::http::StatusCode;

macro_rules! error_codes {
    ($($variant:ident => $status:ident, $code:literal, $meaning:literal;)+) => {
        /// A stable machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)+
        }

        impl ErrorCode {
            /// Every code, in registry order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as it appears in `error.code`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The HTTP status every response with this code has.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }

            /// What the code means, for the OpenAPI document and the README.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)+
                }
            }
        }
    };
}

error_codes! {
    // The form of `POST /v1/jobs`.
    InvalidMultipart => BAD_REQUEST, "invalid_multipart",
        "The body is not a well-formed multipart/form-data form, or it ends early.";
    TrailingBytes => BAD_REQUEST, "trailing_bytes",
        "Bytes follow the form's closing boundary.";
    MissingModel => BAD_REQUEST, "missing_model", "The text part `model` is missing.";
    InvalidModel => BAD_REQUEST, "invalid_model", "`model` does not match `[a-z0-9][a-z0-9._-]{0,63}`.";
    InvalidParams => BAD_REQUEST, "invalid_params",
        "`params` is not a JSON object, or a string in it contains a NUL character.";
    MissingFiles => BAD_REQUEST, "missing_files", "The form has no file part.";
    InvalidMaxAttempts => BAD_REQUEST, "invalid_max_attempts", "`max_attempts` is not an integer from 1 to 20.";
    InvalidTimeout => BAD_REQUEST, "invalid_timeout",
        "`queue_timeout` or `run_timeout` is not a duration from 1s to 30d.";
    InvalidOption => BAD_REQUEST, "invalid_option", "An option part is longer than 64 bytes.";
    InvalidText => BAD_REQUEST, "invalid_text", "A text part is not UTF-8.";
    DuplicateField => BAD_REQUEST, "duplicate_field", "A text part was sent more than once.";
    DuplicateInputName => BAD_REQUEST, "duplicate_input_name", "Two file parts have the same part name.";
    InvalidInputName => BAD_REQUEST, "invalid_input_name",
        "A file part's name is empty, longer than 128 bytes or has control characters.";
    InvalidFilename => BAD_REQUEST, "invalid_filename", "A file part's filename is not UTF-8.";
    UnknownField => BAD_REQUEST, "unknown_field", "A text part Baton does not know.";
    InvalidIdempotencyKey => BAD_REQUEST, "invalid_idempotency_key",
        "`Idempotency-Key` is not 1 to 255 visible ASCII characters.";
    IdempotencyKeyReused => UNPROCESSABLE_ENTITY, "idempotency_key_reused",
        "The `Idempotency-Key` was used before for a different request.";
    FileTooLarge => PAYLOAD_TOO_LARGE, "file_too_large", "A file exceeds `BATON_MAX_FILE_BYTES`.";
    JobTooLarge => PAYLOAD_TOO_LARGE, "job_too_large",
        "The job's files (or the declared body) exceed `BATON_MAX_JOB_BYTES`.";
    TooManyFiles => PAYLOAD_TOO_LARGE, "too_many_files", "The form has more than `BATON_MAX_FILES` file parts.";
    ParamsTooLarge => PAYLOAD_TOO_LARGE, "params_too_large", "`params` exceeds `BATON_MAX_PARAMS_BYTES`.";
    PartHeadersTooLarge => PAYLOAD_TOO_LARGE, "part_headers_too_large",
        "The bytes before a part's content (preamble, boundary, part headers) exceed 16 KiB.";
    RequestTooLarge => PAYLOAD_TOO_LARGE, "request_too_large", "The request body is larger than Baton accepts.";
    UploadTooSlow => REQUEST_TIMEOUT, "upload_too_slow",
        "The body arrived slower than `BATON_UPLOAD_MIN_RATE`, or stalled for `BATON_UPLOAD_IDLE_TIMEOUT`.";
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
        "The request is not `multipart/form-data` with a boundary.";
    StorageFull => INSUFFICIENT_STORAGE, "storage_full", "The storage volume is full; retry later.";
    StorageUnavailable => SERVICE_UNAVAILABLE, "storage_unavailable",
        "The file store (object storage or the volume) cannot be reached or is failing; nothing was stored. \
         Retry after `Retry-After` seconds.";

    // Reads and actions.
    InvalidId => BAD_REQUEST, "invalid_id", "A path id is not a UUID in its hyphenated form.";
    InvalidQuery => BAD_REQUEST, "invalid_query", "A query parameter is malformed or out of range.";
    InvalidCursor => BAD_REQUEST, "invalid_cursor", "`cursor` is not a `next_cursor` from a previous page.";
    NotFound => NOT_FOUND, "not_found", "No job or file with this id.";
    JobFinished => CONFLICT, "job_finished", "The job already finished; it cannot be cancelled.";
    JobNotRetryable => CONFLICT, "job_not_retryable", "Only failed or cancelled jobs can be retried.";
    FileMissing => GONE, "file_missing", "The file's bytes are no longer in their store.";
    RangeNotSatisfiable => RANGE_NOT_SATISFIABLE, "range_not_satisfiable", "The `Range` lies outside the file.";

    // Identity, roles and quotas.
    Unauthenticated => UNAUTHORIZED, "unauthenticated",
        "No credentials: send `Authorization: Bearer <API key or OIDC token>`.";
    InvalidCredentials => UNAUTHORIZED, "invalid_credentials",
        "The bearer credential is malformed, unknown, revoked, expired or wrongly signed.";
    Forbidden => FORBIDDEN, "forbidden",
        "The caller's role does not allow this operation, or it named another owner without being an admin.";
    QuotaExceeded => TOO_MANY_REQUESTS, "quota_exceeded",
        "Over the owner's submission rate or jobs-in-progress quota (`error.quota` says which); \
         retry after `Retry-After` seconds.";
    StorageQuotaExceeded => INSUFFICIENT_STORAGE, "quota_exceeded",
        "Over the owner's stored-bytes quota (`error.quota` is `stored_bytes`); nothing was stored.";
    AuthUnavailable => SERVICE_UNAVAILABLE, "auth_unavailable",
        "Credentials cannot be checked right now (the OIDC issuer's keys or the database are unreachable); \
         retry after `Retry-After` seconds.";
    InvalidOwner => BAD_REQUEST, "invalid_owner", "An owner in the path does not match `[a-z0-9_-]{1,64}`.";
    InvalidKeyId => BAD_REQUEST, "invalid_key_id", "A key id is not 1 to 32 lowercase letters and digits.";
    InvalidBody => BAD_REQUEST, "invalid_body", "The JSON body is malformed or has a value out of range.";
    KeyNotFound => NOT_FOUND, "key_not_found", "No API key with this id.";

    // Any route.
    InvalidInput => BAD_REQUEST, "invalid_input", "A value was refused by the database as malformed.";
    RouteNotFound => NOT_FOUND, "route_not_found", "No such route.";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "method_not_allowed", "The route does not take this method.";
    Busy => SERVICE_UNAVAILABLE, "busy",
        "Baton is at its limit of uploads or connections; retry after `Retry-After` seconds.";
    Unavailable => SERVICE_UNAVAILABLE, "unavailable",
        "Baton cannot reach its database; retry after `Retry-After` seconds.";
    Internal => INTERNAL_SERVER_ERROR, "internal", "An unexpected failure; it has been logged.";
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ErrorCode;

    #[test]
    fn codes_are_unique_snake_case_and_never_2xx() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            // One code may have two statuses (`quota_exceeded`: 429 or 507), never one status twice.
            assert!(seen.insert((code.as_str(), code.status())), "{} twice", code.as_str());
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../../../../README.md");
        for code in ErrorCode::ALL {
            assert!(
                readme.contains(&format!("`{}`", code.as_str())),
                "README lacks `{}`",
                code.as_str()
            );
        }
    }
}
