//! An app of a test's environment, in this process on port 0, and workers beside it.

use std::{net::SocketAddr, time::Duration};

use baton_worker::Handler;
use reqwest::multipart::Form;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::eventually;

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub(crate) stop: CancellationToken,
    pub(crate) handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Runs an app with exactly these settings, in this process.
    pub async fn start(settings: baton::config::Settings) -> Self {
        let app = baton::app::Application::build(settings).await.expect("app builds");
        let addr = app.local_addr();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
        Self {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            stop,
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn submit(&self, form: Form) -> reqwest::Response {
        self.http
            .post(self.url("/v1/jobs"))
            .multipart(form)
            .send()
            .await
            .expect("submit request")
    }

    /// Submits and asserts 202; returns the job JSON.
    pub async fn submit_ok(&self, form: Form) -> Value {
        let response = self.submit(form).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, 202, "submit failed: {body}");
        body
    }

    /// GETs `path`, asserts 200 and returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Whether `/readyz` reports RabbitMQ `disconnected` (the app noticed it is unreachable).
    pub async fn rabbitmq_disconnected(&self) -> bool {
        let Ok(response) = self.http.get(self.url("/readyz")).send().await else {
            return false;
        };
        let body: Value = response.json().await.unwrap_or_default();
        body["rabbitmq"] == "disconnected"
    }

    /// Waits (up to 20 s) until the app reports RabbitMQ disconnected.
    pub async fn wait_for_rabbitmq_disconnected(&self) {
        let noticed = eventually(Duration::from_secs(20), || self.rabbitmq_disconnected()).await;
        assert!(noticed, "the app never reported RabbitMQ disconnected");
    }

    pub async fn job(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/jobs/{id}")).await
    }

    /// Polls the job until `done` holds, failing after `deadline`.
    pub async fn wait_for_job(&self, id: &str, deadline: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let last = std::cell::RefCell::new(Value::Null);
        let reached = eventually(deadline, || async {
            let job = self.job(id).await;
            let reached = done(&job);
            last.replace(job);
            reached
        })
        .await;
        let last = last.into_inner();
        if !reached {
            let events = self.get_json(&format!("/v1/jobs/{id}/events")).await;
            panic!(
                "job {id} did not reach the expected state in {deadline:?}; last seen: {last:#}\ntimeline: {events:#}"
            );
        }
        last
    }

    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        self.wait_for_job(id, Duration::from_secs(30), |job| job["status"] == status)
            .await
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("app task").expect("app stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub struct TestWorker {
    pub(crate) stop: CancellationToken,
    pub(crate) handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestWorker {
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("worker task").expect("worker stopped cleanly");
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A handler that runs until told to stop, and reports that it was told.
pub struct CancellableHandler {
    stopped: tokio::sync::mpsc::UnboundedSender<uuid::Uuid>,
}

impl CancellableHandler {
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<uuid::Uuid>) {
        let (stopped, receiver) = tokio::sync::mpsc::unbounded_channel();
        (Self { stopped }, receiver)
    }
}

impl Handler for CancellableHandler {
    async fn handle(&self, job: baton_worker::Job) -> Result<Value, baton_worker::JobError> {
        // Watch the token from a task of its own: the runtime drops this future on cancel.
        let (token, stopped, id) = (job.cancel.clone(), self.stopped.clone(), job.message.job_id);
        tokio::spawn(async move {
            token.cancelled().await;
            stopped.send(id).ok();
        });
        std::future::pending().await
    }
}
