//! Setting up a run: the private Postgres and RabbitMQ, the gate, Baton, the workers and the
//! clients, all owned by the run's [`World`].

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use baton_testkit::{
    BatonProcess, TcpGate, free_port, launcher::BatonConfig, private_postgres::PrivatePostgres,
    private_rabbitmq::PrivateRabbit,
};
use sqlx::postgres::PgPoolOptions;

use crate::{
    Args,
    factory::JobFactory,
    load::{Client, Records},
    progress,
    store::{ObjectStorage, Storage},
    workers::Workers,
    world::{self, World},
};

pub async fn setup(args: &Args, dir: &Path, started: Instant, deadline: Instant) -> anyhow::Result<Arc<World>> {
    use std::os::unix::fs::PermissionsExt;
    // The postgres user must be able to reach its directory inside.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .to_owned(),
    };
    let baton_exe = bin_dir.join("baton");
    let worker_exe = bin_dir.join("baton-fault-worker");
    for exe in [&baton_exe, &worker_exe] {
        if !exe.exists() {
            bail!(
                "{} is missing: build it first (cargo build -p baton-broker -p baton-fault)",
                exe.display()
            );
        }
    }
    let (pg_port, rabbit_port, dist_port, baton_port) = (free_port()?, free_port()?, free_port()?, free_port()?);

    let pg_dir = dir.join("postgres");
    let postgres = tokio::task::spawn_blocking(move || -> anyhow::Result<PrivatePostgres> {
        let postgres = PrivatePostgres::init(&pg_dir, pg_port)?;
        postgres.start()?;
        Ok(postgres)
    })
    .await??;
    progress(started, &format!("private Postgres up on 127.0.0.1:{pg_port}"));
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", postgres.server_url()))
        .await
        .context("connecting to the private Postgres")?;
    sqlx::query("CREATE DATABASE baton").execute(&admin).await?;
    admin.close().await;
    let database_url = format!("{}/baton", postgres.server_url());

    let rabbit_dir = dir.join("rabbitmq");
    let rabbit = tokio::task::spawn_blocking(move || -> anyhow::Result<PrivateRabbit> {
        let mut rabbit = PrivateRabbit::new(&rabbit_dir, "baton-fault", rabbit_port, dist_port)?;
        rabbit.cap_waits_at(deadline);
        rabbit.start()?;
        Ok(rabbit)
    })
    .await??;
    progress(
        started,
        &format!("private RabbitMQ node {} up on 127.0.0.1:{rabbit_port}", rabbit.node),
    );
    let gate = TcpGate::new(([127, 0, 0, 1], rabbit.port).into(), true).await?;

    let store = match args.storage {
        Storage::Volume => None,
        Storage::Azure => {
            let store = ObjectStorage::start(&dir.join("azurite")).await?;
            progress(
                started,
                &format!(
                    "private Azurite up on 127.0.0.1:{}; blobs go to {}",
                    store.port().unwrap_or_default(),
                    store.location.url
                ),
            );
            Some(store)
        }
    };
    let volume = dir.join("volume");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&volume)?;
    std::fs::create_dir_all(&logs)?;
    let prefix = "fault.";
    let env = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    };
    let mut baton_env = env(&[
        ("BATON_DATABASE_POOL_SIZE", "16".into()),
        ("BATON_LEASE", "3s".into()),
        ("BATON_RECONCILE_INTERVAL", "500ms".into()),
        ("BATON_REDISPATCH_AFTER", "10s".into()),
        ("BATON_DISPATCH_POLL", "200ms".into()),
        ("BATON_MAX_ATTEMPTS", "3".into()),
        ("BATON_SHUTDOWN_TIMEOUT", "5s".into()),
        ("BATON_LOG", "info".into()),
    ]);
    if let Some(store) = &store {
        baton_env.extend(store.location.baton_env());
    }
    let config = BatonConfig {
        binary: baton_exe,
        database_url: database_url.clone(),
        amqp_url: gate.amqp_url(),
        queue_prefix: prefix.to_owned(),
        storage_dir: volume.clone(),
        extra_env: baton_env,
        log: logs.join("baton.log"),
        ready_path: "/healthz",
        ready_timeout: Duration::from_secs(90),
    };
    let mut baton = BatonProcess::new(config, baton_port);
    let within = Duration::from_secs(90).min(deadline.saturating_duration_since(Instant::now()));
    baton.start_within(Some(within)).await?;
    progress(started, &format!("Baton up on {}", baton.base_url()));
    let worker_env = env(&[
        ("BATON_AMQP_URL", rabbit.url()),
        ("BATON_STORAGE_DIR", volume.display().to_string()),
        ("BATON_WORKER_MODEL", "fault".into()),
        ("BATON_QUEUE_PREFIX", prefix.into()),
        ("BATON_WORKER_PREFETCH", "1".into()),
        ("BATON_WORKER_SHUTDOWN_TIMEOUT", "5s".into()),
        ("BATON_LOG", "info".into()),
        (
            "BATON_FAULT_EXECUTIONS",
            logs.join("executions.log").display().to_string(),
        ),
    ]);
    let workers = Workers::start(
        worker_exe,
        worker_env,
        logs.clone(),
        dir.join("cache"),
        args.workers,
        started,
    )?;
    progress(started, &format!("{} workers started", args.workers));

    let records: Records = Arc::default();
    let client = Client::new(baton.base_url(), Arc::clone(&records), started, deadline)?;
    let db = world::suite_pool(&database_url)?;
    Ok(Arc::new(World {
        started,
        deadline,
        volume,
        store,
        logs,
        postgres: Mutex::new(Some(postgres)),
        rabbit: Mutex::new(Some(rabbit)),
        gate: Mutex::new(Some(gate)),
        baton: tokio::sync::Mutex::new(Some(baton)),
        workers,
        db,
        client,
        records,
        factory: Mutex::new(JobFactory::new()),
        incidents: Mutex::default(),
    }))
}
