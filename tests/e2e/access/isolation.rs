//! Owners see only their own jobs and files; deduplication stays within one owner; admins act
//! for any owner through `owner`; jobs say who submitted them.

use baton_e2e::{Secured, TestEnv, file_part, job_form};
use reqwest::Method;
use serde_json::Value;

async fn get(world: &Secured, path: &str, token: &str) -> (u16, Value) {
    world.get(path, token).await
}

/// The `deduplicated` count of a job's `stored` event.
async fn deduplicated(world: &Secured, job: &Value, token: &str) -> i64 {
    let (_, events) = get(
        world,
        &format!("/v1/jobs/{}/events", job["id"].as_str().unwrap()),
        token,
    )
    .await;
    let stored = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "stored")
        .unwrap();
    stored["detail"]["deduplicated"].as_i64().unwrap()
}

#[tokio::test]
async fn owners_see_only_their_own_and_share_no_content() {
    let env = TestEnv::new().await;
    let world = Secured::spawn(&env, &[]).await;
    let a = world.key("team-a", "submit", None).await;
    let b = world.key("team-b", "submit", None).await;
    let same = || {
        job_form(vec![(
            "image",
            file_part(b"the same bytes".to_vec(), "x.bin", "application/octet-stream"),
        )])
    };

    let a_job = world.submit_ok(&a.token, same()).await;
    assert_eq!(a_job["owner"], "team-a");
    assert_eq!(a_job["submitted_by"], format!("key:{}", a.id));
    // B uploads the same bytes: stored again for B, never deduplicated onto A's.
    let b_job = world.submit_ok(&b.token, same()).await;
    assert_eq!(deduplicated(&world, &b_job, &b.token).await, 0);
    assert_eq!(env.blob_files().len(), 2, "one copy per owner");
    // Within one owner the same bytes are deduplicated.
    let a_again = world.submit_ok(&a.token, same()).await;
    assert_eq!(deduplicated(&world, &a_again, &a.token).await, 1);
    assert_eq!(env.blob_files().len(), 2);

    // B cannot see A's job, file, content or timeline: 404 exactly as for an unknown id.
    let a_id = a_job["id"].as_str().unwrap();
    let a_file = a_job["files"][0]["id"].as_str().unwrap();
    let unknown = uuid::Uuid::now_v7().to_string();
    for (theirs, missing) in [
        (format!("/v1/jobs/{a_id}"), format!("/v1/jobs/{unknown}")),
        (format!("/v1/jobs/{a_id}/events"), format!("/v1/jobs/{unknown}/events")),
        (format!("/v1/files/{a_file}"), format!("/v1/files/{unknown}")),
        (
            format!("/v1/files/{a_file}/content"),
            format!("/v1/files/{unknown}/content"),
        ),
    ] {
        let refused = get(&world, &theirs, &b.token).await;
        assert_eq!(refused.0, 404, "{theirs}");
        assert_eq!(
            refused,
            get(&world, &missing, &b.token).await,
            "{theirs} answers like an unknown id"
        );
        assert_eq!(get(&world, &theirs, &a.token).await.0, 200, "{theirs} is A's");
    }

    // Lists show only the caller's jobs.
    let (_, a_list) = get(&world, "/v1/jobs", &a.token).await;
    let (_, b_list) = get(&world, "/v1/jobs", &b.token).await;
    assert_eq!(a_list["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(b_list["jobs"].as_array().unwrap().len(), 1);
    assert!(
        b_list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["owner"] == "team-b")
    );

    // Naming another owner is for admins only.
    let (status, body) = get(&world, "/v1/jobs?owner=team-a", &b.token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = get(&world, "/v1/jobs?owner=team-b", &b.token).await;
    assert_eq!(status, 200, "naming one's own owner is fine");
    let (status, admin_view) = get(&world, "/v1/jobs?owner=team-a", &world.admin).await;
    assert_eq!(status, 200);
    assert_eq!(admin_view["jobs"].as_array().unwrap().len(), 2);
    let (status, job) = get(&world, &format!("/v1/jobs/{a_id}?owner=team-a"), &world.admin).await;
    assert_eq!(
        (status, job["submitted_by"].clone()),
        (200, a_job["submitted_by"].clone())
    );
    // An admin's own owner (`default`) holds none of them.
    assert_eq!(get(&world, &format!("/v1/jobs/{a_id}"), &world.admin).await.0, 404);

    // B cannot cancel A's job; A can.
    let cancel = format!("/v1/jobs/{a_id}/cancel");
    let response = world.request(Method::POST, &cancel, &b.token).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = world.request(Method::POST, &cancel, &a.token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    world.app.stop().await;
}

#[tokio::test]
async fn health_and_the_api_description_stay_open_and_say_whether_auth_is_on() {
    let env = TestEnv::new().await;
    let world = Secured::spawn(&env, &[]).await;
    let ready = world.app.get_json("/readyz").await;
    assert_eq!(ready["auth"], "on");
    assert!(ready.get("warning").is_none());
    let metrics = world.app.http.get(world.app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 401, "metrics need the admin role on the API address");
    let (status, _) = world.get("/metrics", &world.admin).await;
    assert_eq!(status, 200);
    world.app.stop().await;

    let open = env.spawn_app().await;
    let ready = open.get_json("/readyz").await;
    assert_eq!(ready["auth"], "off");
    assert!(ready["warning"].as_str().unwrap().contains("admin"));
    open.stop().await;
}
