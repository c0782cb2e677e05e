//! Reading jobs, errors for unknown and malformed ids, health, and the OpenAPI description.

use std::collections::HashSet;

use serde_json::Value;

use baton_e2e::*;

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn unknown_ids_return_404_and_malformed_ids_return_400() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/v1/jobs/{unknown}"),
        format!("/v1/files/{unknown}"),
        format!("/v1/files/{unknown}/content"),
    ] {
        let (status, body) = get(&app, &path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    for path in ["/v1/jobs/not-a-uuid", "/v1/files/123", "/v1/files/zz/content"] {
        let (status, body) = get(&app, path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_id")),
            "{path}"
        );
    }
    let (status, body) = get(&app, "/v2/nothing").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("route_not_found")));
}

#[tokio::test]
async fn listing_filters_by_status_and_model_and_pages_with_a_cursor() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let model = if i % 2 == 0 { "example" } else { "other" };
        let form = reqwest::multipart::Form::new().text("model", model).part(
            "input",
            file_part(vec![i as u8; 8], "f.bin", "application/octet-stream"),
        );
        ids.push(app.submit_ok(form).await["id"].as_str().unwrap().to_owned());
    }

    let (status, page) = get(&app, "/v1/jobs?limit=2").await;
    assert_eq!(status, 200);
    let first: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, vec![ids[4].as_str(), ids[3].as_str()], "newest first");
    let mut seen: HashSet<String> = first.iter().map(|s| (*s).to_owned()).collect();
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let (_, page) = get(&app, &format!("/v1/jobs?limit=2&cursor={next}")).await;
        for job in page["jobs"].as_array().unwrap() {
            assert!(seen.insert(job["id"].as_str().unwrap().to_owned()), "no job twice");
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);

    let (_, page) = get(&app, "/v1/jobs?model=other").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    let (_, page) = get(&app, "/v1/jobs?status=queued&model=example").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 3);
    let (_, page) = get(&app, "/v1/jobs?status=succeeded").await;
    assert!(page["jobs"].as_array().unwrap().is_empty());

    for (query, code) in [
        ("status=done", "invalid_query"),
        ("limit=0", "invalid_query"),
        ("cursor=xyz", "invalid_cursor"),
    ] {
        let (status, body) = get(&app, &format!("/v1/jobs?{query}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}");
    }
}

#[tokio::test]
async fn health_and_readiness_report_their_checks() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let (status, body) = get(&app, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let ready = eventually(std::time::Duration::from_secs(10), || async {
        let (status, body) = get(&app, "/readyz").await;
        status == 200 && body["rabbitmq"] == "connected"
    })
    .await;
    assert!(ready, "ready with RabbitMQ connected");
    let (_, body) = get(&app, "/readyz").await;
    assert_eq!(body["postgres"], "ok");
    assert_eq!(body["storage"], "ok");
}

#[tokio::test]
async fn readiness_does_not_depend_on_rabbitmq() {
    let env = TestEnv::new().await;
    let gate = amqp_gate(false).await;
    let app = env.spawn_app_with(&gate.amqp_url(), &[]).await;
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rabbitmq"], "disconnected");
}

#[tokio::test]
async fn openapi_describes_every_route_as_openapi_3_1() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let (status, spec) = get(&app, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/files/{id}", "get"),
        ("/v1/files/{id}/content", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is described"
        );
    }
    let committed = include_str!("../../openapi/baton.json");
    let committed: Value = serde_json::from_str(committed).unwrap();
    assert!(
        spec == committed,
        "openapi/baton.json is not what Baton serves: run `cargo run -p baton-broker -- openapi > openapi/baton.json`"
    );
}
