//! HTTP clients: submitting jobs (each with distinct file content, so nothing deduplicates),
//! closed-loop and open-loop drivers, and a streamed multi-gigabyte upload.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::{
    Body, StatusCode,
    multipart::{Form, Part},
};
use uuid::Uuid;

/// One accepted job.
#[derive(Debug, Clone, Copy)]
pub struct Submitted {
    pub id: Uuid,
    /// When the request was meant to start (open loop) or started (closed loop).
    pub started: Instant,
    /// The same moment as Unix seconds, to compare with Postgres timestamps on this host.
    pub started_unix: f64,
    /// Until the 202 and its body arrived.
    pub latency: Duration,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[derive(Clone)]
pub struct Submitter {
    client: reqwest::Client,
    url: String,
    /// `Authorization` header value, for a Baton with authentication on.
    authorization: Option<String>,
}

#[derive(serde::Deserialize)]
struct Accepted {
    id: Uuid,
}

impl Submitter {
    pub fn new(client: reqwest::Client, base_url: &str) -> Self {
        Self {
            client,
            url: format!("{base_url}/v1/jobs"),
            authorization: None,
        }
    }

    /// The same, sending `Authorization: Bearer <token>` with every request.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }

    async fn post(&self, form: Form, started: Instant, started_unix: f64) -> anyhow::Result<Submitted> {
        let mut request = self.client.post(&self.url).multipart(form);
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let latency = started.elapsed();
        if status != StatusCode::ACCEPTED {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        let accepted: Accepted = serde_json::from_slice(&body).context("the 202 body is not a job")?;
        Ok(Submitted {
            id: accepted.id,
            started,
            started_unix,
            latency,
        })
    }

    /// Submits one job with one file; latency counts from `started`.
    pub async fn submit(&self, model: &str, content: Bytes, started: Instant) -> anyhow::Result<Submitted> {
        let started_unix = unix_now() - started.elapsed().as_secs_f64();
        let len = content.len() as u64;
        let part = Part::stream_with_length(Body::from(content), len)
            .file_name("input.bin")
            .mime_str("application/octet-stream")?;
        let form = Form::new().text("model", model.to_owned()).part("input", part);
        self.post(form, started, started_unix).await
    }

    /// Submits one job whose single file of `len` bytes is generated as it is sent: nothing
    /// close to `len` is ever held in memory.
    pub async fn submit_streamed(&self, model: &str, len: u64, tag: u64) -> anyhow::Result<Submitted> {
        const CHUNK: usize = 256 << 10;
        let block = Bytes::from(crate::limits::random_bytes(4 << 20, tag));
        let stamp = Bytes::from(stamp(&block[..CHUNK], tag, u64::MAX));
        let stream = futures::stream::unfold(0_u64, move |sent| {
            let (block, stamp) = (block.clone(), stamp.clone());
            async move {
                if sent >= len {
                    return None;
                }
                let take = (CHUNK as u64).min(len - sent) as usize;
                let chunk = if sent == 0 {
                    stamp.slice(..take)
                } else {
                    let offset = (sent % block.len() as u64) as usize;
                    let take = take.min(block.len() - offset);
                    block.slice(offset..offset + take)
                };
                let next = sent + chunk.len() as u64;
                Some((Ok::<_, std::io::Error>(chunk), next))
            }
        });
        let part = Part::stream_with_length(Body::wrap_stream(stream), len)
            .file_name("large.bin")
            .mime_str("application/octet-stream")?;
        let form = Form::new().text("model", model.to_owned()).part("input", part);
        let started = Instant::now();
        self.post(form, started, unix_now()).await
    }
}

/// A copy of `base` whose first 16 bytes are `tag` and `n`: distinct content per job.
pub fn stamp(base: &[u8], tag: u64, n: u64) -> Vec<u8> {
    let mut content = base.to_vec();
    let mut head = [0_u8; 16];
    head[..8].copy_from_slice(&tag.to_le_bytes());
    head[8..].copy_from_slice(&n.to_le_bytes());
    let len = head.len().min(content.len());
    content[..len].copy_from_slice(&head[..len]);
    content
}

/// Jobs of one size and model, distinct content each.
#[derive(Clone)]
pub struct JobSpec {
    pub model: String,
    pub base: Arc<Vec<u8>>,
    pub tag: u64,
}

impl JobSpec {
    pub fn new(model: &str, size: usize, tag: u64) -> Self {
        Self {
            model: model.to_owned(),
            base: Arc::new(crate::limits::random_bytes(size, tag ^ size as u64)),
            tag,
        }
    }

    /// The same jobs under another tag: a closed loop numbers its jobs from 0, so each stretch
    /// of load that must not repeat an earlier one's content (Baton would deduplicate it and
    /// skip placing the file) gets a slice of its own.
    pub fn slice(&self, index: u64) -> Self {
        Self {
            tag: self.tag ^ (index + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ..self.clone()
        }
    }

    pub fn content(&self, n: u64) -> Bytes {
        Bytes::from(stamp(&self.base, self.tag, n))
    }

    pub fn size(&self) -> u64 {
        self.base.len() as u64
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Stop {
    After(Duration),
    Jobs(usize),
}

#[derive(Debug, Default)]
pub struct LoopOutcome {
    pub submitted: Vec<Submitted>,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Open loop only: arrivals dropped because too many requests were in flight.
    pub shed: usize,
}

impl LoopOutcome {
    fn record(&mut self, result: anyhow::Result<Submitted>) {
        match result {
            Ok(submitted) => self.submitted.push(submitted),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }

    /// Adds another stretch of the same load (elapsed times add up).
    pub fn merge(&mut self, other: LoopOutcome) {
        self.submitted.extend(other.submitted);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
        self.shed += other.shed;
    }

    pub fn latencies(&self) -> Vec<Duration> {
        self.submitted.iter().map(|s| s.latency).collect()
    }

    pub fn ids(&self) -> Vec<Uuid> {
        self.submitted.iter().map(|s| s.id).collect()
    }
}

/// `clients` clients, each submitting one job after another until `stop`.
pub async fn closed_loop(submitter: &Submitter, spec: &JobSpec, clients: usize, stop: Stop) -> LoopOutcome {
    let counter = Arc::new(AtomicUsize::new(0));
    let outcome = Arc::new(Mutex::new(LoopOutcome::default()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (submitter, spec, counter, outcome) = (
                submitter.clone(),
                spec.clone(),
                Arc::clone(&counter),
                Arc::clone(&outcome),
            );
            tokio::spawn(async move {
                loop {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let more = match stop {
                        Stop::Jobs(total) => n < total,
                        Stop::After(duration) => started.elapsed() < duration,
                    };
                    if !more {
                        break;
                    }
                    let content = spec.content(n as u64);
                    let result = submitter.submit(&spec.model, content, Instant::now()).await;
                    outcome.lock().expect("poisoned").record(result);
                }
            })
        })
        .collect();
    for task in tasks {
        if let Err(e) = task.await {
            eprintln!("  a client task failed: {e}");
        }
    }
    let mut outcome = std::mem::take(&mut *outcome.lock().expect("poisoned"));
    outcome.elapsed = started.elapsed();
    outcome
}

/// Arrivals at a fixed `rate` for `duration`, each sent whether or not earlier ones finished
/// (latency counts from the scheduled arrival). At most `max_in_flight` at once; arrivals
/// beyond that are shed and counted.
pub async fn open_loop(
    submitter: &Submitter,
    spec: &JobSpec,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> LoopOutcome {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let outcome = Arc::new(Mutex::new(LoopOutcome::default()));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    let mut shed = 0;
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            shed += 1;
            continue;
        };
        let (submitter, spec, outcome) = (submitter.clone(), spec.clone(), Arc::clone(&outcome));
        tasks.push(tokio::spawn(async move {
            let content = spec.content(1_000_000_000 + n as u64);
            let result = submitter.submit(&spec.model, content, due).await;
            outcome.lock().expect("poisoned").record(result);
            drop(permit);
        }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            eprintln!("  a client task failed: {e}");
        }
    }
    let mut outcome = std::mem::take(&mut *outcome.lock().expect("poisoned"));
    outcome.elapsed = started.elapsed();
    outcome.shed = shed;
    outcome
}
