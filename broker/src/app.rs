//! Wiring: builds every part from [`Settings`], binds the listener, runs until told to stop.

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    cleanup::Cleaner,
    config::Settings,
    db::{self, startup::WhenMissing},
    http::{self, AppState},
    jobs::sweep::Sweeper,
    queue::{
        AmqpHealth, amqp,
        consumer::{Consumer, Source},
        control::{Control, ControlPublisher},
        dead_letters::DeadLetterHandler,
        dispatcher::{Dispatcher, DispatcherConfig},
        events::EventHandler,
        publisher::Publisher,
        reconciler::Reconciler,
    },
    storage::Storage,
};

/// How long a claimed outbox entry stays hidden from other dispatchers.
const CLAIM_LEASE: Duration = Duration::from_secs(30);
/// Worker events applied at once (in order per job).
const EVENT_LANES: usize = 16;
/// How long a batch of publishes may wait for RabbitMQ's confirms.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);

/// A built, bound, not yet running Baton.
pub struct Application {
    settings: Settings,
    listener: TcpListener,
    state: AppState,
    control_publisher: ControlPublisher,
}

impl Application {
    /// Checks the RabbitMQ URL, opens storage, connects to Postgres (creating the database
    /// when it does not exist) and runs migrations, and binds the listener (port 0 picks a free
    /// port; see [`Application::local_addr`]). Each error is one line naming the setting to fix.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        amqp::check_url(&settings.amqp_url)?;
        let storage = open_storage(&settings.storage_dir).await?;
        let db = db::startup::open(
            &settings.database_url,
            settings.database_pool_size,
            WhenMissing::Create,
            settings.database_wait,
        )
        .await?;
        db::migrate(&db).await.context("running database migrations")?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {} (BATON_LISTEN)", settings.listen))?;
        // Counters recorded before the first scrape must not be lost.
        crate::telemetry::metrics::handle();
        let (control, control_publisher) = Control::new(settings.amqp_url.clone(), &settings.queue_prefix);
        let state = AppState {
            db,
            storage,
            limits: settings.limits.clone(),
            job_defaults: settings.jobs.clone(),
            dispatch_wake: Arc::new(Notify::new()),
            amqp: AmqpHealth::default(),
            control,
            tasks: TaskTracker::new(),
            uploads: Arc::new(tokio::sync::Semaphore::new(settings.limits.max_uploads as usize)),
        };
        Ok(Self {
            settings,
            listener,
            state,
            control_publisher,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting, gives in-flight requests up to
    /// `BATON_SHUTDOWN_TIMEOUT`, and stops the background tasks.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self {
            settings,
            listener,
            state,
            control_publisher,
        } = self;
        let background = CancellationToken::new();
        let tasks = state.tasks.clone();
        let prefix = settings.queue_prefix.clone();

        tasks.spawn(control_publisher.run(background.child_token()));
        let publisher = Publisher::new(
            settings.amqp_url.clone(),
            prefix.clone(),
            CONFIRM_TIMEOUT,
            state.amqp.clone(),
        );
        let dispatcher = Dispatcher::new(
            state.db.clone(),
            publisher,
            Arc::clone(&state.dispatch_wake),
            DispatcherConfig {
                batch: settings.dispatch.dispatch_batch,
                poll: settings.dispatch.dispatch_poll,
                claim_lease: CLAIM_LEASE,
                queue_prefix: settings.queue_prefix.clone(),
                lease: settings.jobs.lease,
            },
        );
        tasks.spawn(dispatcher.run(background.child_token()));
        let events = Consumer {
            name: "baton-events",
            amqp_url: settings.amqp_url.clone(),
            source: Source::Queue(baton_protocol::queue::events_queue(&prefix)),
            prefetch: settings.dispatch.events_prefetch,
            lanes: EVENT_LANES,
            handler: Arc::new(EventHandler {
                db: state.db.clone(),
                control: state.control.clone(),
                lease: settings.jobs.lease,
            }),
            health: Some(state.amqp.clone()),
        };
        tasks.spawn(events.run(background.child_token()));
        let dead_letters = Consumer {
            name: "baton-dead-letters",
            amqp_url: settings.amqp_url.clone(),
            source: Source::DeadLetters { prefix: prefix.clone() },
            prefetch: 32,
            lanes: 4,
            handler: Arc::new(DeadLetterHandler {
                db: state.db.clone(),
                control: state.control.clone(),
            }),
            health: None,
        };
        tasks.spawn(dead_letters.run(background.child_token()));
        let sweeper = Sweeper::new(
            state.db.clone(),
            state.control.clone(),
            settings.jobs.reconcile_interval,
            settings.jobs.lease,
        );
        tasks.spawn(sweeper.run(background.child_token()));
        let reconciler = Reconciler {
            db: state.db.clone(),
            amqp_url: settings.amqp_url.clone(),
            prefix: prefix.clone(),
            after: settings.jobs.redispatch_after,
            interval: settings.jobs.reconcile_interval,
            wake_dispatcher: Arc::clone(&state.dispatch_wake),
        };
        tasks.spawn(reconciler.run(background.child_token()));
        let cleaner = Cleaner::new(state.db.clone(), state.storage.clone(), settings.cleanup.config());
        tasks.spawn(cleaner.run(background.child_token()));

        let db = state.db.clone();
        let stop_accepting = CancellationToken::new();
        let server = http::serve(
            listener,
            http::router(state),
            stop_accepting.clone(),
            http::ServerLimits {
                header_read_timeout: settings.header_read_timeout,
                max_connections: settings.max_connections,
                drain: settings.shutdown_timeout,
            },
        );
        let mut server = tokio::spawn(server);
        tracing::info!(listen = %settings.listen, "Baton is serving");

        tokio::select! {
            result = &mut server => {
                background.cancel();
                tasks.close();
                tasks.wait().await;
                result.context("the HTTP server task failed")?.context("the HTTP server failed")?;
                return Ok(());
            }
            () = shutdown => {}
        }

        tracing::info!(timeout = ?settings.shutdown_timeout, "shutting down: finishing in-flight requests");
        stop_accepting.cancel();
        server
            .await
            .context("the HTTP server task failed")?
            .context("the HTTP server failed")?;
        background.cancel();
        tasks.close();
        tasks.wait().await;
        db.close().await;
        tracing::info!("Baton stopped");
        Ok(())
    }
}

/// The volume, laid out and proven writable: a read-only or foreign mount is found at start,
/// not at the first upload.
async fn open_storage(dir: &Path) -> anyhow::Result<Storage> {
    let context = || format!("cannot use {} (BATON_STORAGE_DIR)", dir.display());
    let storage = Storage::open(dir).with_context(context)?;
    storage.check_writable().await.with_context(context)?;
    Ok(storage)
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
