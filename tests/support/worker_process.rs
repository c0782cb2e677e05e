//! The example worker as a deployment runs it: the `baton-example-worker` binary, a process of
//! its own, configured through `BATON_*` variables.

use std::path::Path;

use baton_testkit::process::{Service, Spec};

use crate::TestEnv;

impl TestEnv {
    /// `baton-example-worker` serving `model` on this environment's queues and volume, connected
    /// with `amqp_url`; its output goes to `log`. Killed if dropped.
    pub fn spawn_worker_process(&self, amqp_url: &str, model: &str, log: &Path) -> Service {
        let spec = Spec {
            name: format!("baton-example-worker ({model})"),
            program: baton_testkit::cargo::example_worker_binary(),
            args: Vec::new(),
            env: vec![
                ("BATON_AMQP_URL".into(), amqp_url.into()),
                ("BATON_STORAGE_DIR".into(), self.storage_dir().display().to_string()),
                ("BATON_WORKER_MODEL".into(), model.into()),
                ("BATON_QUEUE_PREFIX".into(), self.prefix.clone()),
                ("BATON_WORKER_SHUTDOWN_TIMEOUT".into(), "5s".into()),
                ("BATON_LOG".into(), "info".into()),
            ],
            cwd: None,
            log: log.to_owned(),
        };
        Service::spawn(&spec).expect("start baton-example-worker")
    }
}
