//! Inputs in object storage as the Rust worker runtime sees them: a job message whose signed URL
//! has expired is handed back before `started`, and Baton runs the attempt again at no cost.

use std::time::Duration;

use baton_protocol::{JobMessage, ObjectRef};
use lapin::options::BasicAckOptions;
use time::macros::datetime;

use baton_e2e::*;

#[tokio::test]
async fn a_message_whose_signed_url_expired_is_handed_back_unstarted_and_runs_again() {
    let env = TestEnv::new().await;
    let app = env.spawn_app().await;
    let job = app
        .submit_ok(job_form(vec![(
            "doc",
            file_part("one two three\n".to_owned(), "doc.txt", "text/plain"),
        )]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();

    // Baton's message, as a Baton keeping the file in object storage would have published it,
    // with a URL that expired before a worker took it.
    let manual = ManualWorker::connect(&env).await;
    let (mut message, original): (JobMessage, _) = manual.take(&env).await;
    let file = &mut message.files[0];
    let path = file.path.take().expect("a volume file");
    file.object = Some(ObjectRef {
        store: "s3://bucket/prefix".into(),
        key: format!("prefix/{path}"),
        // Never fetched: the worker must hand the message back before trying.
        url: "http://127.0.0.1:9/never-fetched".into(),
        expires_at: datetime!(2020-01-01 00:00 UTC),
    });
    message.version = message.required_version();
    assert_eq!(message.version, 2);
    env.publish_raw(&env.job_queue("example"), &serde_json::to_vec(&message).unwrap())
        .await;
    original.delivery.ack(BasicAckOptions::default()).await.unwrap();
    manual.die().await;

    let _worker = env.spawn_worker();
    let done = app
        .wait_for_job(&id, Duration::from_secs(30), |j| {
            j["status"] == "succeeded" || j["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["attempt"], 2, "published again as a new attempt");
    assert_eq!(
        done["attempts_used"], 1,
        "the handed-back attempt did not use the budget"
    );
    let timeline = env.timeline(&app, &id).await;
    assert!(timeline.contains(&"returned".to_owned()), "{timeline:?}");
    assert_eq!(
        timeline.iter().filter(|k| *k == "started").count(),
        1,
        "the handed-back attempt never started: {timeline:?}"
    );
}
