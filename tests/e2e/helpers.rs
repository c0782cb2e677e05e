//! Test harness: per-test environments, the app on port 0, workers, polling, an AMQP gate.

#![allow(dead_code)]

#[path = "helpers/binary.rs"]
mod binary;
#[path = "helpers/gate.rs"]
mod gate;

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use baton::{
    app::Application,
    cleanup::{Cleaner, CleanupConfig, Retention},
    config::Settings,
    storage::Storage,
};
use baton_worker::{Handler, Runtime, WorkerConfig, example::ExampleHandler};
use lapin::{BasicProperties, Connection, ConnectionProperties, options::*};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgPool, postgres::PgPoolOptions};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use binary::baton_command;
pub use gate::TcpGate;

pub fn database_server() -> String {
    std::env::var("BATON_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub fn amqp_url() -> String {
    std::env::var("BATON_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A connection to the test server's maintenance database, for creating and inspecting
/// databases.
pub async fn admin_pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", database_server()))
        .await
        .expect("Postgres must be running for the end-to-end tests")
}

/// One test's world: a fresh database, a queue prefix, a volume directory. It outlives app
/// restarts and is torn down (database dropped, queues deleted) on drop.
pub struct TestEnv {
    pub db_name: String,
    pub database_url: String,
    pub prefix: String,
    pub storage: Arc<TempDir>,
    pub db: PgPool,
}

impl TestEnv {
    pub async fn new() -> Self {
        let env = Self::without_database();
        let admin = admin_pool().await;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{}\"", env.db_name)))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        env
    }

    /// An environment whose database does not exist yet (its name is reserved for this test
    /// and dropped on teardown if something created it).
    pub fn without_database() -> Self {
        // BATON_TEST_LOG=debug (any filter) shows the apps' logs.
        if let Ok(filter) = std::env::var("BATON_TEST_LOG") {
            baton::telemetry::init(&baton::config::LogSettings {
                filter,
                format: baton::config::LogFormat::Text,
            });
        }
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("baton_test_{id}");
        let database_url = format!("{}/{db_name}", database_server());
        let db = PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy(&database_url)
            .expect("test pool");
        Self {
            db_name,
            database_url,
            prefix: format!("t{}.", &id[..12]),
            storage: Arc::new(tempfile::tempdir().expect("temp dir")),
            db,
        }
    }

    /// The `baton` binary with `args`, configured for this environment through `BATON_*`
    /// variables as a user would (listening on a free port).
    pub fn baton<const N: usize>(&self, args: [&str; N]) -> tokio::process::Command {
        let mut command = baton_command();
        command
            .args(args)
            .env("BATON_DATABASE_URL", &self.database_url)
            .env("BATON_AMQP_URL", amqp_url())
            .env("BATON_QUEUE_PREFIX", &self.prefix)
            .env("BATON_STORAGE_DIR", self.storage_dir())
            .env("BATON_LISTEN", "127.0.0.1:0");
        command
    }

    pub fn storage_dir(&self) -> &Path {
        self.storage.path()
    }

    /// Settings for an app of this environment, with `extra` flags on top.
    pub fn settings(&self, amqp_url: &str, extra: &[&str]) -> Settings {
        let mut flags: Vec<String> = vec![
            "--database-url".into(),
            self.database_url.clone(),
            "--database-pool-size".into(),
            "8".into(),
            "--amqp-url".into(),
            amqp_url.into(),
            "--queue-prefix".into(),
            self.prefix.clone(),
            "--storage-dir".into(),
            self.storage_dir().display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--dispatch-poll".into(),
            "200ms".into(),
            "--shutdown-timeout".into(),
            "5s".into(),
        ];
        flags.extend(extra.iter().map(|s| (*s).to_owned()));
        Settings::from_flags(flags).expect("valid test settings")
    }

    pub async fn spawn_app(&self) -> TestApp {
        self.spawn_app_with(&amqp_url(), &[]).await
    }

    pub async fn spawn_app_with(&self, amqp_url: &str, extra: &[&str]) -> TestApp {
        let app = Application::build(self.settings(amqp_url, extra))
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
        TestApp {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            stop,
            handle: Some(handle),
        }
    }

    /// Runs the example worker against this environment's queues and volume.
    pub fn spawn_worker(&self) -> TestWorker {
        self.spawn_worker_with(ExampleHandler, |_| {})
    }

    /// Runs a worker with any handler; `adjust` may change the configuration.
    pub fn spawn_worker_with<H: Handler>(&self, handler: H, adjust: impl FnOnce(&mut WorkerConfig)) -> TestWorker {
        let mut config = WorkerConfig {
            amqp_url: amqp_url(),
            storage_dir: self.storage_dir().to_owned(),
            model: "example".into(),
            queue_prefix: self.prefix.clone(),
            prefetch: 4,
            worker_id: format!("test-worker-{}", Uuid::new_v4().simple()),
            shutdown_timeout: Duration::from_secs(5),
            fallback_heartbeat_interval: Duration::from_millis(500),
            ack_deadline: Duration::from_secs(1200),
        };
        adjust(&mut config);
        let stop = CancellationToken::new();
        let handle = tokio::spawn(Runtime::new(config).run(handler, stop.clone()));
        TestWorker {
            stop,
            handle: Some(handle),
        }
    }

    /// The kinds of a job's timeline entries, in order.
    pub async fn timeline(&self, app: &TestApp, id: &str) -> Vec<String> {
        let body = app.get_json(&format!("/v1/jobs/{id}/events")).await;
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn job_queue(&self, model: &str) -> String {
        baton_protocol::queue::job_queue(&self.prefix, model)
    }

    pub fn events_queue(&self) -> String {
        baton_protocol::queue::events_queue(&self.prefix)
    }

    /// Files currently in the volume's `tmp/`.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        list_files(&self.storage_dir().join("tmp"))
    }

    /// Every blob file on the volume.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        list_files(&self.storage_dir().join("blobs"))
    }

    /// A cleanup pass over this environment's database and volume, as a replica would run it
    /// (grace period 1h, batches of 500), with its own connections.
    pub fn cleaner(&self, retention: Retention) -> Cleaner {
        self.cleaner_with(CleanupConfig {
            retention,
            interval: Duration::from_secs(3600),
            grace: Duration::from_secs(3600),
            batch: 500,
        })
    }

    pub fn cleaner_with(&self, config: CleanupConfig) -> Cleaner {
        let db = PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy(&self.database_url)
            .expect("cleaner pool");
        let storage = Storage::open(self.storage_dir()).expect("open the test volume");
        Cleaner::new(db, storage, config)
    }

    /// Where the volume keeps the default owner's blob with this digest.
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.storage_dir()
            .join(format!("blobs/default/{}/{}/{sha256}", &sha256[0..2], &sha256[2..4]))
    }

    /// Moves a finished job's end `ago` into the past, as if time had passed.
    pub async fn backdate_finished(&self, job_id: &str, ago: Duration) {
        let id = Uuid::parse_str(job_id).unwrap();
        let updated = sqlx::query("UPDATE jobs SET finished_at = now() - $2 WHERE id = $1 AND finished_at IS NOT NULL")
            .bind(id)
            .bind(ago)
            .execute(&self.db)
            .await
            .expect("backdate a job")
            .rows_affected();
        assert_eq!(updated, 1, "job {job_id} is finished");
    }

    pub async fn count(&self, table: &'static str) -> i64 {
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.db)
            .await
            .expect("count rows")
    }

    /// Waits until an app of this environment declared its events queue, so that events
    /// published straight to it are routed.
    pub async fn wait_for_events_queue(&self) {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let queue = self.events_queue();
        let declared = eventually(Duration::from_secs(20), || async {
            let Ok(channel) = connection.create_channel().await else {
                return false;
            };
            let options = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            // A failed passive declare closes its channel; each try opens a new one.
            channel
                .queue_declare(queue.as_str().into(), options, lapin::types::FieldTable::default())
                .await
                .is_ok()
        })
        .await;
        assert!(declared, "{queue} was never declared");
        // Closing races the server's closing of the failed channels; the connection goes anyway.
        connection.close(200, "done".into()).await.ok();
    }

    /// Publishes a JSON message straight to a queue (as a worker or a hostile peer would).
    pub async fn publish_raw(&self, queue: &str, body: &[u8]) {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        // The app declares the events queue as it starts; do not race it.
        baton_protocol::amqp::declare_quorum_queue(&channel, &self.events_queue())
            .await
            .unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(
            confirm,
            lapin::Confirmation::Ack(None),
            "publish to {queue} was not confirmed"
        );
        connection.close(200, "done".into()).await.unwrap();
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let db_name = self.db_name.clone();
        let queues = vec![
            self.job_queue("example"),
            self.events_queue(),
            baton_protocol::queue::dead_letter_queue(&self.prefix),
        ];
        let exchanges = vec![
            baton_protocol::queue::dead_letter_exchange(&self.prefix),
            baton_protocol::queue::control_exchange(&self.prefix),
        ];
        // Teardown needs async I/O but Drop is sync: run it on a runtime of its own.
        let teardown = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&format!("{}/postgres", database_server()))
                    .await
                {
                    let drop_db = format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)");
                    if let Err(e) = sqlx::query(AssertSqlSafe(drop_db)).execute(&admin).await {
                        eprintln!("could not drop {db_name}: {e}");
                    }
                }
                if let Ok(connection) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await
                    && let Ok(channel) = connection.create_channel().await
                {
                    for queue in queues {
                        if let Err(e) = channel
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await
                        {
                            eprintln!("could not delete {queue}: {e}");
                        }
                    }
                    for exchange in exchanges {
                        let options = ExchangeDeleteOptions::default();
                        if let Err(e) = channel.exchange_delete(exchange.as_str().into(), options).await {
                            eprintln!("could not delete {exchange}: {e}");
                        }
                    }
                }
            });
        });
        if teardown.join().is_err() {
            eprintln!("teardown of {} panicked", self.db_name);
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    stop: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
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

    pub async fn job(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/jobs/{id}")).await
    }

    /// Polls the job until `done` holds, failing after `deadline`.
    pub async fn wait_for_job(&self, id: &str, deadline: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let last = self.job(id).await;
            if done(&last) {
                return last;
            }
            if tokio::time::Instant::now() >= end {
                let events = self.get_json(&format!("/v1/jobs/{id}/events")).await;
                panic!(
                    "job {id} did not reach the expected state in {deadline:?}; last seen: {last:#}\ntimeline: {events:#}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
    stop: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl TestWorker {
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("worker task");
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `check` every 50 ms until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn file_part(bytes: impl Into<Vec<u8>>, filename: &str, mime: &str) -> Part {
    Part::bytes(bytes.into())
        .file_name(filename.to_owned())
        .mime_str(mime)
        .unwrap()
}

/// A form with `model=example` and the given file parts.
pub fn job_form(files: Vec<(&str, Part)>) -> Form {
    files
        .into_iter()
        .fold(Form::new().text("model", "example"), |form, (name, part)| {
            form.part(name.to_owned(), part)
        })
}

/// A valid RGB PNG of `width`×`height` filled with one colour (no compression library needed:
/// stored deflate blocks).
pub fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let row: Vec<u8> = std::iter::once(0)
        .chain(rgb.iter().copied().cycle().take(3 * width as usize))
        .collect();
    let raw = row.repeat(height as usize);
    let mut zlib = vec![0x78, 0x01];
    for (i, block) in raw.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= raw.len();
        zlib.push(u8::from(last));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1_u32, 0_u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(&data);
        png.extend_from_slice(&crc_input);
        png.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Sets a file's modification time `ago` into the past, as if it had been left there that long.
pub fn age_file(path: &Path, ago: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open a file to age");
    file.set_modified(std::time::SystemTime::now() - ago)
        .expect("set mtime");
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Deterministic pseudo-random bytes (distinct per seed), so tests control dedup.
pub fn bytes_of(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Declares a job queue exactly as Baton and workers do (a worker would do this before consuming).
pub async fn declare_queue(channel: &lapin::Channel, prefix: &str, queue: &str) {
    baton_protocol::amqp::declare_job_queue(channel, prefix, queue)
        .await
        .expect("declare queue");
}

/// Plays a worker by hand: takes job messages off a queue and sends whatever events a test
/// needs, including ones a well-behaved worker never would.
pub struct ManualWorker {
    connection: Connection,
    channel: lapin::Channel,
    events_queue: String,
    pub id: String,
}

impl ManualWorker {
    pub async fn connect(env: &TestEnv) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        declare_queue(&channel, &env.prefix, &env.job_queue("example")).await;
        // Baton may not have declared it yet: an event published to nowhere would be lost.
        baton_protocol::amqp::declare_quorum_queue(&channel, &env.events_queue())
            .await
            .unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        Self {
            connection,
            channel,
            events_queue: env.events_queue(),
            id: format!("manual-{}", Uuid::new_v4().simple()),
        }
    }

    /// Waits for the next job message, leaving it unacknowledged.
    pub async fn take(&self, env: &TestEnv) -> (baton_protocol::JobMessage, lapin::message::BasicGetMessage) {
        let queue = env.job_queue("example");
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(message) = self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                let job = serde_json::from_slice(&message.delivery.data).unwrap();
                return (job, message);
            }
            assert!(tokio::time::Instant::now() < end, "no job message arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn send(&self, job: &baton_protocol::JobMessage, kind: serde_json::Value) {
        let mut event = serde_json::json!({
            "version": 1, "job_id": job.job_id, "attempt": job.attempt, "worker": self.id,
        });
        event.as_object_mut().unwrap().extend(kind.as_object().unwrap().clone());
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.events_queue.as_str().into(),
                BasicPublishOptions::default(),
                event.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Drops the connection as a killed process would, handing back unacknowledged messages.
    pub async fn die(self) {
        self.connection.close(320, "killed".into()).await.unwrap();
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
