//! Part 6, slow clients: 1,000 uploads that trickle one byte every few seconds, while normal
//! clients submit jobs and download a file. Normal clients must be served (no 503) with a p99
//! within 2× of their p99 without the trickling ones, every trickling upload must be cut by the
//! rate rule (408 `upload_too_slow`), and Baton's memory must stay bounded.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Mutex,
    task::JoinSet,
};

use crate::{
    Ctx, MIB,
    env::Baton,
    report::{Report, Target},
    rss::{RssSampler, RssStats},
    stats::Latency,
    step,
};

const SECTION: &str = "6 slow clients";
pub const MODEL: &str = "benchslow";
const BOUNDARY: &str = "slowclientboundary";
/// Concurrent normal clients.
const NORMAL_CLIENTS: usize = 8;
/// Gap between a trickling upload's bytes.
const TRICKLE_EVERY: Duration = Duration::from_secs(3);
/// How much more memory than without them 1,000 trickling uploads may cost.
const RSS_ALLOWANCE_MIB: f64 = 64.0;

struct Scale {
    trickling: usize,
    phase: Duration,
    window: Duration,
}

impl Scale {
    fn new(quick: bool) -> Self {
        // The window outlasts a measured phase, so the trickling uploads are all in progress
        // while normal clients are measured, and are cut only afterwards.
        if quick {
            Self {
                trickling: 1000,
                phase: Duration::from_secs(3),
                window: Duration::from_secs(12),
            }
        } else {
            Self {
                trickling: 1000,
                phase: Duration::from_secs(10),
                window: Duration::from_secs(25),
            }
        }
    }
}

pub async fn slow_clients(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let scale = Scale::new(ctx.options.quick);
    raise_open_files_limit(scale.trickling)?;
    let mut extra = ctx.options.baton_env.clone();
    extra.push((
        "BATON_UPLOAD_RATE_WINDOW".into(),
        format!("{}s", scale.window.as_secs()),
    ));
    extra.push(("BATON_UPLOAD_MIN_RATE".into(), "1KiB".into()));
    let baton = ctx.start_baton_with("slow", &extra).await?;
    let outcome = measure(ctx, &baton, &scale, report).await;
    baton.stop().await;
    outcome
}

async fn measure(ctx: &Ctx, baton: &Baton, scale: &Scale, report: &mut Report) -> anyhow::Result<()> {
    let download = upload_file(ctx, &baton.base_url).await?;

    step("slow clients: normal clients alone");
    let rss = RssSampler::start(baton.pid());
    let alone = normal_clients(ctx, &baton.base_url, &download, scale.phase).await;
    let rss_alone = rss.finish().await;

    step(&format!("slow clients: {} trickling uploads", scale.trickling));
    let addr = baton.base_url.trim_start_matches("http://").to_owned();
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(scale.trickling)));
    let mut trickling = JoinSet::new();
    let rss = RssSampler::start(baton.pid());
    for _ in 0..scale.trickling {
        let (addr, outcomes) = (addr.clone(), Arc::clone(&outcomes));
        trickling.spawn(async move {
            let outcome = trickle(&addr).await;
            outcomes.lock().await.push(outcome);
        });
    }
    // Every trickling upload has started sending before normal clients are measured again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let beside = normal_clients(ctx, &baton.base_url, &download, scale.phase).await;
    let deadline = scale.window * 2 + Duration::from_secs(15);
    let all_ended = tokio::time::timeout(deadline, async { while trickling.join_next().await.is_some() {} }).await;
    let rss_beside = rss.finish().await;
    trickling.abort_all();
    let outcomes = outcomes.lock().await.clone();

    let alone = alone?;
    let beside = beside?;
    let cut = outcomes.iter().filter(|o| o.as_str() == "408 upload_too_slow").count();
    report_rows(report, scale, &alone, &beside, cut, &rss_alone, &rss_beside);
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for outcome in &outcomes {
        match kinds.iter_mut().find(|(k, _)| k == outcome) {
            Some((_, n)) => *n += 1,
            None => kinds.push((outcome.clone(), 1)),
        }
    }
    report.detail(
        "slow_clients",
        serde_json::json!({
            "trickling": scale.trickling,
            "trickle_every_s": TRICKLE_EVERY.as_secs(),
            "rate_window_s": scale.window.as_secs(),
            "phase_s": scale.phase.as_secs(),
            "all_trickling_ended": all_ended.is_ok(),
            "trickling_outcomes": kinds,
            "normal_alone": alone,
            "normal_beside": beside,
            "rss_alone": rss_alone,
            "rss_beside": rss_beside,
        }),
    );
    Ok(())
}

fn report_rows(
    report: &mut Report,
    scale: &Scale,
    alone: &Normal,
    beside: &Normal,
    cut: usize,
    rss_alone: &RssStats,
    rss_beside: &RssStats,
) {
    let (a, b) = (&alone.latency, &beside.latency);
    report.compare(
        SECTION,
        "normal clients' p99 beside trickling uploads",
        b.p99_ms,
        "ms",
        format!("p50 {:.1} / p99 {:.1} ms", b.p50_ms, b.p99_ms),
        a.p99_ms,
        format!("alone: p50 {:.1} / p99 {:.1} ms", a.p50_ms, a.p99_ms),
        Some(Target::AtMost(2.0)),
    );
    let total = beside.ok + beside.refused + beside.failed;
    report.compare(
        SECTION,
        "normal requests served beside them",
        beside.ok as f64,
        "requests",
        format!(
            "{} of {total} ({} refused 503, {} other errors)",
            beside.ok, beside.refused, beside.failed
        ),
        total.max(1) as f64,
        "all requests".into(),
        Some(Target::AtLeast(1.0)),
    );
    report.compare(
        SECTION,
        "trickling uploads cut by the rate rule",
        cut as f64,
        "uploads",
        format!("{cut} of {} with 408 upload_too_slow", scale.trickling),
        scale.trickling as f64,
        "all trickling uploads".into(),
        Some(Target::AtLeast(1.0)),
    );
    let (peak_alone, peak_beside) = (rss_alone.peak_mib(), rss_beside.peak_mib());
    report.compare(
        SECTION,
        "peak RSS beside trickling uploads",
        peak_beside,
        "MiB",
        format!("{peak_beside:.1} MiB"),
        peak_alone + RSS_ALLOWANCE_MIB,
        format!("alone {peak_alone:.1} MiB + {RSS_ALLOWANCE_MIB} MiB"),
        Some(Target::AtMost(1.0)),
    );
}

#[derive(Debug, Clone, serde::Serialize)]
struct Normal {
    latency: Latency,
    ok: usize,
    refused: usize,
    failed: usize,
}

/// A normal client's round: submit a 64 KiB job, then download a 1 MiB file. Each request's
/// latency counts.
async fn normal_clients(ctx: &Ctx, base: &str, download: &str, phase: Duration) -> anyhow::Result<Normal> {
    let end = Instant::now() + phase;
    let mut clients = JoinSet::new();
    for client in 0..NORMAL_CLIENTS {
        let (http, base, download) = (ctx.client.clone(), base.to_owned(), download.to_owned());
        let tag = ctx.tag;
        clients.spawn(async move {
            let mut samples = Vec::new();
            let (mut ok, mut refused, mut failed) = (0, 0, 0);
            let mut n = 0_u64;
            while Instant::now() < end {
                n += 1;
                let content = crate::load::stamp(&[b'n'; 64 * 1024], tag ^ client as u64, n);
                let started = Instant::now();
                let submit = http
                    .post(format!("{base}/v1/jobs"))
                    .multipart(job_form(content))
                    .send()
                    .await;
                let status = submit.map(|r| r.status().as_u16());
                samples.push(started.elapsed());
                tally(status, 202, &mut ok, &mut refused, &mut failed);

                let started = Instant::now();
                let status = match http.get(format!("{base}{download}")).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        response.bytes().await.map(|_| status)
                    }
                    Err(e) => Err(e),
                };
                samples.push(started.elapsed());
                tally(status, 200, &mut ok, &mut refused, &mut failed);
            }
            (samples, ok, refused, failed)
        });
    }
    let mut normal = Normal {
        latency: Latency::default(),
        ok: 0,
        refused: 0,
        failed: 0,
    };
    let mut samples = Vec::new();
    while let Some(done) = clients.join_next().await {
        let (s, ok, refused, failed) = done?;
        samples.extend(s);
        normal.ok += ok;
        normal.refused += refused;
        normal.failed += failed;
    }
    normal.latency = Latency::from_durations(&samples);
    Ok(normal)
}

fn tally(status: Result<u16, reqwest::Error>, expected: u16, ok: &mut usize, refused: &mut usize, failed: &mut usize) {
    match status {
        Ok(s) if s == expected => *ok += 1,
        Ok(503) => *refused += 1,
        _ => *failed += 1,
    }
}

fn job_form(content: Vec<u8>) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(content)
        .file_name("input.bin")
        .mime_str("application/octet-stream")
        .expect("a valid media type");
    reqwest::multipart::Form::new().text("model", MODEL).part("input", part)
}

/// Stores a 1 MiB file and returns the path of its content.
async fn upload_file(ctx: &Ctx, base: &str) -> anyhow::Result<String> {
    let response = ctx
        .client
        .post(format!("{base}/v1/jobs"))
        .multipart(job_form(crate::load::stamp(&vec![b'd'; MIB as usize], ctx.tag, 0)))
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 202,
        "storing the download failed: {}",
        response.status()
    );
    let job: serde_json::Value = response.json().await?;
    let id = job["files"][0]["id"].as_str().context("a file id")?;
    Ok(format!("/v1/files/{id}/content"))
}

/// One trickling upload: a valid form up to a file part, then a byte every few seconds until
/// Baton answers. Returns `"<status> <code>"`, or what happened instead.
async fn trickle(addr: &str) -> String {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return "connect failed".into();
    };
    let (mut reader, writer) = stream.into_split();
    let form = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{MODEL}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"input\"; filename=\"slow.bin\"\r\n\r\n"
    );
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: bench\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\n\
         content-length: {}\r\n\r\n{form}",
        1 << 20
    );
    let send = send_slowly(writer, head);
    let receive = async move {
        let mut response = Vec::new();
        let mut buffer = [0u8; 2048];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buffer[..n]),
            }
            if response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"}") {
                break;
            }
        }
        response
    };
    tokio::select! {
        error = send => format!("closed while sending: {}", error.kind()),
        response = receive => describe(&response),
    }
}

/// Sends `head`, then a byte every [`TRICKLE_EVERY`] until a write fails.
async fn send_slowly(mut writer: tokio::net::tcp::OwnedWriteHalf, head: String) -> std::io::Error {
    if let Err(e) = writer.write_all(head.as_bytes()).await {
        return e;
    }
    loop {
        tokio::time::sleep(TRICKLE_EVERY).await;
        if let Err(e) = writer.write_all(b"x").await {
            return e;
        }
    }
}

fn describe(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    let status = text.split(' ').nth(1).unwrap_or("none");
    let code = text
        .split("\"code\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("no code");
    format!("{status} {code}")
}

fn raise_open_files_limit(connections: usize) -> anyhow::Result<()> {
    let wanted = connections as u64 + 1024;
    let got = rlimit::increase_nofile_limit(wanted)?;
    anyhow::ensure!(
        got >= wanted,
        "the open-files limit is {got}; {wanted} needed (ulimit -n)"
    );
    Ok(())
}
