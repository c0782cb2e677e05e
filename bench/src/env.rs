//! The world a run needs, on top of the shared harness: Baton's binaries, Baton itself on a
//! port of its own, and probes of the run's queues.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use baton_testkit::{
    BatonProcess,
    cargo::{self, Profile},
    free_port,
    launcher::BatonConfig,
    process::Spec,
};
use lapin::{
    options::QueueDeclareOptions,
    types::{AMQPValue, FieldTable},
};

pub use baton_testkit::{amqp::connect as amqp_connect, process::Service};

/// Paths of the binaries the run measures.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub baton: PathBuf,
    pub worker: PathBuf,
}

/// Which build of Baton a run measures: release, unless `BATON_BENCH_PROFILE=debug` (a check
/// that the suite runs on a machine too busy for a release build; its figures mean nothing).
pub fn profile() -> Profile {
    match std::env::var("BATON_BENCH_PROFILE").as_deref() {
        Ok("debug") => Profile::Debug,
        _ => Profile::Release,
    }
}

/// `cargo build [--release] -p baton-broker -p baton-worker`.
pub fn build(workspace: &Path, profile: Profile) -> anyhow::Result<Binaries> {
    let mut built = cargo::build(workspace, profile, &["-p", "baton-broker", "-p", "baton-worker"])?;
    Ok(Binaries {
        baton: built.remove("baton").context("cargo built no `baton` binary")?,
        worker: built
            .remove("baton-example-worker")
            .context("cargo built no `baton-example-worker` binary")?,
    })
}

/// The arguments Baton declares its queues with (a durable quorum queue).
pub fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    arguments
}

/// Number of consumers on the job queue `queue` of `prefix` (declared as Baton declares it, so
/// this also creates it).
pub async fn consumer_count(url: &str, prefix: &str, queue: &str) -> anyhow::Result<u32> {
    let connection = amqp_connect(url, "baton-bench-probe").await?;
    let channel = connection.create_channel().await?;
    let arguments = baton_protocol::amqp::field_table(&baton_protocol::queue::job_queue_arguments(prefix));
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel.queue_declare(queue.into(), options, arguments).await?;
    connection.close(200, "done".into()).await?;
    Ok(declared.consumer_count())
}

/// Baton's `serve`, on its own port, against the run's database, prefix and storage.
pub struct Baton {
    process: BatonProcess,
    pub base_url: String,
}

pub struct BatonSetup<'a> {
    pub binary: &'a Path,
    pub database_url: &'a str,
    pub amqp_url: &'a str,
    pub queue_prefix: &'a str,
    pub storage_dir: &'a Path,
    pub log_dir: &'a Path,
    /// Extra environment for experiments (`--baton-env`).
    pub extra_env: &'a [(String, String)],
}

impl Baton {
    /// Starts Baton and waits (up to 60 s) until `/readyz` answers 2xx.
    pub async fn start(setup: &BatonSetup<'_>, tag: &str) -> anyhow::Result<Self> {
        let config = BatonConfig {
            binary: setup.binary.to_owned(),
            database_url: setup.database_url.to_owned(),
            amqp_url: setup.amqp_url.to_owned(),
            queue_prefix: setup.queue_prefix.to_owned(),
            storage_dir: setup.storage_dir.to_owned(),
            extra_env: setup.extra_env.to_vec(),
            log: setup.log_dir.join(format!("baton-{tag}.log")),
            ready_path: "/readyz",
            ready_timeout: Duration::from_secs(60),
        };
        let mut process = BatonProcess::new(config, free_port()?);
        process.start().await?;
        let base_url = process.base_url();
        Ok(Self { process, base_url })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid().unwrap_or_default()
    }

    /// Runs `baton <args>` once with this Baton's settings and returns its stdout, trimmed;
    /// fails with its stderr if it fails.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.process.run(args, &[]).await?;
        if !output.status.success() {
            anyhow::bail!(
                "baton {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8(output.stdout)
            .context("baton printed something other than UTF-8")?
            .trim()
            .to_owned())
    }

    /// SIGTERM, then SIGKILL after 30 s.
    pub async fn stop(mut self) {
        self.process.stop(Duration::from_secs(30)).await;
    }
}

/// Starts a child process whose output goes to `log` (see [`Service`]).
pub fn spawn_service(
    name: &str,
    program: &Path,
    args: &[&str],
    envs: &[(&str, String)],
    cwd: Option<&Path>,
    log: PathBuf,
) -> anyhow::Result<Service> {
    Service::spawn(&Spec {
        name: name.to_owned(),
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: envs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        cwd: cwd.map(Path::to_owned),
        log,
    })
}
