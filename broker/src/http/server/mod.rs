//! The HTTP server loop. Every connection is bounded:
//! - at most `max_connections` are open; one more is answered 503 `busy` and closed at once;
//! - a connection with no request in progress for `header_read_timeout` (one that never sends a
//!   byte, trickles its headers, or idles between keep-alive requests) is closed;
//! - HTTP/1.1 only: an HTTP/2 connection could hold streams open without sending headers, so
//!   the plain port does not speak it (a TLS-terminating proxy in front speaks HTTP/1.1 to Baton).
//!
//! Shutdown stops accepting, lets in-flight requests finish within a bound, then drops the rest
//! (their temp files are removed as their futures drop).

mod activity;

use std::{convert::Infallible, io, sync::Arc, time::Duration};

use axum::{Router, body::Body, extract::Request};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use self::activity::Activity;
use super::error::RETRY_AFTER_SECS;

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A connection must complete a request's headers within this time of opening, and of its
    /// previous response.
    pub header_read_timeout: Duration,
    /// Most open connections.
    pub max_connections: u32,
    /// After `stop`, in-flight requests get this long to finish.
    pub drain: Duration,
}

/// How long a refused connection gets to take its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves until `stop` fires, then drains for at most `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    limits: ServerLimits,
) -> io::Result<()> {
    raise_open_files_limit(limits.max_connections);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let open = Arc::new(Semaphore::new(limits.max_connections as usize));
    let draining = CancellationToken::new();
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
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            metrics::counter!(crate::telemetry::metrics::CONNECTIONS_REFUSED).increment(1);
            connections.spawn(refuse(stream));
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let connection = Connection {
            router: router.clone(),
            builder: builder.clone(),
            idle_timeout: limits.header_read_timeout,
            draining: draining.clone(),
            _permit: permit,
        };
        connections.spawn(async move {
            if let Err(e) = connection.run(stream).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);

    draining.cancel();
    let drained = tokio::time::timeout(limits.drain, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "requests still running after {:?}; abandoning them",
            limits.drain
        );
    }
    connections.shutdown().await;
    Ok(())
}

struct Connection {
    router: Router,
    builder: http1::Builder,
    idle_timeout: Duration,
    draining: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream) -> Result<(), hyper::Error> {
        let activity = Activity::new();
        let router = self.router;
        let requests = Arc::clone(&activity);
        let service = tower::service_fn(move |request: Request<Incoming>| {
            let guard = requests.begin();
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(Body::new)).await?;
                Ok::<_, Infallible>(response.map(|body| activity::guard_body(body, guard)))
            }
        });
        let connection = self
            .builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        tokio::pin!(connection);
        let mut shutting_down = false;
        loop {
            let idle_deadline = activity.idle_deadline(self.idle_timeout);
            tokio::select! {
                result = connection.as_mut() => return result,
                () = self.draining.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = tokio::time::sleep_until(idle_deadline) => {
                    if activity.idle_for() >= self.idle_timeout {
                        // Dropping the connection closes the socket.
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Each connection is a file descriptor, and many systems start processes with a soft limit of
/// 1,024: raise it towards the hard limit so `max_connections` can be reached.
fn raise_open_files_limit(max_connections: u32) {
    // Room beyond the connections for files being written, Postgres and RabbitMQ.
    let wanted = u64::from(max_connections) + 1024;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => tracing::warn!(
            limit = got,
            "the open-files limit is below BATON_MAX_CONNECTIONS plus headroom; raise `ulimit -n`"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
}

/// Answers a connection beyond the limit with a 503 and closes it, without reading its request.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":{"code":"busy","message":"Baton is at its limit of open connections; retry shortly"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {RETRY_AFTER_SECS}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    if let Err(e) = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, write)
        .await
        .unwrap_or(Ok(()))
    {
        tracing::debug!(error = %e, "could not answer a refused connection");
    }
}
