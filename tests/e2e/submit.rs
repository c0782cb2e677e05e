//! The core path: submit → RabbitMQ → worker → result.

use std::time::Duration;

use serde_json::Value;

use baton_e2e::*;

#[tokio::test]
async fn submitted_job_is_run_by_the_worker_and_its_result_is_returned() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let _worker = env.spawn_worker();

    let text = "the quick brown fox\njumps over\nthe lazy dog\n";
    let image = png(5, 3, [255, 0, 0]);
    let form = job_form(vec![
        ("document", file_part(text, "notes.txt", "text/plain")),
        ("photo", file_part(image.clone(), "red.png", "application/octet-stream")),
    ])
    .text("params", r#"{"threshold": 0.5}"#);
    let job = app.submit_ok(form).await;

    assert_eq!(job["status"], "queued");
    assert_eq!(job["model"], "example");
    assert_eq!(job["params"]["threshold"], 0.5);
    let files = job["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["name"], "document");
    assert_eq!(files[0]["filename"], "notes.txt");
    assert_eq!(files[0]["size"], text.len());
    assert_eq!(files[0]["sha256"], sha256_hex(text.as_bytes()));
    assert_eq!(files[0]["md5"].as_str().unwrap().len(), 32);
    // Sniffed from the bytes, not taken from the client's header.
    assert_eq!(files[1]["content_type"], "image/png");
    assert_eq!(files[1]["sha256"], sha256_hex(&image));

    let id = job["id"].as_str().unwrap();
    let done = app.wait_for_status(id, "succeeded").await;
    let inputs = done["result"]["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["kind"], "text");
    assert_eq!(inputs[0]["lines"], 3);
    assert_eq!(inputs[0]["words"], 9);
    assert_eq!(inputs[0]["sha256_verified"], true);
    assert_eq!(inputs[1]["kind"], "image");
    assert_eq!(inputs[1]["width"], 5);
    assert_eq!(inputs[1]["height"], 3);
    assert_eq!(inputs[1]["histogram"]["r"][7], 15, "all 15 pixels are full red");
    assert_eq!(done["attempt"], 1);
    assert!(done["worker"].as_str().unwrap().starts_with("test-worker-"));
    for stamp in ["dispatched_at", "started_at", "finished_at"] {
        assert!(done[stamp].is_string(), "{stamp} is set: {done:#}");
    }
}

#[tokio::test]
async fn submit_answers_202_with_location_only_after_the_file_is_on_disk_and_committed() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let bytes = bytes_of(7, 300_000);

    let response = app
        .submit(job_form(vec![(
            "input",
            file_part(bytes.clone(), "x.bin", "application/octet-stream"),
        )]))
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(response.headers().contains_key("x-request-id"));
    let job: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/v1/jobs/{}", job["id"].as_str().unwrap()));

    // Already durable and recorded at the moment of the 202.
    let blobs = env.blob_files();
    assert_eq!(blobs.len(), 1);
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), bytes);
    let sha = sha256_hex(&bytes);
    let expected = format!("blobs/default/{}/{}/{sha}", &sha[0..2], &sha[2..4]);
    assert!(
        blobs[0].ends_with(&expected),
        "{} is content-addressed",
        blobs[0].display()
    );
    assert_eq!(env.count("jobs").await, 1);
    assert_eq!(env.count("files").await, 1);
    assert!(env.temp_files().is_empty());
}

#[tokio::test]
async fn job_message_carries_references_and_never_bytes() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let bytes = bytes_of(3, 100_000);
    let job = app
        .submit_ok(job_form(vec![(
            "input",
            file_part(bytes.clone(), "big.bin", "application/octet-stream"),
        )]))
        .await;

    // Take the message off the model's queue ourselves, as a worker would.
    let connection = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = env.job_queue("example");
    declare_queue(&channel, &env.prefix, &queue).await;
    let delivery = until_some(Duration::from_secs(30), Duration::from_millis(50), || async {
        channel
            .basic_get(queue.as_str().into(), Default::default())
            .await
            .ok()
            .flatten()
    })
    .await
    .expect("the job message reached the model's queue");
    assert!(
        delivery.delivery.data.len() < 2_000,
        "a small message: {} bytes",
        delivery.delivery.data.len()
    );
    let body: baton_protocol::JobMessage = serde_json::from_slice(&delivery.delivery.data).unwrap();
    assert_eq!(body.job_id.to_string(), job["id"].as_str().unwrap());
    assert_eq!(body.attempt, 1);
    assert_eq!(
        body.version, 1,
        "a volume-only message keeps version 1 for older workers"
    );
    assert_eq!(body.files.len(), 1);
    let file = &body.files[0];
    let Ok(baton_protocol::Location::Volume(path)) = file.location() else {
        panic!("a volume file with a safe path: {file:?}");
    };
    assert_eq!(std::fs::read(env.storage_dir().join(path)).unwrap(), bytes);
    assert_eq!(file.size, bytes.len() as u64);
    assert_eq!(
        delivery
            .delivery
            .properties
            .reply_to()
            .as_ref()
            .map(|q| q.as_str().to_owned()),
        Some(env.events_queue())
    );
    assert_eq!(delivery.delivery.properties.delivery_mode(), &Some(2), "persistent");
    connection.close(200, "done".into()).await.unwrap();
}

/// Postgres gives numbers back as long decimals (the largest double as 309 digits, tiny ones
/// with 175 leading zeros): every number `params` may hold reads back as it was sent.
#[tokio::test]
async fn params_with_extreme_numbers_read_back_as_they_were_sent() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let params = r#"{"max": 1.7976931348623157e308, "min": -1.7976931348623157e308, "tiny": -7.299590945998739e-176,
                     "sub": 5e-324, "big": 5.628933783888501e16, "int": 18446744073709551615}"#;
    let form = job_form(vec![("input", file_part("x", "x.txt", "text/plain"))]).text("params", params);
    let job = app.submit_ok(form).await;
    let read = app.job(job["id"].as_str().unwrap()).await;
    let sent: Value = serde_json::from_str(params).unwrap();
    // The same numbers, not the same spelling: `5.628933783888501e16` comes back as an integer.
    for (name, number) in sent.as_object().unwrap() {
        assert_eq!(read["params"][name].as_f64(), number.as_f64(), "{name}");
        assert_eq!(job["params"][name].as_f64(), number.as_f64(), "{name}");
    }
    assert_eq!(read["params"]["int"].as_u64(), Some(u64::MAX));
    app.stop().await;
}
