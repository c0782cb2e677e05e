//! `baton serve` as a child process: on a port of its own, with the database, queue prefix and
//! volume it is given, waited for until it answers, stopped gracefully or killed, and started
//! again on the same port, settings and log.

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Output, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};

use crate::{
    http,
    process::{Service, Spec, clean_env_async, tail},
};

/// Where and how to run Baton.
#[derive(Debug, Clone)]
pub struct BatonConfig {
    pub binary: PathBuf,
    pub database_url: String,
    pub amqp_url: String,
    pub queue_prefix: String,
    pub storage_dir: PathBuf,
    /// Any further `BATON_*` settings.
    pub extra_env: Vec<(String, String)>,
    pub log: PathBuf,
    /// The path that answers 2xx once Baton is up: `/readyz` (its dependencies reachable too)
    /// or `/healthz` (the process serves).
    pub ready_path: &'static str,
    pub ready_timeout: Duration,
}

pub struct BatonProcess {
    config: BatonConfig,
    pub port: u16,
    service: Option<Service>,
    /// How many times it was started.
    pub starts: u32,
}

impl BatonProcess {
    /// A Baton that will listen on 127.0.0.1:`port`; not started yet.
    pub fn new(config: BatonConfig, port: u16) -> Self {
        Self {
            config,
            port,
            service: None,
            starts: 0,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> &Path {
        &self.config.log
    }

    /// Its settings as environment variables, as a user would give them.
    pub fn env(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let mut env = vec![
            ("BATON_DATABASE_URL".to_owned(), c.database_url.clone()),
            ("BATON_AMQP_URL".to_owned(), c.amqp_url.clone()),
            ("BATON_QUEUE_PREFIX".to_owned(), c.queue_prefix.clone()),
            ("BATON_STORAGE_DIR".to_owned(), c.storage_dir.display().to_string()),
            ("BATON_LISTEN".to_owned(), format!("127.0.0.1:{}", self.port)),
            // A launch that tests access sets `BATON_AUTH=on` in its extra settings.
            ("BATON_AUTH".to_owned(), "off".to_owned()),
        ];
        env.extend(c.extra_env.iter().cloned());
        env
    }

    /// Starts `baton serve` and waits until its ready path answers 2xx, for at most `timeout`
    /// (the configured one if `None`). Fails, with the tail of the log, if it exits first.
    pub async fn start_within(&mut self, timeout: Option<Duration>) -> anyhow::Result<()> {
        let spec = Spec {
            name: "baton".to_owned(),
            program: self.config.binary.clone(),
            args: vec!["serve".to_owned()],
            env: self.env(),
            cwd: None,
            log: self.config.log.clone(),
        };
        let url = format!("{}{}", self.base_url(), self.config.ready_path);
        let timeout = timeout.unwrap_or(self.config.ready_timeout);
        let service = self.service.insert(Service::spawn(&spec)?);
        self.starts += 1;
        let client = reqwest::Client::new();
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = service.exited() {
                bail!("Baton exited at start ({status})\n{}", tail(&self.config.log, 30));
            }
            if http::get_ok(&client, &url).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= end {
                bail!(
                    "Baton answering {} did not happen within {timeout:?}\n{}",
                    self.config.ready_path,
                    tail(&self.config.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.start_within(None).await
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.service.as_ref().map(Service::pid)
    }

    /// `Some(status)` if it exited without being stopped or killed.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.service.as_mut().and_then(Service::exited)
    }

    /// Fails if it exited, with the tail of its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.service.as_mut() {
            Some(service) => service.check_alive(),
            None => bail!("Baton is not running"),
        }
    }

    /// SIGKILL: no graceful shutdown, nothing flushed. Returns the pid killed.
    pub async fn kill(&mut self) -> anyhow::Result<u32> {
        self.service.take().context("Baton is not running")?.kill().await
    }

    /// SIGTERM (graceful: in-flight requests finish or are dropped), then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(service) = self.service.take() {
            service.stop(grace).await;
        }
    }

    /// Runs `baton <args>` once with the same settings plus `extra_env`, and returns its output.
    pub async fn run(&self, args: &[&str], extra_env: &[(&str, &str)]) -> anyhow::Result<Output> {
        let mut command = tokio::process::Command::new(&self.config.binary);
        clean_env_async(&mut command);
        command
            .args(args)
            .envs(self.env())
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null());
        command
            .output()
            .await
            .with_context(|| format!("running baton {}", args.join(" ")))
    }
}
