//! Bad requests get a clear 4xx with a stable code and leave nothing behind.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use baton_e2e::*;

async fn assert_rejected(env: &TestEnv, response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    assert_nothing_left(env).await;
}

async fn assert_nothing_left(env: &TestEnv) {
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            env.temp_files().is_empty()
        })
        .await,
        "temp files left behind: {:?}",
        env.temp_files()
    );
    assert!(env.blob_files().is_empty(), "blobs left: {:?}", env.blob_files());
    for table in ["jobs", "files", "blobs", "outbox"] {
        assert_eq!(env.count(table).await, 0, "rows left in {table}");
    }
}

#[tokio::test]
async fn upload_over_the_file_limit_returns_413_and_leaves_no_temp_file() {
    let env = TestEnv::new().await;
    let app = env.spawn_app_with(&amqp_url(), &["--max-file-bytes", "1MiB"]).await;
    let form = job_form(vec![(
        "input",
        file_part(bytes_of(1, 3 << 20), "big.bin", "application/octet-stream"),
    )]);
    assert_rejected(&env, app.submit(form).await, 413, "file_too_large").await;
}

#[tokio::test]
async fn files_over_the_job_limit_together_return_413() {
    let env = TestEnv::new().await;
    let app = env.spawn_app_with(&amqp_url(), &["--max-job-bytes", "1MiB"]).await;
    let form = job_form(vec![
        (
            "a",
            file_part(bytes_of(1, 700_000), "a.bin", "application/octet-stream"),
        ),
        (
            "b",
            file_part(bytes_of(2, 700_000), "b.bin", "application/octet-stream"),
        ),
    ]);
    assert_rejected(&env, app.submit(form).await, 413, "job_too_large").await;
}

#[tokio::test]
async fn too_many_files_return_413() {
    let env = TestEnv::new().await;
    let app = env.spawn_app_with(&amqp_url(), &["--max-files", "2"]).await;
    let form = job_form(
        (0..3)
            .map(|i| {
                (
                    ["a", "b", "c"][i],
                    file_part(vec![i as u8; 10], "f.bin", "application/octet-stream"),
                )
            })
            .collect(),
    );
    assert_rejected(&env, app.submit(form).await, 413, "too_many_files").await;
}

#[tokio::test]
async fn malformed_multipart_returns_400_and_a_body_that_is_no_form_415() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/jobs"))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body(concat!(
            "--XYZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nexample\r\n",
            "--XYZ\r\nthis is not a part header"
        ))
        .send()
        .await
        .unwrap();
    assert_rejected(&env, response, 400, "invalid_multipart").await;

    let response = app
        .http
        .post(app.url("/v1/jobs"))
        .json(&serde_json::json!({"model": "example"}))
        .send()
        .await
        .unwrap();
    assert_rejected(&env, response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn missing_model_returns_400_missing_model() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let form = Form::new().part("input", file_part("hello", "a.txt", "text/plain"));
    assert_rejected(&env, app.submit(form).await, 400, "missing_model").await;
}

#[tokio::test]
async fn invalid_model_name_returns_400_invalid_model() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let form = Form::new()
        .text("model", "../etc")
        .part("input", file_part("hello", "a.txt", "text/plain"));
    assert_rejected(&env, app.submit(form).await, 400, "invalid_model").await;
}

#[tokio::test]
async fn bad_params_json_returns_400_invalid_params() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    for params in ["{not json", "[1, 2]"] {
        let form = job_form(vec![("input", file_part("hello", "a.txt", "text/plain"))]).text("params", params);
        assert_rejected(&env, app.submit(form).await, 400, "invalid_params").await;
    }
}

#[tokio::test]
async fn a_job_without_files_returns_400_missing_files() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    assert_rejected(
        &env,
        app.submit(Form::new().text("model", "example")).await,
        400,
        "missing_files",
    )
    .await;
}

#[tokio::test]
async fn unknown_text_parts_and_duplicate_input_names_are_rejected() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let form = job_form(vec![("input", file_part("hello", "a.txt", "text/plain"))]).text("colour", "blue");
    assert_rejected(&env, app.submit(form).await, 400, "unknown_field").await;
    let form = job_form(vec![
        ("input", file_part("one", "a.txt", "text/plain")),
        ("input", file_part("two", "b.txt", "text/plain")),
    ]);
    assert_rejected(&env, app.submit(form).await, 400, "duplicate_input_name").await;
}

#[tokio::test]
async fn hostile_filenames_are_sanitised_and_never_become_paths() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let part = Part::bytes(b"data".to_vec()).file_name("../../../etc/passwd");
    let job = app
        .submit_ok(Form::new().text("model", "example").part("input", part))
        .await;
    assert_eq!(job["files"][0]["filename"], "passwd");
    let blobs = env.blob_files();
    assert_eq!(blobs.len(), 1);
    assert!(blobs[0].starts_with(env.storage_dir().join("blobs")));
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_no_temp_file() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(receiver));
    let part = Part::stream(body).file_name("slow.bin");
    let form = Form::new().text("model", "example").part("input", part);
    let request = tokio::spawn(app.http.post(app.url("/v1/jobs")).multipart(form).send());

    sender.send(Ok(vec![1; 1 << 20])).await.unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            !env.temp_files().is_empty()
        })
        .await,
        "the upload started streaming to a temp file"
    );
    request.abort();
    drop(sender);
    assert_nothing_left(&env).await;
}

fn tokio_stream_from<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::new().await;
    let app = env.spawn_app_with(&amqp_url(), &["--header-read-timeout", "1s"]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "the server closed the connection");
}

#[tokio::test]
async fn shutdown_bounds_in_flight_uploads_and_leaves_no_temp_file() {
    let env = TestEnv::new().await;
    let app = env.spawn_app_with(&amqp_url(), &["--shutdown-timeout", "1s"]).await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let part = Part::stream(reqwest::Body::wrap_stream(tokio_stream_from(receiver))).file_name("slow.bin");
    let form = Form::new().text("model", "example").part("input", part);
    let request = tokio::spawn(app.http.post(app.url("/v1/jobs")).multipart(form).send());
    sender.send(Ok(vec![7; 1 << 20])).await.unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            !env.temp_files().is_empty()
        })
        .await,
        "the upload is in flight"
    );

    let stopped = tokio::time::timeout(std::time::Duration::from_secs(15), app.stop()).await;
    assert!(
        stopped.is_ok(),
        "shutdown finished within its bound although the client never finished"
    );
    assert_nothing_left(&env).await;
    drop(sender);
    request.abort();
}
