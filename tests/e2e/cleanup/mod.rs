//! Cleanup: retention per terminal status, dedup-aware blob removal, the race with uploads of
//! the same bytes, passes killed midway, one pass at a time, and the sweeps of every store. The
//! race and sweep tests run on the volume, S3 (moto) and Azure Blob (Azurite).

mod passes;
mod races;
mod retention;
mod sweeps;

use std::{collections::HashSet, ops::ControlFlow, path::Path, sync::Arc, time::Duration};

use baton::cleanup::{Cleaner, CleanupConfig, CleanupReport, PassOutcome, Retention, Step, StepHook};
use futures::FutureExt;
use reqwest::multipart::Form;

use baton_e2e::*;

pub const HOUR: Duration = Duration::from_secs(3600);
pub const MINUTE: Duration = Duration::from_secs(60);

/// A job of the example model with one file part holding `bytes`.
pub fn binary_job(bytes: &[u8]) -> Form {
    job_form(vec![(
        "input",
        file_part(bytes.to_vec(), "input.bin", "application/octet-stream"),
    )])
}

/// POSTs to an action route (cancel, retry) and returns the status.
pub async fn post(app: &TestApp, path: &str) -> u16 {
    app.http.post(app.url(path)).send().await.unwrap().status().as_u16()
}

/// Whether the API still knows the job.
pub async fn job_exists(app: &TestApp, id: &str) -> bool {
    let response = app.http.get(app.url(&format!("/v1/jobs/{id}"))).send().await.unwrap();
    match response.status().as_u16() {
        200 => true,
        404 => false,
        other => panic!("GET job {id}: {other}"),
    }
}

/// Runs one pass and returns its report; no other pass may be running.
pub async fn pass(cleaner: &Cleaner) -> CleanupReport {
    match cleaner.run_once().await.expect("cleanup pass") {
        PassOutcome::Done(report) => report,
        PassOutcome::Busy => panic!("no other pass is running"),
    }
}

/// Every committed blob row has its file, of its size, on the volume.
pub async fn assert_rows_have_files(env: &TestEnv) {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT sha256, size FROM blobs")
        .fetch_all(&env.db)
        .await
        .unwrap();
    for (sha256, size) in rows {
        let meta = std::fs::metadata(env.blob_path(&sha256));
        assert!(
            meta.is_ok_and(|m| m.len() == size as u64),
            "blob row {sha256} has no intact file"
        );
    }
}

/// Every blob file on the volume has a row, and the other way round.
pub async fn assert_volume_matches_rows(env: &TestEnv) {
    assert_rows_have_files(env).await;
    let rows: HashSet<String> = sqlx::query_scalar("SELECT sha256 FROM blobs")
        .fetch_all(&env.db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for file in env.blob_files() {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(rows.contains(&name), "{} has no row", file.display());
    }
}

/// Every blob row naming the store has its bytes there, of its size.
pub async fn assert_rows_have_bytes(env: &BackendEnv) {
    for (key, size) in env.blob_rows().await {
        let bytes = env.read_key(&key).await;
        assert!(
            bytes.is_some_and(|b| b.len() as u64 == size),
            "{}: blob row {key} has no intact bytes",
            env.backend()
        );
    }
}

/// The store holds exactly the blobs its rows name, and no upload in progress.
pub async fn assert_store_matches_rows(env: &BackendEnv) {
    assert_rows_have_bytes(env).await;
    let rows: Vec<String> = env.blob_rows().await.into_iter().map(|(key, _)| key).collect();
    assert_eq!(env.blob_keys().await, rows, "{}: blobs and rows differ", env.backend());
    assert_eq!(env.staging_keys().await, Vec::<String>::new(), "{}", env.backend());
}

/// A cleaner whose grace period is over for everything already in the store.
pub async fn cleaner_without_grace(env: &BackendEnv, retention: Retention) -> Cleaner {
    env.cleaner_with(CleanupConfig {
        retention,
        interval: HOUR,
        grace: Duration::ZERO,
        batch: 500,
    })
    .await
}

/// Ages every file under `dir`, as if that much time had passed.
pub fn age_everything(dir: &Path, ago: Duration) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            age_everything(&path, ago);
        } else {
            age_file(&path, ago);
        }
    }
}

/// A step hook from a plain function of the step.
pub fn hook(f: impl Fn(Step) -> ControlFlow<()> + Send + Sync + 'static) -> StepHook {
    Arc::new(move |step| {
        let flow = f(step);
        async move { flow }.boxed()
    })
}
