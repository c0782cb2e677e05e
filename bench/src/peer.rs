//! The peer: Celery on the same RabbitMQ, from a pinned virtualenv the suite creates.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::{
    env::{Service, spawn_service},
    stats::{Latency, per_s},
};

const MARKER: &str = ".baton-bench-requirements";

#[derive(Debug, Clone, Serialize)]
pub struct Venv {
    pub python: PathBuf,
    /// Whether this run had to create it (pip install included in `seconds`).
    pub created: bool,
    pub seconds: f64,
}

/// `bench/.venv` with `bench/celery/requirements.txt` installed; recreated when the pinned
/// requirements changed since it was made.
pub fn ensure_venv(bench_dir: &Path, python: &str) -> anyhow::Result<Venv> {
    let venv = bench_dir.join(".venv");
    let requirements = bench_dir.join("celery/requirements.txt");
    let wanted =
        std::fs::read_to_string(&requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let venv_python = venv.join("bin/python");
    let started = Instant::now();
    if venv_python.exists() && std::fs::read_to_string(venv.join(MARKER)).is_ok_and(|have| have == wanted) {
        return Ok(Venv {
            python: venv_python,
            created: false,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    eprintln!("  creating {} (Celery, pinned)", venv.display());
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    run(std::process::Command::new(python).args(["-m", "venv"]).arg(&venv))
        .with_context(|| format!("creating a virtualenv with {python}"))?;
    run(std::process::Command::new(&venv_python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
        ])
        .arg(&requirements))
    .context("installing Celery into the virtualenv")?;
    std::fs::write(venv.join(MARKER), wanted)?;
    Ok(Venv {
        python: venv_python,
        created: true,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn run(command: &mut std::process::Command) -> anyhow::Result<()> {
    let status = command.status()?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerRun {
    pub mode: String,
    pub jobs: usize,
    pub errors: usize,
    pub client_procs: usize,
    pub seconds: f64,
    pub jobs_s: f64,
    /// Submit (client clock) to the worker finishing the task (worker clock, same host).
    pub submit_to_done: Latency,
}

#[derive(serde::Deserialize)]
struct Output {
    samples: Vec<(f64, f64)>,
    errors: usize,
    #[serde(default)]
    failures: Vec<String>,
}

pub struct Celery<'a> {
    pub venv: &'a Venv,
    pub bench_dir: &'a Path,
    pub amqp_url: &'a str,
    pub queue: &'a str,
    pub queue_type: &'a str,
    pub log_dir: &'a Path,
}

impl Celery<'_> {
    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BENCH_CELERY_BROKER", self.amqp_url.to_owned()),
            ("BENCH_CELERY_QUEUE", self.queue.to_owned()),
            ("BENCH_CELERY_QUEUE_TYPE", self.queue_type.to_owned()),
            ("PYTHONDONTWRITEBYTECODE", "1".to_owned()),
        ]
    }

    /// A prefork worker with `concurrency` processes.
    pub fn start_worker(&self, concurrency: usize) -> anyhow::Result<Service> {
        let concurrency = concurrency.to_string();
        let node = format!("bench-{}@%h", self.queue.replace(['.', ':'], "-"));
        spawn_service(
            "celery worker",
            &self.venv.python,
            &[
                "-m",
                "celery",
                "-A",
                "bench_celery",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                &concurrency,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "warning",
                "--queues",
                self.queue,
                "--hostname",
                &node,
            ],
            &self.envs(),
            Some(&self.bench_dir.join("celery")),
            self.log_dir.join("celery-worker.log"),
        )
    }

    /// Submits `jobs` tasks from `procs` client processes and waits for every result.
    pub async fn run(
        &self,
        mode: &str,
        jobs: usize,
        procs: usize,
        size: usize,
        timeout: Duration,
    ) -> anyhow::Result<PeerRun> {
        let mut command = tokio::process::Command::new(&self.venv.python);
        command
            .current_dir(self.bench_dir.join("celery"))
            .args(["bench_celery.py", "run", "--mode", mode])
            .args(["--n", &jobs.to_string(), "--procs", &procs.to_string()])
            .args(["--size", &size.to_string()])
            .args(["--timeout", &timeout.as_secs().to_string()])
            .stdin(std::process::Stdio::null())
            .stderr(std::fs::File::create(
                self.log_dir.join(format!("celery-client-{mode}.log")),
            )?)
            .kill_on_drop(true);
        for (key, value) in self.envs() {
            command.env(key, value);
        }
        let output = tokio::time::timeout(timeout + Duration::from_secs(240), command.output())
            .await
            .context("the Celery client did not finish in time")??;
        if !output.status.success() {
            bail!(
                "the Celery client failed ({}); see {}",
                output.status,
                self.log_dir.join(format!("celery-client-{mode}.log")).display()
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        let parsed: Output = serde_json::from_str(line).context("reading the Celery client's JSON")?;
        if let Some(failure) = parsed.failures.first() {
            bail!("a Celery client process failed: {failure}");
        }
        let first = parsed.samples.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
        let last = parsed.samples.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
        let seconds = (last - first).max(f64::EPSILON);
        let latencies = parsed
            .samples
            .iter()
            .map(|(submitted, done)| (done - submitted) * 1e3)
            .collect();
        Ok(PeerRun {
            mode: mode.to_owned(),
            jobs: parsed.samples.len(),
            errors: parsed.errors,
            client_procs: procs,
            seconds,
            jobs_s: per_s(parsed.samples.len(), Duration::from_secs_f64(seconds)),
            submit_to_done: Latency::from_ms(latencies),
        })
    }
}
