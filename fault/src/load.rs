//! The clients: jobs with idempotency keys, submitted over HTTP with retries on every failure
//! that leaves the outcome unknown, and a record of every answer each key got.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use reqwest::{
    StatusCode,
    multipart::{Form, Part},
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// What a job is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Ordinary load.
    Normal,
    /// Uploaded slowly the first time, so Baton can be killed mid-upload.
    Slow,
    /// Larger than one multipart part and uploaded slowly the first time, so the object store
    /// can be stopped with a multipart upload under way.
    SlowLarge,
    /// A large input, so that workers are fetching it from the object store for a while.
    Fetch,
    /// A long job whose worker is killed or frozen mid-job.
    Victim,
    /// Submitted while Baton could not reach RabbitMQ; Baton is killed before publishing it.
    Unpublished,
    /// Crashes every worker that takes it.
    Poison,
}

/// Baton's multipart part size on object storage (broker/src/storage/object/upload.rs).
const PART_BYTES: usize = 8 << 20;

impl Kind {
    /// How the first try of this kind's upload trickles in: chunk size and pause per chunk.
    fn trickle(self) -> Option<(usize, Duration)> {
        match self {
            Self::Slow => Some((64 << 10, Duration::from_millis(40))),
            Self::SlowLarge => Some((128 << 10, Duration::from_millis(40))),
            _ => None,
        }
    }

    /// The size of this kind's main input, when the kind fixes it.
    pub fn input_bytes(self) -> Option<usize> {
        match self {
            Self::Slow => Some(4 << 20),
            Self::SlowLarge | Self::Fetch => Some(12 << 20),
            _ => None,
        }
    }

    /// When a trickled upload's first multipart part has reached Baton.
    pub fn first_part_sent_after(self) -> Duration {
        self.trickle()
            .map_or(Duration::ZERO, |(chunk, pause)| pause * (PART_BYTES / chunk) as u32)
    }
}

#[derive(Debug, Clone)]
pub struct FileSpec {
    pub name: String,
    pub filename: String,
    pub bytes: Bytes,
}

#[derive(Debug, Clone)]
pub struct JobSpec {
    pub key: String,
    pub phase: usize,
    pub kind: Kind,
    pub params: Value,
    pub files: Vec<FileSpec>,
}

/// What one HTTP attempt got.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// 2xx with the job's id; `replayed` when Baton said it returned an earlier submission.
    Accepted { status: u16, id: Uuid, replayed: bool },
    /// An answer that is not a 2xx, with Baton's error code.
    Refused { status: u16, code: String },
    /// No answer: connection refused or reset, or the request timed out.
    NoAnswer { error: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The first try, or a retry after a failure.
    Submit,
    /// One of two identical requests sent at once (a double click).
    Double,
    /// Sent again after a 2xx, to check the replay.
    Extra,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub at_s: f64,
    pub purpose: Purpose,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Everything the clients did and were told for one idempotency key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRecord {
    pub key: String,
    pub phase: usize,
    pub kind: Kind,
    pub attempts: Vec<Attempt>,
    /// The client stopped retrying (deadline reached, or an answer that retrying cannot fix).
    pub gave_up: bool,
    pub settled: bool,
}

impl KeyRecord {
    /// Distinct job ids the 2xx answers named.
    pub fn ids(&self) -> BTreeSet<Uuid> {
        self.attempts
            .iter()
            .filter_map(|a| match a.outcome {
                Outcome::Accepted { id, .. } => Some(id),
                _ => None,
            })
            .collect()
    }

    pub fn accepted(&self) -> bool {
        !self.ids().is_empty()
    }
}

pub type Records = Arc<Mutex<BTreeMap<String, KeyRecord>>>;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    records: Records,
    started: Instant,
    deadline: Instant,
}

/// Chance that a submission goes out twice at once.
const DOUBLE_SEND: f64 = 0.05;
/// Chance that a client sends an accepted request once more.
const EXTRA_SEND: f64 = 0.15;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

impl Client {
    pub fn new(base: String, records: Records, started: Instant, deadline: Instant) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self {
            http,
            base,
            records,
            started,
            deadline,
        })
    }

    /// Makes the key known before anything is sent: a key with no answer yet is still owed one.
    pub fn register(&self, spec: &JobSpec) {
        let mut records = self.records.lock().expect("records lock");
        records.entry(spec.key.clone()).or_insert_with(|| KeyRecord {
            key: spec.key.clone(),
            phase: spec.phase,
            kind: spec.kind,
            attempts: Vec::new(),
            gave_up: false,
            settled: false,
        });
    }

    fn record(&self, spec: &JobSpec, purpose: Purpose, outcome: Outcome) {
        self.register(spec);
        let attempt = Attempt {
            at_s: self.started.elapsed().as_secs_f64(),
            purpose,
            outcome,
        };
        let mut records = self.records.lock().expect("records lock");
        if let Some(record) = records.get_mut(&spec.key) {
            record.attempts.push(attempt);
        }
    }

    fn finish(&self, spec: &JobSpec, gave_up: bool) {
        self.register(spec);
        let mut records = self.records.lock().expect("records lock");
        if let Some(record) = records.get_mut(&spec.key) {
            record.gave_up = gave_up;
            record.settled = true;
        }
    }

    /// Submits until a 2xx (retrying with the same key after every failure that leaves the
    /// outcome unknown or is temporary), then sometimes sends it once more. Returns the job id.
    pub async fn submit(&self, spec: &JobSpec) -> Option<Uuid> {
        self.register(spec);
        let mut tries: u32 = 0;
        let id = loop {
            if Instant::now() >= self.deadline {
                self.finish(spec, true);
                return None;
            }
            let slow = spec.kind.trickle().filter(|_| tries == 0);
            let outcomes = if tries == 0 && slow.is_none() && fastrand::f64() < DOUBLE_SEND {
                let (a, b) = tokio::join!(self.send(spec, None), self.send(spec, None));
                vec![(Purpose::Double, a), (Purpose::Double, b)]
            } else {
                vec![(Purpose::Submit, self.send(spec, slow).await)]
            };
            tries += 1;
            let mut accepted = None;
            let mut fatal = false;
            for (purpose, outcome) in outcomes {
                match &outcome {
                    Outcome::Accepted { id, .. } => accepted = accepted.or(Some(*id)),
                    Outcome::Refused { status, .. } => {
                        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        let temporary = status.is_server_error()
                            || status == StatusCode::REQUEST_TIMEOUT
                            || status == StatusCode::TOO_MANY_REQUESTS;
                        fatal |= !temporary;
                    }
                    Outcome::NoAnswer { .. } => {}
                }
                self.record(spec, purpose, outcome);
            }
            if let Some(id) = accepted {
                break id;
            }
            if fatal {
                self.finish(spec, true);
                return None;
            }
            let backoff = Duration::from_millis(100 * (1 << tries.min(4))).min(Duration::from_secs(2));
            tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64())).await;
        };
        if fastrand::f64() < EXTRA_SEND {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
            let outcome = self.send(spec, None).await;
            self.record(spec, Purpose::Extra, outcome);
        }
        self.finish(spec, false);
        Some(id)
    }

    /// One request; `trickle` (chunk size, pause) sends the files slowly.
    async fn send(&self, spec: &JobSpec, trickle: Option<(usize, Duration)>) -> Outcome {
        let mut form = Form::new()
            .text("model", "fault")
            .text("params", spec.params.to_string());
        for file in &spec.files {
            let part = if let Some((chunk, pause)) = trickle {
                slow_part(file.bytes.clone(), chunk, pause)
            } else {
                Part::stream_with_length(reqwest::Body::from(file.bytes.clone()), file.bytes.len() as u64)
            };
            let part = part
                .file_name(file.filename.clone())
                .mime_str("application/octet-stream")
                .expect("a valid MIME type");
            form = form.part(file.name.clone(), part);
        }
        let request = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .header("Idempotency-Key", &spec.key)
            .multipart(form);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Outcome::NoAnswer { error: error_chain(&e) },
        };
        let status = response.status();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes() == b"true");
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(e) if status.is_success() => {
                // The job may exist, but this client was not told its id: that counts as no answer.
                return Outcome::NoAnswer {
                    error: format!("{status} with an unreadable body: {}", error_chain(&e)),
                };
            }
            Err(_) => Value::Null,
        };
        if status.is_success() {
            match body["id"].as_str().and_then(|s| s.parse().ok()) {
                Some(id) => Outcome::Accepted {
                    status: status.as_u16(),
                    id,
                    replayed,
                },
                None => Outcome::NoAnswer {
                    error: format!("{status} without a job id: {body}"),
                },
            }
        } else {
            Outcome::Refused {
                status: status.as_u16(),
                code: body["error"]["code"].as_str().unwrap_or("(none)").to_owned(),
            }
        }
    }
}

/// A file part that trickles in: `size` bytes every `pause`.
fn slow_part(bytes: Bytes, size: usize, pause: Duration) -> Part {
    let length = bytes.len() as u64;
    let chunks: Vec<Bytes> = (0..bytes.len())
        .step_by(size)
        .map(|start| bytes.slice(start..(start + size).min(bytes.len())))
        .collect();
    let stream = futures::stream::unfold(chunks.into_iter(), move |mut chunks| async move {
        let chunk = chunks.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(chunk), chunks))
    });
    Part::stream_with_length(reqwest::Body::wrap_stream(stream), length)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
