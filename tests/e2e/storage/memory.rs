//! Uploads stream to object storage in bounded memory: `baton serve` (a process of its own, so
//! its memory is measured alone) takes a large upload with its resident memory barely moving.
//! The bench measures the 2 GiB case; this is the size CI affords.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use baton_testkit::{
    launcher::{BatonConfig, BatonProcess},
    ports::free_port,
};
use reqwest::multipart::{Form, Part};

use baton_e2e::*;

const MIB: u64 = 1 << 20;
const UPLOAD: u64 = 160 * MIB;
/// The goal is 64 MiB in all for a release build; this bounds what the upload adds.
const GROWTH_BOUND: u64 = 64 * MIB;

/// A process's resident memory in bytes, or `None` once it is gone.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn an_upload_streams_to_the_store_in_bounded_memory(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let logs = tempfile::tempdir().unwrap();
    let config = BatonConfig {
        binary: baton_testkit::cargo::baton_binary(),
        database_url: env.database_url.clone(),
        amqp_url: amqp_url(),
        queue_prefix: env.prefix.clone(),
        storage_dir: env.storage_dir().to_owned(),
        extra_env: env.store.baton_env(),
        log: logs.path().join("baton.log"),
        ready_path: "/readyz",
        ready_timeout: Duration::from_secs(60),
    };
    let mut baton = BatonProcess::new(config, free_port().unwrap());
    baton.start().await.expect("baton serve on the object store");
    let pid = baton.pid().unwrap();

    let before = rss(pid).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let done = Arc::clone(&done);
        async move {
            let mut peak = 0;
            while !done.load(Ordering::Acquire) {
                peak = peak.max(rss(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        }
    });
    let chunks = futures::stream::iter((0..UPLOAD / MIB).map(|i| Ok::<_, std::io::Error>(vec![i as u8; MIB as usize])));
    let part = Part::stream_with_length(reqwest::Body::wrap_stream(chunks), UPLOAD)
        .file_name("large.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    let form = Form::new().text("model", "example").part("input", part);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/jobs", baton.base_url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    done.store(true, Ordering::Release);
    let peak = sampler.await.unwrap().max(rss(pid).unwrap_or(0));
    let status = response.status();
    assert_eq!(status, 202, "{backend}: {}", response.text().await.unwrap());

    assert_eq!(env.blob_keys().await.len(), 1, "{backend}");
    env.assert_store_matches_rows().await;
    let growth = peak.saturating_sub(before);
    eprintln!(
        "{backend}: RSS {} MiB before, {} MiB at peak over a {} MiB upload",
        before / MIB,
        peak / MIB,
        UPLOAD / MIB
    );
    assert!(
        growth <= GROWTH_BOUND,
        "{backend}: RSS grew by {} MiB (from {} MiB) over a {} MiB upload",
        growth / MIB,
        before / MIB,
        UPLOAD / MIB
    );
    baton.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_upload_to_s3_streams_in_bounded_memory() {
    an_upload_streams_to_the_store_in_bounded_memory(Backend::S3).await;
}

#[tokio::test]
async fn an_upload_to_azure_blob_streams_in_bounded_memory() {
    an_upload_streams_to_the_store_in_bounded_memory(Backend::Azure).await;
}
