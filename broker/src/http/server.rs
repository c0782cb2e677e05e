//! The HTTP server loop: hyper connections with a header read timeout (a client that trickles
//! its headers is cut off), and a shutdown that stops accepting, lets in-flight requests finish
//! within a bound, then drops the rest (their temp files are removed as their futures drop).

use std::{io, time::Duration};

use axum::{Router, body::Body, extract::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A client must send its request headers within this time.
    pub header_read_timeout: Duration,
    /// After `stop`, in-flight requests get this long to finish.
    pub drain: Duration,
}

/// Serves until `stop` fires, then drains for at most `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    limits: ServerLimits,
) -> io::Result<()> {
    let drain = limits.drain;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();

    loop {
        let (stream, remote) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service = router
            .clone()
            .map_request(|request: Request<Incoming>| request.map(Body::new));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);

    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "requests still running after {drain:?}; abandoning them"
        );
    }
    connections.shutdown().await;
    Ok(())
}
