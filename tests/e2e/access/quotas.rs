//! Quotas: refused at the boundary with `quota_exceeded` and nothing stored, exact under
//! concurrent submits racing the last slot on two replicas.

use baton_e2e::{Secured, TestEnv, bytes_of, file_part, job_form, snapshot};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

fn form(seed: u64, len: usize) -> reqwest::multipart::Form {
    job_form(vec![(
        "input",
        file_part(bytes_of(seed, len), "in.bin", "application/octet-stream"),
    )])
}

async fn refusal(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

#[tokio::test]
async fn active_jobs_quota_holds_exactly_under_a_race_across_two_replicas() {
    let env = TestEnv::new().await;
    let one = Secured::spawn(&env, &[]).await;
    let two = Secured::spawn(&env, &[]).await;
    let key = one.key("team-q", "submit", None).await;
    one.set_quota("team-q", json!({ "active_jobs": 5 })).await;
    // No worker runs: accepted jobs stay queued and count.
    let submits = (0..16).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        app.submit(&key.token, form(i, 2048))
    });
    let responses = join_all(submits).await;
    let mut accepted = 0;
    for response in responses {
        match response.status().as_u16() {
            202 => accepted += 1,
            429 => {
                let (_, _, body) = refusal(response).await;
                assert_eq!(body["error"]["code"], "quota_exceeded");
                assert_eq!(body["error"]["quota"], "active_jobs");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, 5, "exactly the quota is accepted");
    assert_eq!(env.count("jobs").await, 5);
    assert_eq!(env.count("blobs").await, 5, "refused uploads left no rows");
    assert_eq!(env.blob_files().len(), 5, "refused uploads left no blob files");
    assert!(env.temp_files().is_empty(), "refused uploads left no temp files");

    // A finished job frees its slot.
    let (_, jobs) = one.get("/v1/jobs", &key.token).await;
    let first = jobs["jobs"][0]["id"].as_str().unwrap();
    let cancel = one
        .request(Method::POST, &format!("/v1/jobs/{first}/cancel"), &key.token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    one.submit_ok(&key.token, form(100, 10)).await;
    let (status, _, _) = refusal(two.submit(&key.token, form(101, 10)).await).await;
    assert_eq!(status, 429);
    one.app.stop().await;
    two.app.stop().await;
}

#[tokio::test]
async fn stored_bytes_quota_refuses_new_content_with_507_and_keeps_nothing() {
    let env = TestEnv::new().await;
    let world = Secured::spawn(&env, &[]).await;
    let key = world.key("team-s", "submit", None).await;
    world.set_quota("team-s", json!({ "stored_bytes": 1000 })).await;
    world.submit_ok(&key.token, form(1, 600)).await;
    let before = snapshot(&env).await;
    let (status, _, body) = refusal(world.submit(&key.token, form(2, 600)).await).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(body["error"]["quota"], "stored_bytes");
    assert_eq!(snapshot(&env).await, before, "nothing stored");
    // Content already stored costs nothing: the same bytes again fit.
    world.submit_ok(&key.token, form(1, 600)).await;
    // Up to the quota exactly fits.
    world.submit_ok(&key.token, form(3, 400)).await;
    let (_, quota) = world.get("/v1/quotas/team-s", &world.admin).await;
    assert_eq!(quota["usage"]["stored_bytes"], 1000);
    assert_eq!(quota["effective"]["stored_bytes"], 1000);
    world.app.stop().await;
}

#[tokio::test]
async fn submission_rate_is_shared_by_replicas_and_says_when_to_retry() {
    let env = TestEnv::new().await;
    let one = Secured::spawn(&env, &[]).await;
    let two = Secured::spawn(&env, &[]).await;
    let key = one.key("team-r", "submit", None).await;
    one.set_quota("team-r", json!({ "submit_rate": 0.2 })).await;
    one.submit_ok(&key.token, form(1, 10)).await;
    let before = snapshot(&env).await;
    for app in [&one, &two] {
        let (status, retry_after, body) = refusal(app.submit(&key.token, form(2, 10)).await).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["quota"], "submit_rate");
        let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
        assert!((1..=5).contains(&seconds), "Retry-After {seconds}");
    }
    assert_eq!(snapshot(&env).await, before, "nothing stored");
    // Another owner has its own bucket.
    let other = one.key("team-other", "submit", None).await;
    two.submit_ok(&other.token, form(3, 10)).await;
    one.app.stop().await;
    two.app.stop().await;
}
