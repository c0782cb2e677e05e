//! Every route (read from the router's own OpenAPI document, so a route added later is covered)
//! against every kind of bad credential: the right status, and nothing changed.

use std::time::Duration;

use baton::{
    auth::Role,
    http::access::{self, Access},
};
use baton_e2e::{Key, Secured, TestEnv, file_part, job_form, snapshot};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A route of the router: method, path template, operation id and what it needs.
struct Route {
    method: Method,
    path: String,
    operation: String,
    access: Access,
}

fn routes() -> Vec<Route> {
    let doc = serde_json::to_value(baton::http::openapi()).unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let operation = operation["operationId"].as_str().unwrap().to_owned();
            let access = access::requirement(&operation);
            routes.push(Route {
                method,
                path: path.clone(),
                operation,
                access,
            });
        }
    }
    assert!(routes.len() >= 17, "the document lists every route");
    routes
}

/// Ids a path template is filled with: a job and file of the caller's owner, or another's.
struct Ids {
    job: String,
    file: String,
    key: String,
    owner: &'static str,
}

fn concrete(path: &str, ids: &Ids) -> String {
    let id = if path.starts_with("/v1/files/") {
        &ids.file
    } else if path.starts_with("/v1/keys/") {
        &ids.key
    } else {
        &ids.job
    };
    path.replace("{id}", id).replace("{owner}", ids.owner)
}

async fn send(world: &Secured, route: &Route, path: &str, authorization: Option<&str>) -> (StatusCode, Value, bool) {
    let mut request = world.app.http.request(route.method.clone(), world.app.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request = match route.operation.as_str() {
        "submit_job" => request.multipart(job_form(vec![(
            "image",
            file_part(b"matrix".to_vec(), "a.bin", "application/octet-stream"),
        )])),
        "create_key" => request.json(&json!({ "owner": "team-a", "role": "read" })),
        "set_quota" => request.json(&json!({ "stored_bytes": 1, "active_jobs": 1, "submit_rate": 1.0 })),
        _ => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response.headers().contains_key("www-authenticate");
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

#[tokio::test]
async fn every_route_refuses_bad_credentials_and_changes_nothing() {
    let env = TestEnv::new().await;
    let world = Secured::spawn(&env, &[]).await;
    let submitter = world.key("team-a", "submit", None).await;
    let other = world.key("team-b", "submit", None).await;
    let reader = world.key("team-a", "read", None).await;
    let revoked = world.key("team-a", "admin", None).await;
    world.revoke(&revoked).await;
    let expired = world.key("team-a", "admin", Some("1s")).await;
    let mine = world
        .submit_ok(
            &submitter.token,
            job_form(vec![("image", file_part(b"a's".to_vec(), "a", "text/plain"))]),
        )
        .await;
    let theirs = world
        .submit_ok(
            &other.token,
            job_form(vec![("image", file_part(b"b's".to_vec(), "b", "text/plain"))]),
        )
        .await;
    let ids = |job: &Value, owner| Ids {
        job: job["id"].as_str().unwrap().to_owned(),
        file: job["files"][0]["id"].as_str().unwrap().to_owned(),
        key: reader.id.clone(),
        owner,
    };
    let (own_ids, other_ids) = (ids(&mine, "team-a"), ids(&theirs, "team-b"));
    tokio::time::sleep(Duration::from_millis(1500)).await; // the 1 s key is now expired
    let unknown = Key {
        id: "0123456789ab".into(),
        token: format!("baton_0123456789ab_{}", "x".repeat(43)),
    };
    let before = snapshot(&env).await;

    let bearer = |key: &Key| format!("Bearer {}", key.token);
    let mut checked = 0;
    for route in routes() {
        let path = concrete(&route.path, &own_ids);
        let Access::Role(needed) = route.access else {
            let (status, _, _) = send(&world, &route, &path, None).await;
            assert!(status.is_success(), "{} {path} is open: {status}", route.method);
            continue;
        };
        let refused: [(&str, Option<String>, StatusCode, &str); 6] = [
            ("no credentials", None, StatusCode::UNAUTHORIZED, "unauthenticated"),
            (
                "malformed header",
                Some("Basic dXNlcjpwYXNz".into()),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            ),
            (
                "bare scheme",
                Some("Bearer".into()),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            ),
            (
                "unknown key",
                Some(bearer(&unknown)),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            ),
            (
                "revoked key",
                Some(bearer(&revoked)),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            ),
            (
                "expired key",
                Some(bearer(&expired)),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            ),
        ];
        for (case, authorization, status, code) in refused {
            let (got, body, challenge) = send(&world, &route, &path, authorization.as_deref()).await;
            assert_eq!(got, status, "{case}: {} {path}: {body}", route.method);
            assert_eq!(body["error"]["code"], code, "{case}: {} {path}", route.method);
            assert!(challenge, "{case}: {} {path} has WWW-Authenticate", route.method);
            checked += 1;
        }
        // A role below the route's: read on a write, submit on an admin operation.
        let below = match needed {
            Role::Read => None,
            Role::Submit => Some(&reader),
            Role::Admin => Some(&submitter),
        };
        if let Some(key) = below {
            let (got, body, _) = send(&world, &route, &path, Some(&bearer(key))).await;
            assert_eq!(
                got,
                StatusCode::FORBIDDEN,
                "role below {needed}: {} {path}: {body}",
                route.method
            );
            assert_eq!(body["error"]["code"], "forbidden");
            checked += 1;
        }
        // Another owner's job or file answers exactly like an unknown id.
        if route.path.contains("{id}") && needed <= Role::Submit {
            let foreign = concrete(&route.path, &other_ids);
            let missing = concrete(
                &route.path,
                &Ids {
                    job: uuid::Uuid::now_v7().to_string(),
                    file: uuid::Uuid::now_v7().to_string(),
                    ..own_ids_clone(&own_ids)
                },
            );
            let key = if needed == Role::Read { &reader } else { &submitter };
            let (got, body, _) = send(&world, &route, &foreign, Some(&bearer(key))).await;
            let (unknown_status, unknown_body, _) = send(&world, &route, &missing, Some(&bearer(key))).await;
            assert_eq!(
                got,
                StatusCode::NOT_FOUND,
                "another owner's id: {} {foreign}: {body}",
                route.method
            );
            assert_eq!(
                (got, &body),
                (unknown_status, &unknown_body),
                "{} {foreign} vs an unknown id",
                route.method
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} cases");
    assert_eq!(
        snapshot(&env).await,
        before,
        "a refused request changed the database or the volume"
    );
    world.app.stop().await;
}

fn own_ids_clone(ids: &Ids) -> Ids {
    Ids {
        job: ids.job.clone(),
        file: ids.file.clone(),
        key: ids.key.clone(),
        owner: ids.owner,
    }
}
