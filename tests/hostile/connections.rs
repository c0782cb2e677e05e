//! Connections that try to hold Baton's resources: silent, trickling, idle, HTTP/2 without a
//! request, uploads that stall, and more connections or uploads than Baton allows.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use baton_e2e::{TestApp, TestEnv, amqp_url, eventually};

use crate::{
    form::{FormBytes, content_type},
    left_behind, process, raw,
};

/// `--header-read-timeout` of the apps here is 2 s; allow for a loaded machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(8);

pub async fn run_all(env: &TestEnv, app: &TestApp) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            failures.push(what.to_owned());
        }
    };
    check(
        silent_connection_is_closed(app.addr).await,
        "a silent connection was not closed",
    );
    check(
        http2_preface_is_closed(app.addr).await,
        "an HTTP/2 connection without a request was not closed",
    );
    check(
        trickled_headers_are_cut(app.addr).await,
        "a connection trickling its headers was not closed",
    );
    check(
        idle_keep_alive_is_closed(app.addr).await,
        "an idle kept-alive connection was not closed",
    );
    check(
        trickling_upload_is_cut(app.addr).await,
        "a trickling upload was not cut with 408 upload_too_slow",
    );
    check(
        short_body_is_never_accepted(app.addr).await,
        "a body shorter than its Content-Length was not cut with 408 upload_too_slow",
    );
    if let Some(left) = left_behind(env).await {
        failures.push(format!("connection cases left behind {left}"));
    }

    let small = env
        .spawn_app_with(
            &amqp_url(),
            &[
                "--max-uploads",
                "2",
                "--max-connections",
                "6",
                "--header-read-timeout",
                "2s",
                "--upload-rate-window",
                "2s",
            ],
        )
        .await;
    failures.extend(uploads_beyond_the_limit_are_shed(small.addr).await);
    failures.extend(connections_beyond_the_limit_are_shed(small.addr).await);
    if let Some(left) = left_behind(env).await {
        failures.push(format!("load-shedding cases left behind {left}"));
    }
    small.stop().await;
    failures
}

async fn silent_connection_is_closed(addr: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    raw::closed_within(&mut stream, CLOSED_WITHIN).await
}

async fn http2_preface_is_closed(addr: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    raw::closed_within(&mut stream, CLOSED_WITHIN).await
}

async fn trickled_headers_are_cut(addr: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let trickle = async {
        for byte in b"GET /healthz HTTP/1.1\r\nhost: baton\r\nx-slow: ".iter().cycle() {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::time::timeout(CLOSED_WITHIN, trickle).await.is_ok()
}

async fn idle_keep_alive_is_closed(addr: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: baton\r\n\r\n")
        .await
        .unwrap();
    // The response arrives, then the connection sits idle until Baton closes it.
    raw::closed_within(&mut stream, CLOSED_WITHIN).await
}

/// A valid form up to a file part, then one byte every half second.
async fn trickling_upload_is_cut(addr: SocketAddr) -> bool {
    let start = FormBytes::default()
        .text("model", "example")
        .raw(b"--hostile-boundary-7d4e8a3b\r\nContent-Disposition: form-data; name=\"input\"; filename=\"a\"\r\n\r\n")
        .open();
    let body = futures::stream::iter([Bytes::from(start)]).chain(futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some((Bytes::from_static(b"x"), ()))
    }));
    let head = raw::request("POST", "/v1/jobs", &[("content-type", content_type())], Some(1 << 20));
    expect(raw::exchange(addr, head, body).await, 408, "upload_too_slow")
}

/// A complete form whose Content-Length promises 100 bytes more, which never come.
async fn short_body_is_never_accepted(addr: SocketAddr) -> bool {
    let form = FormBytes::valid().close();
    let head = raw::request(
        "POST",
        "/v1/jobs",
        &[("content-type", content_type())],
        Some(form.len() + 100),
    );
    let body = futures::stream::iter([Bytes::from(form)]);
    expect(raw::exchange(addr, head, body).await, 408, "upload_too_slow")
}

/// Two uploads in progress hold both permits; a third is answered 503 `busy` at once.
async fn uploads_beyond_the_limit_are_shed(addr: SocketAddr) -> Vec<String> {
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = raw::request("POST", "/v1/jobs", &[("content-type", content_type())], Some(1 << 20));
        stream.write_all(head.as_bytes()).await.unwrap();
        held.push(stream);
    }
    let mut failures = Vec::new();
    if !eventually(Duration::from_secs(10), || async {
        uploads_in_progress(addr).await == Some(2.0)
    })
    .await
    {
        failures.push("two uploads never both reached the handler".to_owned());
    }
    let form = FormBytes::valid().close();
    let head = raw::request(
        "POST",
        "/v1/jobs",
        &[("content-type", content_type())],
        Some(form.len()),
    );
    let started = tokio::time::Instant::now();
    let response = raw::exchange(addr, head, futures::stream::iter([Bytes::from(form)])).await;
    match response {
        Ok(r) if r.status == 503 && r.code() == "busy" && r.header("retry-after").is_some() => {}
        Ok(r) => failures.push(format!(
            "a third upload got {} {} (expected 503 busy with Retry-After)",
            r.status,
            r.code()
        )),
        Err(e) => failures.push(format!("a third upload got no answer: {e}")),
    }
    if started.elapsed() > Duration::from_secs(2) {
        failures.push(format!(
            "shedding an upload took {:?}; it must be at once",
            started.elapsed()
        ));
    }
    drop(held);
    failures
}

/// Six open connections fill the limit; a seventh is answered 503 `busy` and closed.
async fn connections_beyond_the_limit_are_shed(addr: SocketAddr) -> Vec<String> {
    let mut failures = Vec::new();
    // The held uploads above are gone once Baton sees their sockets close.
    if !eventually(Duration::from_secs(10), || async {
        uploads_in_progress(addr).await == Some(0.0)
    })
    .await
    {
        failures.push("the uploads held above never ended".to_owned());
    }
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let port = addr.port();
    if !eventually(Duration::from_secs(10), || async {
        process::open_server_connections(port) >= 6
    })
    .await
    {
        failures.push("six connections were never all established".to_owned());
    }
    let head = raw::request("GET", "/healthz", &[], None);
    match raw::exchange(addr, head, futures::stream::empty()).await {
        Ok(r) if r.status == 503 && r.code() == "busy" && r.header("retry-after").is_some() => {}
        Ok(r) => failures.push(format!("a seventh connection got {} {}", r.status, r.code())),
        Err(e) => failures.push(format!("a seventh connection got no answer: {e}")),
    }
    drop(held);
    failures
}

/// Baton's `baton_uploads_in_progress` gauge, from `/metrics` on a connection that is closed
/// right after (so it holds no connection slot).
async fn uploads_in_progress(addr: SocketAddr) -> Option<f64> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().ok()?;
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("baton_uploads_in_progress "))
        .and_then(|value| value.trim().parse().ok())
}

fn expect(response: std::io::Result<raw::Response>, status: u16, code: &str) -> bool {
    match response {
        Ok(r) if r.status == status && r.code() == code => true,
        Ok(r) => {
            eprintln!("expected {status} {code}, got {} {}", r.status, r.code());
            false
        }
        Err(e) => {
            eprintln!("expected {status} {code}, got no answer: {e}");
            false
        }
    }
}
