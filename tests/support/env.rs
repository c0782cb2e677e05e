//! One test's world: a fresh database, a queue prefix, a volume directory; apps and workers
//! started on it; torn down on drop.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use baton::{
    app::Application,
    cleanup::{Cleaner, CleanupConfig, Retention},
    config::Settings,
    storage::Storage,
};
use baton_testkit::database::Database;
use baton_worker::{
    Handler, Runtime, WorkerConfig,
    cache::{CacheConfig, DEFAULT_MAX_BYTES, ObjectAccess, RetryPolicy},
    example::ExampleHandler,
};
use sqlx::{AssertSqlSafe, PgPool, postgres::PgPoolOptions};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{TestApp, TestWorker, amqp_url, baton_command, database_server};

/// One test's world: a fresh database, a queue prefix, a volume directory. It outlives app
/// restarts and is torn down (database dropped, queues deleted) on drop.
pub struct TestEnv {
    pub db_name: String,
    pub database_url: String,
    pub prefix: String,
    pub storage: Arc<TempDir>,
    /// The workers' cache of object-stored inputs.
    pub cache: Arc<TempDir>,
    pub db: PgPool,
    /// Models besides `example` whose job queues the teardown deletes.
    other_models: Mutex<Vec<String>>,
}

impl TestEnv {
    pub async fn new() -> Self {
        let env = Self::without_database();
        Database::create(&database_server(), &env.db_name)
            .await
            .expect("create test database");
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
            cache: Arc::new(tempfile::tempdir().expect("temp dir")),
            db,
            other_models: Mutex::default(),
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
            .env("BATON_LISTEN", "127.0.0.1:0")
            // A test of access sets it on again.
            .env("BATON_AUTH", "off");
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
            // Tests of access turn it on (`--auth on`); the rest act as the default owner's admin.
            "--auth".into(),
            "off".into(),
        ];
        flags.extend(extra.iter().map(|s| (*s).to_owned()));
        Settings::from_flags(flags).expect("valid test settings")
    }

    pub async fn spawn_app(&self) -> TestApp {
        self.spawn_app_with(&amqp_url(), &[]).await
    }

    pub async fn spawn_app_with(&self, amqp_url: &str, extra: &[&str]) -> TestApp {
        Self::spawn_app_from(self.settings(amqp_url, extra)).await
    }

    /// An app built from `settings`, served in this process until the returned app is dropped.
    pub async fn spawn_app_from(settings: Settings) -> TestApp {
        let app = Application::build(settings).await.expect("app builds");
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
            cache: CacheConfig {
                dir: self.cache.path().to_owned(),
                max_bytes: DEFAULT_MAX_BYTES,
                access: ObjectAccess::SignedUrl,
                retry: RetryPolicy::default(),
            },
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

    /// Has the teardown delete `model`'s job queue too (`example`'s always is).
    pub fn uses_model(&self, model: &str) {
        self.other_models.lock().expect("models lock").push(model.to_owned());
    }

    pub fn events_queue(&self) -> String {
        baton_protocol::queue::events_queue(&self.prefix)
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
        let storage = Storage::volume_at(self.storage_dir()).expect("open the test volume");
        Cleaner::new(db, storage, config)
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
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let db_name = self.db_name.clone();
        let mut queues = vec![
            self.job_queue("example"),
            self.events_queue(),
            baton_protocol::queue::dead_letter_queue(&self.prefix),
        ];
        let other_models = std::mem::take(&mut *self.other_models.lock().unwrap_or_else(|e| e.into_inner()));
        queues.extend(other_models.iter().map(|model| self.job_queue(model)));
        let exchanges = vec![
            baton_protocol::queue::dead_letter_exchange(&self.prefix),
            baton_protocol::queue::control_exchange(&self.prefix),
        ];
        // Teardown needs async I/O but Drop is sync: run it on a runtime of its own.
        let teardown = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the teardown");
            runtime.block_on(async move {
                if let Err(e) = Database::named(&database_server(), &db_name).drop_now().await {
                    eprintln!("could not drop {db_name}: {e:#}");
                }
                if let Err(e) = baton_testkit::amqp::delete(&amqp_url(), &queues, &exchanges).await {
                    eprintln!("could not delete the queues of {db_name}: {e:#}");
                }
            });
        });
        if teardown.join().is_err() {
            eprintln!("teardown of {} panicked", self.db_name);
        }
    }
}
