//! `baton keys ...` as an operator runs it: the token alone on stdout, listings without secrets,
//! revocation that takes effect on a running Baton.

use std::time::Duration;

use baton_e2e::{Secured, TestEnv, eventually};
use reqwest::Method;
use serde_json::Value;

async fn baton(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let mut command = env.baton([]);
    command.args(args);
    let output = command.output().await.expect("run baton");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn keys_made_on_the_command_line_work_list_without_secrets_and_revoke() {
    let env = TestEnv::new().await;
    let world = Secured::spawn(&env, &[]).await;
    let (ok, stdout, stderr) = baton(
        &env,
        &[
            "keys", "create", "--owner", "team-c", "--role", "submit", "--name", "ci",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "the token alone on stdout: {stdout:?}");
    assert!(token.starts_with("baton_"));
    let response = world.request(Method::GET, "/v1/jobs", token).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let (ok, stdout, _) = baton(&env, &["keys", "list", "--owner", "team-c"]).await;
    assert!(ok);
    assert!(
        !stdout.contains(token.rsplit('_').next().unwrap()),
        "a listing never shows a secret"
    );
    let keys: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0]["owner"].as_str(), keys[0]["role"].as_str()),
        (Some("team-c"), Some("submit"))
    );
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("baton_{id}_")));
    // Its use is recorded (in the background).
    let used = eventually(Duration::from_secs(5), || async {
        let (_, stdout, _) = baton(&env, &["keys", "list", "--owner", "team-c"]).await;
        let keys: Vec<Value> = serde_json::from_str(&stdout).unwrap();
        !keys[0]["last_used_at"].is_null()
    })
    .await;
    assert!(used, "last_used_at is set");

    let (ok, _, stderr) = baton(&env, &["keys", "revoke", &id]).await;
    assert!(ok, "{stderr}");
    let refused = eventually(Duration::from_secs(3), || async {
        let response = world.request(Method::GET, "/v1/jobs", token).send().await.unwrap();
        response.status() == 401
    })
    .await;
    assert!(refused, "a revoked key stops working within the key cache's lifetime");

    // Bad input is a clear one-line error, and no key.
    let (ok, stdout, stderr) = baton(&env, &["keys", "create", "--owner", "Team C", "--role", "root"]).await;
    assert!(!ok && stdout.is_empty() && stderr.contains("owner"), "{stderr}");
    world.app.stop().await;
}

#[tokio::test]
async fn quotas_set_on_the_command_line_apply_to_a_running_baton() {
    let env = TestEnv::new().await;
    let world = Secured::spawn(&env, &[]).await;
    let key = world.key("team-q", "submit", None).await;
    let form = || baton_e2e::job_form(vec![("input", baton_e2e::file_part(b"q".to_vec(), "q", "text/plain"))]);

    let (ok, stdout, stderr) = baton(&env, &["quotas", "set", "team-q", "--active-jobs", "0"]).await;
    assert!(ok, "{stderr}");
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["effective"]["active_jobs"], 0);
    let response = world.submit(&key.token, form()).await;
    assert_eq!(response.status(), 429);

    let (ok, stdout, stderr) = baton(&env, &["quotas", "reset", "team-q"]).await;
    assert!(ok, "{stderr}");
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert!(shown["overrides"]["active_jobs"].is_null());
    world.submit_ok(&key.token, form()).await;
    world.app.stop().await;
}
