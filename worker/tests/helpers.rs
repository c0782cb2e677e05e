//! A tiny HTTP server standing in for an object store's signed URLs: it serves bytes by path,
//! counts the GETs it answers, and can fail or hold its answers on demand.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{Path as UrlPath, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use baton_protocol::ObjectRef;
use baton_worker::cache::{CacheConfig, ObjectAccess, ObjectCache, RetryPolicy};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Served {
    objects: Mutex<HashMap<String, Vec<u8>>>,
    gets: AtomicUsize,
    /// The next this many GETs are answered with this status.
    failing: Mutex<(usize, u16)>,
}

pub struct ObjectServer {
    addr: SocketAddr,
    served: Arc<Served>,
    /// While false, answers wait.
    open: watch::Sender<bool>,
    stop: CancellationToken,
}

impl ObjectServer {
    pub async fn start() -> Self {
        let served = Arc::new(Served::default());
        let (open, gate) = watch::channel(true);
        let app = Router::new()
            .route("/{name}", get(serve))
            .with_state((Arc::clone(&served), gate));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            addr,
            served,
            open,
            stop,
        }
    }

    /// Serves `bytes` at `/{name}`; returns a reference to them (signed URL valid for an hour).
    pub fn put(&self, name: &str, bytes: &[u8]) -> ObjectRef {
        self.served
            .objects
            .lock()
            .unwrap()
            .insert(name.to_owned(), bytes.to_vec());
        object_at(&format!("http://{}/{name}", self.addr))
    }

    /// GETs answered so far (whatever the answer).
    pub fn gets(&self) -> usize {
        self.served.gets.load(Ordering::SeqCst)
    }

    /// The next `count` GETs are answered with `status`.
    pub fn fail_next(&self, count: usize, status: u16) {
        *self.served.failing.lock().unwrap() = (count, status);
    }

    /// Holds every answer until [`ObjectServer::release`].
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    pub fn release(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for ObjectServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(
    State((served, mut gate)): State<(Arc<Served>, watch::Receiver<bool>)>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    served.gets.fetch_add(1, Ordering::SeqCst);
    if gate.wait_for(|open| *open).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    {
        let mut failing = served.failing.lock().unwrap();
        if failing.0 > 0 {
            failing.0 -= 1;
            return StatusCode::from_u16(failing.1).unwrap().into_response();
        }
    }
    match served.objects.lock().unwrap().get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A reference to the object at `url`, valid for an hour.
pub fn object_at(url: &str) -> ObjectRef {
    ObjectRef {
        store: "s3://test-bucket".to_owned(),
        key: "blobs/test".to_owned(),
        url: url.to_owned(),
        expires_at: time::OffsetDateTime::now_utc() + Duration::from_secs(3600),
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Short pauses between fetch tries, so that retry tests are quick.
pub fn quick_retries(tries: u32) -> RetryPolicy {
    RetryPolicy {
        tries,
        first_delay: Duration::from_millis(20),
    }
}

pub fn cache_at(dir: &Path, max_bytes: u64) -> ObjectCache {
    ObjectCache::open(CacheConfig {
        dir: dir.to_owned(),
        max_bytes,
        access: ObjectAccess::SignedUrl,
        retry: quick_retries(3),
    })
    .unwrap()
}

/// Names in the cache directory, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
