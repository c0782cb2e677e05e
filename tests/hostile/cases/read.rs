//! Reads (jobs, files, downloads) with bad identifiers, ranges and methods.

use super::{Case, get, request};

/// Reads and actions with bad ids, filters, routes and methods.
pub fn read_cases() -> Vec<Case> {
    let id = "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b";
    let mut cases = Vec::new();
    for bad in [
        "%FF%FE",
        "%FF",
        "%",
        "not-a-uuid",
        "0190f5e27b1c7d4e8a3b2c1d0e9f8a7b",
        "%7B0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b%7D",
        "urn:uuid:0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b",
        "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7",
        "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7bb",
        "%00",
        "..%2F..%2Fetc",
    ] {
        cases.push(get(&format!("/v1/jobs/{bad}"), 400, "invalid_id"));
        cases.push(get(&format!("/v1/jobs/{bad}/events"), 400, "invalid_id"));
        cases.push(get(&format!("/v1/files/{bad}"), 400, "invalid_id"));
        cases.push(get(&format!("/v1/files/{bad}/content"), 400, "invalid_id"));
        cases.push(request("POST", &format!("/v1/jobs/{bad}/cancel"), 400, "invalid_id"));
        cases.push(request("POST", &format!("/v1/jobs/{bad}/retry"), 400, "invalid_id"));
    }
    for path in [
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/events"),
        format!("/v1/files/{id}"),
        format!("/v1/files/{id}/content"),
    ] {
        cases.push(get(&path, 404, "not_found"));
    }
    cases.push(request("POST", &format!("/v1/jobs/{id}/cancel"), 404, "not_found"));
    cases.push(request("POST", &format!("/v1/jobs/{id}/retry"), 404, "not_found"));
    for query in [
        "model=%00",
        "model=a%00b",
        "model=UPPER",
        "model=",
        "status=bogus",
        "status=%00",
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999",
    ] {
        cases.push(get(&format!("/v1/jobs?{query}"), 400, "invalid_query"));
    }
    for query in ["cursor=bad", "cursor=%00", "cursor=0190f5e27b1c7d4e8a3b2c1d0e9f8a7b"] {
        cases.push(get(&format!("/v1/jobs?{query}"), 400, "invalid_cursor"));
    }
    for path in ["/", "/v1", "/v2/jobs", "/v1/jobs/x/y/z", "/%FF", "/v1/files"] {
        cases.push(get(path, 404, "route_not_found"));
    }
    for (method, path) in [
        ("DELETE", "/v1/jobs".to_owned()),
        ("PUT", "/v1/jobs".to_owned()),
        ("POST", "/healthz".to_owned()),
        ("GET", format!("/v1/jobs/{id}/cancel")),
        ("DELETE", format!("/v1/files/{id}")),
        ("PATCH", "/openapi.json".to_owned()),
    ] {
        cases.push(request(method, &path, 405, "method_not_allowed"));
    }
    cases
}
