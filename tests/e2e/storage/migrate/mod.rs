//! `baton storage migrate`: every blob moved to another store while Baton serves, each copy
//! verified, old copies kept while a job may still read them; killed or with a store stopped
//! midway, a rerun finishes.

mod directions;
mod faults;
mod interrupted;

use std::time::Duration;

use baton::{
    migration::{Migration, target_backend},
    storage::{Storage, StoreUrl},
};
use baton_testkit::object_stores::TestStore;
use serde_json::Value;
use sqlx::{PgPool, postgres::PgPoolOptions};

use baton_e2e::*;

/// A submitted job's id, its one file's id, and the file's bytes.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job: String,
    pub file: String,
    pub bytes: Vec<u8>,
}

impl Submitted {
    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
}

pub async fn submit(http: &reqwest::Client, base: &str, bytes: Vec<u8>) -> Submitted {
    let form = job_form(vec![(
        "input",
        file_part(bytes.clone(), "input.bin", "application/octet-stream"),
    )]);
    let response = http
        .post(format!("{base}/v1/jobs"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let job: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "submit: {job}");
    Submitted {
        job: job["id"].as_str().unwrap().to_owned(),
        file: job["files"][0]["id"].as_str().unwrap().to_owned(),
        bytes,
    }
}

/// The file's content as a client downloads it (following a redirect to a signed URL).
pub async fn download(http: &reqwest::Client, base: &str, file: &str) -> Vec<u8> {
    let response = http
        .get(format!("{base}/v1/files/{file}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "download of {file}");
    response.bytes().await.unwrap().to_vec()
}

pub async fn assert_downloads(app: &TestApp, files: &[Submitted]) {
    for file in files {
        let got = download(&app.http, &app.base, &file.file).await;
        assert!(got == file.bytes, "file {} reads back as its bytes", file.file);
    }
}

/// `(store, previous_store)` of a blob's row.
pub async fn placement(db: &PgPool, sha256: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT store, previous_store FROM blobs WHERE sha256 = $1")
        .bind(sha256)
        .fetch_one(db)
        .await
        .expect("the blob's row")
}

pub async fn count_in(db: &PgPool, store: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM blobs WHERE store = $1")
        .bind(store)
        .fetch_one(db)
        .await
        .unwrap()
}

/// `(migrations, unfinished)` recorded.
pub async fn migrations(db: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE finished_at IS NULL) FROM storage_migrations")
        .fetch_one(db)
        .await
        .unwrap()
}

/// A pool of its own for the migration (the environment's is small and the test's).
pub fn pool(pair: &StorePair) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy(&pair.database_url)
        .unwrap()
}

/// The migration to `pair.target`, run in this process by `baton storage migrate` configured
/// on `configured`.
pub async fn migration(pair: &StorePair, configured: &TestStore) -> Migration {
    let storage: Storage = pair.storage(configured).await;
    let to = StoreUrl::parse(&pair.target.url).unwrap();
    let target = target_backend(&storage, &to).unwrap();
    Migration::new(pool(pair), storage, target)
}

/// Waits until the job's message is published (its attempt names the blob's old place).
pub async fn wait_dispatched(db: &PgPool, job: &str) {
    let id = uuid::Uuid::parse_str(job).unwrap();
    let dispatched = eventually(Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, bool>("SELECT dispatched_at IS NOT NULL FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap()
    })
    .await;
    assert!(dispatched, "job {job} was published");
}
