//! The world a run needs: release binaries, a fresh database, a queue prefix, a storage
//! directory, and the processes (Baton, workers), all torn down afterwards.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use lapin::{
    Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::{AMQPValue, FieldTable},
};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use tokio::process::{Child, Command};

/// Paths of the release binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub baton: PathBuf,
    pub worker: PathBuf,
}

/// `cargo build --release -p baton-broker -p baton-worker` with `SQLX_OFFLINE=true`, honouring
/// `CARGO_TARGET_DIR` (inherited); the binaries' paths are read from cargo's JSON messages.
pub fn build(workspace: &Path) -> anyhow::Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    // Under `cargo run` this process carries the bench package's CARGO_MANIFEST_DIR, CARGO_PKG_*
    // and so on. Some build scripts watch such variables (ring's watches CARGO_MANIFEST_DIR), so
    // passing them on would make every other build rebuild half the dependency tree.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(key.as_ref());
        }
    }
    let mut child = command
        .current_dir(workspace)
        .env("SQLX_OFFLINE", "true")
        .args([
            "build",
            "--release",
            "-p",
            "baton-broker",
            "-p",
            "baton-worker",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running cargo")?;
    let stdout = child.stdout.take().expect("piped");
    let (mut baton, mut worker) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let (Some(name), Some(executable)) = (
            message.pointer("/target/name").and_then(|v| v.as_str()),
            message.get("executable").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        match name {
            "baton" => baton = Some(PathBuf::from(executable)),
            "baton-example-worker" => worker = Some(PathBuf::from(executable)),
            _ => {}
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(Binaries {
        baton: baton.context("cargo built no `baton` binary")?,
        worker: worker.context("cargo built no `baton-example-worker` binary")?,
    })
}

/// A database created for this run and dropped afterwards.
pub struct Database {
    server: String,
    pub name: String,
    pub url: String,
}

impl Database {
    pub async fn create(server: &str, name: &str) -> anyhow::Result<Self> {
        let server = server.trim_end_matches('/').to_owned();
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .with_context(|| format!("connecting to Postgres at {server}"))?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .context("creating the run's database")?;
        admin.close().await?;
        Ok(Self {
            url: format!("{server}/{name}"),
            server,
            name: name.to_owned(),
        })
    }

    pub async fn drop_now(&self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&format!("{}/postgres", self.server)).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(())
    }
}

/// The arguments Baton declares its queues with (a durable quorum queue).
pub fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    arguments
}

pub async fn amqp_connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(Duration::from_secs(10), Connection::connect(url, properties))
        .await
        .context("timed out connecting to RabbitMQ")?
        .context("connecting to RabbitMQ")
}

/// The arguments of a job queue named `queue` (`{prefix}jobs.{model}`), as Baton declares it.
pub fn job_queue_arguments(queue: &str) -> FieldTable {
    let prefix = queue.rsplit_once("jobs.").map_or("", |(prefix, _)| prefix);
    baton_protocol::amqp::field_table(&baton_protocol::queue::job_queue_arguments(prefix))
}

/// Number of consumers on a job queue (declared as Baton declares it, so this also creates it).
pub async fn consumer_count(url: &str, queue: &str) -> anyhow::Result<u32> {
    let connection = amqp_connect(url, "baton-bench-probe").await?;
    let channel = connection.create_channel().await?;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            job_queue_arguments(queue),
        )
        .await?;
    connection.close(200, "done".into()).await?;
    Ok(declared.consumer_count())
}

/// Deletes the run's queues and exchanges; missing ones are fine.
pub async fn delete_queues(url: &str, queues: &[String], exchanges: &[String]) -> anyhow::Result<()> {
    let connection = amqp_connect(url, "baton-bench-cleanup").await?;
    for queue in queues {
        // A failed delete closes the channel: use one per delete.
        let channel = connection.create_channel().await?;
        if let Err(e) = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
        {
            eprintln!("  could not delete queue {queue}: {e}");
        }
    }
    for exchange in exchanges {
        let channel = connection.create_channel().await?;
        if let Err(e) = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
        {
            eprintln!("  could not delete exchange {exchange}: {e}");
        }
    }
    // Channels closed by a failed delete may still be closing: a failed close is harmless.
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A child process whose output goes to a log file; killed if dropped.
pub struct Service {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Service {
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        envs: &[(&str, String)],
        cwd: Option<&Path>,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log).with_context(|| format!("creating log file {}", log.display()))?;
        let err = out.try_clone()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        for (key, value) in envs {
            command.env(key, value);
        }
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    /// Fails if the process has exited (with the tail of its log).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
            eprintln!("  {} did not stop within {grace:?}; killing it", self.name);
        }
        let _ = self.child.kill().await;
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Baton's `serve`, on its own port, against the run's database, prefix and storage.
pub struct Baton {
    pub service: Service,
    pub base_url: String,
}

pub struct BatonConfig<'a> {
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
    pub async fn start(config: &BatonConfig<'_>, client: &reqwest::Client, tag: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut envs = vec![
            ("BATON_DATABASE_URL", config.database_url.to_owned()),
            ("BATON_AMQP_URL", config.amqp_url.to_owned()),
            ("BATON_QUEUE_PREFIX", config.queue_prefix.to_owned()),
            ("BATON_STORAGE_DIR", config.storage_dir.to_string_lossy().into_owned()),
            ("BATON_LISTEN", format!("127.0.0.1:{port}")),
        ];
        envs.extend(config.extra_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let mut service = Service::spawn(
            "baton",
            config.binary,
            &["serve"],
            &envs,
            None,
            config.log_dir.join(format!("baton-{tag}.log")),
        )?;
        let base_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            service.check_alive()?;
            if let Ok(response) = client.get(format!("{base_url}/readyz")).send().await
                && response.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("Baton was not ready within 60 s; see {}", service.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { service, base_url })
    }

    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    pub async fn stop(self) {
        self.service.stop(Duration::from_secs(30)).await;
    }
}

/// Samples the depth (ready messages) of some queues every 200 ms until stopped; returns the
/// largest depth seen per queue.
pub struct DepthSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(String, u32)>>,
}

impl DepthSampler {
    pub async fn start(url: &str, queues: Vec<String>) -> anyhow::Result<Self> {
        let connection = amqp_connect(url, "baton-bench-depth").await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut max = vec![0_u32; queues.len()];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(channel) = connection.create_channel().await else {
                    break;
                };
                for (i, queue) in queues.iter().enumerate() {
                    let passive = QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    };
                    if let Ok(q) = channel
                        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                        .await
                    {
                        max[i] = max[i].max(q.message_count());
                    }
                }
                let _ = channel.close(200, "done".into()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = connection.close(200, "done".into()).await;
            queues.into_iter().zip(max).collect()
        });
        Ok(Self { stop, task })
    }

    pub async fn finish(self) -> Vec<(String, u32)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
