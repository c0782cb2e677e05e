//! Wiring: builds every part from [`Settings`], binds the listener, runs until told to stop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::{
        Authenticator, keys,
        oidc::{KeyRefresher, Oidc},
        settings::AuthMode,
    },
    cleanup::Cleaner,
    config::Settings,
    db::{self, startup::WhenMissing},
    http::{self, AppState},
    jobs::sweep::{Sweeper, SweeperConfig},
    migration::{WriteTargetConfig, WriteTargetFollower},
    queue::{
        AmqpHealth, amqp,
        consumer::{Consumer, ConsumerConfig, Source},
        control::{Control, ControlConfig},
        dead_letters::DeadLetterHandler,
        dispatcher::{Dispatcher, DispatcherConfig},
        event_consumer::WorkerEventHandler,
        publisher::Publisher,
        reconciler::{Reconciler, ReconcilerConfig},
    },
    quota::Quotas,
    replication::Replicator,
    service::Services,
    storage::Backend,
};

/// How long a batch of publishes may wait for RabbitMQ's confirms.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);

/// A built, bound, not yet running Baton.
pub struct Application {
    settings: Settings,
    listener: TcpListener,
    /// `BATON_METRICS_LISTEN`: `/metrics` without credentials, for an in-cluster scraper.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    services: Services,
}

impl Application {
    /// Checks the RabbitMQ URL, opens storage, connects to Postgres (creating the database
    /// when it does not exist) and runs migrations, builds the background services (validating
    /// their settings), and binds the listener (port 0 picks a free port; see
    /// [`Application::local_addr`]). Each error is one line naming the setting to fix.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        amqp::check_url(&settings.amqp_url)?;
        let storage = settings.storage.open().await?;
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
        let metrics_listener = match settings.metrics_listen {
            None => None,
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (BATON_METRICS_LISTEN)"))?,
            ),
        };
        // Counters recorded before the first scrape must not be lost.
        crate::telemetry::metrics::handle();
        let control_config = ControlConfig {
            queue_prefix: settings.queue_prefix.clone(),
            ..ControlConfig::default()
        };
        let (control, control_publisher) = Control::new(settings.amqp_url.clone(), control_config)?;
        let (auth, key_refresher) = authenticator(&settings, &db).await?;
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
            auth,
            access: http::route_access(),
            quotas: Quotas::new(settings.quotas.limits()),
            content_redirect: settings.storage.content_redirect,
            content_redirect_ttl: settings.storage.content_redirect_ttl,
        };
        let mut services = background(&settings, &state)?;
        services.push(control_publisher);
        if let Some(key_refresher) = key_refresher {
            services.push(key_refresher);
        }
        Ok(Self {
            settings,
            listener,
            metrics_listener,
            state,
            services,
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
            metrics_listener,
            state,
            services,
        } = self;
        let background = CancellationToken::new();
        let tasks = state.tasks.clone();
        tracing::debug!(services = ?services.names(), "starting background services");
        services.spawn(&tasks, &background);

        let db = state.db.clone();
        let stop_accepting = CancellationToken::new();
        let limits = http::ServerLimits {
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
            drain: settings.shutdown_timeout,
        };
        if let Some(metrics_listener) = metrics_listener {
            let metrics = http::metrics_router(state.clone());
            let server = http::serve(metrics_listener, metrics, stop_accepting.clone(), limits);
            tasks.spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(error = %error, "the metrics listener failed");
                }
            });
        }
        let server = http::serve(listener, http::router(state), stop_accepting.clone(), limits);
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

/// How requests are authenticated. With `BATON_AUTH=off`, says loudly that anyone is admin; with
/// it on, stores the bootstrap admin key if one is configured and starts OIDC if an issuer is
/// (returning the service that keeps the issuer's keys current).
async fn authenticator(
    settings: &Settings,
    db: &sqlx::PgPool,
) -> anyhow::Result<(Authenticator, Option<KeyRefresher>)> {
    if settings.auth.auth == AuthMode::Off {
        tracing::warn!(
            "AUTHENTICATION IS OFF (BATON_AUTH=off): every request acts as the `default` owner with the admin \
             role. Never expose this Baton beyond a developer's machine."
        );
        if settings
            .auth
            .oidc
            .oidc_issuer
            .as_deref()
            .is_some_and(|issuer| !issuer.is_empty())
        {
            tracing::warn!("BATON_OIDC_ISSUER is ignored: authentication is off (BATON_AUTH=off)");
        }
        return Ok((Authenticator::off(), None));
    }
    if let Some(secret) = &settings.auth.bootstrap_admin_secret {
        let key = keys::with_id(keys::BOOTSTRAP_ID, secret);
        let row = db::keys::NewKeyRow {
            id: &key.id,
            secret_sha256: &key.secret_sha256,
            owner: &crate::domain::Owner::default_owner(),
            role: crate::auth::Role::Admin.as_str(),
            name: "bootstrap admin key (BATON_BOOTSTRAP_ADMIN_SECRET)",
            expires_at: None,
        };
        db::keys::upsert(db, &row)
            .await
            .context("storing the bootstrap admin key (BATON_BOOTSTRAP_ADMIN_SECRET)")?;
    }
    let (oidc, key_refresher) = Oidc::start(&settings.auth.oidc).await?.unzip();
    Ok((Authenticator::on(db.clone(), oidc), key_refresher))
}

/// Every background service but the control publisher (built with [`Control`]), configured
/// from `settings`; an invalid setting stops Baton here, before it serves.
fn background(settings: &Settings, state: &AppState) -> anyhow::Result<Services> {
    let prefix = &settings.queue_prefix;
    let amqp_url = &settings.amqp_url;
    let mut services = Services::default();
    let publisher = Publisher::new(amqp_url.clone(), prefix.clone(), CONFIRM_TIMEOUT, state.amqp.clone());
    let dispatcher = DispatcherConfig {
        batch: settings.dispatch.dispatch_batch,
        poll: settings.dispatch.dispatch_poll,
        queue_prefix: prefix.clone(),
        lease: settings.jobs.lease,
        ..DispatcherConfig::default()
    };
    services.push(Dispatcher::new(
        state.db.clone(),
        state.storage.clone(),
        publisher,
        Arc::clone(&state.dispatch_wake),
        dispatcher,
    )?);

    let events = WorkerEventHandler {
        db: state.db.clone(),
        control: state.control.clone(),
        lease: settings.jobs.lease,
    };
    let config = ConsumerConfig {
        name: "baton-events",
        prefetch: settings.dispatch.events_prefetch,
        ..ConsumerConfig::default()
    };
    let source = Source::Queue(baton_protocol::queue::events_queue(prefix));
    services.push(Consumer::new(amqp_url.clone(), source, events, config)?.with_health(state.amqp.clone()));

    let dead_letters = DeadLetterHandler {
        db: state.db.clone(),
        control: state.control.clone(),
    };
    let config = ConsumerConfig {
        name: "baton-dead-letters",
        prefetch: 32,
        lanes: 4,
        ..ConsumerConfig::default()
    };
    let source = Source::DeadLetters { prefix: prefix.clone() };
    services.push(Consumer::new(amqp_url.clone(), source, dead_letters, config)?);

    let sweeper = SweeperConfig {
        interval: settings.jobs.reconcile_interval,
        lease: settings.jobs.lease,
        ..SweeperConfig::default()
    };
    services.push(Sweeper::new(
        state.db.clone(),
        Arc::new(state.control.clone()),
        sweeper,
    )?);

    let reconciler = ReconcilerConfig {
        queue_prefix: prefix.clone(),
        redispatch_after: settings.jobs.redispatch_after,
        interval: settings.jobs.reconcile_interval,
        ..ReconcilerConfig::default()
    };
    let wake = Arc::clone(&state.dispatch_wake);
    services.push(Reconciler::new(state.db.clone(), amqp_url.clone(), wake, reconciler)?);

    let cleanup = settings.cleanup.config();
    cleanup.validate()?;
    services.push(Cleaner::new(state.db.clone(), state.storage.clone(), cleanup));

    if let Some(replica) = state.storage.replica() {
        let volume = state
            .storage
            .volume()
            .context("BATON_STORAGE_REPLICA_URL needs the volume as primary store")?;
        services.push(Replicator::new(
            state.db.clone(),
            Backend::Volume(volume.clone()),
            replica.clone(),
            settings.replication.config(),
        )?);
    }
    services.push(WriteTargetFollower::new(
        state.db.clone(),
        state.storage.clone(),
        WriteTargetConfig::default(),
    )?);
    Ok(services)
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
