//! Apps with authentication on: a bootstrap admin key, keys made through the API, and a
//! snapshot of everything a refused request must leave alone.

use reqwest::{Method, RequestBuilder, multipart::Form};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

use crate::{TestApp, TestEnv, amqp_url};

/// Secret of the bootstrap admin key of every secured test app.
pub const ADMIN_SECRET: &str = "test-bootstrap-secret-0123456789abcdefghijklmnopqrstuvwxyz";

/// An API key made for a test.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub token: String,
}

/// An app with authentication on, and its admin.
pub struct Secured {
    pub app: TestApp,
    pub admin: String,
}

impl Secured {
    pub async fn spawn(env: &TestEnv, extra: &[&str]) -> Self {
        let mut flags = vec!["--auth", "on", "--bootstrap-admin-secret", ADMIN_SECRET];
        flags.extend_from_slice(extra);
        let app = env.spawn_app_with(&amqp_url(), &flags).await;
        Self {
            app,
            admin: format!("baton_bootstrap_{ADMIN_SECRET}"),
        }
    }

    /// A request to `path` carrying `token`.
    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.app.http.request(method, self.app.url(path)).bearer_auth(token)
    }

    /// GETs `path` with `token`: the status and the JSON body (null if none).
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self.request(Method::GET, path, token).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// Makes a key through the admin API; `expires_in` as the API takes it (`90d`).
    pub async fn key(&self, owner: &str, role: &str, expires_in: Option<&str>) -> Key {
        let mut body = json!({ "owner": owner, "role": role, "name": "test" });
        if let Some(expires_in) = expires_in {
            body["expires_in"] = json!(expires_in);
        }
        let response = self
            .request(Method::POST, "/v1/keys", &self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "create key");
        let created: Value = response.json().await.unwrap();
        Key {
            id: created["key"]["id"].as_str().unwrap().to_owned(),
            token: created["token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn revoke(&self, key: &Key) {
        let response = self
            .request(Method::DELETE, &format!("/v1/keys/{}", key.id), &self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "revoke key");
    }

    /// Submits `form` with `token`.
    pub async fn submit(&self, token: &str, form: Form) -> reqwest::Response {
        self.request(Method::POST, "/v1/jobs", token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Submits and asserts 202; returns the job.
    pub async fn submit_ok(&self, token: &str, form: Form) -> Value {
        let response = self.submit(token, form).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "submit: {body}");
        body
    }

    /// Sets an owner's quota overrides through the admin API.
    pub async fn set_quota(&self, owner: &str, limits: Value) {
        let response = self
            .request(Method::PUT, &format!("/v1/quotas/{owner}"), &self.admin)
            .json(&limits)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "set quota");
    }
}

/// Everything requests could change, but a key's `last_used_at`: each table's rows in a fixed
/// order, and the volume's files.
pub async fn snapshot(env: &TestEnv) -> Vec<String> {
    let tables = [
        "SELECT id::text || status || attempt || coalesce(submitted_by, '') FROM jobs ORDER BY id",
        "SELECT id::text || job_id::text || sha256 FROM files ORDER BY id",
        "SELECT owner || sha256 || size FROM blobs ORDER BY owner, sha256",
        "SELECT job_id::text || attempt FROM outbox ORDER BY job_id",
        "SELECT job_id::text || kind FROM job_events ORDER BY id",
        "SELECT id || owner || role || coalesce(revoked_at::text, '') || coalesce(expires_at::text, '') \
         FROM api_keys ORDER BY id",
        "SELECT owner || coalesce(stored_bytes, -1) || coalesce(active_jobs, -1) FROM quotas ORDER BY owner",
    ];
    let mut rows = Vec::new();
    for query in tables {
        let found: Vec<String> = sqlx::query_scalar(AssertSqlSafe(query))
            .fetch_all(&env.db)
            .await
            .unwrap();
        rows.extend(found);
    }
    let mut files: Vec<String> = env
        .temp_files()
        .into_iter()
        .chain(env.blob_files())
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    rows.extend(files);
    rows
}
