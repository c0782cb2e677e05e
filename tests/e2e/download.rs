//! Reading files back: metadata, whole content, ranges, validators.

use reqwest::header;
use serde_json::Value;

use baton_e2e::*;

async fn uploaded(app: &TestApp, bytes: &[u8], filename: &str) -> Value {
    let job = app
        .submit_ok(job_form(vec![(
            "input",
            file_part(bytes.to_vec(), filename, "application/octet-stream"),
        )]))
        .await;
    job["files"][0].clone()
}

#[tokio::test]
async fn download_returns_the_bytes_with_type_length_etag_and_a_safe_disposition() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let bytes = bytes_of(5, 1_000_000);
    let file = uploaded(&app, &bytes, "résumé \"final\".bin").await;
    let id = file["id"].as_str().unwrap();

    let meta = app.get_json(&format!("/v1/files/{id}")).await;
    assert_eq!(meta["size"], 1_000_000);
    assert_eq!(meta["sha256"], sha256_hex(&bytes));

    let response = app
        .http
        .get(app.url(&format!("/v1/files/{id}/content")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_LENGTH], "1000000");
    assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(
        headers[header::ETAG].to_str().unwrap(),
        format!("\"{}\"", sha256_hex(&bytes))
    );
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
    let disposition = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"r_sum_ _final_.bin\""),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.bin"),
        "{disposition}"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn download_with_a_range_returns_206_and_exactly_those_bytes() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let bytes = bytes_of(6, 500_000);
    let file = uploaded(&app, &bytes, "r.bin").await;
    let url = app.url(&format!("/v1/files/{}/content", file["id"].as_str().unwrap()));

    let response = app
        .http
        .get(&url)
        .header(header::RANGE, "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes 1000-1999/500000");
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "1000");
    assert_eq!(response.bytes().await.unwrap().as_ref(), &bytes[1000..2000]);

    let response = app
        .http
        .get(&url)
        .header(header::RANGE, "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &bytes[499_990..]);

    let response = app
        .http
        .get(&url)
        .header(header::RANGE, "bytes=600000-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */500000");

    // A stale If-Range means the client's copy changed: send it all.
    let response = app
        .http
        .get(&url)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 500_000);
}

#[tokio::test]
async fn a_matching_if_none_match_returns_304() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let bytes = b"cache me".to_vec();
    let file = uploaded(&app, &bytes, "c.txt").await;
    let url = app.url(&format!("/v1/files/{}/content", file["id"].as_str().unwrap()));
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let response = app
        .http
        .get(&url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
}
