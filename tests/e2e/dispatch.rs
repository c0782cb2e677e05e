//! Postgres is the source of truth: RabbitMQ outages and Baton restarts delay dispatch but never
//! lose a job.

use std::time::Duration;

use baton_e2e::*;

#[tokio::test]
async fn a_job_submitted_while_rabbitmq_is_unreachable_is_delivered_once_it_is_back() {
    let env = TestEnv::new().await;
    let gate = amqp_gate(false).await;
    let app = env.spawn_app_with(&gate.amqp_url(), &[]).await;
    let _worker = env.spawn_worker();

    let job = app
        .submit_ok(job_form(vec![(
            "input",
            file_part("while down", "a.txt", "text/plain"),
        )]))
        .await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_rabbitmq_disconnected().await;
    let unpublished = holds_for(Duration::from_secs(1), || async {
        let waiting = app.job(id).await;
        waiting["status"] == "queued" && waiting["dispatched_at"].is_null()
    })
    .await;
    assert!(unpublished, "not published while RabbitMQ is unreachable");
    assert_eq!(env.count("outbox").await, 1);

    gate.open();
    let done = app.wait_for_status(id, "succeeded").await;
    assert_eq!(done["result"]["inputs"][0]["words"], 2);
    assert_eq!(env.count("outbox").await, 0);
}

#[tokio::test]
async fn a_job_committed_by_a_baton_that_stopped_before_publishing_is_delivered_after_restart() {
    let env = TestEnv::new().await;
    let gate = amqp_gate(false).await;
    let first = env.spawn_app_with(&gate.amqp_url(), &[]).await;
    let job = first
        .submit_ok(job_form(vec![(
            "input",
            file_part("survives restarts", "a.txt", "text/plain"),
        )]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    first.stop().await;
    assert_eq!(env.count("outbox").await, 1, "committed but never published");

    let _worker = env.spawn_worker();
    let second = env.spawn_app().await;
    let done = second.wait_for_status(&id, "succeeded").await;
    assert_eq!(done["result"]["inputs"][0]["words"], 2);
}

#[tokio::test]
async fn a_lost_rabbitmq_connection_is_reopened_without_restarting_baton() {
    let env = TestEnv::new().await;
    let gate = amqp_gate(true).await;
    let app = env.spawn_app_with(&gate.amqp_url(), &[]).await;
    let _worker = env.spawn_worker();

    let before = app
        .submit_ok(job_form(vec![("input", file_part("one", "a.txt", "text/plain"))]))
        .await;
    app.wait_for_status(before["id"].as_str().unwrap(), "succeeded").await;

    gate.close();
    let during = app
        .submit_ok(job_form(vec![("input", file_part("two", "b.txt", "text/plain"))]))
        .await;
    app.wait_for_rabbitmq_disconnected().await;
    gate.open();
    let done = app.wait_for_status(during["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(done["attempt"], 1);
}
