//! A revoked key stops working on every replica within the key cache's lifetime (2 s), while
//! requests already past their credential check finish.

use std::time::{Duration, Instant};

use baton_e2e::{Secured, TestEnv, file_part, job_form};
use reqwest::{Method, multipart::Part};

#[tokio::test]
async fn revocation_reaches_both_replicas_within_seconds_and_spares_requests_in_flight() {
    let env = TestEnv::new().await;
    let one = Secured::spawn(&env, &[]).await;
    let two = Secured::spawn(&env, &[]).await;
    let key = one.key("team-v", "submit", None).await;
    for app in [&one, &two] {
        let response = app.request(Method::GET, "/v1/jobs", &key.token).send().await.unwrap();
        assert_eq!(response.status(), 200, "the key works (and is cached) on both replicas");
    }

    // An upload in flight on replica two: authenticated, then its body trickles in.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(receiver));
    let part = Part::stream(body)
        .file_name("slow.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    let upload = two
        .request(Method::POST, "/v1/jobs", &key.token)
        .multipart(job_form(vec![("input", part)]));
    let in_flight = tokio::spawn(upload.send());
    sender.send(Ok(vec![7; 4096])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    two.revoke(&key).await;
    let revoked_at = Instant::now();
    // Both replicas refuse it within the cache lifetime.
    for app in [&one, &two] {
        loop {
            let response = app.request(Method::GET, "/v1/jobs", &key.token).send().await.unwrap();
            if response.status() == 401 {
                break;
            }
            assert_eq!(response.status(), 200);
            assert!(
                revoked_at.elapsed() < Duration::from_secs(3),
                "a revoked key still works after 3 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // And never again, on either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for app in [&one, &two] {
        let response = app.request(Method::GET, "/v1/jobs", &key.token).send().await.unwrap();
        assert_eq!(response.status(), 401);
        let response = app
            .submit(
                &key.token,
                job_form(vec![("input", file_part(b"x".to_vec(), "x", "text/plain"))]),
            )
            .await;
        assert_eq!(response.status(), 401);
    }

    // The upload that started before the revocation finishes.
    sender.send(Ok(vec![8; 4096])).await.unwrap();
    drop(sender);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        202,
        "a request authenticated before the revocation completes"
    );
    assert_eq!(env.count("jobs").await, 1);
    one.app.stop().await;
    two.app.stop().await;
}

fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
