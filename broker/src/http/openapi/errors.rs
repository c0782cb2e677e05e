//! The document's error responses, built from the one registry ([`ErrorCode`]).
//!
//! Each handler module declares the codes each of its operations can answer with (`*_ERRORS`);
//! [`add_error_responses`] groups an operation's codes by status and adds one response per
//! status, whose `error.code` is an enum of exactly those codes and whose description gives each
//! code's meaning. Nothing here is typed by hand twice: a code's status and meaning come from the
//! registry.

use std::collections::BTreeMap;

use serde_json::json;
use utoipa::{
    ToSchema,
    openapi::{
        Content, ObjectBuilder, OpenApi, Ref, RefOr, Response, Schema, Type,
        header::Header,
        path::{Operation, PathItem},
        schema::{AllOfBuilder, OneOfBuilder},
    },
};

use super::super::{
    access::{self, Access},
    error::{ErrorBody, ErrorCode, RETRY_AFTER_SECS},
    files, health, job_control, jobs, keys, metrics, quotas, submit, timeline,
};

/// Every operation (by `operationId`) and the codes its handler can answer with.
pub const OPERATIONS: &[(&str, &[ErrorCode])] = &[
    ("submit_job", submit::SUBMIT_ERRORS),
    ("list_jobs", jobs::LIST_ERRORS),
    ("get_job", jobs::GET_ERRORS),
    ("cancel_job", job_control::CANCEL_ERRORS),
    ("retry_job", job_control::RETRY_ERRORS),
    ("job_events", timeline::EVENTS_ERRORS),
    ("get_file", files::GET_ERRORS),
    ("get_file_content", files::CONTENT_ERRORS),
    ("healthz", health::HEALTHZ_ERRORS),
    ("readyz", health::READYZ_ERRORS),
    ("metrics", metrics::METRICS_ERRORS),
    ("openapi_json", super::OPENAPI_ERRORS),
    ("create_key", keys::CREATE_ERRORS),
    ("list_keys", keys::LIST_ERRORS),
    ("revoke_key", keys::REVOKE_ERRORS),
    ("get_quota", quotas::GET_ERRORS),
    ("set_quota", quotas::SET_ERRORS),
    ("reset_quota", quotas::GET_ERRORS),
];

/// Codes of every operation that needs credentials (see `access::REQUIREMENTS`).
pub const AUTHENTICATED: &[ErrorCode] = &[
    // A malformed `owner` query parameter.
    ErrorCode::InvalidQuery,
    ErrorCode::Unauthenticated,
    ErrorCode::InvalidCredentials,
    ErrorCode::Forbidden,
    ErrorCode::AuthUnavailable,
];

/// Codes any request can get, whatever its operation: a connection beyond
/// `BATON_MAX_CONNECTIONS` is answered 503 `busy` before its request is read.
pub const ANY_REQUEST: &[ErrorCode] = &[ErrorCode::Busy];

/// Codes of requests that match no operation, documented once in `components.responses`.
pub const NO_OPERATION: &[ErrorCode] = &[ErrorCode::RouteNotFound, ErrorCode::MethodNotAllowed];

/// Name of the `x-request-id` header in `components.headers`.
pub const REQUEST_ID: &str = "RequestId";

/// Adds each operation's error responses, the general ones, and the registry's enum on
/// `ErrorDetail.code`.
pub fn add_error_responses(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let id = operation.operation_id.clone().unwrap_or_default();
            let Some((_, codes)) = OPERATIONS.iter().find(|(name, _)| *name == id) else {
                panic!("operation `{id}` declares no error codes; add it to openapi::errors::OPERATIONS");
            };
            let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
            let authenticated = match access::requirement(&id) {
                Access::Open => &[][..],
                Access::Role(_) => AUTHENTICATED,
            };
            for &code in codes.iter().chain(authenticated).chain(ANY_REQUEST) {
                let list = by_status.entry(code.status().as_u16()).or_default();
                if !list.contains(&code) {
                    list.push(code);
                }
            }
            for (status, codes) in by_status {
                let error = error_response(&codes);
                let responses = &mut operation.responses.responses;
                let merged = match responses.remove(&status.to_string()) {
                    Some(RefOr::T(existing)) => merge(existing, error),
                    _ => error,
                };
                responses.insert(status.to_string(), RefOr::T(merged));
            }
        }
    }

    let components = doc.components.get_or_insert_with(Default::default);
    for &code in NO_OPERATION {
        let name = format!("{code:?}");
        components.responses.insert(name, RefOr::T(error_response(&[code])));
    }
    if let Some(RefOr::T(Schema::Object(detail))) = components.schemas.get_mut("ErrorDetail")
        && let Some(RefOr::T(Schema::Object(code))) = detail.properties.get_mut("code")
    {
        let mut seen = std::collections::HashSet::new();
        let distinct = ErrorCode::ALL.iter().map(|c| c.as_str()).filter(|c| seen.insert(*c));
        code.enum_values = Some(distinct.map(|c| json!(c)).collect());
    }
}

/// The operations of a path, whatever their method.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// One status's response: `error.code` is one of `codes`, all of that status.
fn error_response(codes: &[ErrorCode]) -> Response {
    let status = codes[0].status();
    let mut description = format!(
        "{} {}. `error.code` is one of:\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    for code in codes {
        description.push_str(&format!("\n- `{}`: {}", code.as_str(), code.meaning()));
    }
    let narrowed = ObjectBuilder::new().schema_type(Type::Object).property(
        "error",
        ObjectBuilder::new().schema_type(Type::Object).property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes.iter().map(|c| c.as_str()))),
        ),
    );
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(ErrorBody::name()))
        .item(narrowed);
    let example = json!({ "error": { "code": codes[0].as_str(), "message": codes[0].meaning() } });
    let mut response = Response::builder()
        .description(description)
        .content(
            "application/json",
            Content::builder().schema(Some(schema)).example(Some(example)).build(),
        )
        .build();
    if status.as_u16() == 503 {
        response.headers.insert(
            "Retry-After".into(),
            Header::builder()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))))
                .description(Some("Seconds to wait before retrying."))
                .example(Some(json!(RETRY_AFTER_SECS)))
                .build()
                .into(),
        );
    }
    response
}

/// A status the operation answers both normally and with an error (`/readyz`'s 503): either body.
fn merge(existing: Response, error: Response) -> Response {
    let mut merged = error;
    merged.description = format!("{}\n\nOr: {}", existing.description, merged.description);
    for (media, content) in existing.content {
        let (RefOr::T(theirs), Some(RefOr::T(ours))) = (content, merged.content.get_mut(&media)) else {
            continue;
        };
        if let (Some(a), Some(b)) = (theirs.schema, ours.schema.take()) {
            ours.schema = Some(OneOfBuilder::new().item(a).item(b).into());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(super::super::openapi()).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        let mut found = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                found.push((operation["operationId"].as_str().unwrap().to_owned(), operation));
            }
        }
        found
    }

    /// The enum of an error response's `error.code`.
    fn codes(response: &Value) -> Vec<String> {
        let schema = &response["content"]["application/json"]["schema"];
        let narrowed = match schema.get("oneOf") {
            Some(either) => &either[1]["allOf"][1],
            None => &schema["allOf"][1],
        };
        narrowed["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no code enum in {response}"))
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_operation_declares_its_codes_and_every_declaration_is_an_operation() {
        let doc = document();
        let ids: HashSet<String> = operations(&doc).into_iter().map(|(id, _)| id).collect();
        let declared: HashSet<String> = OPERATIONS.iter().map(|(id, _)| (*id).to_owned()).collect();
        assert_eq!(ids, declared);
    }

    #[test]
    fn error_enums_come_from_the_registry_with_their_status() {
        let doc = document();
        for (id, operation) in operations(&doc) {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let status: u16 = status.parse().unwrap();
                if status < 400 {
                    continue;
                }
                for code in codes(response) {
                    let registered = ErrorCode::ALL
                        .iter()
                        .find(|c| c.as_str() == code && c.status().as_u16() == status)
                        .unwrap_or_else(|| panic!("{id} {status}: `{code}` is not in the registry with this status"));
                    let description = response["description"].as_str().unwrap();
                    assert!(description.contains(registered.meaning()), "{id} {status}: `{code}`");
                }
            }
        }
        let all = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
        let all: Vec<&str> = all.as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        let mut registry: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        // A code with two statuses is one value of the enum.
        let mut seen = HashSet::new();
        registry.retain(|code| seen.insert(*code));
        assert_eq!(all, registry);
    }

    #[test]
    fn every_registered_code_is_documented_on_an_operation() {
        let doc = document();
        let mut documented: HashSet<String> = HashSet::new();
        for (_, operation) in operations(&doc) {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.parse::<u16>().unwrap() >= 400 {
                    documented.extend(codes(response));
                }
            }
        }
        // Answers to requests that match no operation: documented once, in components.responses.
        for code in NO_OPERATION {
            assert!(!doc["components"]["responses"][format!("{code:?}")].is_null());
            documented.insert(code.as_str().to_owned());
        }
        let missing: Vec<&str> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|c| !documented.contains(*c))
            .collect();
        assert!(missing.is_empty(), "codes no operation documents: {missing:?}");
    }

    #[test]
    fn every_response_has_a_request_id_and_every_503_a_retry_after() {
        let doc = document();
        for (id, operation) in operations(&doc) {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let headers = &response["headers"];
                assert!(!headers["X-Request-Id"].is_null(), "{id} {status}");
                if status == "503" {
                    assert!(!headers["Retry-After"].is_null(), "{id} {status}");
                }
            }
        }
    }
}
