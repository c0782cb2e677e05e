//! `BATON_CONTENT_REDIRECT=on`: an object-stored file's content answers 302 to a short-lived
//! signed URL, which serves the bytes, ranges included, with no credentials.

use reqwest::{header, redirect::Policy};

use baton_e2e::*;

async fn content_redirects_to_a_signed_url_that_serves_the_bytes(backend: Backend) {
    let env = BackendEnv::new(backend).await;
    let app = env.spawn_app_with(&["--content-redirect", "on"]).await;
    let bytes = bytes_of(8, 300_000);
    let job = app
        .submit_ok(job_form(vec![(
            "input",
            file_part(bytes.clone(), "r.bin", "application/octet-stream"),
        )]))
        .await;
    let content = app.url(&format!(
        "/v1/files/{}/content",
        job["files"][0]["id"].as_str().unwrap()
    ));

    let not_following = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let response = not_following.get(&content).send().await.unwrap();
    assert_eq!(response.status(), 302, "{backend}");
    let location = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(
        !location.contains(&app.base),
        "{backend}: the store's URL, not Baton's: {location}"
    );

    // A plain client, no credentials: the URL alone is the permission.
    let plain = reqwest::Client::new();
    let whole = plain.get(&location).send().await.unwrap();
    assert_eq!(whole.status(), 200, "{backend}");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{backend}");
    let range = plain
        .get(&location)
        .header(header::RANGE, "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206, "{backend}");
    assert_eq!(range.bytes().await.unwrap().as_ref(), &bytes[1000..2000], "{backend}");

    // A client that follows redirects gets the bytes in one call.
    let followed = app.http.get(&content).send().await.unwrap();
    assert_eq!(followed.status(), 200, "{backend}");
    assert_eq!(followed.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{backend}");
}

#[tokio::test]
async fn on_s3_content_redirects_to_a_signed_url_that_serves_the_bytes_and_ranges() {
    content_redirects_to_a_signed_url_that_serves_the_bytes(Backend::S3).await;
}

#[tokio::test]
async fn on_azure_blob_content_redirects_to_a_signed_url_that_serves_the_bytes_and_ranges() {
    content_redirects_to_a_signed_url_that_serves_the_bytes(Backend::Azure).await;
}

#[tokio::test]
async fn with_redirects_on_a_file_on_the_volume_still_streams_through_baton() {
    let env = BackendEnv::new(Backend::Volume).await;
    let app = env.spawn_app_with(&["--content-redirect", "on"]).await;
    let job = app
        .submit_ok(job_form(vec![(
            "input",
            file_part("on the volume", "v.txt", "text/plain"),
        )]))
        .await;
    let content = app.url(&format!(
        "/v1/files/{}/content",
        job["files"][0]["id"].as_str().unwrap()
    ));
    let not_following = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let response = not_following.get(&content).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "on the volume");
}
