//! `GET /v1/files/{id}/content` streams from every store with the same Range, ETag and
//! If-None-Match behaviour as from the volume.

use reqwest::header;

use baton_e2e::*;

async fn content_streams_whole_in_ranges_and_by_validator(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app().await;
    let bytes = bytes_of(6, 500_000);
    let job = app
        .submit_ok(job_form(vec![(
            "input",
            file_part(bytes.clone(), "r.bin", "application/octet-stream"),
        )]))
        .await;
    let url = app.url(&format!(
        "/v1/files/{}/content",
        job["files"][0]["id"].as_str().unwrap()
    ));
    let etag = format!("\"{}\"", sha256_hex(&bytes));

    let whole = app.http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200, "{backend}");
    assert_eq!(whole.headers()[header::CONTENT_LENGTH], "500000", "{backend}");
    assert_eq!(whole.headers()[header::ETAG].to_str().unwrap(), etag, "{backend}");
    assert_eq!(whole.headers()[header::ACCEPT_RANGES], "bytes", "{backend}");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{backend}");

    let range = |value: &'static str| app.http.get(&url).header(header::RANGE, value).send();
    let middle = range("bytes=1000-1999").await.unwrap();
    assert_eq!(middle.status(), 206, "{backend}");
    assert_eq!(
        middle.headers()[header::CONTENT_RANGE],
        "bytes 1000-1999/500000",
        "{backend}"
    );
    assert_eq!(middle.headers()[header::CONTENT_LENGTH], "1000", "{backend}");
    assert_eq!(middle.bytes().await.unwrap().as_ref(), &bytes[1000..2000], "{backend}");

    let suffix = range("bytes=-10").await.unwrap();
    assert_eq!(suffix.status(), 206, "{backend}");
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), &bytes[499_990..], "{backend}");

    let open_ended = range("bytes=499000-").await.unwrap();
    assert_eq!(open_ended.status(), 206, "{backend}");
    assert_eq!(
        open_ended.bytes().await.unwrap().as_ref(),
        &bytes[499_000..],
        "{backend}"
    );

    let beyond = range("bytes=600000-").await.unwrap();
    assert_eq!(beyond.status(), 416, "{backend}");
    assert_eq!(beyond.headers()[header::CONTENT_RANGE], "bytes */500000", "{backend}");

    let cached = app
        .http
        .get(&url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304, "{backend}");

    // A stale If-Range: the client's copy changed, so it gets all of it.
    let stale = app
        .http
        .get(&url)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "{backend}");
    assert_eq!(stale.bytes().await.unwrap().len(), 500_000, "{backend}");
}

#[tokio::test]
async fn on_the_volume_content_streams_whole_in_ranges_and_by_validator() {
    content_streams_whole_in_ranges_and_by_validator(Backend::Volume).await;
}

#[tokio::test]
async fn on_s3_content_streams_whole_in_ranges_and_by_validator() {
    content_streams_whole_in_ranges_and_by_validator(Backend::S3).await;
}

#[tokio::test]
async fn on_azure_blob_content_streams_whole_in_ranges_and_by_validator() {
    content_streams_whole_in_ranges_and_by_validator(Backend::Azure).await;
}
