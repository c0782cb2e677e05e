//! Part 3: small jobs against the volume's and Postgres's durability floors.

use std::{collections::HashMap, time::Duration};

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::{
    Ctx, P99_GOAL_MS,
    cpu::CpuUse,
    limits, load,
    load::{JobSpec, LoopOutcome, Stop, Submitter},
    phases::small_auth,
    report::{Report, Target, num},
    rows::{check_errors, cpu_meter, cpu_row, latency_row, rss_row},
    rss::RssSampler,
    stats::{Latency, per_s},
    step,
    tap::Tap,
};

/// Part 3, small jobs: throughput and latency to 202 and to the worker, next to the volume's
/// and Postgres's durability floors; then latency at half the maximum rate; then the same jobs
/// with authentication off and on ([`small_auth`]).
///
/// The volume's fsync latency drifts (by several times within a minute here), so the floor and
/// Baton are measured in alternating slices and compared over the sums.
pub async fn small_jobs(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let section = "3 small jobs";
    let clients = ctx.scale.clients;
    let (threads, slice, rounds) = (ctx.scale.floor_threads, ctx.scale.floor, ctx.scale.small_rounds);

    // Measured while Baton is stopped: its pool would otherwise hold Postgres connections.
    step(&format!(
        "Postgres floor: single-row INSERT commits, {} connections and 1",
        ctx.scale.pg_connections
    ));
    let pg = limits::postgres_floor(&ctx.database.url, ctx.scale.pg_connections, slice).await?;
    let pg_serial = limits::postgres_floor(&ctx.database.url, 1, slice).await?;

    let baton = ctx.start_baton("3").await?;
    let queue = ctx.queue("benchsmall");
    let tap = Tap::start(&ctx.options.amqp_url, &ctx.prefix, std::slice::from_ref(&queue)).await?;
    let submitter = Submitter::new(ctx.client.clone(), &baton.base_url);
    let spec = JobSpec::new("benchsmall", 4096, ctx.tag ^ 3);
    // Each closed loop numbers its jobs from 0: a slice of its own keeps content from repeating.
    let warm = load::closed_loop(&submitter, &spec.slice(0), clients, Stop::Jobs(clients)).await;
    check_errors("4 KiB warm-up", &warm)?;
    tap.wait_for(&warm.ids(), Duration::from_secs(10)).await;

    step(&format!(
        "volume floor with a new leaf directory per file ({threads} threads)"
    ));
    let floor_new_dirs = volume_floor(ctx, threads, slice, true).await?;

    let sampler = RssSampler::start(baton.pid());
    let mut floors = Vec::with_capacity(rounds);
    let mut cpu_slices = Vec::with_capacity(rounds);
    let mut closed = LoopOutcome::default();
    let baton_slice = ctx.scale.phase / u32::try_from(rounds).unwrap_or(1);
    for round in 1..=rounds {
        step(&format!(
            "round {round}/{rounds}: volume floor (4 KiB files, {threads} threads), \
             then Baton with {clients} clients submitting 4 KiB jobs"
        ));
        floors.push(volume_floor(ctx, threads, slice, false).await?);
        let meter = cpu_meter(baton.pid(), Vec::new());
        let outcome = load::closed_loop(&submitter, &spec.slice(round as u64), clients, Stop::After(baton_slice)).await;
        cpu_slices.push(meter.finish());
        check_errors("4 KiB jobs", &outcome)?;
        closed.merge(outcome);
        // Let the dispatcher catch up so that the next floor slice runs on a quiet volume.
        tap.wait_for(&closed.ids(), Duration::from_secs(30)).await;
    }
    let missing = tap.wait_for(&closed.ids(), Duration::from_secs(30)).await;
    let max_rate = per_s(closed.submitted.len(), closed.elapsed);
    let to_202 = Latency::from_durations(&closed.latencies());
    let to_worker = to_worker_latency(&tap, &closed);
    let floor_ops: usize = floors.iter().map(|f| f.ops).sum();
    let floor_seconds: f64 = floors.iter().map(|f| f.seconds).sum();
    let floor = floor_ops as f64 / floor_seconds;
    let floor_range = floors
        .iter()
        .map(|f| f.ops_s)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));

    let rate = max_rate / 2.0;
    step(&format!("Baton: open loop at {rate:.0} jobs/s (half the maximum)"));
    let open = load::open_loop(&submitter, &spec, rate, ctx.scale.phase, 1024).await;
    check_errors("4 KiB open loop", &open)?;
    let open_missing = tap.wait_for(&open.ids(), Duration::from_secs(30)).await;
    let rss = sampler.finish().await;
    step(&format!(
        "RabbitMQ alone at {rate:.0} messages/s: persistent, confirmed, quorum queue"
    ));
    let (amqp_delivered, amqp_confirmed) =
        crate::tap::amqp_floor(&ctx.options.amqp_url, &ctx.queue("benchfloor"), rate, ctx.scale.phase).await?;
    let open_to_202 = Latency::from_durations(&open.latencies());
    let open_to_worker = to_worker_latency(&tap, &open);
    let cpu = CpuUse::sum(&cpu_slices);
    let timestamps = job_timestamps(&ctx.database.url, "benchsmall").await?;
    let closed_stages = stages(&tap, &closed, &timestamps);
    let open_stages = stages(&tap, &open, &timestamps);
    baton.stop().await;
    let auth = small_auth::measure(ctx, &tap).await?;
    tap.close().await;

    report.compare(
        section,
        &format!("4 KiB jobs, {clients} clients"),
        max_rate,
        "jobs/s",
        format!("{} jobs/s", num(max_rate)),
        floor,
        format!(
            "{} files/s volume floor (slices {}..{})",
            num(floor),
            num(floor_range.0),
            num(floor_range.1)
        ),
        Some(Target::AtLeast(0.7)),
    );
    report.compare(
        section,
        "4 KiB jobs vs Postgres commits",
        max_rate,
        "jobs/s",
        format!("{} jobs/s", num(max_rate)),
        pg.ops_s,
        format!("{} commits/s ({} connections)", num(pg.ops_s), pg.threads),
        None,
    );
    report.info(
        section,
        "volume floor, new leaf dir per file",
        floor_new_dirs.ops_s,
        "files/s",
        format!("{} files/s", num(floor_new_dirs.ops_s)),
    );
    report.info(
        section,
        "Postgres commits, 1 connection",
        pg_serial.ops_s,
        "commits/s",
        format!(
            "{} commits/s (p50 {} ms)",
            num(pg_serial.ops_s),
            num(pg_serial.latency.p50_ms)
        ),
    );
    latency_row(report, section, "submit -> 202", &to_202);
    latency_row(report, section, "submit -> worker has it", &to_worker);
    report.compare(
        section,
        &format!("half rate ({} jobs/s): p99 submit -> worker", num(rate)),
        open_to_worker.p99_ms,
        "ms",
        format!(
            "p50 {} / p99 {} ms",
            num(open_to_worker.p50_ms),
            num(open_to_worker.p99_ms)
        ),
        P99_GOAL_MS,
        format!("{P99_GOAL_MS} ms goal"),
        Some(Target::AtMost(1.0)),
    );
    latency_row(
        report,
        section,
        "half rate, RabbitMQ alone: publish -> delivered",
        &amqp_delivered,
    );
    latency_row(
        report,
        section,
        "half rate, RabbitMQ alone: publish -> confirmed",
        &amqp_confirmed,
    );
    latency_row(report, section, "half rate: submit -> 202", &open_to_202);
    latency_row(
        report,
        section,
        "half rate: submit -> tx start (upload, fsync)",
        &open_stages.submit_to_tx,
    );
    latency_row(
        report,
        section,
        "half rate: tx start -> 202 (place, commit)",
        &open_stages.tx_to_202,
    );
    latency_row(
        report,
        section,
        "half rate: tx start -> worker has it",
        &open_stages.tx_to_worker,
    );
    rss_row(report, section, "Baton peak RSS", &rss);
    cpu_row(report, section, &cpu, closed.submitted.len(), "job");
    auth.report(report, section, clients);
    report.detail(
        "small_jobs",
        serde_json::json!({
            "cpu_closed_loop": cpu,
            "stages_closed_loop": closed_stages,
            "stages_half_rate": open_stages,
            "rabbitmq_alone_half_rate": {
                "publish_to_delivered": amqp_delivered,
                "publish_to_confirmed": amqp_confirmed,
            },
            "clients": clients,
            "rounds": rounds,
            "closed_loop": {
                "jobs": closed.submitted.len(), "seconds": closed.elapsed.as_secs_f64(),
                "jobs_s": max_rate, "submit_to_202": to_202, "submit_to_worker": to_worker,
                "not_received": missing,
            },
            "open_loop": {
                "rate": rate, "jobs": open.submitted.len(), "shed": open.shed,
                "submit_to_202": open_to_202, "submit_to_worker": open_to_worker,
                "not_received": open_missing,
            },
            "volume_floor": { "files_s": floor, "slices": floors },
            "volume_floor_new_leaf_dirs": floor_new_dirs,
            "postgres_floor": pg,
            "postgres_serial": pg_serial,
            "rss": rss,
        }),
    );
    Ok(())
}

pub async fn volume_floor(
    ctx: &Ctx,
    threads: usize,
    duration: Duration,
    new_dirs: bool,
) -> anyhow::Result<limits::Floor> {
    let root = ctx.storage.clone();
    tokio::task::spawn_blocking(move || limits::volume_floor(&root, threads, duration, new_dirs)).await?
}

/// `(created_at, dispatched_at)` of a model's jobs as Unix seconds (Postgres `now()` of the
/// submit transaction, and of the dispatcher's update after RabbitMQ's confirm).
pub async fn job_timestamps(
    database_url: &str,
    model: &str,
) -> anyhow::Result<HashMap<uuid::Uuid, (f64, Option<f64>)>> {
    let mut db = PgConnection::connect(database_url).await?;
    let rows: Vec<(uuid::Uuid, f64, Option<f64>)> = sqlx::query_as(
        "SELECT id, extract(epoch FROM created_at)::float8, extract(epoch FROM dispatched_at)::float8
         FROM jobs WHERE model = $1",
    )
    .bind(model)
    .fetch_all(&mut db)
    .await?;
    db.close().await?;
    Ok(rows.into_iter().map(|(id, c, d)| (id, (c, d))).collect())
}

/// Where a submission's time goes, from the client's clock and Postgres's (same host).
#[derive(Debug, Default, Serialize)]
pub struct Stages {
    /// Request start to the submit transaction's start: upload, hashing, temp-file fsync,
    /// waiting for a pooled connection.
    submit_to_tx: Latency,
    /// Transaction start to the 202 arriving: blob row, placement (rename, directory fsyncs),
    /// job rows, commit, response.
    tx_to_202: Latency,
    /// Transaction start to the message reaching the consumer: commit, dispatcher wake-up,
    /// claim, publish, RabbitMQ's confirm path, delivery.
    tx_to_worker: Latency,
    /// Transaction start to the dispatcher recording the confirmed publish.
    tx_to_dispatched: Latency,
}

pub fn stages(tap: &Tap, outcome: &LoopOutcome, timestamps: &HashMap<uuid::Uuid, (f64, Option<f64>)>) -> Stages {
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for s in &outcome.submitted {
        let Some((created, dispatched)) = timestamps.get(&s.id) else {
            continue;
        };
        a.push((created - s.started_unix) * 1e3);
        b.push((s.started_unix + s.latency.as_secs_f64() - created) * 1e3);
        if let Some(at) = tap.get(&s.id) {
            let received = s.started_unix + at.saturating_duration_since(s.started).as_secs_f64();
            c.push((received - created) * 1e3);
        }
        if let Some(dispatched) = dispatched {
            d.push((dispatched - created) * 1e3);
        }
    }
    Stages {
        submit_to_tx: Latency::from_ms(a),
        tx_to_202: Latency::from_ms(b),
        tx_to_worker: Latency::from_ms(c),
        tx_to_dispatched: Latency::from_ms(d),
    }
}

pub fn to_worker_latency(tap: &Tap, outcome: &LoopOutcome) -> Latency {
    let samples: Vec<Duration> = outcome
        .submitted
        .iter()
        .filter_map(|s| tap.get(&s.id).map(|at| at.saturating_duration_since(s.started)))
        .collect();
    Latency::from_durations(&samples)
}
